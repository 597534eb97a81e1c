/**
 * The room DAG: the state at every event as state groups (a delta on an earlier group, or a
 * whole snapshot), each event's groups before and after it, auth edges (auth chains in one
 * recursive statement per slice), each room's current group, and the events kept outside the
 * timeline (outliers, rejected and soft-failed events), which clients are never served.
 */
import { sql, type Kysely } from 'kysely';
import { stateKeyOf, type Pdu, type StateKey } from '../core/pdu.js';
import type { Database } from './schema.js';
import { takeNextPosition } from './stream-store.js';
import { eventColumns, toEventRow, type EventRow } from './room-store.js';
import { readInSlices, slices } from './values-table.js';

/** Where an event known to the server stands. */
export type DagStatus = 'outlier' | 'rejected' | 'soft_failed';

/** An event the server has, in the timeline (`timeline`) or outside it. */
export interface KnownEvent {
  eventId: string;
  roomId: string;
  pdu: Pdu;
  status: 'timeline' | DagStatus;
  /** Why it was rejected or soft-failed. */
  reason: string | null;
  /** Its stream position (timeline events only). */
  streamOrdering: number | null;
}

/** A state group and where it stands on its delta chain. */
export interface StateGroupHead {
  groupId: number;
  /**
   * Its step on its chain: how many changes were made since the whole snapshot the chain
   * starts from (0 for a snapshot). Steps decrease along a chain (see `extendGroup`).
   */
  hops: number;
}

/** A state entry of a group: an event, or null for an entry the delta removes. */
export type StateEntry = readonly [type: string, stateKey: string, eventId: string | null];

export interface RoomDagStore {
  /**
   * A new group: `entries` as a delta on `prev` (null: `entries` is the whole state), at step
   * `hops` (default: `prev`'s plus one; 0 for a snapshot).
   */
  insertStateGroup(
    roomId: string,
    prev: StateGroupHead | null,
    entries: readonly StateEntry[],
    hops?: number,
  ): Promise<StateGroupHead>;
  /**
   * What changes the group at step `baseHops` on `groupId`'s chain into `groupId`'s state: the
   * deltas of the groups above it merged (the newest winning, removals kept as null), with that
   * group. Undefined when the chain has no group at that step.
   */
  selectStateGroupDelta(
    groupId: number,
    baseHops: number,
  ): Promise<{ base: StateGroupHead; entries: StateEntry[] } | undefined>;
  /** The whole state of a group (its delta chain applied), by `stateKeyOf`. */
  selectStateGroup(groupId: number): Promise<Map<StateKey, string>>;
  /** Of a group's state, the entries of these keys only (absent: not in the state). */
  selectStateGroupEntries(
    groupId: number,
    keys: readonly (readonly [type: string, stateKey: string])[],
  ): Promise<Map<StateKey, string>>;
  /**
   * The room's redactions in the timeline naming any of `targetIds` (`redacts` at the top or
   * in `content`), oldest first.
   */
  selectRedactionsOf(roomId: string, targetIds: readonly string[]): Promise<EventRow[]>;
  selectEventStateGroups(
    eventIds: readonly string[],
  ): Promise<Map<string, { before: number; after: number }>>;
  insertEventStateGroups(
    eventId: string,
    roomId: string,
    before: number,
    after: number,
  ): Promise<void>;
  selectCurrentGroup(roomId: string): Promise<StateGroupHead | undefined>;
  selectGroupHead(groupId: number): Promise<StateGroupHead | undefined>;
  /** A negative stream position for an event of the room's past entering the timeline. */
  nextHistoryPosition(): Promise<number>;
  /** `count` such positions at once (one statement), each lower than the one before. */
  nextHistoryPositions(count: number): Promise<number[]>;
  upsertCurrentGroup(roomId: string, groupId: number): Promise<void>;
  /** The group already holding the resolution of these groups, if one was kept. */
  selectResolvedGroup(inputGroups: readonly number[]): Promise<StateGroupHead | undefined>;
  /** Keeps `result` as the resolution of these groups (once; a second keep is a no-op). */
  insertResolvedGroup(
    roomId: string,
    inputGroups: readonly number[],
    result: number,
  ): Promise<void>;
  insertAuthEdges(eventId: string, authEventIds: readonly string[]): Promise<void>;
  /** `insertAuthEdges` for many events, in multi-row statements. */
  insertAuthEdgesOfEvents(
    edges: ReadonlyArray<{ eventId: string; authEventIds: readonly string[] }>,
  ): Promise<void>;
  /** Every event reachable from these through auth edges (not the events themselves unless reached). */
  selectAuthChainIds(eventIds: readonly string[]): Promise<string[]>;
  /** Keeps an event outside the timeline; an event already kept has its status replaced. */
  upsertDagEvent(
    event: {
      eventId: string;
      roomId: string;
      json: string;
      status: DagStatus;
      reason: string | null;
    },
    ts: number,
  ): Promise<void>;
  /** `upsertDagEvent` for many events, in multi-row statements. */
  upsertDagEvents(
    events: ReadonlyArray<{
      eventId: string;
      roomId: string;
      json: string;
      status: DagStatus;
      reason: string | null;
    }>,
    ts: number,
  ): Promise<void>;
  deleteDagEvent(eventId: string): Promise<void>;
  deleteDagEvents(eventIds: readonly string[]): Promise<void>;
  /** The events asked for that the server has, in the timeline or outside it. */
  selectKnownEvents(eventIds: readonly string[]): Promise<Map<string, KnownEvent>>;
  /** The room's outliers of a status, oldest first. */
  selectDagEventsOfRoom(roomId: string, status: DagStatus): Promise<KnownEvent[]>;
  selectReceivedTxn(origin: string, txnId: string): Promise<string | undefined>;
  upsertInviteRoomState(
    roomId: string,
    userId: string,
    eventId: string,
    json: string,
  ): Promise<void>;
  /** Keeps the server the user's knock (`eventId`) went through. */
  upsertKnockViaServer(
    roomId: string,
    userId: string,
    eventId: string,
    server: string,
  ): Promise<void>;
  /** The server the user's knock `eventId` on the room went through, when it was kept. */
  selectKnockViaServer(
    roomId: string,
    userId: string,
    eventId: string,
  ): Promise<string | undefined>;
  /** The stripped state of remote invites, by room, for one user. */
  selectInviteRoomStates(roomIds: readonly string[], userId: string): Promise<Map<string, string>>;
  insertReceivedTxn(origin: string, txnId: string, response: string, ts: number): Promise<void>;
}

export function roomDagStore(db: Kysely<Database>): RoomDagStore {
  /**
   * A state group's state: its entries and those of the groups it is a delta of, the newest
   * delta winning (a null event ID removes the entry). Only the given keys when `keys` is set.
   */
  async function stateOfGroupChain(
    groupId: number,
    keys?: ReadonlyArray<readonly [string, string]>,
  ): Promise<Map<StateKey, string>> {
    const wanted = keys && new Set(keys.map(([type, stateKey]) => stateKeyOf(type, stateKey)));
    const onlyKeys = keys
      ? sql`WHERE e.type IN (${sql.join([...new Set(keys.map(([type]) => type))])})
          AND e.state_key IN (${sql.join([...new Set(keys.map(([, stateKey]) => stateKey))])})`
      : sql``;
    const { rows } = await sql<{
      type: string;
      state_key: string;
      event_id: string | null;
      depth: number;
    }>`
      WITH RECURSIVE chain(group_id, prev_group, depth) AS (
        SELECT group_id, prev_group, 0 FROM state_groups WHERE group_id = ${groupId}
        UNION ALL
        SELECT g.group_id, g.prev_group, c.depth + 1
          FROM state_groups g JOIN chain c ON g.group_id = c.prev_group
      )
      SELECT e.type, e.state_key, e.event_id, c.depth
        FROM chain c JOIN state_group_entries e ON e.group_id = c.group_id
        ${onlyKeys}`.execute(db);
    // Oldest delta first, so each newer one overrides it.
    rows.sort((a, b) => Number(b.depth) - Number(a.depth));
    const state = new Map<StateKey, string>();
    for (const row of rows) {
      const key = stateKeyOf(row.type, row.state_key);
      if (wanted && !wanted.has(key)) continue;
      if (row.event_id === null) state.delete(key);
      else state.set(key, row.event_id);
    }
    return state;
  }

  /** A set of groups as one key: their IDs ascending, joined by ','. */
  const resolutionKey = (groups: readonly number[]): string =>
    [...new Set(groups)].sort((a, b) => a - b).join(',');

  const store: RoomDagStore = {
    async insertStateGroup(roomId, prev, entries, step) {
      const groupId = await takeNextPosition(db, 'state_groups');
      const hops = prev === null ? 0 : (step ?? prev.hops + 1);
      await db
        .insertInto('state_groups')
        .values({ group_id: groupId, room_id: roomId, prev_group: prev?.groupId ?? null, hops })
        .execute();
      for (const part of slices(entries)) {
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
      return { groupId, hops };
    },

    async selectStateGroup(groupId) {
      return stateOfGroupChain(groupId);
    },

    async selectStateGroupDelta(groupId, baseHops) {
      const { rows: chain } = await sql<{ group_id: number; hops: number; depth: number }>`
        WITH RECURSIVE chain(group_id, prev_group, hops, depth) AS (
          SELECT group_id, prev_group, hops, 0 FROM state_groups WHERE group_id = ${groupId}
          UNION ALL
          SELECT g.group_id, g.prev_group, g.hops, c.depth + 1
            FROM state_groups g JOIN chain c ON g.group_id = c.prev_group
            WHERE c.hops > ${baseHops}
        )
        SELECT group_id, hops, depth FROM chain`.execute(db);
      const base = chain.find((row) => Number(row.hops) === baseHops);
      if (!base) return undefined;
      const above = chain.filter((row) => Number(row.hops) > baseHops);
      const depthOf = new Map(above.map((row) => [Number(row.group_id), Number(row.depth)]));
      const rows =
        above.length === 0
          ? []
          : await db
              .selectFrom('state_group_entries')
              .select(['group_id', 'type', 'state_key', 'event_id'])
              .where('group_id', 'in', [...depthOf.keys()])
              .execute();
      // Oldest delta first, so each newer one overrides it.
      rows.sort((a, b) => depthOf.get(Number(b.group_id))! - depthOf.get(Number(a.group_id))!);
      const merged = new Map<StateKey, StateEntry>();
      for (const row of rows) {
        merged.set(stateKeyOf(row.type, row.state_key), [row.type, row.state_key, row.event_id]);
      }
      return {
        base: { groupId: Number(base.group_id), hops: baseHops },
        entries: [...merged.values()],
      };
    },

    async selectStateGroupEntries(groupId, keys) {
      if (keys.length === 0) return new Map<StateKey, string>();
      return stateOfGroupChain(groupId, keys);
    },

    async selectRedactionsOf(roomId, targetIds) {
      if (targetIds.length === 0) return [];
      const targets = new Set(targetIds);
      const rows = await db
        .selectFrom('events')
        .select(eventColumns)
        .where('events.room_id', '=', roomId)
        .where('events.type', '=', 'm.room.redaction')
        .orderBy('events.stream_ordering')
        .execute();
      return rows.map(toEventRow).filter((row) => {
        const inContent = row.pdu.content.redacts;
        const target = typeof inContent === 'string' ? inContent : row.pdu.redacts;
        return typeof target === 'string' && targets.has(target);
      });
    },

    async selectEventStateGroups(eventIds) {
      const rows = await readInSlices(eventIds, (part) =>
        db
          .selectFrom('event_state_groups')
          .select(['event_id', 'before_group', 'after_group'])
          .where('event_id', 'in', part)
          .execute(),
      );
      return new Map(
        rows.map((r) => [
          r.event_id,
          { before: Number(r.before_group), after: Number(r.after_group) },
        ]),
      );
    },

    async insertEventStateGroups(eventId, roomId, before, after) {
      await db
        .insertInto('event_state_groups')
        .values({ event_id: eventId, room_id: roomId, before_group: before, after_group: after })
        .onConflict((oc) =>
          oc.column('event_id').doUpdateSet({ before_group: before, after_group: after }),
        )
        .execute();
    },

    async selectCurrentGroup(roomId) {
      const row = await db
        .selectFrom('room_state_heads')
        .innerJoin('state_groups', 'state_groups.group_id', 'room_state_heads.current_group')
        .select(['state_groups.group_id', 'state_groups.hops'])
        .where('room_state_heads.room_id', '=', roomId)
        .executeTakeFirst();
      return row ? { groupId: Number(row.group_id), hops: Number(row.hops) } : undefined;
    },

    async selectGroupHead(groupId) {
      const row = await db
        .selectFrom('state_groups')
        .select(['group_id', 'hops'])
        .where('group_id', '=', groupId)
        .executeTakeFirst();
      return row ? { groupId: Number(row.group_id), hops: Number(row.hops) } : undefined;
    },

    async nextHistoryPosition() {
      return -(await takeNextPosition(db, 'events_history'));
    },

    async nextHistoryPositions(count) {
      if (count === 0) return [];
      const last = await takeNextPosition(db, 'events_history', count);
      return Array.from({ length: count }, (_, i) => -(last - count + 1 + i));
    },

    async upsertCurrentGroup(roomId, groupId) {
      await db
        .insertInto('room_state_heads')
        .values({ room_id: roomId, current_group: groupId })
        .onConflict((oc) => oc.column('room_id').doUpdateSet({ current_group: groupId }))
        .execute();
    },

    async selectResolvedGroup(inputGroups) {
      const row = await db
        .selectFrom('state_resolutions')
        .innerJoin('state_groups', 'state_groups.group_id', 'state_resolutions.result_group')
        .select(['state_groups.group_id', 'state_groups.hops'])
        .where('state_resolutions.input_groups', '=', resolutionKey(inputGroups))
        .executeTakeFirst();
      return row ? { groupId: Number(row.group_id), hops: Number(row.hops) } : undefined;
    },

    async insertResolvedGroup(roomId, inputGroups, result) {
      await db
        .insertInto('state_resolutions')
        .values({ input_groups: resolutionKey(inputGroups), room_id: roomId, result_group: result })
        .onConflict((oc) => oc.column('input_groups').doNothing())
        .execute();
    },

    async insertAuthEdges(eventId, authEventIds) {
      await store.insertAuthEdgesOfEvents([{ eventId, authEventIds }]);
    },

    async insertAuthEdgesOfEvents(edges) {
      const rows = edges.flatMap(({ eventId, authEventIds }) =>
        [...new Set(authEventIds)].map((id) => ({ event_id: eventId, auth_event_id: id })),
      );
      for (const part of slices(rows)) {
        await db
          .insertInto('event_auth_edges')
          .values(part)
          .onConflict((oc) => oc.columns(['event_id', 'auth_event_id']).doNothing())
          .execute();
      }
    },

    async selectAuthChainIds(eventIds) {
      const found = new Set<string>();
      for (const part of slices([...new Set(eventIds)])) {
        const { rows } = await sql<{ event_id: string }>`
          WITH RECURSIVE chain(event_id) AS (
            SELECT auth_event_id FROM event_auth_edges
              WHERE event_id IN (${sql.join(part)})
            UNION
            SELECT e.auth_event_id FROM event_auth_edges e JOIN chain c ON e.event_id = c.event_id
          )
          SELECT event_id FROM chain`.execute(db);
        for (const row of rows) found.add(row.event_id);
      }
      return [...found];
    },

    async upsertDagEvent(event, ts) {
      await store.upsertDagEvents([event], ts);
    },

    async upsertDagEvents(events, ts) {
      const byId = new Map(events.map((e) => [e.eventId, e]));
      for (const part of slices([...byId.values()])) {
        await db
          .insertInto('room_dag_events')
          .values(
            part.map((event) => ({
              event_id: event.eventId,
              room_id: event.roomId,
              status: event.status,
              reason: event.reason,
              pdu: event.json,
              received_ts: ts,
            })),
          )
          .onConflict((oc) =>
            oc.column('event_id').doUpdateSet((eb) => ({
              status: eb.ref('excluded.status'),
              reason: eb.ref('excluded.reason'),
            })),
          )
          .execute();
      }
    },

    async deleteDagEvent(eventId) {
      await db.deleteFrom('room_dag_events').where('event_id', '=', eventId).execute();
    },

    async deleteDagEvents(eventIds) {
      for (const part of slices([...new Set(eventIds)]))
        await db.deleteFrom('room_dag_events').where('event_id', 'in', part).execute();
    },

    async selectKnownEvents(eventIds) {
      const ids = [...new Set(eventIds)];
      const known = new Map<string, KnownEvent>();
      const timeline = await readInSlices(ids, (part) =>
        db.selectFrom('events').select(eventColumns).where('event_id', 'in', part).execute(),
      );
      for (const raw of timeline) {
        const row = toEventRow(raw);
        known.set(row.eventId, {
          eventId: row.eventId,
          roomId: row.roomId,
          pdu: row.pdu,
          status: 'timeline',
          reason: null,
          streamOrdering: row.streamOrdering,
        });
      }
      const rest = ids.filter((id) => !known.has(id));
      const outside = await readInSlices(rest, (part) =>
        db.selectFrom('room_dag_events').selectAll().where('event_id', 'in', part).execute(),
      );
      for (const row of outside) known.set(row.event_id, fromDagRow(row));
      return known;
    },

    async selectDagEventsOfRoom(roomId, status) {
      const rows = await db
        .selectFrom('room_dag_events')
        .selectAll()
        .where('room_id', '=', roomId)
        .where('status', '=', status)
        .orderBy('received_ts')
        .execute();
      return rows.map(fromDagRow);
    },

    async upsertInviteRoomState(roomId, userId, eventId, json) {
      await db
        .insertInto('invite_room_state')
        .values({ room_id: roomId, user_id: userId, event_id: eventId, state_json: json })
        .onConflict((oc) =>
          oc.columns(['room_id', 'user_id']).doUpdateSet({ event_id: eventId, state_json: json }),
        )
        .execute();
    },

    async upsertKnockViaServer(roomId, userId, eventId, server) {
      await db
        .insertInto('knock_via_servers')
        .values({ room_id: roomId, user_id: userId, event_id: eventId, server })
        .onConflict((oc) =>
          oc.columns(['room_id', 'user_id']).doUpdateSet({ event_id: eventId, server }),
        )
        .execute();
    },

    async selectKnockViaServer(roomId, userId, eventId) {
      const row = await db
        .selectFrom('knock_via_servers')
        .select('server')
        .where('room_id', '=', roomId)
        .where('user_id', '=', userId)
        .where('event_id', '=', eventId)
        .executeTakeFirst();
      return row?.server;
    },

    async selectInviteRoomStates(roomIds, userId) {
      if (roomIds.length === 0) return new Map();
      const rows = await readInSlices(roomIds, (part) =>
        db
          .selectFrom('invite_room_state')
          .select(['room_id', 'state_json'])
          .where('user_id', '=', userId)
          .where('room_id', 'in', part)
          .execute(),
      );
      return new Map(rows.map((r) => [r.room_id, r.state_json]));
    },

    async selectReceivedTxn(origin, txnId) {
      const row = await db
        .selectFrom('federation_received_txns')
        .select('response')
        .where('origin', '=', origin)
        .where('txn_id', '=', txnId)
        .executeTakeFirst();
      return row?.response;
    },

    async insertReceivedTxn(origin, txnId, response, ts) {
      await db
        .insertInto('federation_received_txns')
        .values({ origin, txn_id: txnId, response, received_ts: ts })
        .onConflict((oc) => oc.columns(['origin', 'txn_id']).doNothing())
        .execute();
    },
  };
  return store;
}

function fromDagRow(row: {
  event_id: string;
  room_id: string;
  status: string;
  reason: string | null;
  pdu: string;
}): KnownEvent {
  return {
    eventId: row.event_id,
    roomId: row.room_id,
    pdu: JSON.parse(row.pdu) as Pdu,
    status: row.status as DagStatus,
    reason: row.reason,
    streamOrdering: null,
  };
}
