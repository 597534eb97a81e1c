/**
 * End-to-end encryption keys as clients publish them (identity keys, one-time keys, fallback
 * keys; stored as the JSON uploaded, never interpreted), and the log of device-list changes
 * (`device_list_changes`) that /sync and /keys/changes read.
 */
import type { Kysely } from 'kysely';
import type { Database } from './schema.js';

/** Stream positions up to which membership changes are read by position (see below). */
const SHORT_SPAN = 10_000;

const IN_LIST_CHUNK = 500;
const KEY_INSERT_CHUNK = 100;

export interface DeviceKeysRow {
  userId: string;
  deviceId: string;
  keysJson: string;
  displayName: string | null;
}

export interface OneTimeKeyRow {
  algorithm: string;
  keyId: string;
  keyJson: string;
}

export interface FallbackKeyRow extends OneTimeKeyRow {
  used: boolean;
}

export interface MembershipChangeRow {
  roomId: string;
  userId: string;
  membership: string;
}

export interface DeviceKeyStore {
  selectDeviceKeys(userId: string, deviceId: string): Promise<string | undefined>;
  upsertDeviceKeys(userId: string, deviceId: string, keysJson: string): Promise<void>;
  /** The identity keys of the users' existing devices, with their display names. */
  selectDeviceKeysOfUsers(userIds: readonly string[]): Promise<DeviceKeysRow[]>;
  /** Deletes the devices' identity, one-time and fallback keys; how many had identity keys. */
  deleteKeysOfDevices(userId: string, deviceIds: readonly string[]): Promise<number>;

  /** The device's unclaimed one-time keys. */
  selectOneTimeKeys(userId: string, deviceId: string): Promise<OneTimeKeyRow[]>;
  insertOneTimeKeys(
    userId: string,
    deviceId: string,
    keys: readonly OneTimeKeyRow[],
  ): Promise<void>;
  /** Unclaimed one-time keys of the device, per algorithm. */
  countOneTimeKeys(userId: string, deviceId: string): Promise<Record<string, number>>;
  /** The device's first one-time key of the algorithm, by key ID. */
  selectFirstOneTimeKey(
    userId: string,
    deviceId: string,
    algorithm: string,
  ): Promise<OneTimeKeyRow | undefined>;
  /** False when the key was gone already (claimed by someone else). */
  deleteOneTimeKey(
    userId: string,
    deviceId: string,
    algorithm: string,
    keyId: string,
  ): Promise<boolean>;

  /** Replaces the device's fallback key of the algorithm (unused again). */
  upsertFallbackKey(userId: string, deviceId: string, key: OneTimeKeyRow): Promise<void>;
  selectFallbackKey(
    userId: string,
    deviceId: string,
    algorithm: string,
  ): Promise<FallbackKeyRow | undefined>;
  /** Marks the fallback key used; false when it already was (or is gone). */
  updateFallbackKeyUsed(userId: string, deviceId: string, algorithm: string): Promise<boolean>;
  selectUnusedFallbackAlgorithms(userId: string, deviceId: string): Promise<string[]>;

  insertDeviceListChange(userId: string, position: number): Promise<void>;
  /** The user's latest device-list change before `position` (0: none). */
  selectLastDeviceListChange(userId: string, before: number): Promise<number>;
  /** Users whose device list changed in (after, upTo]. */
  selectDeviceListChanges(after: number, upTo: number): Promise<string[]>;
  /** Of the users listed, those sharing a joined room with `userId` now. */
  selectUsersSharingRoom(userId: string, others: readonly string[]): Promise<string[]>;
  /** Membership changes in (after, upTo] in every room `userId` has a membership of. */
  selectMembershipChangesAround(
    userId: string,
    after: number,
    upTo: number,
  ): Promise<MembershipChangeRow[]>;
}

export function deviceKeyStore(db: Kysely<Database>): DeviceKeyStore {
  return {
    async selectDeviceKeys(userId, deviceId) {
      const row = await db
        .selectFrom('device_keys')
        .select('keys_json')
        .where('user_id', '=', userId)
        .where('device_id', '=', deviceId)
        .executeTakeFirst();
      return row?.keys_json;
    },

    async upsertDeviceKeys(userId, deviceId, keysJson) {
      await db
        .insertInto('device_keys')
        .values({ user_id: userId, device_id: deviceId, keys_json: keysJson })
        .onConflict((oc) =>
          oc.columns(['user_id', 'device_id']).doUpdateSet({ keys_json: keysJson }),
        )
        .execute();
    },

    async selectDeviceKeysOfUsers(userIds) {
      const out: DeviceKeysRow[] = [];
      for (let i = 0; i < userIds.length; i += IN_LIST_CHUNK) {
        const rows = await db
          .selectFrom('device_keys')
          .innerJoin('devices', (join) =>
            join
              .onRef('devices.user_id', '=', 'device_keys.user_id')
              .onRef('devices.device_id', '=', 'device_keys.device_id'),
          )
          .select([
            'device_keys.user_id',
            'device_keys.device_id',
            'device_keys.keys_json',
            'devices.display_name',
          ])
          .where('device_keys.user_id', 'in', userIds.slice(i, i + IN_LIST_CHUNK))
          .orderBy('device_keys.user_id')
          .orderBy('device_keys.device_id')
          .execute();
        for (const row of rows) {
          out.push({
            userId: row.user_id,
            deviceId: row.device_id,
            keysJson: row.keys_json,
            displayName: row.display_name,
          });
        }
      }
      return out;
    },

    async deleteKeysOfDevices(userId, deviceIds) {
      if (deviceIds.length === 0) return 0;
      const deleted = await db
        .deleteFrom('device_keys')
        .where('user_id', '=', userId)
        .where('device_id', 'in', deviceIds)
        .executeTakeFirst();
      for (const table of ['one_time_keys', 'fallback_keys'] as const) {
        await db
          .deleteFrom(table)
          .where('user_id', '=', userId)
          .where('device_id', 'in', deviceIds)
          .execute();
      }
      return Number(deleted.numDeletedRows);
    },

    async selectOneTimeKeys(userId, deviceId) {
      const rows = await db
        .selectFrom('one_time_keys')
        .select(['algorithm', 'key_id', 'key_json'])
        .where('user_id', '=', userId)
        .where('device_id', '=', deviceId)
        .execute();
      return rows.map((r) => ({ algorithm: r.algorithm, keyId: r.key_id, keyJson: r.key_json }));
    },

    async insertOneTimeKeys(userId, deviceId, keys) {
      for (let i = 0; i < keys.length; i += KEY_INSERT_CHUNK) {
        await db
          .insertInto('one_time_keys')
          .values(
            keys.slice(i, i + KEY_INSERT_CHUNK).map((k) => ({
              user_id: userId,
              device_id: deviceId,
              algorithm: k.algorithm,
              key_id: k.keyId,
              key_json: k.keyJson,
            })),
          )
          .onConflict((oc) => oc.doNothing())
          .execute();
      }
    },

    async countOneTimeKeys(userId, deviceId) {
      const rows = await db
        .selectFrom('one_time_keys')
        .select((eb) => ['algorithm', eb.fn.countAll<number>().as('n')])
        .where('user_id', '=', userId)
        .where('device_id', '=', deviceId)
        .groupBy('algorithm')
        .execute();
      return Object.fromEntries(rows.map((r) => [r.algorithm, Number(r.n)]));
    },

    async selectFirstOneTimeKey(userId, deviceId, algorithm) {
      const row = await db
        .selectFrom('one_time_keys')
        .select(['algorithm', 'key_id', 'key_json'])
        .where('user_id', '=', userId)
        .where('device_id', '=', deviceId)
        .where('algorithm', '=', algorithm)
        .orderBy('key_id')
        .limit(1)
        .executeTakeFirst();
      return row
        ? { algorithm: row.algorithm, keyId: row.key_id, keyJson: row.key_json }
        : undefined;
    },

    async deleteOneTimeKey(userId, deviceId, algorithm, keyId) {
      const result = await db
        .deleteFrom('one_time_keys')
        .where('user_id', '=', userId)
        .where('device_id', '=', deviceId)
        .where('algorithm', '=', algorithm)
        .where('key_id', '=', keyId)
        .executeTakeFirst();
      return Number(result.numDeletedRows) > 0;
    },

    async upsertFallbackKey(userId, deviceId, key) {
      await db
        .insertInto('fallback_keys')
        .values({
          user_id: userId,
          device_id: deviceId,
          algorithm: key.algorithm,
          key_id: key.keyId,
          key_json: key.keyJson,
          used: 0,
        })
        .onConflict((oc) =>
          oc
            .columns(['user_id', 'device_id', 'algorithm'])
            .doUpdateSet({ key_id: key.keyId, key_json: key.keyJson, used: 0 }),
        )
        .execute();
    },

    async selectFallbackKey(userId, deviceId, algorithm) {
      const row = await db
        .selectFrom('fallback_keys')
        .select(['algorithm', 'key_id', 'key_json', 'used'])
        .where('user_id', '=', userId)
        .where('device_id', '=', deviceId)
        .where('algorithm', '=', algorithm)
        .executeTakeFirst();
      return row
        ? {
            algorithm: row.algorithm,
            keyId: row.key_id,
            keyJson: row.key_json,
            used: Number(row.used) === 1,
          }
        : undefined;
    },

    async updateFallbackKeyUsed(userId, deviceId, algorithm) {
      const result = await db
        .updateTable('fallback_keys')
        .set({ used: 1 })
        .where('user_id', '=', userId)
        .where('device_id', '=', deviceId)
        .where('algorithm', '=', algorithm)
        .where('used', '=', 0)
        .executeTakeFirst();
      return Number(result.numUpdatedRows) > 0;
    },

    async selectUnusedFallbackAlgorithms(userId, deviceId) {
      const rows = await db
        .selectFrom('fallback_keys')
        .select('algorithm')
        .where('user_id', '=', userId)
        .where('device_id', '=', deviceId)
        .where('used', '=', 0)
        .orderBy('algorithm')
        .execute();
      return rows.map((r) => r.algorithm);
    },

    async insertDeviceListChange(userId, position) {
      await db
        .insertInto('device_list_changes')
        .values({ stream_ordering: position, user_id: userId })
        .onConflict((oc) => oc.doNothing())
        .execute();
    },

    async selectLastDeviceListChange(userId, before) {
      const row = await db
        .selectFrom('device_list_changes')
        .select((eb) => eb.fn.max('stream_ordering').as('last'))
        .where('user_id', '=', userId)
        .where('stream_ordering', '<', before)
        .executeTakeFirst();
      return Number(row?.last ?? 0);
    },

    async selectDeviceListChanges(after, upTo) {
      if (upTo <= after) return [];
      const rows = await db
        .selectFrom('device_list_changes')
        .select('user_id')
        .distinct()
        .where('stream_ordering', '>', after)
        .where('stream_ordering', '<=', upTo)
        .execute();
      return rows.map((r) => r.user_id);
    },

    async selectUsersSharingRoom(userId, others) {
      const out: string[] = [];
      for (let i = 0; i < others.length; i += IN_LIST_CHUNK) {
        const rows = await db
          .selectFrom('room_memberships as mine')
          .innerJoin('room_memberships as theirs', 'theirs.room_id', 'mine.room_id')
          .select('theirs.user_id')
          .distinct()
          .where('mine.user_id', '=', userId)
          .where('mine.membership', '=', 'join')
          .where('theirs.membership', '=', 'join')
          .where('theirs.user_id', 'in', others.slice(i, i + IN_LIST_CHUNK))
          .execute();
        for (const row of rows) out.push(row.user_id);
      }
      return out;
    },

    async selectMembershipChangesAround(userId, after, upTo) {
      if (upTo <= after) return [];
      // A short span (an incremental /sync) is read by position, each change kept when the
      // user has a membership in its room: one probe per change, not one per room of theirs.
      // A long one (an old token) holds more changes than the user has rooms: read per room.
      const rows =
        upTo - after <= SHORT_SPAN
          ? await db
              .selectFrom('membership_history as mh')
              .select(['mh.room_id', 'mh.user_id', 'mh.membership'])
              .where('mh.stream_ordering', '>', after)
              .where('mh.stream_ordering', '<=', upTo)
              .where((eb) =>
                eb.exists(
                  eb
                    .selectFrom('room_memberships as mine')
                    .select('mine.room_id')
                    .whereRef('mine.room_id', '=', 'mh.room_id')
                    .where('mine.user_id', '=', userId),
                ),
              )
              .orderBy('mh.stream_ordering')
              .execute()
          : await db
              .selectFrom('membership_history as mh')
              .select(['mh.room_id', 'mh.user_id', 'mh.membership'])
              .where(
                'mh.room_id',
                'in',
                db.selectFrom('room_memberships').select('room_id').where('user_id', '=', userId),
              )
              .where('mh.stream_ordering', '>', after)
              .where('mh.stream_ordering', '<=', upTo)
              .orderBy('mh.stream_ordering')
              .execute();
      return rows.map((r) => ({ roomId: r.room_id, userId: r.user_id, membership: r.membership }));
    },
  };
}
