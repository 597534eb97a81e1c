/**
 * Push actions (migration 0052): what the push deriver reads to evaluate a room's members
 * (a page of joined members, their rule sets), the rows it writes, and the unread counts and
 * notification lists read from them.
 */
import type { Kysely } from 'kysely';
import type { Database } from './schema.js';
import { readInSlices, valuesTable } from './values-table.js';

export interface PushActionRow {
  userId: string;
  roomId: string;
  streamOrdering: number;
  eventId: string;
  threadId: string;
  highlight: boolean;
  actions: string;
  /**
   * The stream position at which the row is written: the event's own when written with it,
   * a later one when evaluated after it (see `PendingEvaluation`).
   */
  notifiedAt: number;
}

/** An event whose members are still to be evaluated, from after `afterUser` (migration 0054). */
export interface PendingEvaluation {
  streamOrdering: number;
  roomId: string;
  eventId: string;
  afterUser: string;
}

export interface UnreadCount {
  roomId: string;
  threadId: string;
  notifications: number;
  highlights: number;
}

/** A push action as unread counts need it. */
export interface NotifiedAction {
  roomId: string;
  threadId: string;
  streamOrdering: number;
  highlight: boolean;
  notifiedAt: number;
}

/** The newest read receipt (`m.read` or `m.read.private`) of a thread, or of the room (''). */
export interface ReadMark {
  roomId: string;
  /** '' for an unthreaded receipt. */
  threadId: string;
  streamOrdering: number;
}

export const READ_RECEIPT_TYPES = ['m.read', 'm.read.private'] as const;

export interface PushStore {
  /**
   * Joined members of the room after `afterUserId`, by user ID, with their display names and
   * the position of their current member event.
   */
  selectJoinedMembersPage(
    roomId: string,
    afterUserId: string,
    limit: number,
  ): Promise<Array<{ userId: string; displayname: string | null; since: number }>>;
  /** Which of these users were joined to the room just before `position`. */
  selectJoinedBefore(
    roomId: string,
    userIds: readonly string[],
    position: number,
  ): Promise<Set<string>>;
  /** The stored push rule sets (account data content) of these users, by user. */
  selectPushRulesOfUsers(userIds: readonly string[], type: string): Promise<Map<string, string>>;
  /** Writes the rows (a row already written for the user and event is left as it is). */
  insertPushActions(rows: readonly PushActionRow[]): Promise<void>;
  /** Rooms in which the user has rows written at positions in (`after`, `upTo`]. */
  selectRoomsNotifiedBetween(userId: string, after: number, upTo: number): Promise<string[]>;
  insertPending(row: PendingEvaluation): Promise<void>;
  /** Events still to be evaluated, oldest first. */
  selectPending(limit: number): Promise<PendingEvaluation[]>;
  selectPendingEvent(streamOrdering: number): Promise<PendingEvaluation | undefined>;
  /** Records the evaluation's progress: members up to `afterUser` are done. */
  advancePending(streamOrdering: number, afterUser: string): Promise<void>;
  deletePending(streamOrdering: number): Promise<void>;
  countPending(): Promise<number>;
  /** Per room and thread, the user's newest read receipt's position. */
  selectReadMarks(userId: string, roomIds: readonly string[]): Promise<ReadMark[]>;
  /**
   * Per room and thread, the user's push actions after the room's `after`, among those written
   * at positions up to `upTo` (`notified_at`).
   */
  selectUnreadCounts(
    userId: string,
    spans: ReadonlyArray<{ roomId: string; after: number }>,
    upTo: number,
  ): Promise<UnreadCount[]>;
  /** The same for single threads, after each one's `after`. */
  selectThreadUnreadCounts(
    userId: string,
    spans: ReadonlyArray<{ roomId: string; threadId: string; after: number }>,
    upTo: number,
  ): Promise<UnreadCount[]>;
  /** The user's push actions written at positions in (`after`, `upTo`], oldest first, at most `limit`. */
  selectActionsNotifiedBetween(
    userId: string,
    after: number,
    upTo: number,
    limit: number,
  ): Promise<NotifiedAction[]>;
  /** The user's push actions before `before`, newest first. */
  selectNotifications(
    userId: string,
    before: number,
    limit: number,
    onlyHighlight: boolean,
  ): Promise<PushActionRow[]>;
}

interface ActionRecord {
  user_id: string;
  room_id: string;
  stream_ordering: number | string;
  event_id: string;
  thread_id: string;
  highlight: number | string;
  actions: string;
  notified_at: number | string;
}

const toRow = (r: ActionRecord): PushActionRow => ({
  userId: r.user_id,
  roomId: r.room_id,
  streamOrdering: Number(r.stream_ordering),
  eventId: r.event_id,
  threadId: r.thread_id,
  highlight: Number(r.highlight) !== 0,
  actions: r.actions,
  notifiedAt: Number(r.notified_at),
});

const INSERT_BATCH = 500;

export function pushStore(db: Kysely<Database>): PushStore {
  const counted = (rows: Array<{ room_id: string; thread_id: string; n: unknown; h: unknown }>) =>
    rows.map((r) => ({
      roomId: r.room_id,
      threadId: r.thread_id,
      notifications: Number(r.n),
      highlights: Number(r.h ?? 0),
    }));

  return {
    async selectJoinedMembersPage(roomId, afterUserId, limit) {
      const rows = await db
        .selectFrom('room_memberships')
        .select(['user_id', 'displayname', 'stream_ordering'])
        .where('room_id', '=', roomId)
        .where('membership', '=', 'join')
        .where('user_id', '>', afterUserId)
        .orderBy('user_id')
        .limit(limit)
        .execute();
      return rows.map((r) => ({
        userId: r.user_id,
        displayname: r.displayname,
        since: Number(r.stream_ordering),
      }));
    },

    async selectJoinedBefore(roomId, userIds, position) {
      const rows = await readInSlices(userIds, (slice) =>
        db
          .selectFrom('membership_history')
          .select(['user_id', 'membership', 'stream_ordering'])
          .where('room_id', '=', roomId)
          .where('user_id', 'in', slice)
          .where('stream_ordering', '<', position)
          .execute(),
      );
      const latest = new Map<string, { at: number; membership: string }>();
      for (const row of rows) {
        const at = Number(row.stream_ordering);
        if ((latest.get(row.user_id)?.at ?? -1) < at)
          latest.set(row.user_id, { at, membership: row.membership });
      }
      return new Set([...latest].filter(([, m]) => m.membership === 'join').map(([u]) => u));
    },

    async selectPushRulesOfUsers(userIds, type) {
      const rows = await readInSlices(userIds, (slice) =>
        db
          .selectFrom('account_data')
          .select(['user_id', 'content'])
          .where('user_id', 'in', slice)
          .where('room_id', '=', '')
          .where('type', '=', type)
          .execute(),
      );
      return new Map(rows.map((r) => [r.user_id, r.content]));
    },

    async insertPushActions(rows) {
      for (let i = 0; i < rows.length; i += INSERT_BATCH) {
        await db
          .insertInto('event_push_actions')
          .values(
            rows.slice(i, i + INSERT_BATCH).map((r) => ({
              user_id: r.userId,
              room_id: r.roomId,
              stream_ordering: r.streamOrdering,
              event_id: r.eventId,
              thread_id: r.threadId,
              highlight: r.highlight ? 1 : 0,
              actions: r.actions,
              notified_at: r.notifiedAt,
            })),
          )
          .onConflict((oc) => oc.columns(['user_id', 'room_id', 'stream_ordering']).doNothing())
          .execute();
      }
    },

    async selectRoomsNotifiedBetween(userId, after, upTo) {
      const rows = await db
        .selectFrom('event_push_actions')
        .select('room_id')
        .distinct()
        .where('user_id', '=', userId)
        .where('notified_at', '>', after)
        .where('notified_at', '<=', upTo)
        .execute();
      return rows.map((r) => r.room_id);
    },

    async insertPending(row) {
      await db
        .insertInto('push_pending')
        .values({
          stream_ordering: row.streamOrdering,
          room_id: row.roomId,
          event_id: row.eventId,
          after_user: row.afterUser,
        })
        .execute();
    },

    async selectPending(limit) {
      const rows = await db
        .selectFrom('push_pending')
        .selectAll()
        .orderBy('stream_ordering')
        .limit(limit)
        .execute();
      return rows.map((r) => ({
        streamOrdering: Number(r.stream_ordering),
        roomId: r.room_id,
        eventId: r.event_id,
        afterUser: r.after_user,
      }));
    },

    async selectPendingEvent(streamOrdering) {
      const r = await db
        .selectFrom('push_pending')
        .selectAll()
        .where('stream_ordering', '=', streamOrdering)
        .executeTakeFirst();
      return r
        ? {
            streamOrdering: Number(r.stream_ordering),
            roomId: r.room_id,
            eventId: r.event_id,
            afterUser: r.after_user,
          }
        : undefined;
    },

    async advancePending(streamOrdering, afterUser) {
      await db
        .updateTable('push_pending')
        .set({ after_user: afterUser })
        .where('stream_ordering', '=', streamOrdering)
        .execute();
    },

    async deletePending(streamOrdering) {
      await db.deleteFrom('push_pending').where('stream_ordering', '=', streamOrdering).execute();
    },

    async countPending() {
      const row = await db
        .selectFrom('push_pending')
        .select((eb) => eb.fn.countAll().as('n'))
        .executeTakeFirstOrThrow();
      return Number(row.n);
    },

    async selectReadMarks(userId, roomIds) {
      const rows = await readInSlices(roomIds, (slice) =>
        db
          .selectFrom('receipts')
          .innerJoin('events', 'events.event_id', 'receipts.event_id')
          .select((eb) => [
            'receipts.room_id',
            'receipts.thread_id',
            eb.fn.max('events.stream_ordering').as('position'),
          ])
          .where('receipts.user_id', '=', userId)
          .where('receipts.room_id', 'in', slice)
          .where('receipts.receipt_type', 'in', [...READ_RECEIPT_TYPES])
          .groupBy(['receipts.room_id', 'receipts.thread_id'])
          .execute(),
      );
      return rows.map((r) => ({
        roomId: r.room_id,
        threadId: r.thread_id,
        streamOrdering: Number(r.position),
      }));
    },

    async selectUnreadCounts(userId, spans, upTo) {
      type Span = { column1: string; column2: number };
      const rows = await readInSlices(spans, (slice) =>
        db
          .selectFrom(
            valuesTable<Span>(
              slice.map((s) => [s.roomId, s.after]),
              ['text', 'bigint'],
            ),
          )
          // The listed rooms first, then each one's rows by the key (user, room, position):
          // SQLite keeps the order of a CROSS JOIN. As an inner join it read every row of the
          // user's and matched it against the whole list: 100-190 ms for a user in 200 rooms
          // with 1,800 rows, against 1 ms (PostgreSQL plans either the same).
          .crossJoin('event_push_actions as a')
          .whereRef('a.room_id', '=', 'k.column1')
          .whereRef('a.stream_ordering', '>', 'k.column2')
          .select((eb) => [
            'a.room_id',
            'a.thread_id',
            eb.fn.countAll().as('n'),
            eb.fn.sum('a.highlight').as('h'),
          ])
          .where('a.user_id', '=', userId)
          .where('a.notified_at', '<=', upTo)
          .groupBy(['a.room_id', 'a.thread_id'])
          .execute(),
      );
      return counted(rows);
    },

    async selectThreadUnreadCounts(userId, spans, upTo) {
      type Span = { column1: string; column2: string; column3: number };
      const rows = await readInSlices(spans, (slice) =>
        db
          .selectFrom(
            valuesTable<Span>(
              slice.map((s) => [s.roomId, s.threadId, s.after]),
              ['text', 'text', 'bigint'],
            ),
          )
          // As selectUnreadCounts: the listed threads first (SQLite keeps a CROSS JOIN's order).
          .crossJoin('event_push_actions as a')
          .whereRef('a.room_id', '=', 'k.column1')
          .whereRef('a.thread_id', '=', 'k.column2')
          .whereRef('a.stream_ordering', '>', 'k.column3')
          .select((eb) => [
            'a.room_id',
            'a.thread_id',
            eb.fn.countAll().as('n'),
            eb.fn.sum('a.highlight').as('h'),
          ])
          .where('a.user_id', '=', userId)
          .where('a.notified_at', '<=', upTo)
          .groupBy(['a.room_id', 'a.thread_id'])
          .execute(),
      );
      return counted(rows);
    },

    async selectActionsNotifiedBetween(userId, after, upTo, limit) {
      const rows = await db
        .selectFrom('event_push_actions')
        .select(['room_id', 'thread_id', 'stream_ordering', 'highlight', 'notified_at'])
        .where('user_id', '=', userId)
        .where('notified_at', '>', after)
        .where('notified_at', '<=', upTo)
        .orderBy('notified_at')
        .limit(limit)
        .execute();
      return rows.map((r) => ({
        roomId: r.room_id,
        threadId: r.thread_id,
        streamOrdering: Number(r.stream_ordering),
        highlight: Number(r.highlight) !== 0,
        notifiedAt: Number(r.notified_at),
      }));
    },

    async selectNotifications(userId, before, limit, onlyHighlight) {
      let query = db
        .selectFrom('event_push_actions')
        .selectAll()
        .where('user_id', '=', userId)
        .where('stream_ordering', '<', before);
      if (onlyHighlight) query = query.where('highlight', '=', 1);
      const rows = await query.orderBy('stream_ordering', 'desc').limit(limit).execute();
      return rows.map(toRow);
    },
  };
}
