/**
 * Room aliases (create, resolve, delete, list a room's) and the published room directory
 * (a room's visibility, and the paginated, filterable listing of published rooms).
 */
import { MatrixError, forbidden, invalidParam, notFound } from '../core/errors.js';
import {
  membershipOf,
  powerLevelOf,
  requiredPowerForEvent,
  type AuthStateEvent,
} from '../core/auth-rules.js';
import { isValidServerName, parseRoomAlias } from '../core/identifiers.js';
import { stateKeyOf, type JsonObject, type RoomVersionId, type StateKey } from '../core/pdu.js';
import type { PublicRoomRow, PublicRoomsFilter, Stores } from '../storage/index.js';
import type { Requester, ServiceContext } from './context.js';
import { serviceMayClaimAlias } from './appservice/acting.js';
import { createAppServiceCalls } from './appservice/calls.js';

export type Visibility = 'public' | 'private';

export interface PublicRoomsRequest {
  limit?: number | undefined;
  since?: string | undefined;
  server?: string | undefined;
  filter?: PublicRoomsFilter | undefined;
}

/** One entry of `chunk` (the spec's PublishedRoomsChunk). */
export interface PublishedRoom {
  room_id: string;
  num_joined_members: number;
  world_readable: boolean;
  guest_can_join: boolean;
  join_rule?: string;
  name?: string;
  topic?: string;
  canonical_alias?: string;
  avatar_url?: string;
  room_type?: string;
}

export interface PublicRoomsPage {
  chunk: PublishedRoom[];
  next_batch?: string;
  prev_batch?: string;
  total_room_count_estimate: number;
}

/** The most rooms one page holds, whatever `limit` asks for (and when it asks for nothing). */
export const MAX_PUBLIC_ROOMS_LIMIT = 500;

const CANONICAL_ALIAS = 'm.room.canonical_alias';
const SUMMARY_TYPES = [
  'm.room.create',
  'm.room.name',
  'm.room.topic',
  CANONICAL_ALIAS,
  'm.room.avatar',
  'm.room.join_rules',
  'm.room.history_visibility',
  'm.room.guest_access',
] as const;

const stringField = (content: JsonObject | undefined, key: string): string | undefined => {
  const value = content?.[key];
  return typeof value === 'string' ? value : undefined;
};

/** The plain-text topic: the `topic` string, else the `text/plain` entry of `m.topic`. */
function plainTopic(content: JsonObject | undefined): string | undefined {
  const plain = stringField(content, 'topic');
  if (plain !== undefined) return plain;
  const rich = content?.['m.topic'];
  const texts =
    typeof rich === 'object' && rich !== null && !Array.isArray(rich) ? rich['m.text'] : undefined;
  if (!Array.isArray(texts)) return undefined;
  for (const entry of texts) {
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) continue;
    const mimetype = entry.mimetype ?? 'text/plain';
    if (mimetype === 'text/plain' && typeof entry.body === 'string') return entry.body;
  }
  return undefined;
}

/** A directory entry from a room's joined member count and summary state. */
export function publishedRoomOf(row: PublicRoomRow): PublishedRoom {
  const state = row.state;
  const entry: PublishedRoom = {
    room_id: row.roomId,
    num_joined_members: row.joinedMembers,
    world_readable:
      stringField(state.get('m.room.history_visibility'), 'history_visibility') ===
      'world_readable',
    guest_can_join: stringField(state.get('m.room.guest_access'), 'guest_access') === 'can_join',
  };
  const joinRule = stringField(state.get('m.room.join_rules'), 'join_rule');
  if (joinRule !== undefined) entry.join_rule = joinRule;
  const name = stringField(state.get('m.room.name'), 'name');
  if (name !== undefined && name !== '') entry.name = name;
  const topic = plainTopic(state.get('m.room.topic'));
  if (topic !== undefined && topic !== '') entry.topic = topic;
  const alias = stringField(state.get(CANONICAL_ALIAS), 'alias');
  if (alias !== undefined && parseRoomAlias(alias)) entry.canonical_alias = alias;
  const avatar = stringField(state.get('m.room.avatar'), 'url');
  if (avatar !== undefined && avatar.startsWith('mxc://')) entry.avatar_url = avatar;
  const roomType = stringField(state.get('m.room.create'), 'type');
  if (roomType !== undefined) entry.room_type = roomType;
  return entry;
}

/** Pagination tokens: an offset into the listing, as base64url JSON (opaque to clients). */
export function encodePublicRoomsToken(offset: number): string {
  return Buffer.from(JSON.stringify({ offset }), 'utf8').toString('base64url');
}

export function decodePublicRoomsToken(token: string): number {
  let parsed: unknown;
  try {
    if (!/^[A-Za-z0-9_-]+$/.test(token)) throw new Error('not base64url');
    parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    throw invalidParam('Invalid pagination token');
  }
  const offset =
    typeof parsed === 'object' && parsed !== null && 'offset' in parsed ? parsed.offset : undefined;
  if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0)
    throw invalidParam('Invalid pagination token');
  return offset;
}

export function createDirectoryService(ctx: ServiceContext) {
  const { serverName } = ctx.settings;
  const stores = () => ctx.storage.stores;
  const appserviceCalls = createAppServiceCalls(ctx);

  /** A valid alias (400 M_INVALID_PARAM otherwise), and whether this server owns it. */
  function parseAlias(raw: string): { alias: string; local: boolean } {
    const alias = parseRoomAlias(raw);
    if (!alias) throw invalidParam('Room alias invalid');
    return { alias, local: alias.slice(alias.indexOf(':') + 1) === serverName };
  }

  function localAlias(raw: string): string {
    const { alias, local } = parseAlias(raw);
    if (!local) throw invalidParam(`Room alias must be on this server (${serverName})`);
    return alias;
  }

  /**
   * Whether the user is joined and has the power to send `m.room.canonical_alias` (the
   * level this server takes as "may manage the room's aliases and directory listing").
   */
  async function canManageAliases(
    s: Stores,
    roomId: string,
    roomVersion: string,
    userId: string,
  ): Promise<boolean> {
    const rows = await s.rooms.selectStateEvents(roomId, [
      ['m.room.create', ''],
      ['m.room.power_levels', ''],
      ['m.room.member', userId],
    ]);
    const authState = new Map<StateKey, AuthStateEvent>(
      rows.map((row) => [
        stateKeyOf(row.pdu.type, row.pdu.state_key ?? ''),
        { ...row.pdu, event_id: row.eventId },
      ]),
    );
    if (membershipOf(userId, authState) !== 'join') return false;
    const version = roomVersion as RoomVersionId;
    return (
      powerLevelOf(userId, authState, version) >=
      requiredPowerForEvent(CANONICAL_ALIAS, true, authState)
    );
  }

  return {
    /** PUT /directory/room/{roomAlias}: maps a new local alias to a room the requester is in. */
    async setAlias(requester: Requester, rawAlias: string, roomId: string): Promise<void> {
      const alias = localAlias(rawAlias);
      // A service names rooms in its alias namespace whether or not it is in them.
      const byService = serviceMayClaimAlias(ctx.settings.appServices ?? [], requester, alias);
      await ctx.storage.tx('setRoomAlias', async (s) => {
        if (!(await s.rooms.selectRoom(roomId))) throw forbidden('Unknown room');
        const membership = await s.rooms.selectMembership(roomId, requester.userId);
        if (!byService && membership?.membership !== 'join')
          throw forbidden('You must be in the room to give it an alias');
        if (!(await s.directory.insertAlias(alias, roomId, requester.userId)))
          throw new MatrixError(409, 'M_UNKNOWN', `Room alias ${alias} already exists.`);
      });
    },

    /** GET /directory/room/{roomAlias}: the room ID and the servers that know the alias. */
    async resolveAlias(rawAlias: string): Promise<{ roomId: string; servers: string[] }> {
      const { alias, local } = parseAlias(rawAlias);
      if (!local) throw notFound(`Room alias ${alias} not found (no federation here)`);
      let row = await stores().directory.selectAlias(alias);
      // An alias of a bridge's namespace may exist once the bridge is asked about it.
      if (!row && (await appserviceCalls.queryAlias(alias)))
        row = await stores().directory.selectAlias(alias);
      if (!row) throw notFound(`Room alias ${alias} not found.`);
      return { roomId: row.roomId, servers: [serverName] };
    },

    /**
     * DELETE /directory/room/{roomAlias}: for the alias's creator, a server admin, or a member
     * with the power to send `m.room.canonical_alias`. The room's state is left as it is.
     */
    async deleteAlias(requester: Requester, rawAlias: string): Promise<void> {
      const alias = localAlias(rawAlias);
      await ctx.storage.tx('deleteRoomAlias', async (s) => {
        const row = await s.directory.selectAlias(alias);
        if (!row) throw notFound(`Room alias ${alias} not found.`);
        if (row.creator !== requester.userId && !requester.isAdmin) {
          const room = await s.rooms.selectRoom(row.roomId);
          if (
            !room ||
            !(await canManageAliases(s, row.roomId, room.roomVersion, requester.userId))
          ) {
            throw forbidden('You may not delete this alias');
          }
        }
        await s.directory.deleteAlias(alias);
      });
    },

    /** GET /rooms/{roomId}/aliases: for members, admins, or anyone when world-readable. */
    async roomAliases(requester: Requester, roomId: string): Promise<string[]> {
      const s = stores();
      if (!requester.isAdmin) {
        const membership = await s.rooms.selectMembership(roomId, requester.userId);
        if (membership?.membership !== 'join') {
          const [visibility] = await s.rooms.selectStateEvents(roomId, [
            ['m.room.history_visibility', ''],
          ]);
          if (visibility?.pdu.content.history_visibility !== 'world_readable')
            throw forbidden('You are not a member of the room.');
        }
      }
      return s.directory.selectAliasesOfRoom(roomId);
    },

    /** GET /directory/list/room/{roomId}. */
    async visibility(roomId: string): Promise<Visibility> {
      const room = await stores().rooms.selectRoom(roomId);
      if (!room) throw notFound('Room not found');
      return room.isPublic ? 'public' : 'private';
    },

    /**
     * PUT /directory/list/room/{roomId}: for the room's creator, a server admin, or a member
     * with the power to send `m.room.canonical_alias`.
     */
    async setVisibility(requester: Requester, roomId: string, visibility: Visibility) {
      await ctx.storage.tx('setRoomVisibility', async (s) => {
        const room = await s.rooms.selectRoom(roomId);
        if (!room) throw notFound('Room not found');
        if (
          room.creator !== requester.userId &&
          !requester.isAdmin &&
          !(await canManageAliases(s, roomId, room.roomVersion, requester.userId))
        ) {
          throw forbidden('You may not change the visibility of this room');
        }
        await s.rooms.updateRoomPublic(roomId, visibility === 'public');
      });
    },

    /** GET and POST /publicRooms: one page of this server's published rooms. */
    async publicRooms(request: PublicRoomsRequest): Promise<PublicRoomsPage> {
      if (request.server !== undefined) {
        if (!isValidServerName(request.server)) throw invalidParam('Invalid server name');
        if (request.server !== serverName)
          throw invalidParam(`Only this server's directory (${serverName}) can be listed`);
      }
      if (request.limit !== undefined && request.limit < 0)
        throw invalidParam('limit must not be negative');
      const limit =
        request.limit === undefined || request.limit === 0
          ? MAX_PUBLIC_ROOMS_LIMIT
          : Math.min(request.limit, MAX_PUBLIC_ROOMS_LIMIT);
      const offset = request.since === undefined ? 0 : decodePublicRoomsToken(request.since);
      const filter = request.filter ?? {};
      const s = stores();
      const rows = await s.directory.selectPublicRooms(filter, offset, limit + 1, SUMMARY_TYPES);
      const total = await s.directory.countPublicRooms(filter);
      const page: PublicRoomsPage = {
        chunk: rows.slice(0, limit).map(publishedRoomOf),
        total_room_count_estimate: total,
      };
      if (rows.length > limit) page.next_batch = encodePublicRoomsToken(offset + limit);
      if (offset > 0) page.prev_batch = encodePublicRoomsToken(Math.max(0, offset - limit));
      return page;
    },
  };
}

export type DirectoryService = ReturnType<typeof createDirectoryService>;
