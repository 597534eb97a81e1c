/**
 * The reads /sync is made of: which rooms changed in a span of the stream, the syncing user's
 * memberships, state before a position and state changes between two, member counts and
 * heroes, and the syncing device's transaction IDs. Every read is an index range scan.
 */
import type { Kysely } from 'kysely';
import { removedMembership } from './migrations/0024-removed-memberships.js';
import type { Database } from './schema.js';
import { REMOVED, eventColumns, toEventRow, type EventRow, type StateKeys } from './room-store.js';
import { groupByRoom, readInSlices, slices, valuesTable } from './values-table.js';

export interface UserMembershipRow {
  roomId: string;
  membership: string;
  /** The stream position of the membership event. */
  streamOrdering: number;
  eventId: string;
}

export interface MemberCounts {
  joined: number;
  invited: number;
}

/** State entries of one room as they were just before `position`. */
export interface StateBeforeRequest {
  roomId: string;
  keys: StateKeys;
  position: number;
}

/** The state changes of one room in the open span (after, before). */
export interface StateChangesRequest {
  roomId: string;
  after: number;
  before: number;
}

/**
 * Every read that takes rooms answers for a batch of them at once (by room), so that an
 * initial /sync makes a handful of statements per hundred rooms rather than ten per room.
 */
export interface SyncStore {
  /** Rooms with any event in (after, upTo]. */
  selectRoomsWithEvents(after: number, upTo: number): Promise<string[]>;
  /** The user's current memberships, all rooms or only those listed, forgotten ones left out. */
  selectMembershipsOfUser(
    userId: string,
    roomIds?: readonly string[],
  ): Promise<UserMembershipRow[]>;
  /**
   * The user's memberships that state resolution removed altogether (see
   * `RoomStore.removeStateEntries`) in rooms where they have no membership now: per room, the
   * latest such removal as a `leave` at its position, with the event ID `REMOVED`.
   */
  selectRemovedMembershipsOfUser(userId: string): Promise<UserMembershipRow[]>;
  /** Joined and invited member counts of each room listed. */
  selectMemberCounts(roomIds: readonly string[]): Promise<Map<string, MemberCounts>>;
  /** Per room, up to `limit` users with the membership, by user ID, `exclude` left out. */
  selectMembersSamples(
    roomIds: readonly string[],
    membership: string,
    exclude: string,
    limit: number,
  ): Promise<Map<string, string[]>>;
  /** For each state key asked for, its event as it was just before the position (if any). */
  selectStateBefore(requests: readonly StateBeforeRequest[]): Promise<Map<string, EventRow[]>>;
  /**
   * The latest event of every state key that changed in each span, by stream order; member
   * entries left out with `withoutMembers` (a lazy-loading client reads them by sender).
   */
  selectStateChanges(
    requests: readonly StateChangesRequest[],
    options?: { withoutMembers?: boolean },
  ): Promise<Map<string, EventRow[]>>;
  /**
   * State entries that changed in each span (after, before) to an event other than the one at
   * that position — state resolution's doing when a received event arrived — the latest
   * change of each entry, by the position of the change.
   */
  selectResolvedStateChanges(
    requests: readonly StateChangesRequest[],
    options?: { withoutMembers?: boolean },
  ): Promise<Map<string, EventRow[]>>;
  /** The distinct senders of each room's events in the span (after, upTo], by room. */
  selectSendersBetween(
    requests: readonly { roomId: string; after: number; upTo: number }[],
  ): Promise<Map<string, string[]>>;
  /** Each room's current state except member events, by stream order. */
  selectStateWithoutMembers(roomIds: readonly string[]): Promise<Map<string, EventRow[]>>;
  /** Users whose membership of any room listed became (or stayed) `join` in (after, upTo]. */
  selectUsersJoinedBetween(
    roomIds: readonly string[],
    after: number,
    upTo: number,
  ): Promise<string[]>;
  /** The rooms listed where anyone's membership changed in (after, upTo]. */
  selectRoomsWithMembershipChanges(
    roomIds: readonly string[],
    after: number,
    upTo: number,
  ): Promise<Set<string>>;
  /** The version of each room listed. */
  selectRoomVersions(roomIds: readonly string[]): Promise<Map<string, string>>;
  /** Transaction IDs the device sent these events (of these rooms) with. */
  selectTxnIds(
    userId: string,
    deviceId: string,
    roomIds: readonly string[],
    eventIds: readonly string[],
  ): Promise<Map<string, string>>;
}

const MEMBER = 'm.room.member';

/**
 * A state_history row (its room, key and position) left-joined to its event: the event's
 * columns are null for a row recording a removal (`REMOVED`).
 */
type StateHistoryRow = {
  [K in keyof Parameters<typeof toEventRow>[0]]: Parameters<typeof toEventRow>[0][K] | null;
} & { sh_room_id: string; type: string; state_key: string; changed_at: number | string };

export function syncStore(db: Kysely<Database>): SyncStore {
  /**
   * The latest row of each room's state keys (by the position of the change), by room and
   * stream order; a key whose latest row is a removal has no entry.
   */
  const latestStateRows = (rows: readonly StateHistoryRow[]) => {
    const latest = new Map<string, StateHistoryRow>();
    for (const row of [...rows].sort((x, y) => Number(x.changed_at) - Number(y.changed_at)))
      latest.set(`${row.sh_room_id}\u0000${row.type}\u0000${row.state_key}`, row);
    const events: EventRow[] = [];
    for (const row of latest.values()) {
      if (row.event_id === null || row.pdu === null) continue;
      events.push(toEventRow(row as Parameters<typeof toEventRow>[0]));
    }
    return groupByRoom(events.sort((a, b) => a.streamOrdering - b.streamOrdering));
  };
  /** The columns `latestStateRows` reads. */
  const stateHistoryColumns = [
    ...eventColumns,
    'sh.room_id as sh_room_id',
    'sh.type',
    'sh.state_key',
    'sh.stream_ordering as changed_at',
  ] as const;

  return {
    async selectRoomsWithEvents(after, upTo) {
      if (upTo <= after) return [];
      const rows = await db
        .selectFrom('events')
        .select('room_id')
        .distinct()
        .where('stream_ordering', '>', after)
        .where('stream_ordering', '<=', upTo)
        .execute();
      return rows.map((r) => r.room_id);
    },

    async selectMembershipsOfUser(userId, roomIds) {
      if (roomIds?.length === 0) return [];
      let query = db
        .selectFrom('room_memberships')
        .select(['room_id', 'membership', 'stream_ordering', 'event_id'])
        .where('user_id', '=', userId)
        .where('forgotten', '=', 0);
      if (roomIds) query = query.where('room_id', 'in', [...roomIds]);
      const rows = await query.execute();
      return rows.map((r) => ({
        roomId: r.room_id,
        membership: r.membership,
        streamOrdering: Number(r.stream_ordering),
        eventId: r.event_id,
      }));
    },

    async selectRemovedMembershipsOfUser(userId) {
      const rows = await db
        .selectFrom('membership_history as mh')
        .select(['mh.room_id', 'mh.stream_ordering'])
        .where('mh.user_id', '=', userId)
        .where(removedMembership)
        .where((eb) =>
          eb.not(
            eb.exists(
              eb
                .selectFrom('room_memberships as m')
                .select('m.room_id')
                .whereRef('m.room_id', '=', 'mh.room_id')
                .where('m.user_id', '=', userId),
            ),
          ),
        )
        .execute();
      const latest = new Map<string, number>();
      for (const row of rows) {
        const at = Number(row.stream_ordering);
        if ((latest.get(row.room_id) ?? -Infinity) < at) latest.set(row.room_id, at);
      }
      return [...latest].map(([roomId, streamOrdering]) => ({
        roomId,
        membership: 'leave',
        streamOrdering,
        eventId: REMOVED,
      }));
    },

    async selectMemberCounts(roomIds) {
      const counts = new Map<string, MemberCounts>();
      for (const roomId of roomIds) counts.set(roomId, { joined: 0, invited: 0 });
      if (roomIds.length === 0) return counts;
      const rows = await db
        .selectFrom('room_memberships')
        .select(['room_id', 'membership', (eb) => eb.fn.countAll<number>().as('n')])
        .where('room_id', 'in', [...roomIds])
        .where('membership', 'in', ['join', 'invite'])
        .groupBy(['room_id', 'membership'])
        .execute();
      for (const row of rows) {
        const entry = counts.get(row.room_id);
        if (!entry) continue;
        if (row.membership === 'join') entry.joined = Number(row.n);
        else entry.invited = Number(row.n);
      }
      return counts;
    },

    async selectMembersSamples(roomIds, membership, exclude, limit) {
      const samples = new Map<string, string[]>();
      if (limit < 1) return samples;
      const add = (rows: readonly { room_id: string; user_id: string }[]) => {
        for (const row of rows) {
          const list = samples.get(row.room_id) ?? [];
          list.push(row.user_id);
          samples.set(row.room_id, list);
        }
      };
      for (const part of slices(roomIds)) {
        // Each room's `limit`-th member (none: it has fewer), then the members up to it, in
        // the database's order of user IDs.
        const cutoffs = await db
          .selectFrom(
            valuesTable<{ column1: string }>(
              part.map((roomId) => [roomId]),
              ['text'],
            ),
          )
          .select((eb) => [
            'k.column1 as room_id',
            eb
              .selectFrom('room_memberships as m')
              .select('m.user_id')
              .whereRef('m.room_id', '=', 'k.column1')
              .where('m.membership', '=', membership)
              .where('m.user_id', '!=', exclude)
              .orderBy('m.user_id')
              .limit(1)
              .offset(limit - 1)
              .as('cutoff'),
          ])
          .execute();
        const few = cutoffs.filter((c) => c.cutoff === null).map((c) => c.room_id);
        const many = cutoffs.flatMap((c) => (c.cutoff === null ? [] : [[c.room_id, c.cutoff]]));
        if (few.length > 0)
          add(
            await db
              .selectFrom('room_memberships as m')
              .select(['m.room_id', 'm.user_id'])
              .where('m.room_id', 'in', few)
              .where('m.membership', '=', membership)
              .where('m.user_id', '!=', exclude)
              .orderBy('m.room_id')
              .orderBy('m.user_id')
              .execute(),
          );
        if (many.length > 0)
          add(
            await db
              .selectFrom(valuesTable<{ column1: string; column2: string }>(many, ['text', 'text']))
              .innerJoin('room_memberships as m', (join) =>
                join.onRef('m.room_id', '=', 'k.column1').onRef('m.user_id', '<=', 'k.column2'),
              )
              .select(['m.room_id', 'm.user_id'])
              .where('m.membership', '=', membership)
              .where('m.user_id', '!=', exclude)
              .orderBy('m.room_id')
              .orderBy('m.user_id')
              .execute(),
          );
      }
      return samples;
    },

    async selectStateBefore(requests) {
      type Key = { column1: string; column2: string; column3: string; column4: number };
      const keys = requests.flatMap(({ roomId, keys: pairs, position }) =>
        pairs.map(([type, stateKey]) => [roomId, type, stateKey, position] as const),
      );
      // Every earlier event of each key (a handful); the latest of each is kept here.
      const rows = await readInSlices(keys, (part) =>
        db
          .selectFrom(valuesTable<Key>(part, ['text', 'text', 'text', 'bigint']))
          .innerJoin('state_history as sh', (join) =>
            join
              .onRef('sh.room_id', '=', 'k.column1')
              .onRef('sh.type', '=', 'k.column2')
              .onRef('sh.state_key', '=', 'k.column3')
              .onRef('sh.stream_ordering', '<', 'k.column4'),
          )
          .leftJoin('events', 'events.event_id', 'sh.event_id')
          .select(stateHistoryColumns)
          .execute(),
      );
      return latestStateRows(rows);
    },

    async selectStateChanges(requests, options) {
      type Span = { column1: string; column2: number; column3: number };
      const spans = requests
        .filter((r) => r.before - r.after > 1)
        .map((r) => [r.roomId, r.after, r.before] as const);
      const rows = await readInSlices(spans, (part) =>
        db
          .selectFrom(valuesTable<Span>(part, ['text', 'bigint', 'bigint']))
          .innerJoin('state_history as sh', (join) =>
            join
              .onRef('sh.room_id', '=', 'k.column1')
              .onRef('sh.stream_ordering', '>', 'k.column2')
              .onRef('sh.stream_ordering', '<', 'k.column3'),
          )
          .leftJoin('events', 'events.event_id', 'sh.event_id')
          .$if(options?.withoutMembers === true, (q) => q.where('sh.type', '!=', MEMBER))
          .select(stateHistoryColumns)
          .execute(),
      );
      return latestStateRows(rows);
    },

    async selectResolvedStateChanges(requests, options) {
      type Span = { column1: string; column2: number; column3: number };
      const spans = requests
        .filter((r) => r.before - r.after > 1)
        .map((r) => [r.roomId, r.after, r.before] as const);
      const rows = await readInSlices(spans, (part) =>
        db
          .selectFrom(valuesTable<Span>(part, ['text', 'bigint', 'bigint']))
          .innerJoin('state_history as sh', (join) =>
            join
              .onRef('sh.room_id', '=', 'k.column1')
              .onRef('sh.stream_ordering', '>', 'k.column2')
              .onRef('sh.stream_ordering', '<', 'k.column3'),
          )
          .innerJoin('events', 'events.event_id', 'sh.event_id')
          .whereRef('events.stream_ordering', '!=', 'sh.stream_ordering')
          .$if(options?.withoutMembers === true, (q) => q.where('sh.type', '!=', MEMBER))
          .select([...eventColumns, 'sh.type', 'sh.state_key', 'sh.stream_ordering as changed_at'])
          .execute(),
      );
      const latest = new Map<string, { at: number; row: EventRow }>();
      for (const row of rows) {
        const key = `${row.room_id}\u0000${row.type}\u0000${row.state_key}`;
        const at = Number(row.changed_at);
        if ((latest.get(key)?.at ?? -Infinity) < at) latest.set(key, { at, row: toEventRow(row) });
      }
      return groupByRoom(
        [...latest.values()].sort((x, y) => x.at - y.at).map((entry) => entry.row),
      );
    },

    async selectSendersBetween(requests) {
      type Span = { column1: string; column2: number; column3: number };
      const spans = requests
        .filter((r) => r.upTo > r.after)
        .map((r) => [r.roomId, r.after, r.upTo] as const);
      const rows = await readInSlices(spans, (part) =>
        db
          .selectFrom(valuesTable<Span>(part, ['text', 'bigint', 'bigint']))
          .innerJoin('events', (join) =>
            join
              .onRef('events.room_id', '=', 'k.column1')
              .onRef('events.stream_ordering', '>', 'k.column2')
              .onRef('events.stream_ordering', '<=', 'k.column3'),
          )
          .select(['events.room_id', 'events.sender'])
          .distinct()
          .execute(),
      );
      const out = new Map<string, string[]>();
      for (const row of rows) {
        const list = out.get(row.room_id) ?? [];
        list.push(row.sender);
        out.set(row.room_id, list);
      }
      return out;
    },

    async selectStateWithoutMembers(roomIds) {
      if (roomIds.length === 0) return new Map();
      // Two ranges of the primary key either side of the member events, which in a big room
      // are nearly all of its state.
      const below = db
        .selectFrom('current_state')
        .innerJoin('events', 'events.event_id', 'current_state.event_id')
        .select(eventColumns)
        .where('current_state.room_id', 'in', [...roomIds]);
      const [lower, upper] = await Promise.all([
        below.where('current_state.type', '<', MEMBER).execute(),
        below.where('current_state.type', '>', MEMBER).execute(),
      ]);
      return groupByRoom(
        [...lower, ...upper].map(toEventRow).sort((a, b) => a.streamOrdering - b.streamOrdering),
      );
    },

    async selectUsersJoinedBetween(roomIds, after, upTo) {
      if (upTo <= after) return [];
      const rows = await readInSlices(roomIds, (part) =>
        db
          .selectFrom('membership_history')
          .select('user_id')
          .distinct()
          .where('room_id', 'in', part)
          .where('stream_ordering', '>', after)
          .where('stream_ordering', '<=', upTo)
          .where('membership', '=', 'join')
          .execute(),
      );
      return [...new Set(rows.map((r) => r.user_id))];
    },

    async selectRoomsWithMembershipChanges(roomIds, after, upTo) {
      if (upTo <= after) return new Set();
      const rows = await readInSlices(roomIds, (part) =>
        db
          .selectFrom('membership_history')
          .select('room_id')
          .distinct()
          .where('room_id', 'in', part)
          .where('stream_ordering', '>', after)
          .where('stream_ordering', '<=', upTo)
          .execute(),
      );
      return new Set(rows.map((r) => r.room_id));
    },

    async selectRoomVersions(roomIds) {
      const versions = new Map<string, string>();
      if (roomIds.length === 0) return versions;
      const rows = await db
        .selectFrom('rooms')
        .select(['room_id', 'room_version'])
        .where('room_id', 'in', [...roomIds])
        .execute();
      for (const row of rows) versions.set(row.room_id, row.room_version);
      return versions;
    },

    async selectTxnIds(userId, deviceId, roomIds, eventIds) {
      const map = new Map<string, string>();
      if (eventIds.length === 0 || roomIds.length === 0) return map;
      const rows = await db
        .selectFrom('event_txns')
        .select(['txn_id', 'event_id'])
        .where('user_id', '=', userId)
        .where('device_id', '=', deviceId)
        .where('room_id', 'in', [...roomIds])
        .where('event_id', 'in', [...eventIds])
        .execute();
      for (const row of rows) map.set(row.event_id, row.txn_id);
      return map;
    },
  };
}
