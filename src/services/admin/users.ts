/**
 * The admin API's user accounts (Synapse's /_synapse/admin/v2/users and friends): pages of
 * users, one user's details, creating and modifying accounts (password, admin flag, profile,
 * deactivation and reactivation), their rooms, devices and sessions.
 * https://element-hq.github.io/synapse/latest/admin_api/user_admin_api.html
 */
import { MatrixError, invalidParam, notFound } from '../../core/errors.js';
import { isValidNewLocalpart, parseUserId } from '../../core/identifiers.js';
import { hashPassword } from '../../core/password-hash.js';
import { assertPasswordAllowed, NO_PASSWORD_POLICY } from '../../core/password-policy.js';
import { hashAccessToken, newAccessToken, newDeviceId } from '../../core/secrets.js';
import type { AdminUserRow, DeviceRow, UserQuery } from '../../storage/index.js';
import type { ServiceContext } from '../context.js';
import type { DeactivationService } from '../deactivation.js';
import { forgetDevices } from '../device-keys.js';
import type { ProfileService } from '../profiles.js';

export interface UserPage {
  users: AdminUserRow[];
  total: number;
  /** The offset of the next page; null on the last page. */
  nextOffset: number | null;
}

export interface UserChange {
  password?: string | undefined;
  /** Whether a new password ends the user's sessions (default true, as Synapse). */
  logoutDevices?: boolean | undefined;
  displayname?: string | null | undefined;
  avatarUrl?: string | null | undefined;
  admin?: boolean | undefined;
  deactivated?: boolean | undefined;
}

export interface WhoisAnswer {
  user_id: string;
  devices: Record<string, { sessions: { connections: WhoisConnection[] }[] }>;
}

interface WhoisConnection {
  ip: string | null;
  last_seen: number | null;
  user_agent: string | null;
}

export function createAdminUserService(
  ctx: ServiceContext,
  deps: {
    profiles: ProfileService;
    deactivation: DeactivationService;
  },
) {
  const stores = ctx.storage.stores;
  const cost = () => ({ log2N: ctx.settings.passwordCostLog2N, r: 8, p: 1 });

  /** A local user ID, or 400. */
  function localUser(raw: string): { userId: string; localpart: string } {
    const parsed = parseUserId(raw);
    if (!parsed) throw invalidParam('Invalid user ID');
    if (parsed.serverName !== ctx.settings.serverName) {
      throw invalidParam('Can only look up local users');
    }
    return { userId: parsed.userId, localpart: parsed.localpart };
  }

  /** A local user that exists, or 404. */
  async function existingUser(raw: string): Promise<AdminUserRow> {
    const { userId } = localUser(raw);
    const user = await stores.admin.selectUserDetails(userId);
    if (!user) throw notFound('User not found');
    return user;
  }

  async function endSessions(userId: string): Promise<void> {
    await ctx.storage.tx('adminLogoutUser', async (tx) => {
      const devices = await tx.devices.selectDevices(userId);
      await forgetDevices(
        tx,
        userId,
        devices.map((d) => d.deviceId),
        ctx,
      );
      await tx.devices.deleteAllDevices(userId);
    });
  }

  return {
    localUser,

    async list(query: UserQuery): Promise<UserPage> {
      const { rows, total } = await stores.admin.selectUsers(query);
      const end = query.offset + rows.length;
      return { users: rows, total, nextOffset: end < total ? end : null };
    },

    get: existingUser,

    /**
     * Creates the user (true) or changes it (false). A new user without a password can only
     * log in through the admin's `login` endpoint.
     */
    async upsert(
      raw: string,
      change: UserChange,
    ): Promise<{ created: boolean; user: AdminUserRow }> {
      const { userId, localpart } = localUser(raw);
      if (change.password !== undefined)
        assertPasswordAllowed(ctx.settings.passwordPolicy ?? NO_PASSWORD_POLICY, change.password);
      const passwordHash =
        change.password === undefined ? undefined : await hashPassword(change.password, cost());
      let existing = await stores.admin.selectUserDetails(userId);
      let created = false;
      if (!existing) {
        if (!isValidNewLocalpart(localpart)) {
          throw new MatrixError(400, 'M_INVALID_USERNAME', 'Invalid characters in the user ID');
        }
        if (change.deactivated === true) throw invalidParam('Cannot create a deactivated user');
        const inserted = await stores.accounts.insertUser({
          userId,
          localpart,
          passwordHash: passwordHash ?? null,
          isAdmin: change.admin ?? false,
          displayname: change.displayname ?? localpart,
          createdTs: ctx.now(),
        });
        if (!inserted) throw new MatrixError(400, 'M_USER_IN_USE', 'User ID already taken');
        if (change.avatarUrl) await stores.accounts.updateAvatarUrl(userId, change.avatarUrl);
        created = true;
      } else {
        if (change.deactivated === false && existing.deactivated) {
          if (passwordHash === undefined) {
            throw invalidParam('Must provide a password to re-activate an account');
          }
          await stores.admin.updateReactivated(userId);
        }
        if (passwordHash !== undefined) {
          await stores.accounts.updatePasswordHash(userId, passwordHash);
          if (change.logoutDevices !== false) await endSessions(userId);
        }
        if (change.admin !== undefined && change.admin !== existing.isAdmin) {
          await stores.admin.updateAdmin(userId, change.admin);
        }
        await deps.profiles.setByAdmin(userId, {
          ...(change.displayname !== undefined ? { displayname: change.displayname } : {}),
          ...(change.avatarUrl !== undefined ? { avatarUrl: change.avatarUrl } : {}),
        });
        if (change.deactivated === true && !existing.deactivated) {
          await deps.deactivation.deactivateLocal(userId, false);
        }
      }
      existing = await stores.admin.selectUserDetails(userId);
      if (!existing) throw notFound('User not found');
      return { created, user: existing };
    },

    async isAdmin(raw: string): Promise<boolean> {
      return (await existingUser(raw)).isAdmin;
    },

    async setAdmin(raw: string, admin: boolean): Promise<void> {
      const user = await existingUser(raw);
      await stores.admin.updateAdmin(user.userId, admin);
    },

    async joinedRooms(raw: string): Promise<string[]> {
      const user = await existingUser(raw);
      return stores.rooms.selectRoomsOfUser(user.userId, 'join');
    },

    async devices(raw: string): Promise<DeviceRow[]> {
      const user = await existingUser(raw);
      return stores.devices.selectDevices(user.userId);
    },

    async device(raw: string, deviceId: string): Promise<DeviceRow> {
      const user = await existingUser(raw);
      const device = await stores.devices.selectDevice(user.userId, deviceId);
      if (!device) throw notFound('Device not found');
      return device;
    },

    async renameDevice(raw: string, deviceId: string, displayName: string): Promise<void> {
      const user = await existingUser(raw);
      if (!(await stores.devices.updateDeviceDisplayName(user.userId, deviceId, displayName))) {
        throw notFound('Device not found');
      }
    },

    /** Deletes devices and their tokens; unknown device IDs are ignored (as Synapse). */
    async deleteDevices(raw: string, deviceIds: readonly string[]): Promise<void> {
      const user = await existingUser(raw);
      await ctx.storage.tx('adminDeleteDevices', async (tx) => {
        await forgetDevices(tx, user.userId, deviceIds, ctx);
        await tx.devices.deleteDevices(user.userId, deviceIds);
      });
    },

    async whois(raw: string): Promise<WhoisAnswer> {
      const user = await existingUser(raw);
      const devices: WhoisAnswer['devices'] = {};
      for (const device of await stores.devices.selectDevices(user.userId)) {
        devices[device.deviceId] = {
          sessions: [
            {
              connections: [
                { ip: device.lastSeenIp, last_seen: device.lastSeenTs, user_agent: null },
              ],
            },
          ],
        };
      }
      return { user_id: user.userId, devices };
    },

    /**
     * A new session of the user for the admin (Synapse's `login`): a device of its own, so
     * that ending it leaves the user's sessions alone. Refused for deactivated users.
     */
    async loginAs(raw: string): Promise<{ accessToken: string; deviceId: string }> {
      const user = await existingUser(raw);
      if (user.deactivated) throw invalidParam('The user is deactivated');
      const deviceId = newDeviceId();
      const accessToken = newAccessToken();
      await ctx.storage.tx('adminLoginAs', async (tx) => {
        const now = ctx.now();
        await tx.devices.upsertDevice(user.userId, deviceId, 'admin login', now, null);
        await tx.devices.insertAccessToken(
          hashAccessToken(accessToken),
          user.userId,
          deviceId,
          now,
        );
      });
      return { accessToken, deviceId };
    },
  };
}

export type AdminUserService = ReturnType<typeof createAdminUserService>;
