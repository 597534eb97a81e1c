/**
 * GET /sync: everything that changed for a user's device between two points of the global
 * stream, or everything on an initial sync; a long-poll waits for the next change that
 * concerns the user (the notifier), never polls the database.
 * https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3sync
 */
import { STRIPPED_STATE_TYPES } from '../core/stripped-state.js';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { LRUCache } from 'lru-cache';
import PQueue from 'p-queue';
import { invalidParam } from '../core/errors.js';
import type { ClientEvent } from '../core/client-event.js';
import type { JsonObject, RoomVersionId } from '../core/pdu.js';
import { parseStreamToken, streamToken } from '../core/stream-token.js';
import {
  passesEventFilter,
  passesRoomLists,
  projectEventFields,
  type RoomEventFilter,
  type SyncFilter,
} from '../core/sync-filter.js';
import type {
  EventRow,
  MembershipHistoryEntry,
  PartialStateCompletion,
  UserMembershipRow,
} from '../storage/index.js';
import { statementsHoldProcess, type Requester, type ServiceContext } from './context.js';
import { forEachBatch } from './batches.js';
import { LazyMemberCache } from './lazy-member-cache.js';
import { createUserCache } from './user-cache.js';
import type { Notifier } from './notifier.js';
import type { SyncSources } from './sync-sources.js';
import type { TimelineService } from './timeline.js';
import { aggregationTargetOf } from './relations.js';
import { invitesBlocked } from './invite-permission.js';

export type PresenceState = 'online' | 'offline' | 'unavailable';

/** An empty incremental answer, and what it was built from (see `quietAnswers`). */
interface QuietAnswer {
  /** The answer's next_batch: the `since` of the poll it may answer again. */
  since: string;
  /** The request's filter, as JSON. */
  filter: string;
  /** A notifier mark up to which nothing concerning the user has come since the answer's position. */
  mark: number;
  /** The rooms the user was in, invited to or knocking on. */
  rooms: ReadonlySet<string>;
  /** The presence the user had when it was kept (this request's `set_presence`). */
  presence: PresenceState | null;
  response: SyncResponse;
}

/** Devices whose last empty answer is kept (about 1 KiB each). */
const MAX_QUIET_ANSWERS = 50_000;

export interface SyncOptions {
  since?: string | undefined;
  timeoutMs: number;
  fullState: boolean;
  setPresence: PresenceState;
  filter: SyncFilter;
  /** Aborts a long-poll (the client went away). */
  signal?: AbortSignal | undefined;
}

type SyncEvent = Record<string, unknown>;

interface EventList {
  events: SyncEvent[];
}

interface Timeline extends EventList {
  limited: boolean;
  prev_batch: string;
}

export interface JoinedRoomSync {
  summary: Record<string, unknown>;
  state: EventList;
  timeline: Timeline;
  ephemeral: EventList;
  account_data: EventList;
  unread_notifications: { notification_count: number; highlight_count: number };
  unread_thread_notifications?: Record<
    string,
    { notification_count: number; highlight_count: number }
  >;
}

export interface SyncResponse {
  next_batch: string;
  rooms: {
    join: Record<string, JoinedRoomSync>;
    invite: Record<string, { invite_state: EventList }>;
    knock: Record<string, { knock_state: EventList }>;
    leave: Record<string, { state: EventList; timeline: Timeline; account_data: EventList }>;
  };
  account_data: EventList;
  presence: EventList;
  to_device: EventList;
  device_lists: { changed: string[]; left: string[] };
  device_one_time_keys_count: Record<string, number>;
  device_unused_fallback_key_types: string[];
}

/** The timeline length when the filter names none (what most servers use). */
const DEFAULT_TIMELINE_LIMIT = 10;
const MAX_TIMELINE_LIMIT = 500;
/** Events read per query while filling a timeline backwards. */
const SCAN_BATCH = 100;
/** Rooms per IN list (both databases cap bound parameters). */
const CHUNK = 500;
const MAX_HEROES = 5;
const MEMBER = 'm.room.member';

/**
 * Rooms whose reads are made together: each kind of read (timelines, state, members,
 * heroes, transaction IDs) is one statement for the whole batch, so an initial sync of
 * 1,000 rooms makes tens of statements per kind rather than one per room (a round trip each
 * on PostgreSQL).
 */
const ROOM_BATCH = 100;
/** Room versions kept per process (about 100 bytes each). */
const ROOM_VERSIONS_KEPT = 200_000;
/** Users whose memberships are kept per process. */
const MEMBERSHIP_LISTS_KEPT = 10_000;

/**
 * Batches of rooms read at once where a statement does not hold the process (PostgreSQL):
 * while the database answers one batch's statements, this process builds another batch's
 * rooms. An initial lazy-loading /sync of 1,000 rooms on the benchmark's full dataset, over
 * HTTP: 894-931 ms one batch at a time, 616-702 ms two at a time (SQLite: 586-792 ms); in
 * process, interleaved, medians of 872, 714, 712 and 675 ms for one to four at a time.
 */
const BATCHES_IN_FLIGHT = 2;

/**
 * `/sync` answers built at once by one process: on SQLite, where a statement holds the process,
 * a few (each takes its turns on the event loop between its reads); on PostgreSQL, about as
 * many as the pool can serve while the process builds others.
 */
const SQLITE_BUILDS_AT_ONCE = 4;
const POSTGRES_BUILDS_AT_ONCE = 16;

function chunked<T>(items: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += CHUNK) out.push(items.slice(i, i + CHUNK));
  return out;
}

/** A room's timeline to read: the last events of (from, to] that `visible` lets through. */
interface RecentSpec {
  roomId: string;
  from: number;
  to: number;
  visible: ((position: number) => boolean) | null;
}

interface Recent {
  rows: EventRow[];
  limited: boolean;
}

/** What a joined room's section is built from. */
interface RoomResult {
  state: EventRow[];
  timeline: EventRow[];
  limited: boolean;
}

const NOTHING_NEW: RoomResult = { state: [], timeline: [], limited: false };

/** Whether a membership history (oldest first) was at `join` at stream position `position`. */
function wasJoinedAt(history: readonly MembershipHistoryEntry[], position: number): boolean {
  let value: string | undefined;
  for (const entry of history) {
    if (entry.streamOrdering > position) break;
    value = entry.membership;
  }
  return value === 'join';
}

export function createSyncService(
  ctx: ServiceContext,
  timeline: TimelineService,
  notifier: Notifier,
  sources: SyncSources,
) {
  const stores = () => ctx.storage.stores;
  const lazyMembers = new LazyMemberCache(ctx.cacheStats?.counter('lazy_members'));
  // Each user's memberships, dropped by any change naming the user (every membership event
  // of theirs does): an incremental /sync reads them all, however few rooms changed.
  const userMemberships = createUserCache<readonly UserMembershipRow[]>(ctx.storage.changes, {
    max: MEMBERSHIP_LISTS_KEPT,
    usersNamedBy: (change) => change.users,
    stats: ctx.cacheStats?.counter('sync_memberships'),
  });
  async function membershipsOf(userId: string): Promise<readonly UserMembershipRow[]> {
    const kept = userMemberships.get(userId);
    if (kept) return kept;
    const ticket = userMemberships.ticket();
    // With the memberships state resolution removed (no row of theirs any more): left rooms.
    const [current, removed] = await Promise.all([
      stores().sync.selectMembershipsOfUser(userId),
      stores().sync.selectRemovedMembershipsOfUser(userId),
    ]);
    const rows = removed.length === 0 ? current : [...current, ...removed];
    userMemberships.set(userId, rows, [userId], ticket);
    return rows;
  }
  /** Each room's version, by room ID (immutable; a few hundred thousand rooms at most). */
  const roomVersions = new LRUCache<string, string>({ max: ROOM_VERSIONS_KEPT });
  const batchesInFlight = statementsHoldProcess(ctx) ? 1 : BATCHES_IN_FLIGHT;
  // Admission control: at most this many answers are built at once, the rest wait their turn
  // outside the event loop, incremental syncs (a client waiting for news) before initial ones.
  // With every build in flight taking its turns on the event loop, thousands of clients coming
  // online at once kept every other request (`/versions` among them) waiting behind them.
  const builds = new PQueue({
    concurrency: statementsHoldProcess(ctx) ? SQLITE_BUILDS_AT_ONCE : POSTGRES_BUILDS_AT_ONCE,
  });

  /**
   * The highest stream position this process has read: positions only grow, so a `since`
   * token at or below it is not from the future and needs no read to tell (a token this
   * process issued always is; one from another worker may need the read).
   */
  let highestSeen = 0;
  async function currentPosition(): Promise<number> {
    const current = await stores().stream.selectCurrentPosition();
    if (current > highestSeen) highestSeen = current;
    return current;
  }

  function parseSince(token: string, current: number): number {
    const position = parseStreamToken(token);
    if (position === null) throw invalidParam('Invalid since token');
    if (position > current) throw invalidParam('The since token is from the future');
    return position;
  }

  /** One request's build of a sync response between `since` (null: initial) and `upTo`. */
  async function build(
    requester: Requester,
    since: number | null,
    upTo: number,
    options: SyncOptions,
  ): Promise<{ response: SyncResponse; empty: boolean; watched: Set<string> }> {
    const { userId, deviceId } = requester;
    const after = since ?? 0;
    const filter = options.filter;
    const roomFilter = filter.room;
    const timelineFilter = roomFilter?.timeline;
    const stateFilter = roomFilter?.state;
    const limit = Math.min(timelineFilter?.limit ?? DEFAULT_TIMELINE_LIMIT, MAX_TIMELINE_LIMIT);
    const lazy = stateFilter?.lazy_load_members === true;
    const redundant = stateFilter?.include_redundant_members === true;
    const deviceKey = `${userId}\u0000${deviceId}`;
    if (since === null) lazyMembers.reset(deviceKey);
    const now = ctx.now();
    // The device's own sources need nothing else this build reads: started now and awaited at
    // the end, so on PostgreSQL their round trip overlaps the rooms' reads instead of following
    // them. (Caught here so that a failure before the end is not also an unhandled rejection;
    // the await below still throws it.)
    const deviceSources = Promise.all([
      sources.toDevice.forSync(userId, deviceId, after, upTo),
      sources.deviceKeys.deviceListsSince(userId, after, upTo),
      sources.deviceKeys.oneTimeKeyCounts(userId, deviceId),
      sources.deviceKeys.unusedFallbackKeyTypes(userId, deviceId),
    ]);
    deviceSources.catch(() => undefined);

    const memberships = (await membershipsOf(userId)).filter(
      (m) => passesRoomLists(roomFilter, m.roomId) && m.streamOrdering <= upTo,
    );
    // (Independent reads, at once: on PostgreSQL each is a round trip.)
    const [withEvents, partialRooms, completions] = await Promise.all([
      since === null ? [] : stores().sync.selectRoomsWithEvents(since, upTo),
      // A client that does not lazy-load members expects every member in a room's state: a
      // room joined with partial state is held back until it is complete (as Synapse does).
      lazy ? [] : stores().partialState.selectPartialRoomIds(),
      // Rooms that became complete since the token: new to a client that does not lazy-load
      // (held back until now); a lazy-loading one is sent the member events of the gap's
      // senders, unknown until now.
      since === null
        ? new Map<string, PartialStateCompletion>()
        : stores().partialState.selectCompletionsBetween(
            memberships.filter((m) => m.membership === 'join').map((m) => m.roomId),
            since,
            upTo,
          ),
    ]);
    const active = new Set(withEvents);
    const heldBack = new Set(partialRooms);
    const joined = memberships.filter((m) => m.membership === 'join' && !heldBack.has(m.roomId));
    for (const roomId of completions.keys()) if (!heldBack.has(roomId)) active.add(roomId);
    // A room's version never changes: read once per process, then kept.
    const unknownVersions = memberships
      .map((m) => m.roomId)
      .filter((roomId) => !roomVersions.has(roomId));
    for (const part of chunked(unknownVersions))
      for (const [room, version] of await stores().sync.selectRoomVersions(part))
        roomVersions.set(room, version);
    const versionOf = (roomId: string) => (roomVersions.get(roomId) ?? '10') as RoomVersionId;

    /** The transaction IDs of the device's own events among these rooms' rows. */
    async function txnIdsOf(rooms: ReadonlyMap<string, readonly EventRow[]>) {
      const own = [...rooms.values()]
        .flat()
        .filter((r) => r.pdu.sender === userId)
        .map((r) => r.eventId);
      return stores().sync.selectTxnIds(userId, deviceId, [...rooms.keys()], own);
    }

    /** The aggregations (`unsigned.m.relations`) of these rooms' timeline events. */
    const aggregationsOf = (rooms: Iterable<readonly EventRow[]>) =>
      timeline.aggregationsOf([...rooms].flat().map(aggregationTargetOf), userId);

    async function toSyncEvents(
      rows: readonly EventRow[],
      roomId: string,
      txnIds: ReadonlyMap<string, string>,
      bundles: ReadonlyMap<string, JsonObject> = new Map(),
    ): Promise<SyncEvent[]> {
      const out: SyncEvent[] = [];
      for (const row of rows) {
        const event: ClientEvent = await timeline.present(row, versionOf(roomId));
        delete event.room_id;
        timeline.attachAggregations([event], bundles);
        const unsigned: JsonObject = {
          ...event.unsigned,
          age: Math.max(0, now - event.origin_server_ts),
        };
        const txnId = txnIds.get(row.eventId);
        if (txnId !== undefined) unsigned.transaction_id = txnId;
        event.unsigned = unsigned;
        const shaped = filter.event_fields ? projectEventFields(event, filter.event_fields) : event;
        out.push(shaped as unknown as SyncEvent);
      }
      return out;
    }

    /**
     * For each room, the last `limit` events of (from, to] passing the timeline filter and
     * `visible`: read backwards, every room still short of events in one statement per round.
     */
    async function recentEventsOf(specs: readonly RecentSpec[]): Promise<Map<string, Recent>> {
      const out = new Map<string, Recent>();
      let reading = specs.map((spec) => ({ spec, picked: [] as EventRow[], cursor: spec.to }));
      const finish = (entry: (typeof reading)[number], limited: boolean) =>
        out.set(entry.spec.roomId, { rows: entry.picked.reverse(), limited });
      // The first read asks for just enough when nothing is filtered out (the usual case).
      let size = limit + 1;
      while (reading.length > 0) {
        const due = reading.filter((entry) => {
          if (entry.cursor > entry.spec.from) return true;
          finish(entry, false);
          return false;
        });
        if (due.length === 0) break;
        const batches = await stores().rooms.selectLatestEventsOfRooms(
          due.map(({ spec, cursor }) => ({ roomId: spec.roomId, after: spec.from, upTo: cursor })),
          size,
        );
        reading = [];
        for (const entry of due) {
          const batch = batches.get(entry.spec.roomId) ?? [];
          const { visible } = entry.spec;
          let full = false;
          for (const row of batch) {
            entry.cursor = row.streamOrdering - 1;
            if (visible && !visible(row.streamOrdering)) continue;
            if (!passesEventFilter(timelineFilter, row.pdu.type, row.pdu.sender)) continue;
            if (entry.picked.length === limit) {
              full = true;
              break;
            }
            entry.picked.push(row);
          }
          if (full) finish(entry, true);
          else if (batch.length < size) finish(entry, false);
          else reading.push(entry);
        }
        size = SCAN_BATCH;
      }
      return out;
    }

    /** Replaces each room's state rows at or after its position with the event each key had before. */
    async function stateBeforeOf(
      items: readonly { roomId: string; rows: EventRow[]; position: number }[],
    ): Promise<Map<string, EventRow[]>> {
      const requests = items.flatMap(({ roomId, rows, position }) => {
        const later = rows.filter((r) => r.streamOrdering >= position);
        if (later.length === 0) return [];
        const keys = later.map((r) => [r.pdu.type, r.pdu.state_key ?? ''] as const);
        return [{ roomId, keys, position }];
      });
      const earlier = await stores().sync.selectStateBefore(requests);
      return new Map(
        items.map(({ roomId, rows, position }) => {
          const kept = rows.filter((r) => r.streamOrdering < position);
          return [
            roomId,
            kept.length === rows.length ? rows : [...kept, ...(earlier.get(roomId) ?? [])],
          ];
        }),
      );
    }

    /** Members a lazy-loading client needs for these senders and has not been sent yet. */
    function membersToSend(roomId: string, senders: Iterable<string>): string[] {
      const wanted = new Set(senders);
      wanted.add(userId);
      return [...wanted].filter(
        (member) => redundant || !lazyMembers.has(deviceKey, roomId, member),
      );
    }

    const passesState = (row: EventRow) =>
      passesEventFilter(stateFilter, row.pdu.type, row.pdu.sender);

    /** State of each room the client gets in full: as of the start of its timeline. */
    async function fullStateOf(
      rooms: readonly { roomId: string; timeline: readonly EventRow[]; start: number }[],
    ): Promise<Map<string, EventRow[]>> {
      const roomIds = rooms.map((r) => r.roomId);
      let current: Map<string, EventRow[]>;
      if (lazy) {
        const [others, members] = await Promise.all([
          stores().sync.selectStateWithoutMembers(roomIds),
          stores().rooms.selectStateEventsOfRooms(
            rooms.map(({ roomId, timeline: rows }) => ({
              roomId,
              keys: membersToSend(
                roomId,
                rows.map((r) => r.pdu.sender),
              ).map((m) => [MEMBER, m] as const),
            })),
          ),
        ]);
        current = new Map(
          roomIds.map((id) => [id, [...(others.get(id) ?? []), ...(members.get(id) ?? [])]]),
        );
      } else {
        current = await stores().rooms.selectAllStateEventsOfRooms(roomIds);
      }
      const before = await stateBeforeOf(
        rooms.map(({ roomId, start }) => ({
          roomId,
          rows: current.get(roomId) ?? [],
          position: start,
        })),
      );
      return new Map([...before].map(([roomId, rows]) => [roomId, rows.filter(passesState)]));
    }

    function rememberMembers(
      roomId: string,
      stateRows: readonly EventRow[],
      timelineRows: readonly EventRow[],
    ) {
      if (!lazy) return;
      for (const row of [...stateRows, ...timelineRows])
        if (row.pdu.type === MEMBER && row.pdu.state_key !== undefined)
          lazyMembers.add(deviceKey, roomId, row.pdu.state_key);
    }

    const prevBatch = (rows: readonly EventRow[], fallback: number) =>
      streamToken(rows.length > 0 ? (rows[0] as EventRow).streamOrdering - 1 : fallback);
    const timelineStart = (rows: readonly EventRow[], fallback: number) =>
      rows[0]?.streamOrdering ?? fallback;

    // Rooms the user is joined to, a batch of rooms at a time.
    const joinedResults = new Map<string, RoomResult>();
    /** Rooms joined since the last sync (an incremental one): the client is new to their members. */
    const joinedSinceLast = new Set<string>();
    await forEachBatch(joined, ROOM_BATCH, batchesInFlight, async (batch) => {
      // New to the client: an initial sync, or joined since (not a join → join profile change).
      const joinedSince =
        since === null ? [] : batch.filter((m) => m.streamOrdering > since).map((m) => m.roomId);
      const histories = await stores().rooms.selectMembershipHistories(joinedSince, userId);
      const isNew = (m: UserMembershipRow) =>
        since === null ||
        (!lazy && completions.has(m.roomId)) ||
        (m.streamOrdering > since && !wasJoinedAt(histories.get(m.roomId) ?? [], since));
      const picked = batch
        .map((membership) => ({ membership, isNew: isNew(membership) }))
        .filter((r) => r.isNew || options.fullState || active.has(r.membership.roomId));
      if (since !== null)
        for (const r of picked) if (r.isNew) joinedSinceLast.add(r.membership.roomId);
      if (picked.length === 0) return;

      const recent = await recentEventsOf(
        picked.map(({ membership, isNew }) => ({
          roomId: membership.roomId,
          from: isNew ? 0 : after,
          to: upTo,
          visible: null,
        })),
      );
      // A new room's timeline reaching back before the join: as far as its history is visible.
      const reachingBack = picked
        .filter(({ membership, isNew }) => {
          const rows = recent.get(membership.roomId)?.rows ?? [];
          return isNew && rows.some((r) => r.streamOrdering < membership.streamOrdering);
        })
        .map(({ membership }) => membership.roomId);
      if (reachingBack.length > 0) {
        const visible = await timeline.visibilities(reachingBack, userId);
        const again = await recentEventsOf(
          reachingBack.map((roomId) => ({
            roomId,
            from: 0,
            to: upTo,
            visible: visible.get(roomId) ?? null,
          })),
        );
        for (const [roomId, result] of again) recent.set(roomId, result);
      }
      // Between a batch's kinds of reads too: on SQLite each holds the process while it runs.
      await yieldToEventLoop();
      const planned = picked.map(({ membership, isNew }) => {
        const { rows, limited } = recent.get(membership.roomId) ?? { rows: [], limited: false };
        return { roomId: membership.roomId, isNew, timeline: rows, limited };
      });

      const inFull = planned.filter((r) => r.isNew || options.fullState);
      const full = await fullStateOf(
        inFull.map((r) => ({ ...r, start: timelineStart(r.timeline, upTo + 1) })),
      );
      for (const r of inFull)
        joinedResults.set(r.roomId, {
          state: full.get(r.roomId) ?? [],
          timeline: r.timeline,
          limited: r.limited,
        });
      await yieldToEventLoop();

      // The rest: the state that changed in the gap before the timeline, then the members the
      // timeline's senders need (lazy loading) that the client has not had.
      const updated = planned
        .filter((r) => !(r.isNew || options.fullState))
        .map((r) => ({ ...r, start: timelineStart(r.timeline, upTo + 1) }));
      const gaps = await stores().sync.selectStateChanges(
        updated.filter((r) => r.limited).map((r) => ({ roomId: r.roomId, after, before: r.start })),
        { withoutMembers: lazy },
      );
      let members = new Map<string, EventRow[]>();
      if (lazy) {
        // A room completed since the token: the senders of the events the client had during
        // the gap, whose member events were not known then.
        const gapSenders = await stores().sync.selectSendersBetween(
          updated.flatMap(({ roomId }) => {
            const completion = completions.get(roomId);
            return completion
              ? [
                  {
                    roomId,
                    after: completion.joinPosition,
                    upTo: Math.min(after, completion.position),
                  },
                ]
              : [];
          }),
        );
        const current = await stores().rooms.selectStateEventsOfRooms(
          updated.map(({ roomId, timeline: rows }) => ({
            roomId,
            keys: membersToSend(roomId, [
              ...rows.map((r) => r.pdu.sender),
              ...(gapSenders.get(roomId) ?? []),
            ])
              .filter((m) => !rows.some((r) => r.pdu.type === MEMBER && r.pdu.state_key === m))
              .map((m) => [MEMBER, m] as const),
          })),
        );
        members = await stateBeforeOf(
          updated.map(({ roomId, start }) => ({
            roomId,
            rows: current.get(roomId) ?? [],
            position: start,
          })),
        );
      }
      // Entries state resolution changed while the timeline's received events arrived (set to
      // an event of the room's past or of another branch, so in no timeline): sent as state.
      const fromElsewhere = (row: EventRow) =>
        row.pdu.sender.slice(row.pdu.sender.indexOf(':') + 1) !== ctx.settings.serverName;
      const resolved = await stores().sync.selectResolvedStateChanges(
        updated
          .filter((r) => r.timeline.some(fromElsewhere))
          .map((r) => ({ roomId: r.roomId, after: r.start - 1, before: upTo + 1 })),
        { withoutMembers: lazy },
      );
      for (const r of updated) {
        const inTimeline = new Set(r.timeline.map((row) => row.eventId));
        const gap = [
          ...(gaps.get(r.roomId) ?? []),
          ...(resolved.get(r.roomId) ?? []).filter((row) => !inTimeline.has(row.eventId)),
        ];
        const state = lazy
          ? [...gap.filter((row) => row.pdu.type !== MEMBER), ...(members.get(r.roomId) ?? [])]
          : gap;
        joinedResults.set(r.roomId, {
          state: state.filter(passesState),
          timeline: r.timeline,
          limited: r.limited,
        });
      }
    });

    const joinedIds = joined.map((m) => m.roomId);
    // Presence, with that of users the client comes to share a room with (news even if
    // unchanged): it needs only the rooms read above, so it is read while the rest is (on
    // PostgreSQL its two round trips overlap the others) and awaited at the end.
    const presenceRead = (async () => {
      const newlyShared =
        since === null
          ? undefined
          : {
              users: await stores().sync.selectUsersJoinedBetween(
                joinedIds.filter((roomId) => active.has(roomId) && !joinedSinceLast.has(roomId)),
                since,
                upTo,
              ),
              rooms: [...joinedSinceLast],
            };
      return sources.presence.changesSince(userId, after, upTo, newlyShared);
    })();
    presenceRead.catch(() => undefined);

    // Ephemeral events and room account data, for every joined room (they change without events).
    const ephemeralFilter = roomFilter?.ephemeral;
    const ephemeral = new Map<string, SyncEvent[]>();
    const addEphemeral = (roomId: string, event: { type: string; content: unknown }) => {
      if (!passesRoomLists(ephemeralFilter, roomId)) return;
      if (!passesEventFilter(ephemeralFilter, event.type, undefined)) return;
      const list = ephemeral.get(roomId) ?? [];
      list.push(event as SyncEvent);
      ephemeral.set(roomId, list);
    };
    // These sources are independent: on PostgreSQL each is a round trip, so they go at once.
    const [ephemeralParts, accountData, membersChanged, notified] = await Promise.all([
      Promise.all(
        chunked(joinedIds).map((part) =>
          Promise.all([
            sources.typing.ephemeralSince(part, after, upTo),
            sources.receipts.ephemeralSince(userId, part, after, upTo),
          ]),
        ),
      ),
      sources.accountData.changesSince(userId, after, upTo),
      since === null
        ? new Set<string>()
        : stores().sync.selectRoomsWithMembershipChanges(
            joinedIds.filter((roomId) => active.has(roomId)),
            since,
            upTo,
          ),
      // Rooms whose unread counts rose since the token without an event (push rules evaluated
      // after the event: services/push/evaluation.ts).
      since === null ? [] : (sources.unread?.notifiedBetween?.(userId, since, upTo) ?? []),
    ]);
    for (const [typing, receipts] of ephemeralParts) {
      for (const [roomId, event] of typing) addEphemeral(roomId, event);
      for (const [roomId, event] of receipts) addEphemeral(roomId, event);
    }
    const roomAccountData = (roomId: string): SyncEvent[] =>
      (accountData.rooms.get(roomId) ?? []).filter(
        (e) =>
          passesRoomLists(roomFilter?.account_data, roomId) &&
          passesEventFilter(roomFilter?.account_data, e.type, undefined),
      ) as unknown as SyncEvent[];

    const roomsInResponse = new Set<string>();
    for (const roomId of joinedIds) {
      if (joinedResults.has(roomId) || ephemeral.has(roomId) || roomAccountData(roomId).length > 0)
        roomsInResponse.add(roomId);
    }
    const joinedSet = new Set(joinedIds);
    for (const roomId of notified) if (joinedSet.has(roomId)) roomsInResponse.add(roomId);
    // The summary may be left out when it has not changed since the last sync (the spec: a
    // count "may be omitted" when unchanged): it is sent on an initial sync, and on an
    // incremental one for the rooms where someone's membership changed since the token.
    const summarised = [...roomsInResponse].filter(
      (roomId) => since === null || membersChanged.has(roomId),
    );
    const summarisedSet = new Set(summarised);
    const counts = new Map<string, { joined: number; invited: number }>();
    for (const part of chunked(summarised))
      for (const [room, count] of await stores().sync.selectMemberCounts(part))
        counts.set(room, count);

    const joinSections = new Map<string, SyncResponse['rooms']['join'][string]>();
    await forEachBatch([...roomsInResponse], ROOM_BATCH, batchesInFlight, async (roomIds) => {
      const results = new Map(
        roomIds.map((roomId) => [roomId, joinedResults.get(roomId) ?? NOTHING_NEW]),
      );
      const [heroes, txnIds, bundles, unreadOrNone] = await Promise.all([
        heroesOf(
          roomIds.filter((roomId) => summarisedSet.has(roomId)),
          userId,
        ),
        txnIdsOf(new Map([...results].map(([roomId, r]) => [roomId, [...r.state, ...r.timeline]]))),
        aggregationsOf([...results.values()].map((r) => r.timeline)),
        sources.unread?.unreadOf(userId, roomIds, upTo),
      ]);
      const unread = unreadOrNone ?? new Map();
      await yieldToEventLoop();
      // With `unread_thread_notifications`, the room's counts are the main timeline's.
      const byThread = timelineFilter?.unread_thread_notifications === true;
      for (const [roomId, result] of results) {
        rememberMembers(roomId, result.state, result.timeline);
        const count = counts.get(roomId) ?? { joined: 0, invited: 0 };
        joinSections.set(roomId, {
          summary: summarisedSet.has(roomId)
            ? {
                'm.heroes': heroes.get(roomId) ?? [],
                'm.joined_member_count': count.joined,
                'm.invited_member_count': count.invited,
              }
            : {},
          state: { events: await toSyncEvents(result.state, roomId, txnIds) },
          timeline: {
            events: await toSyncEvents(result.timeline, roomId, txnIds, bundles),
            limited: result.limited,
            prev_batch: prevBatch(result.timeline, upTo),
          },
          ephemeral: { events: ephemeral.get(roomId) ?? [] },
          account_data: { events: roomAccountData(roomId) },
          unread_notifications: (byThread
            ? unread.get(roomId)?.main
            : unread.get(roomId)?.total) ?? { notification_count: 0, highlight_count: 0 },
          ...(byThread
            ? {
                unread_thread_notifications: Object.fromEntries(
                  unread.get(roomId)?.threads ?? new Map(),
                ),
              }
            : {}),
        });
      }
    });
    const join: SyncResponse['rooms']['join'] = {};
    for (const roomId of roomsInResponse) {
      const section = joinSections.get(roomId);
      if (section) join[roomId] = section;
    }

    // Invites and knocks: the stripped state of the room, with the user's own member event.
    const invite: SyncResponse['rooms']['invite'] = {};
    const knock: SyncResponse['rooms']['knock'] = {};
    let pending = memberships.filter(
      (m) =>
        (m.membership === 'invite' || m.membership === 'knock') &&
        (since === null || m.streamOrdering > since),
    );
    // Invite blocking (MSC4380): pending invites are not served while it is on.
    if (pending.some((m) => m.membership === 'invite') && (await invitesBlocked(stores(), userId)))
      pending = pending.filter((m) => m.membership !== 'invite');
    const stripped = await strippedStateOf(pending, userId);
    for (const membership of pending) {
      const events = stripped.get(membership.roomId) ?? [];
      if (membership.membership === 'invite')
        invite[membership.roomId] = { invite_state: { events } };
      else knock[membership.roomId] = { knock_state: { events } };
    }

    // Rooms left (or banned from, or rejected): history up to the leave, and the state then.
    const leaveSections = new Map<string, SyncResponse['rooms']['leave'][string]>();
    const left = memberships.filter(
      (m) =>
        (m.membership === 'leave' || m.membership === 'ban') &&
        (since === null ? roomFilter?.include_leave === true : m.streamOrdering > since),
    );
    await forEachBatch(left, ROOM_BATCH, batchesInFlight, async (batch) => {
      const visible = await timeline.visibilities(
        batch.map((m) => m.roomId),
        userId,
      );
      const recent = await recentEventsOf(
        batch.map(({ roomId, streamOrdering: leftAt }) => {
          const visibleInRoom = visible.get(roomId);
          return {
            roomId,
            from: after,
            to: leftAt,
            visible: (position: number) =>
              position === leftAt || (visibleInRoom?.(position) ?? false),
          };
        }),
      );
      const rowsOf = (roomId: string) => recent.get(roomId) ?? { rows: [], limited: false };
      const states = await fullStateOf(
        batch.map(({ roomId, streamOrdering: leftAt }) => ({
          roomId,
          timeline: rowsOf(roomId).rows,
          start: timelineStart(rowsOf(roomId).rows, leftAt + 1),
        })),
      );
      const txnIds = await txnIdsOf(
        new Map(
          batch.map(({ roomId }) => [
            roomId,
            [...(states.get(roomId) ?? []), ...rowsOf(roomId).rows],
          ]),
        ),
      );
      const bundles = await aggregationsOf(batch.map(({ roomId }) => rowsOf(roomId).rows));
      for (const { roomId, streamOrdering: leftAt } of batch) {
        const { rows, limited } = rowsOf(roomId);
        leaveSections.set(roomId, {
          state: { events: await toSyncEvents(states.get(roomId) ?? [], roomId, txnIds) },
          timeline: {
            events: await toSyncEvents(rows, roomId, txnIds, bundles),
            limited,
            prev_batch: prevBatch(rows, leftAt),
          },
          account_data: { events: roomAccountData(roomId) },
        });
      }
    });
    // In the order of the memberships, whichever batch finished first.
    const leave: SyncResponse['rooms']['leave'] = {};
    for (const { roomId } of left) {
      const section = leaveSections.get(roomId);
      if (section) leave[roomId] = section;
    }

    const globalAccountData = accountData.global.filter((e) =>
      passesEventFilter(filter.account_data, e.type, undefined),
    );
    const presenceChanges = await presenceRead;
    const [toDevice, deviceLists, oneTimeKeyCounts, unusedFallbackKeyTypes] = await deviceSources;
    const presence = presenceChanges
      .filter((e) => passesEventFilter(filter.presence, e.type, e.sender))
      .slice(0, filter.presence?.limit ?? undefined);
    const response: SyncResponse = {
      next_batch: streamToken(upTo),
      rooms: { join, invite, knock, leave },
      account_data: { events: globalAccountData as unknown as SyncEvent[] },
      presence: { events: presence as unknown as SyncEvent[] },
      to_device: { events: toDevice as unknown as SyncEvent[] },
      device_lists: deviceLists,
      device_one_time_keys_count: oneTimeKeyCounts,
      device_unused_fallback_key_types: unusedFallbackKeyTypes,
    };
    const empty =
      roomsInResponse.size === 0 &&
      Object.keys(invite).length === 0 &&
      Object.keys(knock).length === 0 &&
      Object.keys(leave).length === 0 &&
      globalAccountData.length === 0 &&
      presence.length === 0 &&
      toDevice.length === 0 &&
      deviceLists.changed.length === 0 &&
      deviceLists.left.length === 0;
    // A long-poll waits on the rooms the user is in, invited to or knocking on.
    const watched = new Set(
      memberships
        .filter((m) => m.membership !== 'leave' && m.membership !== 'ban')
        .map((m) => m.roomId),
    );
    return { response, empty, watched };
  }

  /** Up to five other members of each room for naming it (joined first, then invited), by user ID. */
  async function heroesOf(roomIds: readonly string[], userId: string) {
    const joined = await stores().sync.selectMembersSamples(roomIds, 'join', userId, MAX_HEROES);
    const short = roomIds.filter((roomId) => (joined.get(roomId)?.length ?? 0) < MAX_HEROES);
    const invited = await stores().sync.selectMembersSamples(short, 'invite', userId, MAX_HEROES);
    return new Map(
      roomIds.map((roomId) => [
        roomId,
        [...(joined.get(roomId) ?? []), ...(invited.get(roomId) ?? [])].slice(0, MAX_HEROES),
      ]),
    );
  }

  /** The stripped state an invitee or knocker sees, with their member event and the inviter's. */
  async function strippedStateOf(
    memberships: readonly UserMembershipRow[],
    userId: string,
  ): Promise<Map<string, SyncEvent[]>> {
    const rows = await stores().rooms.selectStateEventsOfRooms(
      memberships.map(({ roomId }) => ({
        roomId,
        keys: [
          ...STRIPPED_STATE_TYPES.map((type) => [type, ''] as const),
          [MEMBER, userId] as const,
        ],
      })),
    );
    const ownEvent = (roomId: string) =>
      rows.get(roomId)?.find((r) => r.pdu.type === MEMBER && r.pdu.state_key === userId);
    // Clients name the inviter from their member event (Hydrogen reads it for every invite).
    const inviters = await stores().rooms.selectStateEventsOfRooms(
      memberships.flatMap(({ roomId }) => {
        const own = ownEvent(roomId);
        return own && own.pdu.sender !== userId
          ? [{ roomId, keys: [[MEMBER, own.pdu.sender] as const] }]
          : [];
      }),
    );
    // (A knock on a room of another server keeps the `knock_room_state` it answered.)
    const remoteInvites = await stores().roomDag.selectInviteRoomStates(
      memberships
        .filter((m) => m.membership === 'invite' || m.membership === 'knock')
        .map((m) => m.roomId),
      userId,
    );
    return new Map(
      memberships.map(({ roomId }) => {
        const ownId = ownEvent(roomId)?.eventId;
        const events = [...(rows.get(roomId) ?? []), ...(inviters.get(roomId) ?? [])].map(
          (row) => ({
            type: row.pdu.type,
            state_key: row.pdu.state_key ?? '',
            content: row.pdu.content,
            sender: row.pdu.sender,
            ...(row.eventId === ownId
              ? { event_id: row.eventId, origin_server_ts: row.pdu.origin_server_ts }
              : {}),
          }),
        );
        // An invite from (or a knock on) a room on another server: the stripped state its
        // server sent.
        const sent = remoteInvites.get(roomId);
        if (sent !== undefined) {
          const have = new Set(events.map((e) => `${e.type}\u0000${e.state_key}`));
          for (const entry of JSON.parse(sent) as (typeof events)[number][]) {
            if (typeof entry.type !== 'string' || typeof entry.state_key !== 'string') continue;
            if (!have.has(`${entry.type}\u0000${entry.state_key}`)) events.unshift(entry);
          }
        }
        return [roomId, events];
      }),
    );
  }

  /**
   * The last empty answer of each device's incremental sync, so that its next long-poll (from
   * that answer's next_batch) need not build the same empty answer again when nothing
   * concerning the user has reached the notifier since. Idle clients poll again every 30 s or
   * so: at 10,000 of them that was over 300 builds a second.
   */
  const quietAnswers = new Map<string, QuietAnswer>();

  function keepQuiet(key: string, answer: QuietAnswer): void {
    quietAnswers.delete(key);
    quietAnswers.set(key, answer);
    if (quietAnswers.size > MAX_QUIET_ANSWERS) {
      const oldest = quietAnswers.keys().next().value;
      if (oldest !== undefined) quietAnswers.delete(oldest);
    }
  }

  /** An empty answer kept earlier, still true now, for this request (or undefined). */
  function quietAnswerFor(
    key: string,
    requester: Requester,
    options: SyncOptions,
    filterKey: string,
  ): QuietAnswer | undefined {
    const kept = options.since === undefined ? undefined : quietAnswers.get(key);
    if (!kept || options.fullState || options.since !== kept.since || filterKey !== kept.filter)
      return undefined;
    if (notifier.changedSince({ userId: requester.userId, rooms: kept.rooms }, kept.mark)) {
      quietAnswers.delete(key);
      return undefined;
    }
    // Nothing concerning up to now: later checks need only look at what comes after.
    kept.mark = notifier.mark();
    return kept;
  }

  return {
    async sync(requester: Requester, options: SyncOptions): Promise<SyncResponse> {
      // While it runs (and a little after) the user is not timed out to offline.
      const ended = sources.presence.syncing(requester.userId, options.setPresence);
      try {
        return await syncOnce(requester, options);
      } finally {
        ended();
      }
    },
  };

  async function syncOnce(requester: Requester, options: SyncOptions): Promise<SyncResponse> {
    const key = `${requester.userId}\u0000${requester.deviceId}`;
    const filterKey = JSON.stringify(options.filter);
    const wantsPresence = options.setPresence === 'offline' ? null : options.setPresence;
    // A poll from a kept empty answer that is still true: its token is one this server
    // issued, and the user's presence is as it was then (a change would have concerned
    // them), so neither needs reading.
    let quiet = quietAnswerFor(key, requester, options, filterKey);
    let since: number | null;
    if (quiet) {
      since = parseStreamToken(quiet.since);
    } else if (options.since === undefined) {
      since = null;
    } else {
      const position = parseStreamToken(options.since);
      since =
        position !== null && position <= highestSeen
          ? position
          : parseSince(options.since, await currentPosition());
    }
    if (wantsPresence !== null && quiet?.presence !== wantsPresence) {
      await sources.presence.setFromSync(requester.userId, wantsPresence);
      if (quiet) quiet = quietAnswerFor(key, requester, options, filterKey);
    }
    // Syncing with set_presence=online is activity (recorded at most every few seconds).
    if (wantsPresence === 'online' && (await sources.presence.activity(requester.userId, true)))
      if (quiet) quiet = quietAnswerFor(key, requester, options, filterKey);
    const deadline = ctx.now() + options.timeoutMs;
    for (;;) {
      let mark: number;
      let built: Awaited<ReturnType<typeof build>>;
      if (quiet) {
        // Nothing for this user since that answer was built: it is still the answer.
        mark = quiet.mark;
        built = { response: quiet.response, empty: true, watched: new Set(quiet.rooms) };
        quiet = undefined;
      } else {
        const from = since;
        const admitted = await builds.add(
          async () => {
            // Marked before the read: whatever commits after it reaches the notifier after
            // the mark.
            const marked = notifier.mark();
            const upTo = await currentPosition();
            return { mark: marked, built: await build(requester, from, upTo, options) };
          },
          { priority: from === null ? 0 : 1, throwOnTimeout: true },
        );
        mark = admitted.mark;
        built = admitted.built;
      }
      const { response, empty, watched } = built;
      const remaining = deadline - ctx.now();
      /** `quietSince`: a mark up to which nothing concerning the user has come. */
      const answer = (quietSince = mark): SyncResponse => {
        if (!empty || since === null || options.fullState) quietAnswers.delete(key);
        else
          keepQuiet(key, {
            since: response.next_batch,
            filter: filterKey,
            mark: quietSince,
            rooms: watched,
            presence: wantsPresence,
            response,
          });
        return response;
      };
      if (!empty || since === null || options.fullState || remaining <= 0) return answer();
      if (options.signal?.aborted || notifier.closed) return answer();
      const interest = { userId: requester.userId, rooms: watched };
      const changed = await notifier.waitForChange(interest, mark, remaining, options.signal);
      // Not woken: nothing concerning came from the mark until now.
      if (!changed) return answer(notifier.mark());
    }
  }
}

export type SyncService = ReturnType<typeof createSyncService>;
export type { RoomEventFilter };
