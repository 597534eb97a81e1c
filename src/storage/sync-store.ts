/**
 * The reads /sync is made of: which rooms changed in a span of the stream, the syncing user's
 * memberships, state before a position and state changes between two, member counts and
 * heroes, and the syncing device's transaction IDs. Every read is an index range scan.
 */
import type { Kysely } from 'kysely';
import type { Database } from './schema.js';
import { eventColumns, toEventRow, type EventRow, type StateKeys } from './room-store.js';
import { groupByRoom, selectEach } from './select-each.js';

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
  /** The latest event of every state key that changed in each span, by stream order. */
  selectStateChanges(requests: readonly StateChangesRequest[]): Promise<Map<string, EventRow[]>>;
  /** Each room's current state except member events, by stream order. */
  selectStateWithoutMembers(roomIds: readonly string[]): Promise<Map<string, EventRow[]>>;
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

export function syncStore(db: Kysely<Database>): SyncStore {
  /** The latest row of each room's state keys (rows come oldest first), by room and stream order. */
  const latestStateRows = (
    rows: ReadonlyArray<Parameters<typeof toEventRow>[0] & { type: string; state_key: string }>,
  ) => {
    const latest = new Map<string, EventRow>();
    for (const row of rows)
      latest.set(`${row.room_id}\u0000${row.type}\u0000${row.state_key}`, toEventRow(row));
    return groupByRoom([...latest.values()].sort((a, b) => a.streamOrdering - b.streamOrdering));
  };

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
      const rows = await selectEach(db, roomIds, (roomId) =>
        db
          .selectFrom('room_memberships')
          .select(['room_id', 'user_id'])
          .where('room_id', '=', roomId)
          .where('membership', '=', membership)
          .where('user_id', '!=', exclude)
          .orderBy('user_id')
          .limit(limit),
      );
      const samples = new Map<string, string[]>();
      for (const row of rows) {
        const list = samples.get(row.room_id) ?? [];
        list.push(row.user_id);
        samples.set(row.room_id, list);
      }
      for (const list of samples.values()) list.sort();
      return samples;
    },

    async selectStateBefore(requests) {
      const asked = requests.filter((r) => r.keys.length > 0);
      // One range per listed type and state key (the primary key), the exact pairs and the
      // latest of each kept here.
      const wanted = new Set(
        asked.flatMap(({ roomId, keys }) =>
          keys.map(([type, stateKey]) => `${roomId}\u0000${type}\u0000${stateKey}`),
        ),
      );
      const rows = await selectEach(db, asked, ({ roomId, keys, position }) =>
        db
          .selectFrom('state_history as sh')
          .innerJoin('events', 'events.event_id', 'sh.event_id')
          .select([...eventColumns, 'sh.type', 'sh.state_key'])
          .where('sh.room_id', '=', roomId)
          .where('sh.type', 'in', [...new Set(keys.map(([type]) => type))])
          .where('sh.state_key', 'in', [...new Set(keys.map(([, stateKey]) => stateKey))])
          .where('sh.stream_ordering', '<', position),
      );
      return latestStateRows(
        rows
          .filter((row) => wanted.has(`${row.room_id}\u0000${row.type}\u0000${row.state_key}`))
          .sort((x, y) => Number(x.stream_ordering) - Number(y.stream_ordering)),
      );
    },

    async selectStateChanges(requests) {
      const asked = requests.filter((r) => r.before - r.after > 1);
      const rows = await selectEach(db, asked, ({ roomId, after, before }) =>
        db
          .selectFrom('state_history as sh')
          .innerJoin('events', 'events.event_id', 'sh.event_id')
          .select([...eventColumns, 'sh.type', 'sh.state_key'])
          .where('sh.room_id', '=', roomId)
          .where('sh.stream_ordering', '>', after)
          .where('sh.stream_ordering', '<', before),
      );
      return latestStateRows(
        rows.sort((x, y) => Number(x.stream_ordering) - Number(y.stream_ordering)),
      );
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
