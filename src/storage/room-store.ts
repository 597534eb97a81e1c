/**
 * Rooms and their events: the event log, forward extremities, current state and its
 * history, and current membership with its history. `persistEvent` writes an event and every
 * row derived from it; callers run it inside one transaction with the room locked.
 */
import { sql, type Kysely } from 'kysely';
import type { Pdu } from '../core/pdu.js';
import type { Database } from './schema.js';
import type { DialectName } from './database.js';
import {
  applyMembershipChange,
  applyMembershipChanges,
  type JoinedChange,
} from './mutual-rooms-store.js';
import { applyDirectoryMemberships } from './user-directory-store.js';
import { groupByRoom, readInSlices, slices, valuesTable } from './values-table.js';
import { prepareQuery } from './prepared-query.js';
import { selectStreamPosition, takeNextPosition } from './stream-store.js';

export interface RoomRow {
  roomId: string;
  roomVersion: string;
  creator: string;
  isPublic: boolean;
}

export interface EventRow {
  eventId: string;
  roomId: string;
  streamOrdering: number;
  pdu: Pdu;
  redactedBy: string | null;
}

/** Current state entries asked for by (type, state key). */
export type StateKeys = ReadonlyArray<readonly [string, string]>;

/** A span of a room's events in stream order: after `after`, at most `upTo`. */
export interface RoomEventRange {
  after: number;
  upTo: number;
  direction: 'forward' | 'backward';
  limit: number;
}

export interface MembershipHistoryEntry {
  streamOrdering: number;
  membership: string;
}

export interface MembershipChange {
  userId: string;
  membership: string;
  displayname: string | null;
  avatarUrl: string | null;
}

export interface EventToPersist {
  eventId: string;
  roomId: string;
  pdu: Pdu;
  /** The canonical JSON of the PDU, as stored. */
  json: string;
  /** The event in the client format (ClientEvent), serialised. */
  clientJson: string;
  membership?: MembershipChange;
}

/** A current-state entry set to an event (see `applyStateChanges`). */
export interface StateChange {
  type: string;
  stateKey: string;
  eventId: string;
  sender: string;
  /** The event in the client format, serialised (null: made when read). */
  clientJson: string | null;
  membership?: MembershipChange;
}

/**
 * A current-state entry that state resolution removed altogether (see `removeStateEntries`):
 * the event that held it, and for a member entry the user whose membership it was.
 */
export interface StateRemoval {
  type: string;
  stateKey: string;
  /** The event that held the entry until now. */
  eventId: string;
  /** Set for an `m.room.member` entry: that user no longer has a membership of the room. */
  userId?: string;
}

export interface RoomStore {
  /** Serialises writers of one room until the transaction ends (no-op on SQLite: one writer). */
  lockRoom(roomId: string): Promise<void>;
  /** Hands out the next global stream position; hold it only for the final writes. */
  nextStreamPosition(): Promise<number>;
  selectCurrentStreamPosition(): Promise<number>;
  /** Inserts the room; false (and nothing written) when its ID is taken. */
  insertRoom(room: RoomRow, createdTs: number): Promise<boolean>;
  selectRoom(roomId: string): Promise<RoomRow | undefined>;
  /** The events of the current state entries asked for (missing ones are left out). */
  selectStateEvents(roomId: string, keys: StateKeys): Promise<EventRow[]>;
  /** `selectStateEvents` for several rooms at once (one statement per 500 keys), by room. */
  selectStateEventsOfRooms(
    requests: ReadonlyArray<{ roomId: string; keys: StateKeys }>,
  ): Promise<Map<string, EventRow[]>>;
  /** The room's current state, by stream order. */
  selectAllStateEvents(roomId: string): Promise<EventRow[]>;
  /** `selectAllStateEvents` for several rooms in one statement, by room. */
  selectAllStateEventsOfRooms(roomIds: readonly string[]): Promise<Map<string, EventRow[]>>;
  /** The room's state as it was just after stream position `position`. */
  selectStateEventsAt(roomId: string, position: number): Promise<EventRow[]>;
  selectExtremities(roomId: string): Promise<{ eventId: string; depth: number }[]>;
  selectEvent(eventId: string): Promise<EventRow | undefined>;
  /**
   * Inserts a timeline event and makes it a forward extremity in place of its prev events;
   * a state event also becomes current state (with its history and membership rows) unless
   * `applyState` is false (a received event whose state the caller resolves and applies with
   * `applyStateChanges`). With `extremity` false the extremities are left alone (an event
   * of the room's past entering the timeline).
   */
  persistEvent(
    event: EventToPersist,
    streamOrdering: number,
    options?: { applyState?: boolean; extremity?: boolean },
  ): Promise<void>;
  /**
   * Timeline events of the room's past, in multi-row statements: only their `events` rows
   * (as `persistEvent` with `applyState` and `extremity` false).
   */
  insertEvents(
    events: ReadonlyArray<{ event: EventToPersist; streamOrdering: number }>,
  ): Promise<void>;
  /**
   * Current-state entries that changed at `streamOrdering` (a new event, or what state
   * resolution decided): current_state, state_history, and for member events
   * room_memberships, membership_history and the mutual-rooms pair index.
   */
  applyStateChanges(
    roomId: string,
    changes: readonly StateChange[],
    streamOrdering: number,
  ): Promise<void>;
  /**
   * Current-state entries that state resolution removed at `streamOrdering`: the
   * current_state rows go; for a member entry the user's room_memberships row goes too (no
   * membership at all), the mutual-rooms pair index drops the room if they were joined, and
   * membership_history records `leave` (naming the event that was removed). state_history,
   * which cannot name "no event", keeps its last row for the entry.
   */
  removeStateEntries(
    roomId: string,
    removals: readonly StateRemoval[],
    streamOrdering: number,
  ): Promise<void>;
  /** Events of a room in stream order: after `after` and at most `upTo`, ascending or descending. */
  selectRoomEvents(roomId: string, range: RoomEventRange): Promise<EventRow[]>;
  /**
   * The latest `limit` events of each room's span (after, upTo], newest first, by room (one
   * request per room): two statements per 500 rooms (where each span's cut-off lies, then the
   * spans).
   */
  selectLatestEventsOfRooms(
    requests: ReadonlyArray<{ roomId: string; after: number; upTo: number }>,
    limit: number,
  ): Promise<Map<string, EventRow[]>>;
  /** One user's membership changes in a room, oldest first. */
  selectMembershipHistory(roomId: string, userId: string): Promise<MembershipHistoryEntry[]>;
  /** `selectMembershipHistory` of one user in several rooms, by room. */
  selectMembershipHistories(
    roomIds: readonly string[],
    userId: string,
  ): Promise<Map<string, MembershipHistoryEntry[]>>;
  /** The successive events of one state entry, oldest first. */
  selectStateHistory(roomId: string, type: string, stateKey: string): Promise<EventRow[]>;
  /** `selectStateHistory` of one state entry in several rooms, by room. */
  selectStateHistories(
    roomIds: readonly string[],
    type: string,
    stateKey: string,
  ): Promise<Map<string, EventRow[]>>;
  /** Marks `eventId` (in `roomId`) as redacted by `redactionId`. */
  updateRedactedBy(roomId: string, eventId: string, redactionId: string): Promise<void>;
  selectMembership(
    roomId: string,
    userId: string,
  ): Promise<{ membership: string; streamOrdering: number; forgotten: boolean } | undefined>;
  updateForgotten(roomId: string, userId: string): Promise<void>;
  selectAliasRoom(alias: string): Promise<string | undefined>;
  insertAlias(alias: string, roomId: string, creator: string): Promise<void>;
  updateRoomPublic(roomId: string, isPublic: boolean): Promise<void>;
  /** The rooms where the user's current membership is `membership`, by room ID. */
  selectRoomsOfUser(userId: string, membership: string): Promise<string[]>;
  /** The users whose current membership of the room is `membership`, by user ID. */
  selectMembersOfRoom(roomId: string, membership: string): Promise<string[]>;
  selectTxnEvent(
    userId: string,
    deviceId: string,
    roomId: string,
    txnId: string,
  ): Promise<string | undefined>;
  insertTxnEvent(
    userId: string,
    deviceId: string,
    roomId: string,
    txnId: string,
    eventId: string,
    ts: number,
  ): Promise<void>;
}

/** An `events` row as the stores hand it out. */
export const toEventRow = (row: {
  event_id: string;
  room_id: string;
  stream_ordering: number;
  pdu: string;
  redacted_by: string | null;
}): EventRow => ({
  eventId: row.event_id,
  roomId: row.room_id,
  streamOrdering: Number(row.stream_ordering),
  pdu: JSON.parse(row.pdu) as Pdu,
  redactedBy: row.redacted_by,
});

/** The `events` columns `toEventRow` reads. */
export const eventColumns = [
  'events.event_id',
  'events.room_id',
  'events.stream_ordering',
  'events.pdu',
  'events.redacted_by',
] as const;

export function roomStore(db: Kysely<Database>, dialect: DialectName): RoomStore {
  const nextPosition = (stream: string) => takeNextPosition(db, stream);
  // Asked by nearly every room request (access checks), so compiled and prepared once.
  const membershipRow = prepareQuery(db, 2, (roomId: string, userId: string) =>
    db
      .selectFrom('room_memberships')
      .select(['membership', 'stream_ordering', 'forgotten'])
      .where('room_id', '=', roomId)
      .where('user_id', '=', userId),
  );

  /**
   * Current-state entries changed at `streamOrdering`, with their history and membership
   * rows: multi-row statements of `VALUES_BATCH` rows (at most 12 columns a row, far below
   * SQLite's 32,766 and PostgreSQL's 65,535 bound parameters), so a batch of thousands of
   * entries (a partial-state room's completion) costs a few statements per 500 entries.
   * Where one entry is changed twice, the last change wins, as applied one after another.
   */
  async function applyChanges(
    roomId: string,
    changes: readonly StateChange[],
    streamOrdering: number,
  ): Promise<void> {
    const byKey = new Map<string, StateChange>();
    for (const change of changes) {
      const key = `${change.type}\u0000${change.stateKey}`;
      byKey.delete(key);
      byKey.set(key, change);
    }
    const list = [...byKey.values()];
    for (const part of slices(list)) {
      const rows = part.map((change) => ({
        room_id: roomId,
        type: change.type,
        state_key: change.stateKey,
        event_id: change.eventId,
        stream_ordering: streamOrdering,
      }));
      await db
        .insertInto('current_state')
        .values(rows)
        .onConflict((oc) =>
          oc.columns(['room_id', 'type', 'state_key']).doUpdateSet((eb) => ({
            event_id: eb.ref('excluded.event_id'),
            stream_ordering: eb.ref('excluded.stream_ordering'),
          })),
        )
        .execute();
      await db
        .insertInto('state_history')
        .values(rows)
        .onConflict((oc) =>
          oc
            .columns(['room_id', 'type', 'state_key', 'stream_ordering'])
            .doUpdateSet((eb) => ({ event_id: eb.ref('excluded.event_id') })),
        )
        .execute();
    }
    const members = list.filter(
      (c): c is StateChange & { membership: MembershipChange } => c.membership !== undefined,
    );
    if (members.length === 0) return;
    const joinedChanges: JoinedChange[] = [];
    for (const part of slices(members)) {
      const previous = await db
        .selectFrom('room_memberships')
        .select(['user_id', 'membership'])
        .where('room_id', '=', roomId)
        .where(
          'user_id',
          'in',
          part.map((c) => c.membership.userId),
        )
        .execute();
      const was = new Map(previous.map((r) => [r.user_id, r.membership]));
      for (const { membership } of part)
        joinedChanges.push({
          userId: membership.userId,
          wasJoined: was.get(membership.userId) === 'join',
          isJoined: membership.membership === 'join',
        });
      await db
        .insertInto('room_memberships')
        .values(
          part.map((change) => ({
            room_id: roomId,
            user_id: change.membership.userId,
            membership: change.membership.membership,
            event_id: change.eventId,
            stream_ordering: streamOrdering,
            displayname: change.membership.displayname,
            avatar_url: change.membership.avatarUrl,
            forgotten: 0,
            client_json: change.clientJson,
            sender: change.sender,
          })),
        )
        .onConflict((oc) =>
          oc.columns(['room_id', 'user_id']).doUpdateSet((eb) => ({
            membership: eb.ref('excluded.membership'),
            event_id: eb.ref('excluded.event_id'),
            stream_ordering: eb.ref('excluded.stream_ordering'),
            displayname: eb.ref('excluded.displayname'),
            avatar_url: eb.ref('excluded.avatar_url'),
            forgotten: 0,
            client_json: eb.ref('excluded.client_json'),
            sender: eb.ref('excluded.sender'),
          })),
        )
        .execute();
      await db
        .insertInto('membership_history')
        .values(
          part.map((change) => ({
            room_id: roomId,
            user_id: change.membership.userId,
            stream_ordering: streamOrdering,
            membership: change.membership.membership,
            event_id: change.eventId,
          })),
        )
        .onConflict((oc) =>
          oc.columns(['room_id', 'user_id', 'stream_ordering']).doUpdateSet((eb) => ({
            membership: eb.ref('excluded.membership'),
            event_id: eb.ref('excluded.event_id'),
          })),
        )
        .execute();
    }
    await applyMembershipChanges(db, dialect, roomId, joinedChanges);
    await applyDirectoryMemberships(
      db,
      roomId,
      joinedChanges.filter((c) => c.wasJoined !== c.isJoined).map((c) => c.userId),
    );
  }
  const store: RoomStore = {
    async lockRoom(roomId) {
      if (dialect === 'postgres')
        await sql`SELECT pg_advisory_xact_lock(hashtext(${roomId}))`.execute(db);
    },

    nextStreamPosition: () => nextPosition('events'),

    selectCurrentStreamPosition: () => selectStreamPosition(db, 'events'),

    async insertRoom(room, createdTs) {
      const nid = await nextPosition('rooms');
      const result = await db
        .insertInto('rooms')
        .values({
          room_id: room.roomId,
          room_version: room.roomVersion,
          creator: room.creator,
          is_public: room.isPublic ? 1 : 0,
          created_ts: createdTs,
          room_nid: nid,
        })
        .onConflict((oc) => oc.column('room_id').doNothing())
        .executeTakeFirst();
      return Number(result.numInsertedOrUpdatedRows ?? 0) > 0;
    },

    async selectRoom(roomId) {
      const row = await db
        .selectFrom('rooms')
        .selectAll()
        .where('room_id', '=', roomId)
        .executeTakeFirst();
      return row
        ? {
            roomId: row.room_id,
            roomVersion: row.room_version,
            creator: row.creator,
            isPublic: Number(row.is_public) === 1,
          }
        : undefined;
    },

    async selectStateEvents(roomId, keys) {
      if (keys.length === 0) return [];
      // `type IN (…) AND state_key IN (…)` is a range of index lookups on both databases (an
      // OR of pairs made SQLite read the room's whole state); the exact pairs are kept here.
      const wanted = new Set(keys.map(([type, stateKey]) => `${type}\u0000${stateKey}`));
      const rows = await db
        .selectFrom('current_state')
        .innerJoin('events', 'events.event_id', 'current_state.event_id')
        .select([...eventColumns, 'current_state.type', 'current_state.state_key'])
        .where('current_state.room_id', '=', roomId)
        .where('current_state.type', 'in', [...new Set(keys.map(([type]) => type))])
        .where('current_state.state_key', 'in', [...new Set(keys.map(([, stateKey]) => stateKey))])
        .execute();
      return rows.filter((row) => wanted.has(`${row.type}\u0000${row.state_key}`)).map(toEventRow);
    },

    async selectStateEventsOfRooms(requests) {
      // Each key once: a key listed twice would be joined (and answered) twice.
      const unique = new Map<string, readonly [string, string, string]>();
      for (const { roomId, keys: pairs } of requests)
        for (const [type, stateKey] of pairs)
          unique.set(`${roomId}\u0000${type}\u0000${stateKey}`, [roomId, type, stateKey]);
      const keys = [...unique.values()];
      const rows = await readInSlices(keys, (part) =>
        db
          .selectFrom(
            valuesTable<{ column1: string; column2: string; column3: string }>(part, [
              'text',
              'text',
              'text',
            ]),
          )
          .innerJoin('current_state', (join) =>
            join
              .onRef('current_state.room_id', '=', 'k.column1')
              .onRef('current_state.type', '=', 'k.column2')
              .onRef('current_state.state_key', '=', 'k.column3'),
          )
          .innerJoin('events', 'events.event_id', 'current_state.event_id')
          .select(eventColumns)
          .execute(),
      );
      return groupByRoom(rows.map(toEventRow));
    },

    async selectAllStateEvents(roomId) {
      return (await store.selectAllStateEventsOfRooms([roomId])).get(roomId) ?? [];
    },

    async selectAllStateEventsOfRooms(roomIds) {
      if (roomIds.length === 0) return new Map();
      const rows = await db
        .selectFrom('current_state')
        .innerJoin('events', 'events.event_id', 'current_state.event_id')
        .select(eventColumns)
        .where('current_state.room_id', 'in', [...roomIds])
        .orderBy('events.stream_ordering')
        .execute();
      return groupByRoom(rows.map(toEventRow));
    },

    async selectStateEventsAt(roomId, position) {
      const rows = await db
        .selectFrom('state_history as sh')
        .innerJoin('events', 'events.event_id', 'sh.event_id')
        .select(eventColumns)
        .where('sh.room_id', '=', roomId)
        .where('sh.stream_ordering', '=', (eb) =>
          eb
            .selectFrom('state_history as later')
            .select((inner) => inner.fn.max('later.stream_ordering').as('latest'))
            .whereRef('later.room_id', '=', 'sh.room_id')
            .whereRef('later.type', '=', 'sh.type')
            .whereRef('later.state_key', '=', 'sh.state_key')
            .where('later.stream_ordering', '<=', position),
        )
        .orderBy('events.stream_ordering')
        .execute();
      return rows.map(toEventRow);
    },

    async selectExtremities(roomId) {
      const rows = await db
        .selectFrom('room_extremities')
        .innerJoin('events', 'events.event_id', 'room_extremities.event_id')
        .select(['events.event_id', 'events.depth'])
        .where('room_extremities.room_id', '=', roomId)
        .execute();
      return rows.map((r) => ({ eventId: r.event_id, depth: Number(r.depth) }));
    },

    async selectEvent(eventId) {
      const row = await db
        .selectFrom('events')
        .select(eventColumns)
        .where('event_id', '=', eventId)
        .executeTakeFirst();
      return row ? toEventRow(row) : undefined;
    },

    async insertEvents(events) {
      for (const part of slices(events)) {
        await db
          .insertInto('events')
          .values(
            part.map(({ event, streamOrdering }) => ({
              stream_ordering: streamOrdering,
              event_id: event.eventId,
              room_id: event.roomId,
              type: event.pdu.type,
              state_key: event.pdu.state_key ?? null,
              sender: event.pdu.sender,
              origin_server_ts: event.pdu.origin_server_ts,
              depth: event.pdu.depth,
              pdu: event.json,
              redacted_by: null,
              client_json: event.clientJson,
            })),
          )
          .execute();
      }
    },

    async persistEvent(event, streamOrdering, options = {}) {
      const { pdu } = event;
      await store.insertEvents([{ event, streamOrdering }]);
      if (options.extremity === false) return;
      if (pdu.prev_events.length > 0) {
        await db
          .deleteFrom('room_extremities')
          .where('room_id', '=', event.roomId)
          .where('event_id', 'in', pdu.prev_events)
          .execute();
      }
      await db
        .insertInto('room_extremities')
        .values({ room_id: event.roomId, event_id: event.eventId })
        .execute();
      if (pdu.state_key !== undefined && options.applyState !== false) {
        await store.applyStateChanges(
          event.roomId,
          [
            {
              type: pdu.type,
              stateKey: pdu.state_key,
              eventId: event.eventId,
              sender: pdu.sender,
              clientJson: event.clientJson,
              ...(event.membership ? { membership: event.membership } : {}),
            },
          ],
          streamOrdering,
        );
      }
    },

    applyStateChanges: applyChanges,

    async removeStateEntries(roomId, removals, streamOrdering) {
      for (const removal of removals) {
        await db
          .deleteFrom('current_state')
          .where('room_id', '=', roomId)
          .where('type', '=', removal.type)
          .where('state_key', '=', removal.stateKey)
          .execute();
        if (removal.userId === undefined) continue;
        const previous = await db
          .selectFrom('room_memberships')
          .select('membership')
          .where('room_id', '=', roomId)
          .where('user_id', '=', removal.userId)
          .executeTakeFirst();
        if (!previous) continue;
        await applyMembershipChange(db, dialect, {
          roomId,
          userId: removal.userId,
          wasJoined: previous.membership === 'join',
          isJoined: false,
        });
        await db
          .deleteFrom('room_memberships')
          .where('room_id', '=', roomId)
          .where('user_id', '=', removal.userId)
          .execute();
        await db
          .insertInto('membership_history')
          .values({
            room_id: roomId,
            user_id: removal.userId,
            stream_ordering: streamOrdering,
            membership: 'leave',
            event_id: removal.eventId,
          })
          .onConflict((oc) =>
            oc
              .columns(['room_id', 'user_id', 'stream_ordering'])
              .doUpdateSet({ membership: 'leave', event_id: removal.eventId }),
          )
          .execute();
      }
    },

    async selectRoomEvents(roomId, range) {
      const rows = await db
        .selectFrom('events')
        .select(eventColumns)
        .where('room_id', '=', roomId)
        .where('stream_ordering', '>', range.after)
        .where('stream_ordering', '<=', range.upTo)
        .orderBy('stream_ordering', range.direction === 'forward' ? 'asc' : 'desc')
        .limit(range.limit)
        .execute();
      return rows.map(toEventRow);
    },

    async selectLatestEventsOfRooms(requests, limit) {
      type Span = { column1: string; column2: number; column3: number };
      const kinds = ['text', 'bigint', 'bigint'] as const;
      const rows: EventRow[] = [];
      if (limit < 1) return new Map();
      for (const part of slices(requests)) {
        // One span (an incremental /sync's usual case): its newest events in one statement.
        const only = part.length === 1 ? part[0] : undefined;
        if (only) {
          const { roomId, after, upTo } = only;
          rows.push(
            ...(await store.selectRoomEvents(roomId, {
              after,
              upTo,
              direction: 'backward',
              limit,
            })),
          );
          continue;
        }
        // Where each span's `limit`-th newest event lies (none: the span holds fewer).
        const cutoffs = await db
          .selectFrom(
            valuesTable<Span>(
              part.map((r) => [r.roomId, r.after, r.upTo]),
              kinds,
            ),
          )
          .select((eb) => [
            'k.column1 as room_id',
            eb
              .selectFrom('events')
              .select('events.stream_ordering')
              .whereRef('events.room_id', '=', 'k.column1')
              .whereRef('events.stream_ordering', '>', 'k.column2')
              .whereRef('events.stream_ordering', '<=', 'k.column3')
              .orderBy('events.stream_ordering', 'desc')
              .limit(1)
              .offset(limit - 1)
              .as('cutoff'),
          ])
          .execute();
        const from = new Map(
          cutoffs.map((c) => [c.room_id, c.cutoff === null ? null : Number(c.cutoff) - 1]),
        );
        const spans = part.map((r) => [r.roomId, from.get(r.roomId) ?? r.after, r.upTo] as const);
        const found = await db
          .selectFrom(valuesTable<Span>(spans, kinds))
          .innerJoin('events', (join) =>
            join
              .onRef('events.room_id', '=', 'k.column1')
              .onRef('events.stream_ordering', '>', 'k.column2')
              .onRef('events.stream_ordering', '<=', 'k.column3'),
          )
          .select(eventColumns)
          .execute();
        rows.push(...found.map(toEventRow));
      }
      rows.sort((a, b) => b.streamOrdering - a.streamOrdering);
      return groupByRoom(rows);
    },

    async selectMembershipHistory(roomId, userId) {
      return (await store.selectMembershipHistories([roomId], userId)).get(roomId) ?? [];
    },

    async selectMembershipHistories(roomIds, userId) {
      const byRoom = new Map<string, MembershipHistoryEntry[]>();
      if (roomIds.length === 0) return byRoom;
      const rows = await db
        .selectFrom('membership_history')
        .select(['room_id', 'stream_ordering', 'membership'])
        .where('room_id', 'in', [...roomIds])
        .where('user_id', '=', userId)
        .orderBy('stream_ordering')
        .execute();
      for (const row of rows) {
        const list = byRoom.get(row.room_id) ?? [];
        list.push({ streamOrdering: Number(row.stream_ordering), membership: row.membership });
        byRoom.set(row.room_id, list);
      }
      return byRoom;
    },

    async selectStateHistory(roomId, type, stateKey) {
      return (await store.selectStateHistories([roomId], type, stateKey)).get(roomId) ?? [];
    },

    async selectStateHistories(roomIds, type, stateKey) {
      if (roomIds.length === 0) return new Map();
      const rows = await db
        .selectFrom('state_history')
        .innerJoin('events', 'events.event_id', 'state_history.event_id')
        .select(eventColumns)
        .where('state_history.room_id', 'in', [...roomIds])
        .where('state_history.type', '=', type)
        .where('state_history.state_key', '=', stateKey)
        .orderBy('state_history.stream_ordering')
        .execute();
      return groupByRoom(rows.map(toEventRow));
    },

    async updateRedactedBy(roomId, eventId, redactionId) {
      await db
        .updateTable('events')
        .set({ redacted_by: redactionId, client_json: null })
        .where('event_id', '=', eventId)
        .where('room_id', '=', roomId)
        .where('redacted_by', 'is', null)
        .execute();
      // A current member event's copy of its client form goes too.
      await db
        .updateTable('room_memberships')
        .set({ client_json: null })
        .where('room_id', '=', roomId)
        .where('event_id', '=', eventId)
        .execute();
    },

    async selectMembership(roomId, userId) {
      const [row] = await membershipRow(roomId, userId);
      return row
        ? {
            membership: row.membership,
            streamOrdering: Number(row.stream_ordering),
            forgotten: Number(row.forgotten) === 1,
          }
        : undefined;
    },

    async updateForgotten(roomId, userId) {
      await db
        .updateTable('room_memberships')
        .set({ forgotten: 1 })
        .where('room_id', '=', roomId)
        .where('user_id', '=', userId)
        .execute();
    },

    async selectAliasRoom(alias) {
      const row = await db
        .selectFrom('room_aliases')
        .select('room_id')
        .where('alias', '=', alias)
        .executeTakeFirst();
      return row?.room_id;
    },

    async insertAlias(alias, roomId, creator) {
      await db.insertInto('room_aliases').values({ alias, room_id: roomId, creator }).execute();
    },

    async updateRoomPublic(roomId, isPublic) {
      await db
        .updateTable('rooms')
        .set({ is_public: isPublic ? 1 : 0 })
        .where('room_id', '=', roomId)
        .execute();
    },

    async selectRoomsOfUser(userId, membership) {
      const rows = await db
        .selectFrom('room_memberships')
        .select('room_id')
        .where('user_id', '=', userId)
        .where('membership', '=', membership)
        .orderBy('room_id')
        .execute();
      return rows.map((r) => r.room_id);
    },

    async selectMembersOfRoom(roomId, membership) {
      const rows = await db
        .selectFrom('room_memberships')
        .select('user_id')
        .where('room_id', '=', roomId)
        .where('membership', '=', membership)
        .orderBy('user_id')
        .execute();
      return rows.map((r) => r.user_id);
    },

    async selectTxnEvent(userId, deviceId, roomId, txnId) {
      const row = await db
        .selectFrom('event_txns')
        .select('event_id')
        .where('user_id', '=', userId)
        .where('device_id', '=', deviceId)
        .where('room_id', '=', roomId)
        .where('txn_id', '=', txnId)
        .executeTakeFirst();
      return row?.event_id;
    },

    async insertTxnEvent(userId, deviceId, roomId, txnId, eventId, ts) {
      await db
        .insertInto('event_txns')
        .values({
          user_id: userId,
          device_id: deviceId,
          room_id: roomId,
          txn_id: txnId,
          event_id: eventId,
          created_ts: ts,
        })
        .execute();
    },
  };
  return store;
}
