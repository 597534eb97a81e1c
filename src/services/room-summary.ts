/**
 * The room summary (MSC3266, spec v1.15): what a client shows of a room before joining it —
 * name, topic, avatar, joined member count, join rule, room type, encryption, version, and
 * the requester's membership — for rooms the requester may see: public, knockable or
 * world-readable ones, rooms they are in, invited to or knocking on, and restricted rooms
 * whose allowed rooms they are in. Any other room is answered as not found, like one that does
 * not exist. Remote rooms (over federation) are not summarised yet.
 * https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv1room_summaryroomidoralias
 */
import { notFound } from '../core/errors.js';
import { parseRoomAlias, parseRoomId } from '../core/identifiers.js';
import type { JsonObject } from '../core/pdu.js';
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
] as const;

const OPEN_JOIN_RULES = new Set(['public', 'knock', 'knock_restricted']);

export interface RoomSummary extends PublishedRoom {
  membership?: string;
  encryption?: string;
  room_version?: string;
  allowed_room_ids?: string[];
}

const notVisible = () => notFound('Room not found');

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

export function createRoomSummaryService(ctx: ServiceContext) {
  const stores = () => ctx.storage.stores;

  async function resolve(roomIdOrAlias: string): Promise<string> {
    if (parseRoomId(roomIdOrAlias)) return roomIdOrAlias;
    if (parseRoomAlias(roomIdOrAlias)) {
      const roomId = await stores().rooms.selectAliasRoom(roomIdOrAlias);
      if (roomId !== undefined) return roomId;
      throw notVisible();
    }
    throw notFound('Not a room ID or alias');
  }

  return {
    /** The summary of a local room for `userId` (null: an unauthenticated request). */
    async summary(userId: string | null, roomIdOrAlias: string): Promise<RoomSummary> {
      const roomId = await resolve(roomIdOrAlias);
      const room = await stores().rooms.selectRoom(roomId);
      if (!room) throw notVisible();
      const rows = await stores().rooms.selectStateEvents(
        roomId,
        STATE_TYPES.map((type) => [type, ''] as const),
      );
      const state = new Map(rows.map((r) => [r.pdu.type, r.pdu.content]));
      const membership =
        userId === null ? undefined : await stores().rooms.selectMembership(roomId, userId);
      const joinRules = state.get('m.room.join_rules');
      const joinRule = typeof joinRules?.join_rule === 'string' ? joinRules.join_rule : 'invite';
      const worldReadable =
        state.get('m.room.history_visibility')?.history_visibility === 'world_readable';
      const member =
        membership !== undefined &&
        !membership.forgotten &&
        ['join', 'invite', 'knock'].includes(membership.membership);
      let visible = member || OPEN_JOIN_RULES.has(joinRule) || worldReadable;
      if (
        !visible &&
        userId !== null &&
        (joinRule === 'restricted' || joinRule === 'knock_restricted')
      ) {
        const allowed = allowedRooms(joinRules);
        if (allowed.length > 0) {
          const mine = await stores().sync.selectMembershipsOfUser(userId, allowed);
          visible = mine.some((m) => m.membership === 'join');
        }
      }
      if (!visible) throw notVisible();
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
      if (membership !== undefined && !membership.forgotten)
        summary.membership = membership.membership;
      else if (userId !== null) summary.membership = 'leave';
      return summary;
    },
  };
}

export type RoomSummaryService = ReturnType<typeof createRoomSummaryService>;
