/**
 * GET /sync: everything that changed for a user's device between two points of the global
 * stream, or everything on an initial sync; a long-poll waits for the next change that
 * concerns the user (the notifier), never polls the database.
 * https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3sync
 */
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
import type { EventRow, UserMembershipRow } from '../storage/index.js';
import type { Requester, ServiceContext } from './context.js';
import { LazyMemberCache } from './lazy-member-cache.js';
import type { Notifier } from './notifier.js';
import type { SyncSources } from './sync-sources.js';
import type { TimelineService } from './timeline.js';

export type PresenceState = 'online' | 'offline' | 'unavailable';

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
/** The state an invitee or knocker sees before joining (stripped state). */
const STRIPPED_STATE_TYPES = [
  'm.room.create',
  'm.room.join_rules',
  'm.room.name',
  'm.room.avatar',
  'm.room.canonical_alias',
  'm.room.encryption',
  'm.room.topic',
] as const;

/** Lets other requests run between rooms: a big sync must not stall the server. */
const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Rooms built at once: their queries overlap on PostgreSQL's connection pool instead of
 * waiting for one round trip after another (SQLite runs them in turn either way).
 */
const ROOM_CONCURRENCY = 8;

/** Runs `fn` for every item, ROOM_CONCURRENCY at a time, freeing the event loop between groups. */
async function forEachRoom<T>(items: readonly T[], fn: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += ROOM_CONCURRENCY) {
    await yieldToEventLoop();
    await Promise.all(items.slice(i, i + ROOM_CONCURRENCY).map(fn));
  }
}

function chunked<T>(items: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += CHUNK) out.push(items.slice(i, i + CHUNK));
  return out;
}

export function createSyncService(
  ctx: ServiceContext,
  timeline: TimelineService,
  notifier: Notifier,
  sources: SyncSources,
) {
  const stores = () => ctx.storage.stores;
  const lazyMembers = new LazyMemberCache();

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

    const memberships = (await stores().sync.selectMembershipsOfUser(userId)).filter(
      (m) => passesRoomLists(roomFilter, m.roomId) && m.streamOrdering <= upTo,
    );
    const active = new Set(
      since === null ? [] : await stores().sync.selectRoomsWithEvents(since, upTo),
    );
    const joined = memberships.filter((m) => m.membership === 'join');
    const versions = new Map<string, string>();
    for (const part of chunked(memberships.map((m) => m.roomId)))
      for (const [room, version] of await stores().sync.selectRoomVersions(part))
        versions.set(room, version);
    const versionOf = (roomId: string) => (versions.get(roomId) ?? '10') as RoomVersionId;

    async function toSyncEvents(rows: readonly EventRow[], roomId: string): Promise<SyncEvent[]> {
      const own = rows.filter((r) => r.pdu.sender === userId).map((r) => r.eventId);
      const txnIds = await stores().sync.selectTxnIds(userId, deviceId, roomId, own);
      const out: SyncEvent[] = [];
      for (const row of rows) {
        const event: ClientEvent = await timeline.present(row, versionOf(roomId));
        delete event.room_id;
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

    /** The last `limit` events of (from, to] passing the timeline filter and `visible`. */
    async function recentEvents(
      roomId: string,
      from: number,
      to: number,
      visible: ((position: number) => boolean) | null,
    ): Promise<{ rows: EventRow[]; limited: boolean }> {
      const picked: EventRow[] = [];
      let cursor = to;
      // The first read asks for just enough when nothing is filtered out (the usual case).
      let size = limit + 1;
      for (;;) {
        if (cursor <= from) return { rows: picked.reverse(), limited: false };
        const batch = await stores().rooms.selectRoomEvents(roomId, {
          after: from,
          upTo: cursor,
          direction: 'backward',
          limit: size,
        });
        for (const row of batch) {
          cursor = row.streamOrdering - 1;
          if (visible && !visible(row.streamOrdering)) continue;
          if (!passesEventFilter(timelineFilter, row.pdu.type, row.pdu.sender)) continue;
          if (picked.length === limit) return { rows: picked.reverse(), limited: true };
          picked.push(row);
        }
        if (batch.length < size) return { rows: picked.reverse(), limited: false };
        size = SCAN_BATCH;
      }
    }

    /** Replaces state rows at or after `position` with the event each key had before it. */
    async function stateBefore(roomId: string, rows: EventRow[], position: number) {
      const later = rows.filter((r) => r.streamOrdering >= position);
      if (later.length === 0) return rows;
      const keys = later.map((r) => [r.pdu.type, r.pdu.state_key ?? ''] as const);
      const earlier = await stores().sync.selectStateBefore(roomId, keys, position);
      return [...rows.filter((r) => r.streamOrdering < position), ...earlier];
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

    /** State of a room the client gets in full: as of the start of its timeline. */
    async function fullState(
      roomId: string,
      timelineRows: readonly EventRow[],
      start: number,
    ): Promise<EventRow[]> {
      let rows: EventRow[];
      if (lazy) {
        const members = membersToSend(
          roomId,
          timelineRows.map((r) => r.pdu.sender),
        );
        rows = [
          ...(await stores().sync.selectStateWithoutMembers(roomId)),
          ...(await stores().rooms.selectStateEvents(
            roomId,
            members.map((m) => [MEMBER, m] as const),
          )),
        ];
      } else {
        rows = await stores().rooms.selectAllStateEvents(roomId);
      }
      return (await stateBefore(roomId, rows, start)).filter(passesState);
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

    // Rooms the user is joined to.
    const joinedResults = new Map<
      string,
      { state: EventRow[]; timeline: EventRow[]; limited: boolean }
    >();
    await forEachRoom(joined, async (membership) => {
      const { roomId } = membership;
      // New to the client: an initial sync, or joined since (not a join → join profile change).
      const isNew =
        since === null ||
        (membership.streamOrdering > since && !(await wasJoinedAt(roomId, userId, since)));
      if (!isNew && !options.fullState && !active.has(roomId)) return;
      let timelineRows: EventRow[];
      let limited: boolean;
      if (isNew) {
        // The last events of the room, as far as its history is visible to the user.
        let recent = await recentEvents(roomId, 0, upTo, null);
        if (recent.rows.some((r) => r.streamOrdering < membership.streamOrdering)) {
          const visible = await timeline.visibility(roomId, userId);
          recent = await recentEvents(roomId, 0, upTo, visible);
        }
        ({ rows: timelineRows, limited } = recent);
      } else {
        ({ rows: timelineRows, limited } = await recentEvents(roomId, after, upTo, null));
      }
      const start = timelineRows[0]?.streamOrdering ?? upTo + 1;
      let stateRows: EventRow[];
      if (isNew || options.fullState) {
        stateRows = await fullState(roomId, timelineRows, start);
      } else {
        // The state that changed in the gap before the timeline, then the members the
        // timeline's senders need (lazy loading) that the client has not had.
        const gap = limited ? await stores().sync.selectStateChanges(roomId, after, start) : [];
        stateRows = lazy ? gap.filter((r) => r.pdu.type !== MEMBER) : gap;
        if (lazy) {
          const members = membersToSend(
            roomId,
            timelineRows.map((r) => r.pdu.sender),
          ).filter(
            (m) => !timelineRows.some((r) => r.pdu.type === MEMBER && r.pdu.state_key === m),
          );
          const memberRows = await stores().rooms.selectStateEvents(
            roomId,
            members.map((m) => [MEMBER, m] as const),
          );
          stateRows.push(...(await stateBefore(roomId, memberRows, start)));
        }
        stateRows = stateRows.filter(passesState);
      }
      joinedResults.set(roomId, { state: stateRows, timeline: timelineRows, limited });
    });

    // Ephemeral events and room account data, for every joined room (they change without events).
    const joinedIds = joined.map((m) => m.roomId);
    const ephemeralFilter = roomFilter?.ephemeral;
    const ephemeral = new Map<string, SyncEvent[]>();
    const addEphemeral = (roomId: string, event: { type: string; content: unknown }) => {
      if (!passesRoomLists(ephemeralFilter, roomId)) return;
      if (!passesEventFilter(ephemeralFilter, event.type, undefined)) return;
      const list = ephemeral.get(roomId) ?? [];
      list.push(event as SyncEvent);
      ephemeral.set(roomId, list);
    };
    for (const part of chunked(joinedIds)) {
      for (const [roomId, event] of await sources.typing.ephemeralSince(part, after, upTo))
        addEphemeral(roomId, event);
      for (const [roomId, event] of await sources.receipts.ephemeralSince(
        userId,
        part,
        after,
        upTo,
      ))
        addEphemeral(roomId, event);
    }
    const accountData = await sources.accountData.changesSince(userId, after, upTo);
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
    const counts = new Map<string, { joined: number; invited: number }>();
    for (const part of chunked([...roomsInResponse]))
      for (const [room, count] of await stores().sync.selectMemberCounts(part))
        counts.set(room, count);

    const joinSections = new Map<string, SyncResponse['rooms']['join'][string]>();
    await forEachRoom([...roomsInResponse], async (roomId) => {
      const result = joinedResults.get(roomId) ?? { state: [], timeline: [], limited: false };
      rememberMembers(roomId, result.state, result.timeline);
      const count = counts.get(roomId) ?? { joined: 0, invited: 0 };
      joinSections.set(roomId, {
        summary: {
          'm.heroes': await heroes(roomId, userId),
          'm.joined_member_count': count.joined,
          'm.invited_member_count': count.invited,
        },
        state: { events: await toSyncEvents(result.state, roomId) },
        timeline: {
          events: await toSyncEvents(result.timeline, roomId),
          limited: result.limited,
          prev_batch: prevBatch(result.timeline, upTo),
        },
        ephemeral: { events: ephemeral.get(roomId) ?? [] },
        account_data: { events: roomAccountData(roomId) },
        unread_notifications: { notification_count: 0, highlight_count: 0 },
      });
    });
    const join: SyncResponse['rooms']['join'] = {};
    for (const roomId of roomsInResponse) {
      const section = joinSections.get(roomId);
      if (section) join[roomId] = section;
    }

    // Invites and knocks: the stripped state of the room, with the user's own member event.
    const invite: SyncResponse['rooms']['invite'] = {};
    const knock: SyncResponse['rooms']['knock'] = {};
    for (const membership of memberships) {
      if (membership.membership !== 'invite' && membership.membership !== 'knock') continue;
      if (since !== null && membership.streamOrdering <= since) continue;
      const events = await strippedState(membership, userId);
      if (membership.membership === 'invite')
        invite[membership.roomId] = { invite_state: { events } };
      else knock[membership.roomId] = { knock_state: { events } };
    }

    // Rooms left (or banned from, or rejected): history up to the leave, and the state then.
    const leave: SyncResponse['rooms']['leave'] = {};
    for (const membership of memberships) {
      if (membership.membership !== 'leave' && membership.membership !== 'ban') continue;
      const include =
        since === null ? roomFilter?.include_leave === true : membership.streamOrdering > since;
      if (!include) continue;
      const { roomId } = membership;
      const visible = await timeline.visibility(roomId, userId);
      const recent = await recentEvents(
        roomId,
        after,
        membership.streamOrdering,
        (position) => position === membership.streamOrdering || visible(position),
      );
      const start = recent.rows[0]?.streamOrdering ?? membership.streamOrdering + 1;
      const state = await fullState(roomId, recent.rows, start);
      leave[roomId] = {
        state: { events: await toSyncEvents(state, roomId) },
        timeline: {
          events: await toSyncEvents(recent.rows, roomId),
          limited: recent.limited,
          prev_batch: prevBatch(recent.rows, membership.streamOrdering),
        },
        account_data: { events: roomAccountData(roomId) },
      };
    }

    const globalAccountData = accountData.global.filter((e) =>
      passesEventFilter(filter.account_data, e.type, undefined),
    );
    const presence = (await sources.presence.changesSince(userId, after, upTo))
      .filter((e) => passesEventFilter(filter.presence, e.type, e.sender))
      .slice(0, filter.presence?.limit ?? undefined);
    const toDevice = await sources.toDevice.forSync(userId, deviceId, after, upTo);
    const deviceLists = await sources.deviceKeys.deviceListsSince(userId, after, upTo);
    const response: SyncResponse = {
      next_batch: streamToken(upTo),
      rooms: { join, invite, knock, leave },
      account_data: { events: globalAccountData as unknown as SyncEvent[] },
      presence: { events: presence as unknown as SyncEvent[] },
      to_device: { events: toDevice as unknown as SyncEvent[] },
      device_lists: deviceLists,
      device_one_time_keys_count: await sources.deviceKeys.oneTimeKeyCounts(userId, deviceId),
      device_unused_fallback_key_types: await sources.deviceKeys.unusedFallbackKeyTypes(
        userId,
        deviceId,
      ),
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

  async function wasJoinedAt(roomId: string, userId: string, position: number): Promise<boolean> {
    let value: string | undefined;
    for (const entry of await stores().rooms.selectMembershipHistory(roomId, userId)) {
      if (entry.streamOrdering > position) break;
      value = entry.membership;
    }
    return value === 'join';
  }

  /** Up to five other members for naming a room (joined first, then invited), by user ID. */
  async function heroes(roomId: string, userId: string): Promise<string[]> {
    const joined = await stores().sync.selectMembersSample(roomId, 'join', userId, MAX_HEROES);
    if (joined.length >= MAX_HEROES) return joined;
    const invited = await stores().sync.selectMembersSample(
      roomId,
      'invite',
      userId,
      MAX_HEROES - joined.length,
    );
    return [...joined, ...invited];
  }

  /** The stripped state an invitee or knocker sees, with their member event and the inviter's. */
  async function strippedState(
    membership: UserMembershipRow,
    userId: string,
  ): Promise<SyncEvent[]> {
    const rows = await stores().rooms.selectStateEvents(membership.roomId, [
      ...STRIPPED_STATE_TYPES.map((type) => [type, ''] as const),
      [MEMBER, userId] as const,
    ]);
    const own = rows.find((r) => r.pdu.type === MEMBER && r.pdu.state_key === userId);
    // Clients name the inviter from their member event (Hydrogen reads it for every invite).
    if (own && own.pdu.sender !== userId) {
      rows.push(
        ...(await stores().rooms.selectStateEvents(membership.roomId, [[MEMBER, own.pdu.sender]])),
      );
    }
    return rows.map((row) => ({
      type: row.pdu.type,
      state_key: row.pdu.state_key ?? '',
      content: row.pdu.content,
      sender: row.pdu.sender,
      ...(row.eventId === own?.eventId
        ? { event_id: row.eventId, origin_server_ts: row.pdu.origin_server_ts }
        : {}),
    }));
  }

  return {
    async sync(requester: Requester, options: SyncOptions): Promise<SyncResponse> {
      const current = await stores().stream.selectCurrentPosition();
      const since = options.since === undefined ? null : parseSince(options.since, current);
      if (options.setPresence !== 'offline')
        await sources.presence.setFromSync(requester.userId, options.setPresence);
      const deadline = ctx.now() + options.timeoutMs;
      for (;;) {
        const upTo = await stores().stream.selectCurrentPosition();
        const { response, empty, watched } = await build(requester, since, upTo, options);
        const remaining = deadline - ctx.now();
        if (!empty || since === null || options.fullState || remaining <= 0) return response;
        if (options.signal?.aborted || notifier.closed) return response;
        const interest = { userId: requester.userId, rooms: watched };
        const changed = await notifier.waitForChange(interest, upTo, remaining, options.signal);
        if (!changed) return response;
      }
    },
  };
}

export type SyncService = ReturnType<typeof createSyncService>;
export type { RoomEventFilter };
