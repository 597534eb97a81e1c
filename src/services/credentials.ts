/** Password checks shared by login and the m.login.password auth stage. */
import { MatrixError } from '../core/errors.js';
import { makeUserId, parseUserId } from '../core/identifiers.js';
import { UNMATCHABLE_HASH, verifyPassword } from '../core/password-hash.js';
import type { ServiceContext } from './context.js';

/**
 * The user a login names, from `identifier` ({type: "m.id.user", user}) or the legacy
 * top-level `user`; a bare localpart means a user of this server. Null when it names no
 * possible local user.
 */
export function userIdFromLogin(
  body: { identifier?: unknown; user?: unknown },
  serverName: string,
): string | null {
  let user: unknown = body.user;
  if (body.identifier !== undefined) {
    if (typeof body.identifier !== 'object' || body.identifier === null) {
      throw new MatrixError(400, 'M_BAD_JSON', '"identifier" must be an object');
    }
    const identifier = body.identifier as Record<string, unknown>;
    if (identifier.type !== 'm.id.user') {
      throw new MatrixError(
        400,
        'M_UNKNOWN',
        `Identifier type ${String(identifier.type)} is not supported; use m.id.user`,
      );
    }
    user = identifier.user;
  }
  if (typeof user !== 'string' || user.length === 0) {
    throw new MatrixError(400, 'M_BAD_JSON', 'A user identifier is required');
  }
  const fullId = user.startsWith('@') ? user : makeUserId(user.toLowerCase(), serverName);
  const parsed = parseUserId(fullId);
  if (!parsed || parsed.serverName !== serverName) return null;
  return parsed.userId;
}

/**
 * Verifies a password for a user. Unknown users are checked against a hash no password
 * matches, so the answer takes the same time either way.
 */
export async function checkPassword(
  ctx: ServiceContext,
  userId: string | null,
  password: unknown,
): Promise<{ ok: true; deactivated: boolean; isAdmin: boolean } | { ok: false }> {
  if (typeof password !== 'string')
    throw new MatrixError(400, 'M_BAD_JSON', '"password" must be a string');
  const user = userId === null ? undefined : await ctx.storage.stores.accounts.selectUser(userId);
  const matches = await verifyPassword(password, user?.passwordHash ?? UNMATCHABLE_HASH);
  if (!user || !matches) return { ok: false };
  return { ok: true, deactivated: user.deactivated, isAdmin: user.isAdmin };
}
