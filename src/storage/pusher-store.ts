/**
 * Pushers (migration 0053): each user's HTTP pushers, the durable queue of notifications owed
 * to their gateways (rows written with the event by the push deriver), and the sending lease.
 * A pusher goes with the device that set it (see `deletePushersOfDevices`).
 */
import type { Kysely } from 'kysely';
import type { Database } from './schema.js';
import { readInSlices } from './values-table.js';

export interface PusherRow {
  pusherId: string;
  userId: string;
  deviceId: string;
  kind: string;
  appId: string;
  pushkey: string;
  appDisplayName: string;
  deviceDisplayName: string;
  profileTag: string | null;
  lang: string;
  /** `data` as JSON. */
  data: string;
  pushkeyTs: number;
}

export interface QueuedPush {
  pusherId: string;
  streamOrdering: number;
  eventId: string;
  roomId: string;
  actions: string;
}

export interface PusherStore {
  selectPushersOfUser(userId: string): Promise<PusherRow[]>;
  selectPusher(pusherId: string): Promise<PusherRow | undefined>;
  /** The pushers of these users, by user (the push deriver's read). */
  selectPushersOfUsers(userIds: readonly string[]): Promise<Map<string, PusherRow[]>>;
  /**
   * Creates the user's pusher of `appId` and `pushkey`, or updates it (keeping its ID and its
   * queue). Returns the pusher's ID.
   */
  upsertPusher(row: PusherRow): Promise<string>;
  /** Deletes the user's pusher of `appId` and `pushkey` with its queue; true when there was one. */
  deletePusher(userId: string, appId: string, pushkey: string): Promise<boolean>;
  /** Deletes other users' pushers of `appId` and `pushkey` (`append: false`). */
  deleteOtherUsersPushers(appId: string, pushkey: string, userId: string): Promise<void>;
  deletePusherById(pusherId: string): Promise<void>;
  insertQueued(rows: readonly QueuedPush[]): Promise<void>;
  /** Pushers with notifications queued, at most `limit`. */
  selectPushersWithQueue(limit: number): Promise<string[]>;
  /** The pusher's queued notifications, oldest first. */
  selectQueued(pusherId: string, limit: number): Promise<QueuedPush[]>;
  deleteQueued(pusherId: string, streamOrdering: number): Promise<void>;
  /** Rows queued in all (for tests and the bench). */
  countQueued(): Promise<number>;
  /**
   * Takes (or renews) the right to send until `until`, if nobody else holds it beyond `now`.
   * True when this owner holds it.
   */
  claimLease(name: string, owner: string, now: number, until: number): Promise<boolean>;
  releaseLease(name: string, owner: string): Promise<void>;
}

interface PusherRecord {
  pusher_id: string;
  user_id: string;
  device_id: string;
  kind: string;
  app_id: string;
  pushkey: string;
  app_display_name: string;
  device_display_name: string;
  profile_tag: string | null;
  lang: string;
  data: string;
  pushkey_ts: number | string;
}

const toPusher = (r: PusherRecord): PusherRow => ({
  pusherId: r.pusher_id,
  userId: r.user_id,
  deviceId: r.device_id,
  kind: r.kind,
  appId: r.app_id,
  pushkey: r.pushkey,
  appDisplayName: r.app_display_name,
  deviceDisplayName: r.device_display_name,
  profileTag: r.profile_tag,
  lang: r.lang,
  data: r.data,
  pushkeyTs: Number(r.pushkey_ts),
});

const INSERT_BATCH = 500;

/**
 * Deletes the user's pushers set by these devices (all the user's pushers when `deviceIds` is
 * 'all', or all but the device `except`'s), with their queues. The device store calls it
 * wherever devices are deleted: logout, device deletion, password change, deactivation.
 */
export async function deletePushersOfDevices(
  db: Kysely<Database>,
  userId: string,
  devices: { deviceIds: readonly string[] } | { allExcept: string | undefined },
): Promise<void> {
  let select = db.selectFrom('pushers').select('pusher_id').where('user_id', '=', userId);
  if ('deviceIds' in devices) {
    if (devices.deviceIds.length === 0) return;
    select = select.where('device_id', 'in', devices.deviceIds);
  } else if (devices.allExcept !== undefined) {
    select = select.where('device_id', '!=', devices.allExcept);
  }
  const ids = (await select.execute()).map((r) => r.pusher_id);
  await readInSlices(ids, async (slice) => {
    await db.deleteFrom('push_queue').where('pusher_id', 'in', slice).execute();
    await db.deleteFrom('pushers').where('pusher_id', 'in', slice).execute();
    return [];
  });
}

export function pusherStore(db: Kysely<Database>): PusherStore {
  async function deleteIds(ids: readonly string[]) {
    if (ids.length === 0) return;
    await db.deleteFrom('push_queue').where('pusher_id', 'in', ids).execute();
    await db.deleteFrom('pushers').where('pusher_id', 'in', ids).execute();
  }

  return {
    async selectPushersOfUser(userId) {
      const rows = await db
        .selectFrom('pushers')
        .selectAll()
        .where('user_id', '=', userId)
        .orderBy('pusher_id')
        .execute();
      return rows.map(toPusher);
    },

    async selectPusher(pusherId) {
      const row = await db
        .selectFrom('pushers')
        .selectAll()
        .where('pusher_id', '=', pusherId)
        .executeTakeFirst();
      return row ? toPusher(row) : undefined;
    },

    async selectPushersOfUsers(userIds) {
      const rows = await readInSlices(userIds, (slice) =>
        db.selectFrom('pushers').selectAll().where('user_id', 'in', slice).execute(),
      );
      const out = new Map<string, PusherRow[]>();
      for (const row of rows) {
        const pusher = toPusher(row);
        const list = out.get(pusher.userId);
        if (list) list.push(pusher);
        else out.set(pusher.userId, [pusher]);
      }
      return out;
    },

    async upsertPusher(row) {
      const stored = await db
        .insertInto('pushers')
        .values({
          pusher_id: row.pusherId,
          user_id: row.userId,
          device_id: row.deviceId,
          kind: row.kind,
          app_id: row.appId,
          pushkey: row.pushkey,
          app_display_name: row.appDisplayName,
          device_display_name: row.deviceDisplayName,
          profile_tag: row.profileTag,
          lang: row.lang,
          data: row.data,
          pushkey_ts: row.pushkeyTs,
        })
        .onConflict((oc) =>
          oc.columns(['user_id', 'app_id', 'pushkey']).doUpdateSet({
            device_id: row.deviceId,
            kind: row.kind,
            app_display_name: row.appDisplayName,
            device_display_name: row.deviceDisplayName,
            profile_tag: row.profileTag,
            lang: row.lang,
            data: row.data,
            pushkey_ts: row.pushkeyTs,
          }),
        )
        .returning('pusher_id')
        .executeTakeFirstOrThrow();
      return stored.pusher_id;
    },

    async deletePusher(userId, appId, pushkey) {
      const rows = await db
        .selectFrom('pushers')
        .select('pusher_id')
        .where('user_id', '=', userId)
        .where('app_id', '=', appId)
        .where('pushkey', '=', pushkey)
        .execute();
      await deleteIds(rows.map((r) => r.pusher_id));
      return rows.length > 0;
    },

    async deleteOtherUsersPushers(appId, pushkey, userId) {
      const rows = await db
        .selectFrom('pushers')
        .select('pusher_id')
        .where('app_id', '=', appId)
        .where('pushkey', '=', pushkey)
        .where('user_id', '!=', userId)
        .execute();
      await deleteIds(rows.map((r) => r.pusher_id));
    },

    async deletePusherById(pusherId) {
      await deleteIds([pusherId]);
    },

    async insertQueued(rows) {
      for (let i = 0; i < rows.length; i += INSERT_BATCH) {
        await db
          .insertInto('push_queue')
          .values(
            rows.slice(i, i + INSERT_BATCH).map((r) => ({
              pusher_id: r.pusherId,
              stream_ordering: r.streamOrdering,
              event_id: r.eventId,
              room_id: r.roomId,
              actions: r.actions,
            })),
          )
          .onConflict((oc) => oc.columns(['pusher_id', 'stream_ordering']).doNothing())
          .execute();
      }
    },

    async selectPushersWithQueue(limit) {
      const rows = await db
        .selectFrom('push_queue')
        .select('pusher_id')
        .distinct()
        .orderBy('pusher_id')
        .limit(limit)
        .execute();
      return rows.map((r) => r.pusher_id);
    },

    async selectQueued(pusherId, limit) {
      const rows = await db
        .selectFrom('push_queue')
        .selectAll()
        .where('pusher_id', '=', pusherId)
        .orderBy('stream_ordering')
        .limit(limit)
        .execute();
      return rows.map((r) => ({
        pusherId: r.pusher_id,
        streamOrdering: Number(r.stream_ordering),
        eventId: r.event_id,
        roomId: r.room_id,
        actions: r.actions,
      }));
    },

    async deleteQueued(pusherId, streamOrdering) {
      await db
        .deleteFrom('push_queue')
        .where('pusher_id', '=', pusherId)
        .where('stream_ordering', '=', streamOrdering)
        .execute();
    },

    async countQueued() {
      const row = await db
        .selectFrom('push_queue')
        .select((eb) => eb.fn.countAll().as('n'))
        .executeTakeFirstOrThrow();
      return Number(row.n);
    },

    async claimLease(name, owner, now, until) {
      await db
        .insertInto('push_sender_lease')
        .values({ name, lease_owner: null, lease_until: 0 })
        .onConflict((oc) => oc.column('name').doNothing())
        .execute();
      const result = await db
        .updateTable('push_sender_lease')
        .set({ lease_owner: owner, lease_until: until })
        .where('name', '=', name)
        .where((eb) => eb.or([eb('lease_owner', '=', owner), eb('lease_until', '<', now)]))
        .executeTakeFirst();
      return Number(result.numUpdatedRows) > 0;
    },

    async releaseLease(name, owner) {
      await db
        .updateTable('push_sender_lease')
        .set({ lease_owner: null, lease_until: 0 })
        .where('name', '=', name)
        .where('lease_owner', '=', owner)
        .execute();
    },
  };
}
