/**
 * The room summary (MSC3266, spec v1.15): what a client shows of a room before joining it —
 * name, topic, avatar, joined member count, join rule, room type, encryption, version, and
 * the requester's membership — for rooms the requester may see: public, knockable or
 * world-readable ones, rooms they are in, invited to or knocking on, and restricted rooms
 * whose allowed rooms they are in. Any other room is answered as not found, like one that does
 * not exist.
 *
 * Rooms this server has no member in are asked of other servers (the `via` servers, the remote
 * alias's servers, the server a room ID names) with `GET /_matrix/federation/v1/hierarchy`,
 * whose `room` entry is the summary; the answers are kept for a minute. This server serves the
 * same endpoint for its rooms (`hierarchy`): the room, and the space's children it knows.
 * https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv1room_summaryroomidoralias
 * https://spec.matrix.org/v1.19/server-server-api/#get_matrixfederationv1hierarchyroomid
 */
import { invalidParam, notFound } from '../core/errors.js';
import {
  isValidServerName,
  parseRoomAlias,
  parseRoomId,
  parseUserId,
} from '../core/identifiers.js';
import type { JsonObject } from '../core/pdu.js';
import { isServerAllowed, parseServerAcl } from '../core/server-acl.js';
import type { ServiceContext } from './context.js';
import { publishedRoomOf, type PublishedRoom } from './directory.js';

const STATE_TYPES = [
  'm.room.create',
  'm.room.name',
  'm.room.topic',
  'm.room.canonical_alias',
  'm.room.avatar',
  'm.room.join_rules',
  'm.room.history_visibility',
  'm.room.guest_access',
  'm.room.encryption',
  'm.room.server_acl',
] as const;

const OPEN_JOIN_RULES = new Set(['public', 'knock', 'knock_restricted']);
/** How long another server's answer about a room is reused. */
const REMOTE_CACHE_MS = 60_000;
const REMOTE_CACHE_SIZE = 1000;
/** The most children one hierarchy answer describes. */
const MAX_CHILDREN = 50;

export interface RoomSummary extends PublishedRoom {
  membership?: string;
  encryption?: string;
  room_version?: string;
  allowed_room_ids?: string[];
}

/** An `m.space.child` event as the hierarchy shows it (stripped, with its timestamp). */
export interface ChildState {
  type: string;
  state_key: string;
  content: JsonObject;
  sender: string;
  origin_server_ts: number;
}

export interface HierarchyRoom extends RoomSummary {
  children_state: ChildState[];
}

export interface FederationHierarchy {
  room: HierarchyRoom;
  children: HierarchyRoom[];
  inaccessible_children: string[];
}

/** What the summary needs of federation (null when it is off). */
export interface SummaryFederation {
  client: {
    request(
      destination: string,
      method: string,
      path: string,
    ): Promise<{ status: number; body: unknown }>;
  };
  joins: {
    resolveAlias(alias: string): Promise<{ roomId: string; servers: string[] }>;
    serversOfRoomId(roomId: string): string[];
  };
}

/** A room this server holds the state of, described. */
interface LocalRoom {
  summary: RoomSummary;
  joinRule: string;
  worldReadable: boolean;
  allowed: string[];
  acl: JsonObject | undefined;
  childState: ChildState[];
}

const notVisible = () => notFound('Room not found');

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** The room IDs a restricted join rule allows members of. */
function allowedRooms(joinRules: JsonObject | undefined): string[] {
  const allow = joinRules?.allow;
  if (!Array.isArray(allow)) return [];
  return allow.flatMap((entry) =>
    typeof entry === 'object' &&
    entry !== null &&
    !Array.isArray(entry) &&
    entry.type === 'm.room_membership' &&
    typeof entry.room_id === 'string'
      ? [entry.room_id]
      : [],
  );
}

/** A room entry of another server's hierarchy answer, checked field by field (null: none). */
export function remoteSummaryOf(value: unknown, roomId: string): RoomSummary | null {
  if (!isObject(value) || value.room_id !== roomId) return null;
  const summary: RoomSummary = {
    room_id: roomId,
    num_joined_members:
      Number.isSafeInteger(value.num_joined_members) && (value.num_joined_members as number) >= 0
        ? (value.num_joined_members as number)
        : 0,
    world_readable: value.world_readable === true,
    guest_can_join: value.guest_can_join === true,
  };
  for (const field of [
    'join_rule',
    'name',
    'topic',
    'canonical_alias',
    'avatar_url',
    'room_type',
    'encryption',
    'room_version',
  ] as const)
    if (typeof value[field] === 'string') summary[field] = value[field];
  if (Array.isArray(value.allowed_room_ids)) {
    const allowed = value.allowed_room_ids.filter((id): id is string => typeof id === 'string');
    if (allowed.length > 0) summary.allowed_room_ids = allowed;
  }
  return summary;
}

export function createRoomSummaryService(
  ctx: ServiceContext,
  federation: SummaryFederation | null = null,
) {
  const stores = () => ctx.storage.stores;
  const { serverName } = ctx.settings;
  const remoteCache = new Map<string, { summary: RoomSummary; expires: number }>();

  /** The room's summary and the facts visibility depends on; undefined: no state here. */
  async function describe(roomId: string): Promise<LocalRoom | undefined> {
    const room = await stores().rooms.selectRoom(roomId);
    if (!room) return undefined;
    const rows = await stores().rooms.selectStateEvents(
      roomId,
      STATE_TYPES.map((type) => [type, ''] as const),
    );
    if (!rows.some((r) => r.pdu.type === 'm.room.create')) return undefined;
    const state = new Map(rows.map((r) => [r.pdu.type, r.pdu.content]));
    const joinRules = state.get('m.room.join_rules');
    const joinRule = typeof joinRules?.join_rule === 'string' ? joinRules.join_rule : 'invite';
    const counts = await stores().sync.selectMemberCounts([roomId]);
    const summary: RoomSummary = publishedRoomOf({
      roomId,
      joinedMembers: counts.get(roomId)?.joined ?? 0,
      state,
    });
    summary.join_rule = joinRule;
    summary.room_version = room.roomVersion;
    const algorithm = state.get('m.room.encryption')?.algorithm;
    if (typeof algorithm === 'string') summary.encryption = algorithm;
    const allowed = allowedRooms(joinRules);
    if (allowed.length > 0) summary.allowed_room_ids = allowed;
    let childState: ChildState[] = [];
    if (summary.room_type === 'm.space') {
      const all = await stores().rooms.selectAllStateEvents(roomId);
      childState = all
        .filter(
          (r) =>
            r.pdu.type === 'm.space.child' &&
            typeof r.pdu.state_key === 'string' &&
            Array.isArray(r.pdu.content.via) &&
            r.pdu.content.via.length > 0,
        )
        .map((r) => ({
          type: r.pdu.type,
          state_key: r.pdu.state_key as string,
          content: r.pdu.content,
          sender: r.pdu.sender,
          origin_server_ts: r.pdu.origin_server_ts,
        }));
    }
    return {
      summary,
      joinRule,
      worldReadable: summary.world_readable,
      allowed,
      acl: state.get('m.room.server_acl'),
      childState,
    };
  }

  /** Whether `userId` (null: anyone) may see a room of this join rule and visibility. */
  async function visibleTo(
    userId: string | null,
    membership: string | undefined,
    facts: { joinRule: string; worldReadable: boolean; allowed: readonly string[] },
  ): Promise<boolean> {
    if (membership !== undefined && ['join', 'invite', 'knock'].includes(membership)) return true;
    if (OPEN_JOIN_RULES.has(facts.joinRule) || facts.worldReadable) return true;
    if (
      userId !== null &&
      (facts.joinRule === 'restricted' || facts.joinRule === 'knock_restricted') &&
      facts.allowed.length > 0
    ) {
      const mine = await stores().sync.selectMembershipsOfUser(userId, [...facts.allowed]);
      return mine.some((m) => m.membership === 'join');
    }
    return false;
  }

  /** The requester's membership as known here (forgotten rooms count as none). */
  async function membershipOf(userId: string | null, roomId: string) {
    if (userId === null) return undefined;
    const row = await stores().rooms.selectMembership(roomId, userId);
    return row !== undefined && !row.forgotten ? row.membership : undefined;
  }

  /** Whether a user of this server is joined to the room (its state here is current). */
  async function resident(roomId: string): Promise<boolean> {
    const joined = await stores().rooms.selectMembersOfRoom(roomId, 'join');
    return joined.some((user) => parseUserId(user)?.serverName === serverName);
  }

  /** The `room` entry of `server`'s hierarchy answer, or null when it gives none. */
  async function askServer(fed: SummaryFederation, server: string, roomId: string) {
    try {
      const response = await fed.client.request(
        server,
        'GET',
        `/_matrix/federation/v1/hierarchy/${encodeURIComponent(roomId)}?suggested_only=true`,
      );
      if (response.status !== 200 || !isObject(response.body)) return null;
      return remoteSummaryOf(response.body.room, roomId);
    } catch {
      return null;
    }
  }

  /** The room as other servers describe it (cached briefly); null when none answers. */
  async function remoteSummary(
    fed: SummaryFederation,
    roomId: string,
    servers: readonly string[],
  ): Promise<RoomSummary | null> {
    const cached = remoteCache.get(roomId);
    if (cached && cached.expires > ctx.now()) return { ...cached.summary };
    for (const server of servers) {
      const summary = await askServer(fed, server, roomId);
      if (!summary) continue;
      if (remoteCache.size >= REMOTE_CACHE_SIZE) {
        const oldest = remoteCache.keys().next().value;
        if (oldest !== undefined) remoteCache.delete(oldest);
      }
      remoteCache.delete(roomId);
      remoteCache.set(roomId, { summary, expires: ctx.now() + REMOTE_CACHE_MS });
      return { ...summary };
    }
    return null;
  }

  /** The room ID, and the servers to ask about it when it is not here. */
  async function resolve(
    roomIdOrAlias: string,
    via: readonly string[],
  ): Promise<{ roomId: string; servers: string[] }> {
    if (parseRoomId(roomIdOrAlias)) {
      const servers = [...via, ...(federation?.joins.serversOfRoomId(roomIdOrAlias) ?? [])];
      return { roomId: roomIdOrAlias, servers };
    }
    if (!parseRoomAlias(roomIdOrAlias)) throw notFound('Not a room ID or alias');
    const local = await stores().rooms.selectAliasRoom(roomIdOrAlias);
    if (local !== undefined) return { roomId: local, servers: [...via] };
    if (!federation || roomIdOrAlias.endsWith(`:${serverName}`)) throw notVisible();
    try {
      const resolved = await federation.joins.resolveAlias(roomIdOrAlias);
      return { roomId: resolved.roomId, servers: [...via, ...resolved.servers] };
    } catch {
      throw notVisible();
    }
  }

  return {
    /**
     * The summary of a room for `userId` (null: an unauthenticated request); rooms this server
     * has no member in are asked of `via` and the servers the ID or alias names.
     */
    async summary(
      userId: string | null,
      roomIdOrAlias: string,
      via: readonly string[] = [],
    ): Promise<RoomSummary> {
      for (const server of via)
        if (!isValidServerName(server)) throw invalidParam(`${server} is not a server name`);
      const { roomId, servers } = await resolve(roomIdOrAlias, via);
      const membership = await membershipOf(userId, roomId);
      const local = await describe(roomId);
      const candidates = [...new Set(servers)].filter((s) => s !== serverName);
      const askRemote =
        federation !== null &&
        candidates.length > 0 &&
        (local === undefined || (membership !== 'join' && !(await resident(roomId))));
      if (askRemote) {
        const remote = await remoteSummary(federation, roomId, candidates);
        if (remote) {
          const facts = {
            joinRule: remote.join_rule ?? 'invite',
            worldReadable: remote.world_readable,
            allowed: remote.allowed_room_ids ?? [],
          };
          if (!(await visibleTo(userId, membership, facts))) throw notVisible();
          if (membership !== undefined) remote.membership = membership;
          return remote;
        }
      }
      if (!local || !(await visibleTo(userId, membership, local))) throw notVisible();
      const summary = { ...local.summary };
      if (membership !== undefined) summary.membership = membership;
      else if (userId !== null) summary.membership = 'leave';
      return summary;
    },

    /**
     * `GET /_matrix/federation/v1/hierarchy/{roomId}` for `origin`: the room and the space's
     * children known here, for rooms the origin may see: world-readable ones, public or knock
     * ones, rooms it has a user joined to or invited to, and restricted rooms allowing a room it
     * has a user joined to (404 otherwise, as for unknown rooms).
     */
    async hierarchy(
      origin: string,
      roomId: string,
      suggestedOnly: boolean,
    ): Promise<FederationHierarchy> {
      const seenBy = async (id: string): Promise<LocalRoom | null | undefined> => {
        const room = await describe(id);
        if (!room) return undefined;
        if (room.acl && !isServerAllowed(origin, parseServerAcl(room.acl))) return null;
        if (OPEN_JOIN_RULES.has(room.joinRule) || room.worldReadable) return room;
        // A server with a member joined, or with a user invited (who may want to look first).
        const joinedHere = async (rid: string) =>
          (await stores().federationOutbox.selectRemoteJoinedServers(rid, serverName)).includes(
            origin,
          );
        if (await joinedHere(id)) return room;
        const invited = await stores().rooms.selectMembersOfRoom(id, 'invite');
        if (invited.some((user) => parseUserId(user)?.serverName === origin)) return room;
        // A restricted room, to a server with a member in a room it allows (which then filters
        // for its users).
        if (room.joinRule === 'restricted')
          for (const allowed of room.allowed.slice(0, MAX_CHILDREN))
            if (await joinedHere(allowed)) return room;
        return null;
      };
      const shape = (room: LocalRoom): HierarchyRoom => ({
        ...room.summary,
        children_state: room.childState,
      });
      const room = await seenBy(roomId);
      if (!room) throw notFound('Room not found');
      const children: HierarchyRoom[] = [];
      const inaccessible: string[] = [];
      const wanted = room.childState.filter((c) => !suggestedOnly || c.content.suggested === true);
      for (const child of wanted.slice(0, MAX_CHILDREN)) {
        if (child.state_key === roomId) continue;
        const found = await seenBy(child.state_key);
        if (found) children.push(shape(found));
        else if (found === null) inaccessible.push(child.state_key);
      }
      return { room: shape(room), children, inaccessible_children: inaccessible };
    },
  };
}

export type RoomSummaryService = ReturnType<typeof createRoomSummaryService>;
