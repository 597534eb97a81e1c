/** Presence: one row per user, holding the stream position of its latest change. */
import { sql, type Kysely } from 'kysely';
import type { Database } from './schema.js';
import { readInSlices } from './values-table.js';
import { userNotOfServer, userOfServer } from './user-server.js';

export interface PresenceRow {
  userId: string;
  /** online, offline or unavailable. */
  presence: string;
  statusMsg: string | null;
  lastActiveTs: number;
  streamOrdering: number;
  currentlyActive: boolean;
  /** (Local users) when a /sync of theirs was last seen running or ending; 0: never. */
  lastSyncTs: number;
  /** When the row was last written or (remote users) last heard of from their server. */
  lastUpdateTs: number;
}

/** The instants before which a presence row has timed out, for `selectTimeoutCandidates`. */
export interface PresenceTimeoutBounds {
  /** Local users with no /sync and no activity since. */
  syncBefore: number;
  /** Local users online with no activity since. */
  idleBefore: number;
  /** Local users currently active with no activity since. */
  activeBefore: number;
  /** Remote users not heard of since. */
  remoteBefore: number;
}

export interface PresenceStore {
  selectPresence(userId: string): Promise<PresenceRow | undefined>;
  /** Inserts or replaces the user's presence. */
  upsertPresence(row: PresenceRow): Promise<void>;
  /**
   * Presence changed in (after, upTo] of `userId` and of every user joined to a room
   * `userId` is joined to, oldest first.
   */
  selectPresenceChanges(userId: string, after: number, upTo: number): Promise<PresenceRow[]>;
  /**
   * The presence, as of `upTo`, of the users listed and of everyone joined to the rooms
   * listed (users with no presence recorded have no row), by user ID.
   */
  selectPresenceOfUsersAndMembers(
    userIds: readonly string[],
    roomIds: readonly string[],
    upTo: number,
  ): Promise<PresenceRow[]>;
  /** Whether both users are joined to at least one room in common. */
  selectSharesJoinedRoom(userId: string, otherUserId: string): Promise<boolean>;
  /**
   * Up to `limit` users of `server` whose presence is not offline, with user IDs after
   * `afterUserId`, by user ID (a page of a walk over them).
   */
  selectNotOfflineOfServer(
    server: string,
    afterUserId: string,
    limit: number,
  ): Promise<PresenceRow[]>;
  /**
   * The presence of the users listed, their rows locked first until the transaction ends (a
   * no-op update, the same on both databases): a concurrent change of one waits, or is seen.
   */
  selectPresenceLocked(userIds: readonly string[]): Promise<PresenceRow[]>;
  /**
   * Records that the users listed (those with a presence row) were seen syncing at `ts`, and
   * the `active` ones (a subset) active then if they are online and currently active; a later
   * time already recorded is kept.
   */
  updateLastSync(userIds: readonly string[], active: readonly string[], ts: number): Promise<void>;
  /**
   * Moves a user's last activity and last update forward without a new stream position
   * (news no client needs to hear of: only `last_active_ago` changes).
   */
  touchPresence(userId: string, lastActiveTs: number, lastUpdateTs: number): Promise<void>;
  /**
   * Up to `limit` users not offline, after `afterUserId` by user ID, whose presence may have
   * timed out: local users (of `server`) past one of the local bounds, remote users past the
   * remote one.
   */
  selectTimeoutCandidates(
    server: string,
    bounds: PresenceTimeoutBounds,
    afterUserId: string,
    limit: number,
  ): Promise<PresenceRow[]>;
}

type PresenceColumns = Database['presence'];

const toRow = (row: PresenceColumns): PresenceRow => ({
  userId: row.user_id,
  presence: row.presence,
  statusMsg: row.status_msg,
  lastActiveTs: Number(row.last_active_ts),
  streamOrdering: Number(row.stream_ordering),
  currentlyActive: Number(row.currently_active) === 1,
  lastSyncTs: Number(row.last_sync_ts),
  lastUpdateTs: Number(row.last_update_ts),
});

export function presenceStore(db: Kysely<Database>): PresenceStore {
  return {
    async selectPresence(userId) {
      const row = await db
        .selectFrom('presence')
        .selectAll()
        .where('user_id', '=', userId)
        .executeTakeFirst();
      return row ? toRow(row) : undefined;
    },

    async upsertPresence(row) {
      const values = {
        presence: row.presence,
        status_msg: row.statusMsg,
        last_active_ts: row.lastActiveTs,
        stream_ordering: row.streamOrdering,
        currently_active: row.currentlyActive ? 1 : 0,
        last_sync_ts: row.lastSyncTs,
        last_update_ts: row.lastUpdateTs,
      };
      await db
        .insertInto('presence')
        .values({ user_id: row.userId, ...values })
        .onConflict((oc) => oc.column('user_id').doUpdateSet(values))
        .execute();
    },

    async selectPresenceChanges(userId, after, upTo) {
      const rows = await db
        .selectFrom('presence as p')
        .selectAll('p')
        .where('p.stream_ordering', '>', after)
        .where('p.stream_ordering', '<=', upTo)
        .where((eb) =>
          eb.or([
            eb('p.user_id', '=', userId),
            eb.exists(
              eb
                .selectFrom('room_memberships as mine')
                .innerJoin('room_memberships as theirs', 'theirs.room_id', 'mine.room_id')
                .select('mine.room_id')
                .where('mine.user_id', '=', userId)
                .where('mine.membership', '=', 'join')
                .whereRef('theirs.user_id', '=', 'p.user_id')
                .where('theirs.membership', '=', 'join'),
            ),
          ]),
        )
        .orderBy('p.stream_ordering')
        .execute();
      return rows.map(toRow);
    },

    async selectPresenceOfUsersAndMembers(userIds, roomIds, upTo) {
      const listed = await readInSlices(userIds, (part) =>
        db
          .selectFrom('presence')
          .selectAll()
          .where('user_id', 'in', part)
          .where('stream_ordering', '<=', upTo)
          .execute(),
      );
      // From the rooms' joined members (an index range each), so the cost follows the rooms'
      // sizes, not how many users have a presence.
      const members = await readInSlices(roomIds, (part) =>
        db
          .selectFrom('room_memberships as m')
          .innerJoin('presence as p', 'p.user_id', 'm.user_id')
          .selectAll('p')
          .where('m.room_id', 'in', part)
          .where('m.membership', '=', 'join')
          .where('p.stream_ordering', '<=', upTo)
          .execute(),
      );
      // A user in several of the rooms (or also listed) once.
      const byUser = new Map([...listed, ...members].map((row) => [row.user_id, toRow(row)]));
      return [...byUser.values()].sort((a, b) => (a.userId < b.userId ? -1 : 1));
    },

    async selectSharesJoinedRoom(userId, otherUserId) {
      const row = await db
        .selectFrom('room_memberships as mine')
        .innerJoin('room_memberships as theirs', 'theirs.room_id', 'mine.room_id')
        .select('mine.room_id')
        .where('mine.user_id', '=', userId)
        .where('mine.membership', '=', 'join')
        .where('theirs.user_id', '=', otherUserId)
        .where('theirs.membership', '=', 'join')
        .limit(1)
        .executeTakeFirst();
      return row !== undefined;
    },

    async selectNotOfflineOfServer(server, afterUserId, limit) {
      const rows = await db
        .selectFrom('presence')
        .selectAll()
        .where('user_id', '>', afterUserId)
        .where('presence', '<>', 'offline')
        .where(userOfServer('user_id', server))
        .orderBy('user_id')
        .limit(limit)
        .execute();
      return rows.map(toRow);
    },

    async selectPresenceLocked(userIds) {
      await readInSlices(userIds, async (part) => {
        await db
          .updateTable('presence')
          .set((eb) => ({ presence: eb.ref('presence') }))
          .where('user_id', 'in', part)
          .execute();
        return [];
      });
      const rows = await readInSlices(userIds, (part) =>
        db.selectFrom('presence').selectAll().where('user_id', 'in', part).execute(),
      );
      return rows.map(toRow);
    },

    async updateLastSync(userIds, active, ts) {
      await readInSlices(userIds, async (part) => {
        await db
          .updateTable('presence')
          .set({ last_sync_ts: ts })
          .where('user_id', 'in', part)
          .where('last_sync_ts', '<', ts)
          .execute();
        return [];
      });
      await readInSlices(active, async (part) => {
        await db
          .updateTable('presence')
          .set({ last_active_ts: ts })
          .where('user_id', 'in', part)
          .where('presence', '=', 'online')
          .where('currently_active', '=', 1)
          .where('last_active_ts', '<', ts)
          .execute();
        return [];
      });
    },

    async touchPresence(userId, lastActiveTs, lastUpdateTs) {
      await db
        .updateTable('presence')
        .set({
          last_active_ts: sql<number>`CASE WHEN last_active_ts < ${lastActiveTs} THEN ${lastActiveTs} ELSE last_active_ts END`,
          last_update_ts: lastUpdateTs,
        })
        .where('user_id', '=', userId)
        .execute();
    },

    async selectTimeoutCandidates(server, bounds, afterUserId, limit) {
      const local = userOfServer('user_id', server);
      const rows = await db
        .selectFrom('presence')
        .selectAll()
        .where('user_id', '>', afterUserId)
        .where('presence', '<>', 'offline')
        .where((eb) =>
          eb.or([
            eb.and([
              local,
              eb.or([
                eb.and([
                  eb('last_sync_ts', '<', bounds.syncBefore),
                  eb('last_active_ts', '<', bounds.syncBefore),
                ]),
                eb.and([
                  eb('presence', '=', 'online'),
                  eb('last_active_ts', '<', bounds.idleBefore),
                ]),
                eb.and([
                  eb('currently_active', '=', 1),
                  eb('last_active_ts', '<', bounds.activeBefore),
                ]),
              ]),
            ]),
            eb.and([
              userNotOfServer('user_id', server),
              eb('last_update_ts', '<', bounds.remoteBefore),
            ]),
          ]),
        )
        .orderBy('user_id')
        .limit(limit)
        .execute();
      return rows.map(toRow);
    },
  };
}
