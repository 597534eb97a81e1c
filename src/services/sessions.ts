/** Logging in and out, and turning an access token into a Requester. */
import { MatrixError, forbidden, unknownToken } from '../core/errors.js';
import { hashAccessToken } from '../core/secrets.js';
import type { AccountService, LoginResult } from './accounts.js';
import type { Requester, ServiceContext } from './context.js';
import { forgetDevices } from './device-keys.js';
import { checkPassword, userIdFromLogin } from './credentials.js';
import { createUserCache } from './user-cache.js';

export interface LoginRequest {
  type: string;
  identifier?: unknown;
  user?: unknown;
  password?: unknown;
  deviceId?: string | undefined;
  initialDeviceDisplayName?: string | undefined;
  ip: string | null;
}

export const LOGIN_FLOWS = [{ type: 'm.login.password' }] as const;

/** Access tokens whose requester is kept in memory (by the token's hash). */
const SESSION_CACHE_ENTRIES = 16_384;

export function createSessionService(ctx: ServiceContext, accounts: AccountService) {
  const devices = ctx.storage.stores.devices;
  // Dropped in every process when the user's tokens are deleted (the device store announces
  // it; deactivation deletes them all). Anything else that changes what a Requester holds (an
  // admin flag: no route changes it yet) must announce `sessions` for the user as well. A
  // token of a deactivated user is refused even if it exists (a login racing the
  // deactivation): the lookup reads `users.deactivated`.
  const sessions = createUserCache<Requester>(ctx.storage.changes, {
    max: SESSION_CACHE_ENTRIES,
    usersNamedBy: (change) => change.sessions,
    stats: ctx.cacheStats?.counter('sessions'),
  });
  /** A session from the database, kept unless a change to the user's sessions came meanwhile. */
  async function readSession(hash: string): Promise<Requester> {
    const ticket = sessions.ticket();
    const owner = await devices.selectTokenOwner(hash);
    if (!owner || owner.deactivated) throw unknownToken(false);
    const requester: Requester = Object.freeze({
      userId: owner.userId,
      deviceId: owner.deviceId,
      isAdmin: owner.isAdmin,
      ...(owner.shadowBanned ? { shadowBanned: true } : {}),
      ...(owner.rateLimitOverride ? { rateLimitOverride: owner.rateLimitOverride } : {}),
    });
    sessions.set(hash, requester, [owner.userId], ticket);
    return requester;
  }

  return {
    async login(request: LoginRequest): Promise<LoginResult> {
      if (request.type !== 'm.login.password') {
        throw new MatrixError(400, 'M_UNKNOWN', `Unknown login type ${request.type}`);
      }
      const userId = userIdFromLogin(request, ctx.settings.serverName);
      const result = await checkPassword(ctx, userId, request.password);
      if (!result.ok || userId === null) throw forbidden('Invalid username or password');
      if (result.deactivated)
        throw new MatrixError(403, 'M_USER_DEACTIVATED', 'This account has been deactivated');
      return accounts.issueLogin(userId, {
        deviceId: request.deviceId,
        displayName: request.initialDeviceDisplayName,
        ip: request.ip,
      });
    },

    /**
     * The requester behind an access token, or M_UNKNOWN_TOKEN: at once (no promise) when
     * this process has the session cached, as it has for every token in use.
     */
    authenticate(accessToken: string): Requester | Promise<Requester> {
      const hash = hashAccessToken(accessToken);
      return sessions.get(hash) ?? readSession(hash);
    },

    /** `authenticate` by the token's hash (`hashAccessToken`), for a caller that has it. */
    authenticateHash(hash: string): Requester | Promise<Requester> {
      return sessions.get(hash) ?? readSession(hash);
    },

    /** Invalidates the requester's token and deletes its device. */
    async logout(requester: Requester): Promise<void> {
      await ctx.storage.tx('logout', async (stores) => {
        await forgetDevices(stores, requester.userId, [requester.deviceId], ctx);
        await stores.devices.deleteDevices(requester.userId, [requester.deviceId]);
      });
    },

    /** Invalidates every token of the requester's account and deletes all devices. */
    async logoutAll(requester: Requester): Promise<void> {
      await ctx.storage.tx('logoutAll', async (stores) => {
        const devices = await stores.devices.selectDevices(requester.userId);
        await forgetDevices(
          stores,
          requester.userId,
          devices.map((d) => d.deviceId),
          ctx,
        );
        await stores.devices.deleteAllDevices(requester.userId);
      });
    },
  };
}

export type SessionService = ReturnType<typeof createSessionService>;
