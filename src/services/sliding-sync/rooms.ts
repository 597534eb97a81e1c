/**
 * The rooms of one sliding sync answer: for each room of the windows and subscriptions, what
 * the connection has not had yet. A room new to the connection (or whose membership changed
 * since it was sent) comes in full (`initial`): its last `timeline_limit` events and its
 * `required_state`; a room sent before comes with its events since, the state that changed in
 * a gap before them, and the lazy members its timeline needs that the connection was never
 * sent. A room sent before whose only news is the user's own read receipt comes again with
 * its new unread counts. Invites come as stripped state. Every read here is for these rooms
 * only.
 */
import { STRIPPED_STATE_TYPES } from '../../core/stripped-state.js';
import type { ClientEvent } from '../../core/client-event.js';
import type { JsonObject, RoomVersionId } from '../../core/pdu.js';
import {
  asksEveryMember,
  needsWholeState,
  selectState,
  stateSelected,
  type RoomConfig,
} from '../../core/sliding-sync.js';
import { streamToken } from '../../core/stream-token.js';
import type { EventRow } from '../../storage/index.js';
import type { Requester, ServiceContext } from '../context.js';
import type { SyncSources } from '../sync-sources.js';
import type { TimelineService } from '../timeline.js';
import type { ListedRoom } from './room-list.js';

const MEMBER = 'm.room.member';
const MAX_HEROES = 5;
const MAX_TIMELINE_LIMIT = 100;
const READ_RECEIPTS: ReadonlySet<string> = new Set(['m.read', 'm.read.private']);

type Json = Record<string, unknown>;

export interface Hero {
  user_id: string;
  displayname?: string;
  avatar_url?: string;
}

export interface RoomResponse {
  name?: string;
  avatar?: string;
  initial?: boolean;
  is_dm?: boolean;
  invite_state?: Json[];
  timeline?: Json[];
  required_state?: Json[];
  prev_batch?: string;
  limited?: boolean;
  num_live?: number;
  joined_count?: number;
  invited_count?: number;
  notification_count?: number;
  highlight_count?: number;
  bump_stamp?: number;
  heroes?: Hero[];
}

export interface RoomsContext {
  ctx: ServiceContext;
  timeline: TimelineService;
  /** The unread counts kept by push rule evaluation (none: every count 0). */
  unread: SyncSources['unread'];
  requester: Requester;
  connectionId: string;
  /** Stream position of the connection's last answer (null: new connection). */
  from: number | null;
  upTo: number;
}

export interface BuiltRooms {
  rooms: Record<string, RoomResponse>;
  /** Rooms now up to date on the connection, and up to where. */
  sentRooms: { roomId: string; sentPosition: number }[];
  sentMembers: { roomId: string; userId: string }[];
  /** Rooms sent in full in this answer (their extensions' data starts from scratch). */
  initialRooms: Set<string>;
}

interface Plan {
  room: ListedRoom;
  config: RoomConfig;
  /** Events after this position are the client's to get (0: the room is new to it). */
  after: number;
  /** The last position of the room the user may see. */
  end: number;
  initial: boolean;
}

export async function buildRooms(
  rc: RoomsContext,
  wanted: readonly { room: ListedRoom; config: RoomConfig }[],
  directRooms: ReadonlySet<string>,
): Promise<BuiltRooms> {
  const { ctx, requester, connectionId, from, upTo } = rc;
  const { userId, deviceId } = requester;
  const stores = ctx.storage.stores;
  const out: BuiltRooms = { rooms: {}, sentRooms: [], sentMembers: [], initialRooms: new Set() };
  if (wanted.length === 0) return out;
  const sent =
    from === null
      ? new Map<string, { sentPosition: number }>()
      : await stores.slidingSync.selectSentRooms(
          connectionId,
          wanted.map((w) => w.room.roomId),
        );
  // Rooms with events since the last answer: rooms kept up to date need no other read.
  const active =
    from === null
      ? new Set<string>()
      : new Set(await stores.sync.selectRoomsWithEvents(from, upTo));
  // Rooms whose unread counts the user's own read receipts changed since the last answer.
  const readSince =
    from === null
      ? new Set<string>()
      : new Set(
          (
            await stores.receipts.selectReceiptsChanged(
              wanted.filter((w) => sent.has(w.room.roomId)).map((w) => w.room.roomId),
              from,
              upTo,
            )
          )
            .filter((r) => r.userId === userId && READ_RECEIPTS.has(r.receiptType))
            .map((r) => r.roomId)
            // And rooms whose counts rose without an event (push rules evaluated after it).
            .concat((await rc.unread?.notifiedBetween?.(userId, from, upTo)) ?? []),
        );

  // Rooms joined with partial state that became complete after they were last sent: sent
  // again in full (their member list, and the state the client holds, changed without an
  // event at the position).
  const sentPositions = [...sent.values()].map((r) => r.sentPosition);
  const completions =
    sentPositions.length === 0
      ? new Map<string, { position: number }>()
      : await stores.partialState.selectCompletionsBetween(
          [...sent.keys()],
          Math.min(...sentPositions),
          upTo,
        );

  const plans: Plan[] = [];
  const invites: ListedRoom[] = [];
  for (const { room, config } of wanted) {
    const previous = sent.get(room.roomId);
    const joinedOrLeft =
      room.membership === 'join' || room.membership === 'leave' || room.membership === 'ban';
    const end = room.membership === 'join' ? upTo : room.membershipPosition;
    const completedSince =
      previous !== undefined &&
      (completions.get(room.roomId)?.position ?? -1) > previous.sentPosition;
    // Sent already, and the user's membership unchanged since: only what is new.
    const known =
      previous !== undefined && previous.sentPosition >= room.membershipPosition && !completedSince;
    if (!joinedOrLeft) {
      if (!known) invites.push(room);
      continue;
    }
    const reread = readSince.has(room.roomId) && room.membership === 'join';
    if (known && !reread) {
      if (previous.sentPosition >= end) continue;
      if (from !== null && previous.sentPosition >= from && !active.has(room.roomId)) {
        out.sentRooms.push({ roomId: room.roomId, sentPosition: end });
        continue;
      }
    }
    plans.push({
      room,
      config,
      after: known ? previous.sentPosition : 0,
      end,
      initial: !known,
    });
  }

  // A room joined with partial state is held back from a list or subscription asking for
  // every member (as Synapse does): its member list is not all known yet. It is not recorded
  // as sent, so once complete it goes out in full.
  const askingAll = plans.filter(
    (p) => p.initial && asksEveryMember(selectState(p.config.requiredState, userId)),
  );
  if (askingAll.length > 0) {
    const partial = new Set(
      await stores.partialState.selectAnyPartial(askingAll.map((p) => p.room.roomId)),
    );
    if (partial.size > 0) {
      const held = new Set(askingAll.filter((p) => partial.has(p.room.roomId)));
      for (let i = plans.length - 1; i >= 0; i--) if (held.has(plans[i]!)) plans.splice(i, 1);
    }
  }

  const roomIds = [...plans.map((p) => p.room.roomId), ...invites.map((r) => r.roomId)];
  const versions = await stores.sync.selectRoomVersions(roomIds);
  const versionOf = (roomId: string) => (versions.get(roomId) ?? '10') as RoomVersionId;

  // Timelines: the last `timeline_limit` events of (after, end], one statement for all.
  const limitOf = (plan: Plan) =>
    Math.min(Math.max(plan.config.timelineLimit, 0), MAX_TIMELINE_LIMIT);
  const readSize = Math.max(1, ...plans.map(limitOf)) + 1;
  const latest = await stores.rooms.selectLatestEventsOfRooms(
    plans.map((p) => ({ roomId: p.room.roomId, after: p.after, upTo: p.end })),
    readSize,
  );
  // A new room's history before the join: as far as it is visible to the user.
  const reachingBack = plans.filter(
    (p) =>
      p.initial &&
      (latest.get(p.room.roomId) ?? []).some((r) => r.streamOrdering < p.room.membershipPosition),
  );
  const visible = await rc.timeline.visibilities(
    reachingBack.map((p) => p.room.roomId),
    userId,
  );
  const timelines = new Map<string, { rows: EventRow[]; limited: boolean }>();
  const nothingNew: Plan[] = [];
  for (const plan of plans) {
    const limit = limitOf(plan);
    const newestFirst = latest.get(plan.room.roomId) ?? [];
    const canSee = visible.get(plan.room.roomId);
    // The user's own membership event is theirs to see (a leave, after which nothing is).
    const seen = canSee
      ? newestFirst.filter(
          (r) => r.streamOrdering === plan.room.membershipPosition || canSee(r.streamOrdering),
        )
      : newestFirst;
    const rows = seen.slice(0, limit).reverse();
    timelines.set(plan.room.roomId, {
      rows,
      limited: seen.length > limit || seen.length < newestFirst.length,
    });
    if (!plan.initial && newestFirst.length === 0 && !readSince.has(plan.room.roomId))
      nothingNew.push(plan);
  }
  for (const plan of nothingNew)
    out.sentRooms.push({ roomId: plan.room.roomId, sentPosition: plan.end });
  const sending = plans.filter((p) => !nothingNew.includes(p));

  // Required state: whole state where a wildcard asks for it, exact keys otherwise.
  const selections = new Map(
    sending.map((p) => [p.room.roomId, selectState(p.config.requiredState, userId)]),
  );
  const initial = sending.filter((p) => p.initial);
  const whole = initial.filter((p) => needsWholeState(selections.get(p.room.roomId)!));
  const exact = initial.filter((p) => !needsWholeState(selections.get(p.room.roomId)!));
  const wholeState = await stores.rooms.selectAllStateEventsOfRooms(
    whole.map((p) => p.room.roomId),
  );
  const exactState = await stores.rooms.selectStateEventsOfRooms(
    exact.map((p) => ({ roomId: p.room.roomId, keys: selections.get(p.room.roomId)!.keys })),
  );
  // A room sent before whose timeline has a gap: the selected state that changed in it.
  const gapped = sending.filter((p) => !p.initial && timelines.get(p.room.roomId)!.limited);
  const gaps = await stores.sync.selectStateChanges(
    gapped.map((p) => ({
      roomId: p.room.roomId,
      after: p.after,
      before: timelines.get(p.room.roomId)!.rows[0]?.streamOrdering ?? p.end + 1,
    })),
  );

  // Lazy members: the timeline's senders whose member event the connection never had.
  const lazyRooms = sending.filter((p) => selections.get(p.room.roomId)!.lazyMembers);
  const alreadySent =
    from === null
      ? new Set<string>()
      : await stores.slidingSync.selectSentMembers(
          connectionId,
          lazyRooms.map((p) => p.room.roomId),
        );
  const stateRows = new Map<string, EventRow[]>();
  for (const plan of sending) {
    const roomId = plan.room.roomId;
    const selection = selections.get(roomId)!;
    const rows = plan.initial
      ? (wholeState.get(roomId) ?? exactState.get(roomId) ?? []).filter((r) =>
          stateSelected(selection, r.pdu.type, r.pdu.state_key ?? ''),
        )
      : (gaps.get(roomId) ?? []).filter((r) =>
          stateSelected(selection, r.pdu.type, r.pdu.state_key ?? ''),
        );
    stateRows.set(roomId, rows);
  }
  const memberKeys = lazyRooms.map((plan) => {
    const roomId = plan.room.roomId;
    const inState = new Set(
      (stateRows.get(roomId) ?? [])
        .filter((r) => r.pdu.type === MEMBER)
        .map((r) => r.pdu.state_key),
    );
    const senders = new Set(timelines.get(roomId)!.rows.map((r) => r.pdu.sender));
    const keys = [...senders]
      .filter((s) => !inState.has(s) && !alreadySent.has(`${roomId}\u0000${s}`))
      .map((s) => [MEMBER, s] as const);
    return { roomId, keys };
  });
  const lazyMembers = await stores.rooms.selectStateEventsOfRooms(
    memberKeys.filter((m) => m.keys.length > 0),
  );
  for (const [roomId, rows] of lazyMembers)
    stateRows.set(roomId, [...(stateRows.get(roomId) ?? []), ...rows]);

  // What names a room: its name and avatar, member counts, heroes for a room without a name.
  const allIds = sending.map((p) => p.room.roomId);
  const naming = await stores.rooms.selectStateEventsOfRooms(
    allIds.map((roomId) => ({
      roomId,
      keys: [
        ['m.room.name', ''],
        ['m.room.avatar', ''],
      ] as const,
    })),
  );
  const counts = await stores.sync.selectMemberCounts(allIds);
  const unread = (await rc.unread?.unreadOf(userId, allIds)) ?? new Map();
  const nameOf = (roomId: string) => {
    const row = naming.get(roomId)?.find((r) => r.pdu.type === 'm.room.name');
    const name = row?.pdu.content.name;
    return typeof name === 'string' && name.length > 0 ? name : undefined;
  };
  const avatarOf = (roomId: string) => {
    const row = naming.get(roomId)?.find((r) => r.pdu.type === 'm.room.avatar');
    const url = row?.pdu.content.url;
    return typeof url === 'string' && url.length > 0 ? url : undefined;
  };
  const unnamed = allIds.filter((id) => nameOf(id) === undefined);
  const heroes = await heroesOf(rc, unnamed);

  const own = [...timelines.values()].flatMap((t) => t.rows).filter((r) => r.pdu.sender === userId);
  const txnIds = await stores.sync.selectTxnIds(
    userId,
    deviceId,
    allIds,
    own.map((r) => r.eventId),
  );
  const now = ctx.now();
  const present = async (rows: readonly EventRow[], roomId: string): Promise<Json[]> => {
    const events: Json[] = [];
    for (const row of rows) {
      const event: ClientEvent = await rc.timeline.present(row, versionOf(roomId));
      delete event.room_id;
      const unsigned: JsonObject = {
        ...event.unsigned,
        age: Math.max(0, now - event.origin_server_ts),
      };
      const txnId = txnIds.get(row.eventId);
      if (txnId !== undefined) unsigned.transaction_id = txnId;
      event.unsigned = unsigned;
      events.push(event as unknown as Json);
    }
    return events;
  };

  for (const plan of sending) {
    const roomId = plan.room.roomId;
    const { rows, limited } = timelines.get(roomId)!;
    const state = stateRows.get(roomId) ?? [];
    const count = counts.get(roomId) ?? { joined: 0, invited: 0 };
    const name = nameOf(roomId);
    const avatar = avatarOf(roomId);
    const numLive = from === null ? 0 : rows.filter((r) => r.streamOrdering > from).length;
    const first = rows[0];
    out.rooms[roomId] = {
      ...(name !== undefined ? { name } : {}),
      ...(avatar !== undefined ? { avatar } : {}),
      ...(plan.initial ? { initial: true } : {}),
      ...(directRooms.has(roomId) ? { is_dm: true } : {}),
      required_state: await present(state, roomId),
      timeline: await present(rows, roomId),
      prev_batch: streamToken(first ? first.streamOrdering - 1 : plan.end),
      limited,
      num_live: numLive,
      joined_count: count.joined,
      invited_count: count.invited,
      // As /sync's unread_notifications without unread_thread_notifications: every thread.
      notification_count: unread.get(roomId)?.total.notification_count ?? 0,
      highlight_count: unread.get(roomId)?.total.highlight_count ?? 0,
      bump_stamp: plan.room.sortKey,
      ...(name === undefined ? { heroes: heroes.get(roomId) ?? [] } : {}),
    };
    if (plan.initial) out.initialRooms.add(roomId);
    out.sentRooms.push({ roomId, sentPosition: plan.end });
    for (const row of [...state, ...rows])
      if (row.pdu.type === MEMBER && row.pdu.state_key !== undefined)
        out.sentMembers.push({ roomId, userId: row.pdu.state_key });
  }

  // Invites (and knocks): the stripped state, with the user's own member event.
  const stripped = await stores.rooms.selectStateEventsOfRooms(
    invites.map((room) => ({
      roomId: room.roomId,
      keys: [...STRIPPED_STATE_TYPES.map((type) => [type, ''] as const), [MEMBER, userId] as const],
    })),
  );
  const inviters = await stores.rooms.selectStateEventsOfRooms(
    invites.flatMap((room) => {
      const mine = stripped
        .get(room.roomId)
        ?.find((r) => r.pdu.type === MEMBER && r.pdu.state_key === userId);
      return mine && mine.pdu.sender !== userId
        ? [{ roomId: room.roomId, keys: [[MEMBER, mine.pdu.sender] as const] }]
        : [];
    }),
  );
  for (const room of invites) {
    const rows = [...(stripped.get(room.roomId) ?? []), ...(inviters.get(room.roomId) ?? [])];
    out.rooms[room.roomId] = {
      initial: true,
      ...(directRooms.has(room.roomId) ? { is_dm: true } : {}),
      invite_state: rows.map((row) => ({
        type: row.pdu.type,
        state_key: row.pdu.state_key ?? '',
        content: row.pdu.content,
        sender: row.pdu.sender,
        ...(row.pdu.type === MEMBER && row.pdu.state_key === userId
          ? { event_id: row.eventId, origin_server_ts: row.pdu.origin_server_ts }
          : {}),
      })),
      bump_stamp: room.sortKey,
    };
    out.initialRooms.add(room.roomId);
    out.sentRooms.push({ roomId: room.roomId, sentPosition: room.membershipPosition });
  }
  return out;
}

/** Up to five other members of each room (joined first, then invited), with their profiles. */
async function heroesOf(
  rc: RoomsContext,
  roomIds: readonly string[],
): Promise<Map<string, Hero[]>> {
  const stores = rc.ctx.storage.stores;
  const userId = rc.requester.userId;
  if (roomIds.length === 0) return new Map();
  const joined = await stores.sync.selectMembersSamples(roomIds, 'join', userId, MAX_HEROES);
  const short = roomIds.filter((id) => (joined.get(id)?.length ?? 0) < MAX_HEROES);
  const invited = await stores.sync.selectMembersSamples(short, 'invite', userId, MAX_HEROES);
  const picked = new Map(
    roomIds.map((id) => [
      id,
      [...(joined.get(id) ?? []), ...(invited.get(id) ?? [])].slice(0, MAX_HEROES),
    ]),
  );
  const events = await stores.rooms.selectStateEventsOfRooms(
    [...picked].map(([roomId, users]) => ({
      roomId,
      keys: users.map((u) => [MEMBER, u] as const),
    })),
  );
  return new Map(
    [...picked].map(([roomId, users]) => [
      roomId,
      users.map((user) => {
        const content = events.get(roomId)?.find((r) => r.pdu.state_key === user)?.pdu.content;
        const hero: Hero = { user_id: user };
        if (typeof content?.displayname === 'string') hero.displayname = content.displayname;
        if (typeof content?.avatar_url === 'string') hero.avatar_url = content.avatar_url;
        return hero;
      }),
    ]),
  );
}
