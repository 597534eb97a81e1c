/**
 * Remote users' device lists as cached (migration 0025): what `/user/devices` answered, kept
 * up to date by `m.device_list_update` EDUs while their stream IDs follow on.
 */
import type { Kysely } from 'kysely';
import type { Database } from './schema.js';
import { userOfServer } from './user-server.js';

/** Keeps IN lists well under every driver's parameter limit. */
const IN_LIST_CHUNK = 500;

/** A user of `ownServer` (its users' IDs end with `:ownServer`). */

export interface RemoteDeviceListRow {
  userId: string;
  streamId: number;
  listJson: string;
  fetchedTs: number;
}

export interface RemoteDeviceStore {
  selectRemoteDeviceLists(userIds: readonly string[]): Promise<RemoteDeviceListRow[]>;
  upsertRemoteDeviceList(row: RemoteDeviceListRow): Promise<void>;
  deleteRemoteDeviceList(userId: string): Promise<void>;
  /** Whether the remote user shares a joined room with a user of `ownServer`. */
  selectSharesRoomWithLocal(userId: string, ownServer: string): Promise<boolean>;
  /**
   * Forgets the cached lists of those of `userIds` who share no joined room with a user of
   * `ownServer` any more (their updates stop reaching us); returns how many were dropped.
   */
  deleteUntrackedRemoteDeviceLists(userIds: readonly string[], ownServer: string): Promise<number>;
}

export function remoteDeviceStore(db: Kysely<Database>): RemoteDeviceStore {
  return {
    async selectRemoteDeviceLists(userIds) {
      const out: RemoteDeviceListRow[] = [];
      for (let i = 0; i < userIds.length; i += 500) {
        const rows = await db
          .selectFrom('remote_device_lists')
          .selectAll()
          .where('user_id', 'in', userIds.slice(i, i + 500))
          .execute();
        for (const r of rows)
          out.push({
            userId: r.user_id,
            streamId: Number(r.stream_id),
            listJson: r.list_json,
            fetchedTs: Number(r.fetched_ts),
          });
      }
      return out;
    },

    async upsertRemoteDeviceList(row) {
      const values = {
        user_id: row.userId,
        stream_id: row.streamId,
        list_json: row.listJson,
        fetched_ts: row.fetchedTs,
      };
      await db
        .insertInto('remote_device_lists')
        .values(values)
        .onConflict((oc) =>
          oc.column('user_id').doUpdateSet({
            stream_id: values.stream_id,
            list_json: values.list_json,
            fetched_ts: values.fetched_ts,
          }),
        )
        .execute();
    },

    async deleteRemoteDeviceList(userId) {
      await db.deleteFrom('remote_device_lists').where('user_id', '=', userId).execute();
    },

    async selectSharesRoomWithLocal(userId, ownServer) {
      const row = await db
        .selectFrom('room_memberships as theirs')
        .innerJoin('room_memberships as ours', 'ours.room_id', 'theirs.room_id')
        .select('theirs.room_id')
        .where('theirs.user_id', '=', userId)
        .where('theirs.membership', '=', 'join')
        .where('ours.membership', '=', 'join')
        .where(userOfServer('ours.user_id', ownServer))
        .limit(1)
        .executeTakeFirst();
      return row !== undefined;
    },

    async deleteUntrackedRemoteDeviceLists(userIds, ownServer) {
      let deleted = 0;
      for (let i = 0; i < userIds.length; i += IN_LIST_CHUNK) {
        const result = await db
          .deleteFrom('remote_device_lists')
          .where('user_id', 'in', userIds.slice(i, i + IN_LIST_CHUNK))
          .where(({ not, exists, selectFrom }) =>
            not(
              exists(
                selectFrom('room_memberships as theirs')
                  .innerJoin('room_memberships as ours', 'ours.room_id', 'theirs.room_id')
                  .select('theirs.room_id')
                  .whereRef('theirs.user_id', '=', 'remote_device_lists.user_id')
                  .where('theirs.membership', '=', 'join')
                  .where('ours.membership', '=', 'join')
                  .where(userOfServer('ours.user_id', ownServer)),
              ),
            ),
          )
          .executeTakeFirst();
        deleted += Number(result.numDeletedRows);
      }
      return deleted;
    },
  };
}
