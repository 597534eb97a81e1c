/**
 * Invite blocking (spec v1.18, MSC4380): a user whose `m.invite_permission_config` account
 * data has `default_action: "block"` receives no invites. Their server refuses new invites
 * (local ones and those arriving over federation) with 403 `M_INVITE_BLOCKED`, and /sync
 * leaves out pending invites while blocking is on (they show again once it is off).
 * https://spec.matrix.org/v1.18/client-server-api/#invite-permission
 */
import { MatrixError } from '../core/errors.js';
import type { Stores } from '../storage/index.js';

/** The account data type, and the proposal's unstable name (which clients used first). */
export const INVITE_PERMISSION_TYPES = [
  'm.invite_permission_config',
  'org.matrix.msc4380.invite_permission_config',
] as const;

/** Whether stored `m.invite_permission_config` content blocks invites (any other value: no). */
export function blocksInvites(contentJson: string | undefined): boolean {
  if (contentJson === undefined) return false;
  try {
    const content = JSON.parse(contentJson) as unknown;
    return (
      typeof content === 'object' &&
      content !== null &&
      (content as { default_action?: unknown }).default_action === 'block'
    );
  } catch {
    return false;
  }
}

/** Whether the local user blocks invites (either name of the account data says `block`). */
export async function invitesBlocked(stores: Stores, userId: string): Promise<boolean> {
  for (const type of INVITE_PERMISSION_TYPES) {
    if (blocksInvites(await stores.accountData.selectAccountData(userId, '', type))) return true;
  }
  return false;
}

export const inviteBlocked = (userId: string): MatrixError =>
  new MatrixError(403, 'M_INVITE_BLOCKED', `${userId} does not accept invites`);

/** 403 `M_INVITE_BLOCKED` when the local user blocks invites. */
export async function assertInvitable(stores: Stores, userId: string): Promise<void> {
  if (await invitesBlocked(stores, userId)) throw inviteBlocked(userId);
}
