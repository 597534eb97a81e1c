/** Random secrets: access tokens, device IDs, session IDs, nonces. */
import { hash, randomBytes } from 'node:crypto';

const ALNUM = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

/** A random string over `alphabet` without modulo bias. */
export function randomString(length: number, alphabet = ALNUM): string {
  const out: string[] = [];
  const limit = 256 - (256 % alphabet.length);
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte < limit && out.length < length) out.push(alphabet[byte % alphabet.length] as string);
    }
  }
  return out.join('');
}

/** A new access token: 256 random bits, URL-safe, with a recognisable prefix. */
export const newAccessToken = (): string => `mct_${randomBytes(32).toString('base64url')}`;

/** The form of an access token kept in the database: SHA-256, hex. */
export const hashAccessToken = (token: string): string => hash('sha256', token, 'hex');

/** Device IDs in the style clients expect: ten upper-case letters. */
export const newDeviceId = (): string => randomString(10, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ');

export const newSessionId = (): string => randomString(24);
/**
 * An event ID in the shape of a real one (room versions 4+), for what a shadow-banned user
 * sends: answered as if sent, never stored.
 */
export const fakeEventId = (): string =>
  `$${randomString(43, 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_')}`;
