/**
 * The password policy of the server (config `password_policy`): a minimum length and the
 * classes of characters a new password must contain. Checked wherever a password is set
 * (registration, password changes, the admin API); a refusal is 400 M_WEAK_PASSWORD.
 */
import { MatrixError } from './errors.js';

export interface PasswordPolicy {
  /** In characters (code points); 0: any length. */
  minimumLength: number;
  requireDigit: boolean;
  requireLowercase: boolean;
  requireUppercase: boolean;
  /** Anything that is not a letter or a digit. */
  requireSymbol: boolean;
}

export const NO_PASSWORD_POLICY: PasswordPolicy = {
  minimumLength: 0,
  requireDigit: false,
  requireLowercase: false,
  requireUppercase: false,
  requireSymbol: false,
};

/** What `password` lacks under `policy`, or null when it is acceptable. */
export function passwordProblem(policy: PasswordPolicy, password: string): string | null {
  if ([...password].length < policy.minimumLength) {
    return `Password must be at least ${policy.minimumLength} characters long`;
  }
  if (policy.requireDigit && !/\p{Nd}/u.test(password)) return 'Password must contain a digit';
  if (policy.requireLowercase && !/\p{Ll}/u.test(password)) {
    return 'Password must contain a lowercase letter';
  }
  if (policy.requireUppercase && !/\p{Lu}/u.test(password)) {
    return 'Password must contain an uppercase letter';
  }
  if (policy.requireSymbol && !/[^\p{L}\p{Nd}]/u.test(password)) {
    return 'Password must contain a symbol';
  }
  return null;
}

/** Throws 400 M_WEAK_PASSWORD when `password` breaks `policy`. */
export function assertPasswordAllowed(policy: PasswordPolicy, password: string): void {
  const problem = passwordProblem(policy, password);
  if (problem !== null) throw new MatrixError(400, 'M_WEAK_PASSWORD', problem);
}
