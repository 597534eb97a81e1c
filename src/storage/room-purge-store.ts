/**
 * Purges of rooms and of history, in small batches (each a statement or two, so that neither
 * SQLite's one writer nor the process is held for long), with the records of the purges
 * themselves and the rooms blocked from joining.
 *
 * What is derived from events is deleted with them: the room's current state, its state and
 * membership history, current memberships, forward extremities, receipts, typing, room
 * account data, transaction IDs and aliases, search rows, relations and threads,
 * notifications and pending push, invites' stripped state, reports, the room list's and
 * sliding sync's rows, application services' and the directory's, key backups' sessions
 * (their versions' etags change), and the room DAG (state groups with their
 * entries, each event's groups and auth edges, outliers, rejected and soft-failed events). The mutual-rooms index is kept by membership
 * changes (a room is deleted only after its members have left it, which removed its entries);
 * `deleteRoomBatch` removes what is left of it all the same, counts and revisions kept right.
 */
import { sql, type Kysely } from 'kysely';
import type { Database } from './schema.js';
import { refreshThread } from './relation-store.js';
import { userNotOfServer } from './user-server.js';

export type PurgeKind = 'delete_room' | 'purge_history';
export type PurgeStatus = 'scheduled' | 'active' | 'complete' | 'failed';

export interface PurgeRow {
  purgeId: string;
  kind: PurgeKind;
  roomId: string;
  requester: string;
  params: string;
  status: PurgeStatus;
  error: string | null;
  result: string | null;
  createdTs: number;
}

export interface RoomPurgeStore {
  insertPurge(row: PurgeRow): Promise<void>;
  updatePurge(
    purgeId: string,
    change: { status: PurgeStatus; error?: string | null; result?: string | null },
  ): Promise<void>;
  selectPurge(purgeId: string): Promise<PurgeRow | undefined>;
  /** The room's purges of `kind`, oldest first. */
  selectPurgesOfRoom(roomId: string, kind: PurgeKind): Promise<PurgeRow[]>;
  /** Purges not finished (scheduled or active), oldest first: to resume at start-up. */
  selectUnfinishedPurges(): Promise<PurgeRow[]>;

  insertBlock(roomId: string, blockedBy: string, ts: number): Promise<void>;
  deleteBlock(roomId: string): Promise<void>;
  selectBlock(roomId: string): Promise<{ blockedBy: string; blockedTs: number } | undefined>;

  /**
   * Deletes at most about `limit` rows of the room, derived rows before events and the room's
   * own row last; resolves with how many went (0: nothing of the room is left).
   */
  deleteRoomBatch(roomId: string, limit: number): Promise<number>;
  /**
   * Deletes at most `limit` events of the room that are not state, older than stream position
   * `before` and not a forward extremity (the room's latest events stay); resolves with how
   * many went. With `keepServer`, events sent by that server's users stay.
   */
  deleteHistoryBatch(
    roomId: string,
    before: number,
    limit: number,
    keepServer: string | null,
  ): Promise<number>;
  /** Room IDs after `afterRoomId` in order, at most `limit` (to visit every room). */
  selectRoomIdsAfter(afterRoomId: string, limit: number): Promise<string[]>;
  /** The stream position of the room's newest event sent before `ts` (0 when none). */
  selectPositionBefore(roomId: string, ts: number): Promise<number>;
}

/**
 * Tables of a room and columns unique among the room's rows, in the order they are emptied:
 * what is derived from events (search, relations, notifications, sliding sync, the room
 * list, invites' stripped state, reports, key backups' sessions) before the events.
 */
const ROOM_TABLES: ReadonlyArray<readonly [string, readonly string[]]> = [
  ['event_push_actions', ['user_id', 'stream_ordering']],
  ['push_pending', ['stream_ordering']],
  ['push_queue', ['pusher_id', 'stream_ordering']],
  ['event_search', ['stream_ordering']],
  ['event_relations', ['event_id']],
  ['event_threads', ['root_id']],
  ['invite_room_state', ['user_id']],
  ['content_reports', ['id']],
  ['room_list_meta', ['room_id']],
  ['sliding_sync_members', ['connection_id', 'user_id']],
  ['sliding_sync_rooms', ['connection_id']],
  ['appservice_room_users', ['service_id', 'user_id']],
  ['appservice_room_directory', ['service_id', 'network_id']],
  ['user_directory_public_rooms', ['room_id']],
  ['user_directory_pending', ['room_id']],
  ['server_notice_rooms', ['user_id']],
  ['partial_state_rooms', ['room_id']],
  ['partial_state_completions', ['stream_ordering']],
  ['receipts', ['user_id']],
  ['typing', ['user_id']],
  ['account_data', ['user_id']],
  ['event_txns', ['event_id']],
  ['room_aliases', ['alias']],
  ['room_extremities', ['event_id']],
  ['current_state', ['event_id']],
  ['room_memberships', ['user_id']],
  ['membership_history', ['stream_ordering']],
  ['state_history', ['stream_ordering']],
  ['events', ['event_id']],
  // The room DAG (state groups' entries and auth edges went first: `deleteDagLinks`).
  ['event_state_groups', ['event_id']],
  ['room_dag_events', ['event_id']],
  ['room_state_heads', ['room_id']],
  ['state_resolutions', ['input_groups']],
  ['state_groups', ['group_id']],
  ['room_backfill_points', ['event_id']],
  ['room_history_floors', ['room_id']],
];

const toPurgeRow = (row: {
  purge_id: string;
  kind: string;
  room_id: string;
  requester: string;
  params: string;
  status: string;
  error: string | null;
  result: string | null;
  created_ts: number;
}): PurgeRow => ({
  purgeId: row.purge_id,
  kind: row.kind as PurgeKind,
  roomId: row.room_id,
  requester: row.requester,
  params: row.params,
  status: row.status as PurgeStatus,
  error: row.error,
  result: row.result,
  createdTs: Number(row.created_ts),
});

export function roomPurgeStore(db: Kysely<Database>): RoomPurgeStore {
  /** Deletes up to `limit` of the room's rows of `table`, chosen by the `key` columns. */
  async function deleteSome(table: string, key: readonly string[], roomId: string, limit: number) {
    const columns = sql.join(key.map((c) => sql.ref(c)));
    const result = await sql`DELETE FROM ${sql.table(table)} WHERE room_id = ${roomId}
        AND (${columns}) IN (SELECT ${columns} FROM ${sql.table(table)}
          WHERE room_id = ${roomId} LIMIT ${limit})`.execute(db);
    return Number(result.numAffectedRows ?? 0);
  }

  /** The room's sessions in key backups; each backup version changed gets a new etag. */
  async function deleteBackupKeys(roomId: string, limit: number): Promise<number> {
    const keys = await db
      .selectFrom('key_backup_keys')
      .select(['user_id', 'version', 'session_id'])
      .where('room_id', '=', roomId)
      .limit(limit)
      .execute();
    const versions = new Map(keys.map((k) => [`${k.version} ${k.user_id}`, k]));
    for (const { user_id, version } of versions.values())
      await db
        .updateTable('key_backup_versions')
        .set((eb) => ({ etag: eb('etag', '+', 1) }))
        .where('user_id', '=', user_id)
        .where('version', '=', version)
        .execute();
    for (const key of keys)
      await db
        .deleteFrom('key_backup_keys')
        .where('user_id', '=', key.user_id)
        .where('version', '=', key.version)
        .where('room_id', '=', roomId)
        .where('session_id', '=', key.session_id)
        .execute();
    return keys.length;
  }

  /** The mutual-rooms entries of the room (none once its members have left), counts kept. */
  async function deleteMutualEntries(roomId: string, limit: number): Promise<number> {
    const entries = await db
      .selectFrom('mutual_room_entries')
      .select(['user_low', 'user_high', 'room_nid'])
      .where('room_id', '=', roomId)
      .limit(limit)
      .execute();
    for (const entry of entries) {
      await db
        .deleteFrom('mutual_room_entries')
        .where('user_low', '=', entry.user_low)
        .where('user_high', '=', entry.user_high)
        .where('room_nid', '=', entry.room_nid)
        .execute();
      await db
        .updateTable('mutual_room_pairs')
        .set((eb) => ({
          room_count: eb('room_count', '-', 1),
          revision: Math.floor(Math.random() * 2 ** 31),
        }))
        .where('user_low', '=', entry.user_low)
        .where('user_high', '=', entry.user_high)
        .execute();
    }
    return entries.length;
  }

  /**
   * The room's state group entries and its events' auth edges, which carry no room ID: found
   * through the groups and events of the room, so they go before those rows do.
   */
  async function deleteDagLinks(roomId: string, limit: number): Promise<number> {
    const entries = await sql`DELETE FROM state_group_entries
        WHERE (group_id, type, state_key) IN (
          SELECT e.group_id, e.type, e.state_key FROM state_group_entries e
            INNER JOIN state_groups g ON g.group_id = e.group_id
          WHERE g.room_id = ${roomId} LIMIT ${limit})`.execute(db);
    const deleted = Number(entries.numAffectedRows ?? 0);
    if (deleted > 0) return deleted;
    const edges = await sql`DELETE FROM event_auth_edges
        WHERE (event_id, auth_event_id) IN (
          SELECT a.event_id, a.auth_event_id FROM event_auth_edges a
          WHERE a.event_id IN (
            SELECT event_id FROM event_state_groups WHERE room_id = ${roomId}
            UNION SELECT event_id FROM room_dag_events WHERE room_id = ${roomId}
            UNION SELECT event_id FROM events WHERE room_id = ${roomId})
          LIMIT ${limit})`.execute(db);
    return Number(edges.numAffectedRows ?? 0);
  }

  return {
    async insertPurge(row) {
      await db
        .insertInto('room_purges')
        .values({
          purge_id: row.purgeId,
          kind: row.kind,
          room_id: row.roomId,
          requester: row.requester,
          params: row.params,
          status: row.status,
          error: row.error,
          result: row.result,
          created_ts: row.createdTs,
        })
        .execute();
    },

    async updatePurge(purgeId, change) {
      await db
        .updateTable('room_purges')
        .set({
          status: change.status,
          ...(change.error !== undefined ? { error: change.error } : {}),
          ...(change.result !== undefined ? { result: change.result } : {}),
        })
        .where('purge_id', '=', purgeId)
        .execute();
    },

    async selectPurge(purgeId) {
      const row = await db
        .selectFrom('room_purges')
        .selectAll()
        .where('purge_id', '=', purgeId)
        .executeTakeFirst();
      return row ? toPurgeRow(row) : undefined;
    },

    async selectPurgesOfRoom(roomId, kind) {
      const rows = await db
        .selectFrom('room_purges')
        .selectAll()
        .where('room_id', '=', roomId)
        .where('kind', '=', kind)
        .orderBy('created_ts')
        .orderBy('purge_id')
        .execute();
      return rows.map(toPurgeRow);
    },

    async selectUnfinishedPurges() {
      const rows = await db
        .selectFrom('room_purges')
        .selectAll()
        .where('status', 'in', ['scheduled', 'active'])
        .orderBy('created_ts')
        .orderBy('purge_id')
        .execute();
      return rows.map(toPurgeRow);
    },

    async insertBlock(roomId, blockedBy, ts) {
      await db
        .insertInto('blocked_rooms')
        .values({ room_id: roomId, blocked_by: blockedBy, blocked_ts: ts })
        .onConflict((oc) => oc.column('room_id').doNothing())
        .execute();
    },

    async deleteBlock(roomId) {
      await db.deleteFrom('blocked_rooms').where('room_id', '=', roomId).execute();
    },

    async selectBlock(roomId) {
      const row = await db
        .selectFrom('blocked_rooms')
        .select(['blocked_by', 'blocked_ts'])
        .where('room_id', '=', roomId)
        .executeTakeFirst();
      return row ? { blockedBy: row.blocked_by, blockedTs: Number(row.blocked_ts) } : undefined;
    },

    async deleteRoomBatch(roomId, limit) {
      const mutual = await deleteMutualEntries(roomId, limit);
      if (mutual > 0) return mutual;
      const links = await deleteDagLinks(roomId, limit);
      if (links > 0) return links;
      const backups = await deleteBackupKeys(roomId, limit);
      if (backups > 0) return backups;
      for (const [table, key] of ROOM_TABLES) {
        const deleted = await deleteSome(table, key, roomId, limit);
        if (deleted > 0) return deleted;
      }
      const room = await db.deleteFrom('rooms').where('room_id', '=', roomId).executeTakeFirst();
      return Number(room.numDeletedRows);
    },

    async deleteHistoryBatch(roomId, before, limit, keepServer) {
      let query = db
        .selectFrom('events')
        .select('event_id')
        .where('room_id', '=', roomId)
        .where('state_key', 'is', null)
        .where('stream_ordering', '<', before)
        .where('event_id', 'not in', (eb) =>
          eb.selectFrom('room_extremities').select('event_id').where('room_id', '=', roomId),
        )
        .orderBy('stream_ordering')
        .limit(limit);
      if (keepServer !== null) {
        query = query.where(userNotOfServer('sender', keepServer));
      }
      const rows = await query.execute();
      if (rows.length === 0) return 0;
      const ids = rows.map((r) => r.event_id);
      await db.deleteFrom('event_txns').where('event_id', 'in', ids).execute();
      // Messages are no one's auth events: their auth edges go too. Their state groups stay
      // (another server's event may still name one as a prev event).
      await db.deleteFrom('event_auth_edges').where('event_id', 'in', ids).execute();
      // What was derived from them: search rows, relations, notifications.
      await db.deleteFrom('event_search').where('event_id', 'in', ids).execute();
      await db.deleteFrom('event_relations').where('event_id', 'in', ids).execute();
      // Threads: one whose root went goes; one whose latest reply went points at the newest
      // reply left (or goes, with none left).
      await db
        .deleteFrom('event_threads')
        .where('room_id', '=', roomId)
        .where('root_id', 'in', ids)
        .execute();
      const repointed = await db
        .selectFrom('event_threads')
        .select('root_id')
        .where('room_id', '=', roomId)
        .where('latest_event_id', 'in', ids)
        .execute();
      for (const { root_id } of repointed) await refreshThread(db, roomId, root_id);
      await db.deleteFrom('event_push_actions').where('event_id', 'in', ids).execute();
      await db.deleteFrom('events').where('event_id', 'in', ids).execute();
      return ids.length;
    },

    async selectRoomIdsAfter(afterRoomId, limit) {
      const rows = await db
        .selectFrom('rooms')
        .select('room_id')
        .where('room_id', '>', afterRoomId)
        .orderBy('room_id')
        .limit(limit)
        .execute();
      return rows.map((r) => r.room_id);
    },

    async selectPositionBefore(roomId, ts) {
      const row = await db
        .selectFrom('events')
        .select((eb) => eb.fn.max('stream_ordering').as('position'))
        .where('room_id', '=', roomId)
        .where('origin_server_ts', '<', ts)
        .executeTakeFirst();
      return row?.position === null || row?.position === undefined ? 0 : Number(row.position);
    },
  };
}
