/**
 * Devices and the access tokens bound to them (only SHA-256 hashes of tokens are stored).
 * Deleting tokens announces it, so that every process drops the sessions it has cached.
 */
import type { Kysely } from 'kysely';
import type { Database } from './schema.js';
import { prepareQuery } from './prepared-query.js';
import type { Announce } from './stream-store.js';
import { deletePushersOfDevices } from './pusher-store.js';

export interface DeviceRow {
  deviceId: string;
  displayName: string | null;
  lastSeenTs: number | null;
  lastSeenIp: string | null;
}

export interface TokenOwner {
  userId: string;
  deviceId: string;
  deactivated: boolean;
  isAdmin: boolean;
  /** Shadow-banned by an admin (migration 0062). */
  shadowBanned: boolean;
  /** An admin's rate-limit override for the user, if any (migration 0062). */
  rateLimitOverride: { messagesPerSecond: number; burstCount: number } | null;
}

export interface DeviceStore {
  /** Creates the device, or keeps an existing one (updating nothing but last-seen). */
  upsertDevice(
    userId: string,
    deviceId: string,
    displayName: string | null,
    ts: number,
    ip: string | null,
  ): Promise<void>;
  selectDevices(userId: string): Promise<DeviceRow[]>;
  selectDevice(userId: string, deviceId: string): Promise<DeviceRow | undefined>;
  /** Returns false when there is no such device. */
  updateDeviceDisplayName(userId: string, deviceId: string, displayName: string): Promise<boolean>;
  /** Deletes the devices and their tokens (announced as the user's ended sessions). */
  deleteDevices(userId: string, deviceIds: readonly string[]): Promise<void>;
  /** Deletes the user's devices and tokens, but `exceptDeviceId`'s (announced likewise). */
  deleteAllDevices(userId: string, exceptDeviceId?: string): Promise<void>;
  insertAccessToken(tokenHash: string, userId: string, deviceId: string, ts: number): Promise<void>;
  selectTokenOwner(tokenHash: string): Promise<TokenOwner | undefined>;
}

export function deviceStore(db: Kysely<Database>, announce: Announce): DeviceStore {
  // Every authenticated request makes this lookup.
  const tokenOwner = prepareQuery(db, 1, (tokenHash: string) =>
    db
      .selectFrom('access_tokens')
      .innerJoin('users', 'users.user_id', 'access_tokens.user_id')
      .leftJoin('user_moderation', 'user_moderation.user_id', 'access_tokens.user_id')
      .select([
        'access_tokens.user_id',
        'access_tokens.device_id',
        'users.deactivated',
        'users.is_admin',
        'user_moderation.shadow_banned',
        'user_moderation.messages_per_second',
        'user_moderation.burst_count',
      ])
      .where('access_tokens.token_hash', '=', tokenHash),
  );
  return {
    async upsertDevice(userId, deviceId, displayName, ts, ip) {
      await db
        .insertInto('devices')
        .values({
          user_id: userId,
          device_id: deviceId,
          display_name: displayName,
          last_seen_ts: ts,
          last_seen_ip: ip,
          created_ts: ts,
        })
        .onConflict((oc) =>
          oc.columns(['user_id', 'device_id']).doUpdateSet({ last_seen_ts: ts, last_seen_ip: ip }),
        )
        .execute();
    },

    async selectDevices(userId) {
      const rows = await db
        .selectFrom('devices')
        .select(['device_id', 'display_name', 'last_seen_ts', 'last_seen_ip'])
        .where('user_id', '=', userId)
        .orderBy('device_id')
        .execute();
      return rows.map(toDeviceRow);
    },

    async selectDevice(userId, deviceId) {
      const row = await db
        .selectFrom('devices')
        .select(['device_id', 'display_name', 'last_seen_ts', 'last_seen_ip'])
        .where('user_id', '=', userId)
        .where('device_id', '=', deviceId)
        .executeTakeFirst();
      return row ? toDeviceRow(row) : undefined;
    },

    async updateDeviceDisplayName(userId, deviceId, displayName) {
      const result = await db
        .updateTable('devices')
        .set({ display_name: displayName })
        .where('user_id', '=', userId)
        .where('device_id', '=', deviceId)
        .executeTakeFirst();
      return Number(result.numUpdatedRows) > 0;
    },

    async deleteDevices(userId, deviceIds) {
      if (deviceIds.length === 0) return;
      // A pusher goes with the device (its access token) that set it.
      await deletePushersOfDevices(db, userId, { deviceIds });
      await db
        .deleteFrom('access_tokens')
        .where('user_id', '=', userId)
        .where('device_id', 'in', deviceIds)
        .execute();
      await db
        .deleteFrom('devices')
        .where('user_id', '=', userId)
        .where('device_id', 'in', deviceIds)
        .execute();
      await announce({ sessions: [userId] });
    },

    async deleteAllDevices(userId, exceptDeviceId) {
      await deletePushersOfDevices(db, userId, { allExcept: exceptDeviceId });
      let tokens = db.deleteFrom('access_tokens').where('user_id', '=', userId);
      let devices = db.deleteFrom('devices').where('user_id', '=', userId);
      if (exceptDeviceId !== undefined) {
        tokens = tokens.where('device_id', '!=', exceptDeviceId);
        devices = devices.where('device_id', '!=', exceptDeviceId);
      }
      await tokens.execute();
      await devices.execute();
      await announce({ sessions: [userId] });
    },

    async insertAccessToken(tokenHash, userId, deviceId, ts) {
      await db
        .insertInto('access_tokens')
        .values({ token_hash: tokenHash, user_id: userId, device_id: deviceId, created_ts: ts })
        .execute();
    },

    async selectTokenOwner(tokenHash) {
      const [row] = await tokenOwner(tokenHash);
      return row
        ? {
            userId: row.user_id,
            deviceId: row.device_id,
            deactivated: Number(row.deactivated) === 1,
            isAdmin: Number(row.is_admin) === 1,
            shadowBanned: Number(row.shadow_banned ?? 0) === 1,
            rateLimitOverride:
              row.messages_per_second === null || row.burst_count === null
                ? null
                : {
                    messagesPerSecond: Number(row.messages_per_second),
                    burstCount: Number(row.burst_count),
                  },
          }
        : undefined;
    },
  };
}

function toDeviceRow(row: {
  device_id: string;
  display_name: string | null;
  last_seen_ts: number | null;
  last_seen_ip: string | null;
}): DeviceRow {
  return {
    deviceId: row.device_id,
    displayName: row.display_name,
    lastSeenTs: row.last_seen_ts === null ? null : Number(row.last_seen_ts),
    lastSeenIp: row.last_seen_ip,
  };
}
