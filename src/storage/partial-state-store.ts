/**
 * Rooms joined with partial state (migration 0028), and the one write their completion
 * needs on the state groups: the membership events fetched afterwards added to every whole
 * snapshot of the room that lacks their key (deltas inherit them from their base).
 */
import type { Kysely } from 'kysely';
import { stateKeyOf, type StateKey } from '../core/pdu.js';
import { releaseRowLease, updateRowLease } from './row-lease.js';
import type { Database } from './schema.js';
import type { StateEntry } from './room-dag-store.js';
import { slices } from './values-table.js';

export interface PartialStateRoomRow {
  roomId: string;
  joinEventId: string;
  resident: string;
  servers: string[];
  joinedTs: number;
  attempts: number;
}

export interface PartialStateStore {
  insertPartialRoom(row: Omit<PartialStateRoomRow, 'attempts'>): Promise<void>;
  selectPartialRoom(roomId: string): Promise<PartialStateRoomRow | undefined>;
  selectPartialRooms(): Promise<PartialStateRoomRow[]>;
  /** Whether any of these rooms has partial state (one indexed read). */
  selectAnyPartial(roomIds: readonly string[]): Promise<string[]>;
  /** The partial-state rooms `userId` is joined to. */
  selectPartialRoomsOfUser(userId: string): Promise<string[]>;
  bumpAttempts(roomId: string): Promise<void>;
  /**
   * Takes (or renews) the lease on fetching the room's full state for `owner` until
   * `untilTs`: false when another process holds it and it has not run out.
   */
  updateLease(roomId: string, owner: string, now: number, untilTs: number): Promise<boolean>;
  releaseLease(roomId: string, owner: string): Promise<void>;
  deletePartialRoom(roomId: string): Promise<void>;
  /** The room's state groups kept whole (no `prev_group`). */
  selectSnapshotGroups(roomId: string): Promise<number[]>;
  /** Adds `entries` to a group, skipping (type, state_key) pairs it already names. */
  insertMissingGroupEntries(groupId: number, entries: readonly StateEntry[]): Promise<number>;
  /** The room's current state as keys and event IDs only (no event is read). */
  selectCurrentStateIds(roomId: string): Promise<Map<StateKey, string>>;
  /**
   * State entries (and for members their membership) recorded in the room's history at
   * `position` without changing current state: what the full state showed at our join, so
   * that state and members as of a later point (`/members?at=`) hold them. Entries the
   * history already has at that position are left as they are.
   */
  insertStateHistoryAt(
    roomId: string,
    position: number,
    entries: readonly PastStateEntry[],
  ): Promise<void>;
  /** Every room partial now (the table is small: rooms being fetched). */
  selectPartialRoomIds(): Promise<string[]>;
  /** Records that the room became complete at `position` (our join was at `joinPosition`). */
  insertCompletion(roomId: string, position: number, joinPosition: number): Promise<void>;
  /** The rooms listed that became complete in (after, upTo], by room (the latest completion). */
  selectCompletionsBetween(
    roomIds: readonly string[],
    after: number,
    upTo: number,
  ): Promise<Map<string, PartialStateCompletion>>;
}

/** A state entry of the room's past; `membership` for a member event. */
export interface PastStateEntry {
  type: string;
  stateKey: string;
  eventId: string;
  membership?: string;
}

/** A room's completion: where, and where our join was. */
export interface PartialStateCompletion {
  position: number;
  joinPosition: number;
}

const toRow = (r: {
  room_id: string;
  join_event_id: string;
  resident: string;
  servers_json: string;
  joined_ts: number | string;
  attempts: number;
}): PartialStateRoomRow => ({
  roomId: r.room_id,
  joinEventId: r.join_event_id,
  resident: r.resident,
  servers: JSON.parse(r.servers_json) as string[],
  joinedTs: Number(r.joined_ts),
  attempts: Number(r.attempts),
});

export function partialStateStore(db: Kysely<Database>): PartialStateStore {
  return {
    async insertPartialRoom(row) {
      await db
        .insertInto('partial_state_rooms')
        .values({
          room_id: row.roomId,
          join_event_id: row.joinEventId,
          resident: row.resident,
          servers_json: JSON.stringify(row.servers),
          joined_ts: row.joinedTs,
        })
        .onConflict((oc) => oc.column('room_id').doNothing())
        .execute();
    },

    async selectPartialRoom(roomId) {
      const row = await db
        .selectFrom('partial_state_rooms')
        .selectAll()
        .where('room_id', '=', roomId)
        .executeTakeFirst();
      return row ? toRow(row) : undefined;
    },

    async selectPartialRooms() {
      const rows = await db
        .selectFrom('partial_state_rooms')
        .selectAll()
        .orderBy('joined_ts')
        .execute();
      return rows.map(toRow);
    },

    async selectAnyPartial(roomIds) {
      const out: string[] = [];
      for (const part of slices(roomIds)) {
        const rows = await db
          .selectFrom('partial_state_rooms')
          .select('room_id')
          .where('room_id', 'in', part)
          .execute();
        for (const r of rows) out.push(r.room_id);
      }
      return out;
    },

    async selectPartialRoomsOfUser(userId) {
      const rows = await db
        .selectFrom('partial_state_rooms as p')
        .innerJoin('room_memberships as m', 'm.room_id', 'p.room_id')
        .select('p.room_id')
        .where('m.user_id', '=', userId)
        .where('m.membership', '=', 'join')
        .execute();
      return rows.map((r) => r.room_id);
    },

    async bumpAttempts(roomId) {
      await db
        .updateTable('partial_state_rooms')
        .set((eb) => ({ attempts: eb('attempts', '+', 1) }))
        .where('room_id', '=', roomId)
        .execute();
    },

    async updateLease(roomId, owner, now, untilTs) {
      return updateRowLease(db, 'partial_state_rooms', roomId, owner, now, untilTs);
    },

    async releaseLease(roomId, owner) {
      await releaseRowLease(db, 'partial_state_rooms', roomId, owner);
    },

    async deletePartialRoom(roomId) {
      await db.deleteFrom('partial_state_rooms').where('room_id', '=', roomId).execute();
    },

    async selectSnapshotGroups(roomId) {
      const rows = await db
        .selectFrom('state_groups')
        .select('group_id')
        .where('room_id', '=', roomId)
        .where('prev_group', 'is', null)
        .execute();
      return rows.map((r) => Number(r.group_id));
    },

    async insertMissingGroupEntries(groupId, entries) {
      const present = await db
        .selectFrom('state_group_entries')
        .select(['type', 'state_key'])
        .where('group_id', '=', groupId)
        .execute();
      const named = new Set(present.map((r) => `${r.type}\u0000${r.state_key}`));
      const missing = entries.filter(([type, key]) => !named.has(`${type}\u0000${key}`));
      for (const part of slices(missing)) {
        await db
          .insertInto('state_group_entries')
          .values(
            part.map(([type, stateKey, eventId]) => ({
              group_id: groupId,
              type,
              state_key: stateKey,
              event_id: eventId,
            })),
          )
          .execute();
      }
      return missing.length;
    },

    async selectCurrentStateIds(roomId) {
      const rows = await db
        .selectFrom('current_state')
        .select(['type', 'state_key', 'event_id'])
        .where('room_id', '=', roomId)
        .execute();
      return new Map(rows.map((r) => [stateKeyOf(r.type, r.state_key), r.event_id]));
    },

    async insertStateHistoryAt(roomId, position, entries) {
      for (const part of slices(entries)) {
        await db
          .insertInto('state_history')
          .values(
            part.map((e) => ({
              room_id: roomId,
              type: e.type,
              state_key: e.stateKey,
              stream_ordering: position,
              event_id: e.eventId,
            })),
          )
          .onConflict((oc) =>
            oc.columns(['room_id', 'type', 'state_key', 'stream_ordering']).doNothing(),
          )
          .execute();
        const members = part.filter((e) => e.membership !== undefined);
        if (members.length === 0) continue;
        await db
          .insertInto('membership_history')
          .values(
            members.map((e) => ({
              room_id: roomId,
              user_id: e.stateKey,
              stream_ordering: position,
              membership: e.membership ?? 'leave',
              event_id: e.eventId,
            })),
          )
          .onConflict((oc) => oc.columns(['room_id', 'user_id', 'stream_ordering']).doNothing())
          .execute();
      }
    },

    async selectPartialRoomIds() {
      const rows = await db.selectFrom('partial_state_rooms').select('room_id').execute();
      return rows.map((r) => r.room_id);
    },

    async insertCompletion(roomId, position, joinPosition) {
      await db
        .insertInto('partial_state_completions')
        .values({ room_id: roomId, stream_ordering: position, join_stream_ordering: joinPosition })
        .onConflict((oc) => oc.columns(['room_id', 'stream_ordering']).doNothing())
        .execute();
    },

    async selectCompletionsBetween(roomIds, after, upTo) {
      const out = new Map<string, PartialStateCompletion>();
      if (upTo <= after || roomIds.length === 0) return out;
      // By position (completions are rare): then kept for the rooms asked about.
      const rows = await db
        .selectFrom('partial_state_completions')
        .select(['room_id', 'stream_ordering', 'join_stream_ordering'])
        .where('stream_ordering', '>', after)
        .where('stream_ordering', '<=', upTo)
        .orderBy('stream_ordering')
        .execute();
      const wanted = new Set(roomIds);
      for (const row of rows)
        if (wanted.has(row.room_id))
          out.set(row.room_id, {
            position: Number(row.stream_ordering),
            joinPosition: Number(row.join_stream_ordering),
          });
      return out;
    },
  };
}
