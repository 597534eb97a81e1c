/**
 * Reading room history (/messages, /context) with history visibility honoured, and
 * redacting events (/redact).
 */
import { fakeEventId } from '../core/secrets.js';
import { forbidden, invalidParam, notFound, type MatrixError } from '../core/errors.js';
import { actionLevel, powerLevelOf, type AuthStateEvent } from '../core/auth-rules.js';
import { toClientEvent, type ClientEvent } from '../core/client-event.js';
import {
  isVisibleAt,
  isVisibleInState,
  type StateAtEvent,
  type VisibilityHistory,
} from '../core/history-visibility.js';
import { stateKeyOf, type JsonObject, type RoomVersionId, type StateKey } from '../core/pdu.js';
import { redactPdu } from '../core/redaction.js';
import { passesEventFilter } from '../core/sync-filter.js';
import { parseStreamToken, streamToken } from '../core/stream-token.js';
import type { EventRow, MembershipHistoryEntry, Stores } from '../storage/index.js';
import type { Requester, ServiceContext } from './context.js';
import type { EventWriter } from './event-writer.js';
import { aggregationTargetOf, type RelationAggregator } from './relations.js';

/** The RoomEventFilter fields applied to timelines. */
export interface RoomEventFilter {
  types?: string[] | undefined;
  not_types?: string[] | undefined;
  senders?: string[] | undefined;
  not_senders?: string[] | undefined;
  limit?: number | undefined;
  lazy_load_members?: boolean | undefined;
  /** MSC2895: member events only with one of these memberships. */
  membership?: string[] | undefined;
  /** Room lists (the MSC2895 room listing). */
  rooms?: string[] | undefined;
  not_rooms?: string[] | undefined;
  /** Only events with a child of one of these relation types (/messages). */
  related_by_rel_types?: string[] | undefined;
  /** Only events with a child sent by one of these users (/messages). */
  related_by_senders?: string[] | undefined;
}

/** The filter's type and sender lists (with `*` type patterns) applied to a stored event. */
export const matchesFilter = (row: EventRow, filter: RoomEventFilter | undefined): boolean =>
  passesEventFilter(filter, row.pdu.type, row.pdu.sender);

/**
 * MSC2895's `membership` on state: member events only with one of the listed memberships
 * (other events pass). Timelines ignore it: it narrows member lists, not history.
 */
export function matchesMembership(row: EventRow, membership: readonly string[] | undefined) {
  if (!membership || row.pdu.type !== 'm.room.member') return true;
  const value = row.pdu.content.membership;
  return typeof value === 'string' && membership.includes(value);
}

export interface MessagesPage {
  start: string;
  end?: string;
  chunk: ClientEvent[];
  state?: ClientEvent[];
}

const BATCH = 200;

/** Fetches history from before the earliest event held (federation's outbound /backfill). */
export interface HistoryBackfiller {
  /** Up to `limit` older events of the room stored; whether any were. */
  backfill(roomId: string, limit: number): Promise<boolean>;
  /** Below this (negative) position the room's events were backfilled. */
  historyFloor(roomId: string): Promise<number | undefined>;
  /** Whether a backfill could still find older events (holes remain, a server to ask). */
  couldBackfill(roomId: string): Promise<boolean>;
  /** The history back to an event not held stored (`/context`); whether it is held now. */
  backfillAt?(roomId: string, eventId: string): Promise<boolean>;
}

/**
 * `/messages` tokens: `s<position>` (the stream's), and `h<n>` for position -n, in history
 * backfilled before the room was joined here.
 */
const historyToken = (position: number) => (position < 0 ? `h${-position}` : streamToken(position));
const parseHistoryToken = (token: string): number | null => {
  const match = /^h(\d{1,15})$/.exec(token);
  return match ? -Number(match[1]) : parseStreamToken(token);
};

export function createTimelineService(
  ctx: ServiceContext,
  writer: EventWriter,
  aggregator?: RelationAggregator,
  /** Federation's backfill, when on: `/messages` past the start of what is held asks for more. */
  backfiller: () => HistoryBackfiller | null = () => null,
) {
  const rooms = () => ctx.storage.stores.rooms;

  /** Bundled aggregations (`unsigned.m.relations`) of these events, as the user sees them. */
  const aggregationsOf: RelationAggregator['aggregationsOf'] = (targets, userId, nested) =>
    aggregator ? aggregator.aggregationsOf(targets, userId, nested) : Promise.resolve(new Map());
  const attachAggregations: RelationAggregator['attach'] = (events, bundles) =>
    aggregator?.attach(events, bundles);
  /** The client forms of `rows` with their aggregations. */
  async function presentBundled(
    rows: readonly EventRow[],
    version: RoomVersionId,
    userId: string,
  ): Promise<ClientEvent[]> {
    const [events, bundles] = await Promise.all([
      presentAll(rows, version),
      aggregationsOf(rows.map(aggregationTargetOf), userId),
    ]);
    attachAggregations(events, bundles);
    return events;
  }
  /** Of these rows, those `filter`'s `related_by_*` lists keep (all when it has none). */
  async function relatedBy(
    rows: readonly EventRow[],
    filter: RoomEventFilter | undefined,
  ): Promise<(row: EventRow) => boolean> {
    const relTypes = filter?.related_by_rel_types;
    const senders = filter?.related_by_senders;
    if (relTypes === undefined && senders === undefined) return () => true;
    const kept = await ctx.storage.stores.relations.selectParentsRelatedBy(
      rows.map((r) => r.eventId),
      relTypes,
      senders,
    );
    return (row) => kept.has(row.eventId);
  }

  /**
   * The room's version. An unknown room is refused as a room the requester may not read
   * (`refusal`), so that no answer tells a room that exists from one that does not.
   */
  async function roomVersion(roomId: string, refusal: () => MatrixError): Promise<RoomVersionId> {
    const room = await rooms().selectRoom(roomId);
    if (!room) throw refusal();
    return room.roomVersion as RoomVersionId;
  }

  /** /messages for a room the requester may not read, or that does not exist. */
  const notReadable = () => forbidden('You are not a member of this room');
  /** /event and /context for an event the requester may not see, or that does not exist. */
  const eventNotFound = () => notFound('Event not found');

  /**
   * The client form of a stored event; redacted, with `unsigned.redacted_because` holding the
   * redaction, when a redaction applies to it.
   */
  async function present(row: EventRow, version: RoomVersionId): Promise<ClientEvent> {
    if (!row.redactedBy)
      return toClientEvent({ eventId: row.eventId, roomId: row.roomId, pdu: row.pdu });
    const redaction = await rooms().selectEvent(row.redactedBy);
    const because = redaction
      ? (toClientEvent({
          eventId: redaction.eventId,
          roomId: redaction.roomId,
          pdu: redaction.pdu,
        }) as unknown as JsonObject)
      : null;
    const pdu = redactPdu(row.pdu, version);
    return toClientEvent(
      { eventId: row.eventId, roomId: row.roomId, pdu },
      { unsigned: because ? { redacted_because: because } : {} },
    );
  }
  const presentAll = (rows: readonly EventRow[], version: RoomVersionId): Promise<ClientEvent[]> =>
    Promise.all(rows.map((r) => present(r, version)));

  /** The user's membership changes and the history visibility changes, as one history. */
  const toVisibilityHistory = (
    memberships: readonly MembershipHistoryEntry[],
    visibilityEvents: readonly EventRow[],
  ): VisibilityHistory => ({
    memberships: memberships.map((m) => ({
      streamOrdering: m.streamOrdering,
      value: m.membership,
    })),
    visibilities: visibilityEvents.map((e) => ({
      streamOrdering: e.streamOrdering,
      value:
        typeof e.pdu.content.history_visibility === 'string'
          ? e.pdu.content.history_visibility
          : 'shared',
    })),
  });

  /**
   * The user's visibility history of one room. A user who forgot the room reads it as one
   * who was never in it (world-readable history only), as `/members` and `/sync` do.
   */
  async function visibilityOf(roomId: string, userId: string): Promise<VisibilityHistory> {
    const [histories, membership] = await Promise.all([
      visibilitiesOf([roomId], userId),
      rooms().selectMembership(roomId, userId),
    ]);
    const history = histories.get(roomId) ?? toVisibilityHistory([], []);
    return membership?.forgotten ? { ...history, memberships: [] } : history;
  }

  /** The visibility history of each room listed, two statements for all of them. */
  async function visibilitiesOf(
    roomIds: readonly string[],
    userId: string,
  ): Promise<Map<string, VisibilityHistory>> {
    const store = rooms();
    const [memberships, visibilityEvents] = await Promise.all([
      store.selectMembershipHistories(roomIds, userId),
      store.selectStateHistories(roomIds, 'm.room.history_visibility', ''),
    ]);
    return new Map(
      roomIds.map((roomId) => [
        roomId,
        toVisibilityHistory(memberships.get(roomId) ?? [], visibilityEvents.get(roomId) ?? []),
      ]),
    );
  }

  /**
   * For the rows of the room's past fetched from other servers (negative positions) whose
   * state is held: the history visibility and the user's membership in the state after each.
   */
  async function statesAt(
    rows: readonly EventRow[],
    userId: string,
  ): Promise<Map<string, StateAtEvent>> {
    const out = new Map<string, StateAtEvent>();
    const past = rows.filter((r) => r.streamOrdering < 0);
    if (past.length === 0) return out;
    const dag = ctx.storage.stores.roomDag;
    const groups = await dag.selectEventStateGroups(past.map((r) => r.eventId));
    const byGroup = new Map<number, StateAtEvent>();
    const visibilityKey = stateKeyOf('m.room.history_visibility', '');
    const memberKey = stateKeyOf('m.room.member', userId);
    for (const group of new Set([...groups.values()].map((g) => g.after))) {
      const entries = await dag.selectStateGroupEntries(group, [
        ['m.room.history_visibility', ''],
        ['m.room.member', userId],
      ]);
      const events = await dag.selectKnownEvents([...entries.values()]);
      const contentOf = (key: StateKey) => events.get(entries.get(key) ?? '')?.pdu.content;
      const visibility = contentOf(visibilityKey)?.history_visibility;
      const membership = contentOf(memberKey)?.membership;
      byGroup.set(group, {
        visibility: typeof visibility === 'string' ? visibility : undefined,
        membership: typeof membership === 'string' ? membership : undefined,
      });
    }
    for (const [eventId, { after }] of groups) {
      const state = byGroup.get(after);
      if (state) out.set(eventId, state);
    }
    return out;
  }

  /**
   * Whether each of these rows (of one room) is visible to the user: by the positional
   * history, or for the room's past fetched from other servers by the state at each event.
   */
  async function rowVisibility(
    rows: readonly EventRow[],
    userId: string,
    history: VisibilityHistory,
  ): Promise<(row: EventRow) => boolean> {
    const states = await statesAt(rows, userId);
    // A user who forgot the room reads it as one never in it (as `visibilityOf` has it).
    const forgotten =
      states.size > 0 && history.memberships.length === 0
        ? (await rooms().selectMembership(rows[0]?.roomId ?? '', userId))?.forgotten === true
        : false;
    return (row) => {
      const state = states.get(row.eventId);
      if (!state) return isVisibleAt(row.streamOrdering, history);
      return isVisibleInState(
        row.streamOrdering,
        forgotten ? { ...state, membership: undefined } : state,
        history,
      );
    };
  }

  /**
   * The room state after an event of its past fetched from other servers (its state group),
   * or else at its position.
   */
  async function stateRowsAfter(row: EventRow): Promise<EventRow[]> {
    const dag = ctx.storage.stores.roomDag;
    const groups = (await dag.selectEventStateGroups([row.eventId])).get(row.eventId);
    if (!groups) return rooms().selectStateEventsAt(row.roomId, row.streamOrdering);
    const ids = [...(await dag.selectStateGroup(groups.after)).values()];
    const inTimeline = await ctx.storage.stores.relations.selectEventsByIds(ids);
    const held = new Set(inTimeline.map((e) => e.eventId));
    const outside = await dag.selectKnownEvents(ids.filter((id) => !held.has(id)));
    return [
      ...inTimeline,
      ...[...outside.values()]
        .filter((e) => e.status === 'outlier')
        .map((e) => ({
          eventId: e.eventId,
          roomId: e.roomId,
          streamOrdering: row.streamOrdering,
          pdu: e.pdu,
          redactedBy: null,
        })),
    ];
  }

  /** Throws 403 unless the user has (or had) any membership of the room, or it is world readable. */
  function assertCanRead(history: VisibilityHistory, position: number): void {
    const everMember = history.memberships.some((m) => m.value === 'join' || m.value === 'invite');
    if (!everMember && !isVisibleAt(position, history)) throw notReadable();
  }

  async function memberStateFor(
    roomId: string,
    senders: Set<string>,
    version: RoomVersionId,
  ): Promise<ClientEvent[]> {
    if (senders.size === 0) return [];
    const rows = await rooms().selectStateEvents(
      roomId,
      [...senders].map((s) => ['m.room.member', s] as const),
    );
    return presentAll(rows, version);
  }

  return {
    present,
    aggregationsOf,
    attachAggregations,

    /** Throws 403 (as /messages) unless the requester may read the room's history. */
    async assertReadable(requester: Requester, roomId: string): Promise<void> {
      await roomVersion(roomId, notReadable);
      const current = await rooms().selectCurrentStreamPosition();
      assertCanRead(await visibilityOf(roomId, requester.userId), current);
    },

    /**
     * Of these rows (any rooms), the IDs of those visible to the user, the room's past
     * fetched from other servers judged by the state at each event (see `visibilities`).
     */
    async visibleRows(rows: readonly EventRow[], userId: string): Promise<Set<string>> {
      const visible = new Set<string>();
      const byRoom = new Map<string, EventRow[]>();
      for (const row of rows) byRoom.set(row.roomId, [...(byRoom.get(row.roomId) ?? []), row]);
      for (const [roomId, roomRows] of byRoom) {
        const check = await rowVisibility(roomRows, userId, await visibilityOf(roomId, userId));
        for (const row of roomRows) if (check(row)) visible.add(row.eventId);
      }
      return visible;
    },

    /**
     * Per room: whether each stream position of its history is visible to the user. For
     * events of the room's past fetched from other servers (negative positions) use
     * `visibleRows`, which reads the state at each.
     */
    async visibilities(
      roomIds: readonly string[],
      userId: string,
    ): Promise<Map<string, (position: number) => boolean>> {
      const histories = await visibilitiesOf(roomIds, userId);
      return new Map(
        [...histories].map(([roomId, history]) => [
          roomId,
          (position: number) => isVisibleAt(position, history),
        ]),
      );
    },

    async messages(
      requester: Requester,
      roomId: string,
      options: {
        from?: string | undefined;
        to?: string | undefined;
        dir: 'b' | 'f';
        limit: number;
        filter?: RoomEventFilter | undefined;
        /** Every event, whatever the requester may see (the admin API's /messages). */
        unrestricted?: boolean | undefined;
      },
    ): Promise<MessagesPage> {
      const version = await roomVersion(roomId, notReadable);
      const current = await rooms().selectCurrentStreamPosition();
      const parse = (token: string | undefined, name: string): number | undefined => {
        if (token === undefined) return undefined;
        const position = parseHistoryToken(token);
        if (position === null) throw invalidParam(`Invalid ${name} token`);
        return Math.min(position, current);
      };
      let history = options.unrestricted ? null : await visibilityOf(roomId, requester.userId);
      if (history) assertCanRead(history, current);
      const from = parse(options.from, 'from') ?? (options.dir === 'b' ? current : 0);
      const to = parse(options.to, 'to');
      const limit = Math.min(options.filter?.limit ?? options.limit, 1000);
      const chunk: EventRow[] = [];
      let cursor = from;
      /** Where the next page starts: just past the chunk's last event. */
      let end = from;
      /** Whether an event past the chunk exists (one visible and matching, or backfillable). */
      let more = false;
      let exhausted = false;
      // Backwards past the earliest event held: the history backfilled before (below the
      // room's floor), then, once per request, a resident server is asked for more.
      let backfilled = false;
      const backfill = options.dir === 'b' && to === undefined ? backfiller() : null;
      for (;;) {
        if (exhausted) {
          if (!backfill) break;
          const floor = await backfill.historyFloor(roomId);
          if (cursor >= 0 && floor !== undefined) {
            cursor = floor - 1;
          } else {
            // A full page asks no one: whether a backfill could still find older events
            // decides `end`. So does a backfill already made by this request that found some.
            if (chunk.length >= limit || backfilled) {
              more = await backfill.couldBackfill(roomId).catch(() => false);
              break;
            }
            backfilled = true;
            const found = await backfill.backfill(roomId, limit - chunk.length).catch(() => false);
            if (!found) break;
            cursor = Math.min(cursor, ((await backfill.historyFloor(roomId)) ?? 0) - 1);
            if (history) history = await visibilityOf(roomId, requester.userId);
          }
          exhausted = false;
        }
        // Below 0, backfilled history (the state the room was joined with, from its floor
        // up to 0, is not part of the timeline).
        const lowest = cursor < 0 ? Number.MIN_SAFE_INTEGER : 0;
        const range =
          options.dir === 'b'
            ? { after: to ?? lowest, upTo: cursor, direction: 'backward' as const, limit: BATCH }
            : { after: cursor, upTo: to ?? current, direction: 'forward' as const, limit: BATCH };
        if (range.after >= range.upTo) {
          exhausted = true;
          continue;
        }
        const rows = await rooms().selectRoomEvents(roomId, range);
        if (rows.length < BATCH) exhausted = true;
        const related = await relatedBy(rows, options.filter);
        const visible = history ? await rowVisibility(rows, requester.userId, history) : null;
        for (const row of rows) {
          cursor = options.dir === 'b' ? row.streamOrdering - 1 : row.streamOrdering;
          if ((visible && !visible(row)) || !matchesFilter(row, options.filter) || !related(row))
            continue;
          // One event past a full page: there is more, and the next page starts with it.
          if (chunk.length >= limit) {
            more = true;
            break;
          }
          chunk.push(row);
          end = cursor;
        }
        if (more) break;
      }
      const page: MessagesPage = {
        start: historyToken(from),
        chunk: await presentBundled(chunk, version, requester.userId),
      };
      // No `end` when no further events are available: none visible and matching the filter
      // past the chunk (in the range up to `to`), and none a backfill could still fetch.
      if (more) page.end = historyToken(end);
      if (options.filter?.lazy_load_members) {
        page.state = await memberStateFor(roomId, new Set(chunk.map((r) => r.pdu.sender)), version);
      }
      return page;
    },

    async context(
      requester: Requester,
      roomId: string,
      eventId: string,
      limit: number,
      filter?: RoomEventFilter,
    ): Promise<Record<string, unknown>> {
      const version = await roomVersion(roomId, eventNotFound);
      const backfill = backfiller();
      let target = await rooms().selectEvent(eventId);
      // An event not held here (from before the room was joined, say): asked of a resident
      // server with the history before it, as /messages does when it pages that far.
      if (!target && backfill?.backfillAt) {
        const history = await visibilityOf(roomId, requester.userId);
        assertCanRead(history, await rooms().selectCurrentStreamPosition());
        if (await backfill.backfillAt(roomId, eventId).catch(() => false))
          target = await rooms().selectEvent(eventId);
      }
      if (!target || target.roomId !== roomId) throw eventNotFound();
      const history = await visibilityOf(roomId, requester.userId);
      if (!(await rowVisibility([target], requester.userId, history))(target))
        throw eventNotFound();
      const half = Math.min(filter?.limit ?? limit, 100);
      const beforeCount = Math.floor(half / 2);
      const afterCount = half - beforeCount;
      // Below 0: the state the room was joined with (from the floor up to 0, not part of the
      // timeline), and below the floor the history backfilled.
      let floor = backfill ? await backfill.historyFloor(roomId) : undefined;
      const joinState = (position: number) =>
        position < 0 && (floor === undefined || position >= floor);
      const from = target;
      const collect = async (
        direction: 'backward' | 'forward',
        count: number,
      ): Promise<EventRow[]> => {
        const out: EventRow[] = [];
        if (count === 0) return out;
        let cursor = from.streamOrdering;
        let backfilled = false;
        const current = await rooms().selectCurrentStreamPosition();
        for (;;) {
          if (direction === 'backward' && joinState(cursor - 1)) {
            if (floor !== undefined) cursor = floor;
            else if (!backfill || backfilled) return out;
            else {
              // Past the join point: a resident server is asked, once.
              backfilled = true;
              if (!(await backfill.backfill(roomId, count - out.length).catch(() => false)))
                return out;
              floor = await backfill.historyFloor(roomId);
              if (floor === undefined) return out;
              cursor = Math.min(cursor, floor);
            }
          }
          const range =
            direction === 'backward'
              ? { after: Number.MIN_SAFE_INTEGER, upTo: cursor - 1, direction, limit: BATCH }
              : { after: cursor, upTo: current, direction, limit: BATCH };
          if (range.after >= range.upTo) return out;
          const rows = await rooms().selectRoomEvents(roomId, range);
          const visible = await rowVisibility(rows, requester.userId, history);
          for (const row of rows) {
            cursor = row.streamOrdering;
            if (joinState(row.streamOrdering)) continue;
            if (visible(row) && matchesFilter(row, filter)) out.push(row);
            if (out.length >= count) return out;
          }
          if (rows.length < BATCH) {
            // The end of what is held: further back, a resident server is asked, once.
            if (direction === 'forward' || !backfill || backfilled) return out;
            backfilled = true;
            if (!(await backfill.backfill(roomId, count - out.length).catch(() => false)))
              return out;
            floor = await backfill.historyFloor(roomId);
            if (floor !== undefined) cursor = Math.min(cursor, floor);
          }
        }
      };
      const before = await collect('backward', beforeCount);
      const after = await collect('forward', afterCount);
      const stateRows =
        target.streamOrdering < 0
          ? await stateRowsAfter(target)
          : await rooms().selectStateEventsAt(roomId, target.streamOrdering);
      const lazy = filter?.lazy_load_members === true;
      const senders = new Set([target, ...before, ...after].map((r) => r.pdu.sender));
      const state = stateRows.filter(
        (r) =>
          (!lazy || r.pdu.type !== 'm.room.member' || senders.has(r.pdu.state_key ?? '')) &&
          matchesMembership(r, filter?.membership),
      );
      const first = before[before.length - 1];
      const last = after[after.length - 1];
      const [event, ...around] = await presentBundled(
        [target, ...before, ...after],
        version,
        requester.userId,
      );
      return {
        event,
        events_before: around.slice(0, before.length),
        events_after: around.slice(before.length),
        start: historyToken((first?.streamOrdering ?? target.streamOrdering) - 1),
        end: historyToken(last?.streamOrdering ?? target.streamOrdering),
        state: await presentAll(state, version),
      };
    },

    async redact(
      requester: Requester,
      roomId: string,
      eventId: string,
      txnId: string,
      reason?: string,
    ): Promise<string> {
      // Shadow-banned (admin API): answered as if redacted, nothing happens.
      if (requester.shadowBanned) return fakeEventId();
      const existing = await rooms().selectTxnEvent(
        requester.userId,
        requester.deviceId,
        roomId,
        `redact:${txnId}`,
      );
      if (existing) return existing;
      return ctx.storage.tx('redactEvent', async (stores: Stores) => {
        await stores.rooms.lockRoom(roomId);
        const room = await stores.rooms.selectRoom(roomId);
        if (!room) throw forbidden('You are not in this room');
        const version = room.roomVersion as RoomVersionId;
        const target = await stores.rooms.selectEvent(eventId);
        if (!target || target.roomId !== roomId) throw notFound('Event not found');
        const stateRows = await stores.rooms.selectStateEvents(roomId, [
          ['m.room.create', ''],
          ['m.room.power_levels', ''],
          ['m.room.member', requester.userId],
        ]);
        const authState = new Map<StateKey, AuthStateEvent>(
          stateRows.map((r) => [
            stateKeyOf(r.pdu.type, r.pdu.state_key ?? ''),
            { ...r.pdu, event_id: r.eventId },
          ]),
        );
        // Locally, the rule clients expect: your own events, or others' with the redact level.
        // (The federation rule, same server as the sender, would let any local user redact.)
        const ownEvent = target.pdu.sender === requester.userId;
        if (
          !ownEvent &&
          powerLevelOf(requester.userId, authState, version) < actionLevel('redact', authState)
        ) {
          throw forbidden("You do not have permission to redact other users' events");
        }
        const content: JsonObject = reason === undefined ? {} : { reason };
        const appended = await writer.append(stores, roomId, {
          type: 'm.room.redaction',
          sender: requester.userId,
          content,
          redacts: eventId,
        });
        await stores.rooms.updateRedactedBy(roomId, eventId, appended.eventId);
        await stores.rooms.insertTxnEvent(
          requester.userId,
          requester.deviceId,
          roomId,
          `redact:${txnId}`,
          appended.eventId,
          ctx.now(),
        );
        return appended.eventId;
      });
    },

    /**
     * A single event, if visible to the requester. Like /context, one answer (404) for an
     * event that is missing, in another room, hidden by history visibility, or in a room
     * that does not exist or that the requester is not in.
     */
    async event(requester: Requester, roomId: string, eventId: string): Promise<ClientEvent> {
      const version = await roomVersion(roomId, eventNotFound);
      const row = await rooms().selectEvent(eventId);
      if (!row || row.roomId !== roomId) throw eventNotFound();
      const history = await visibilityOf(roomId, requester.userId);
      if (!(await rowVisibility([row], requester.userId, history))(row)) throw eventNotFound();
      const [event] = await presentBundled([row], version, requester.userId);
      return event ?? present(row, version);
    },
  };
}

export type TimelineService = ReturnType<typeof createTimelineService>;
