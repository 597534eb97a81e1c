/**
 * Remote users' device lists as cached (migration 0025): what `/user/devices` answered, kept
 * up to date by `m.device_list_update` EDUs while their stream IDs follow on.
 */
import type { Kysely } from 'kysely';
import type { Database } from './schema.js';

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
  };
}
