/**
 * The admin API's rooms (Synapse's /_synapse/admin/v1/rooms): pages of rooms with ordering
 * and search, one room's details, its members and its current state, whoever asks being a
 * server admin and whatever their membership.
 * https://element-hq.github.io/synapse/latest/admin_api/rooms.html
 */
import { invalidParam, notFound } from '../../core/errors.js';
import type { ClientEvent } from '../../core/client-event.js';
import type { RoomVersionId } from '../../core/pdu.js';
import type { AdminRoomRow, EventRow, RoomQuery } from '../../storage/index.js';
import type { ServiceContext } from '../context.js';
import type { TimelineService } from '../timeline.js';
import type { Requester } from '../context.js';

/** A room as Synapse's room list and details describe it. */
export interface AdminRoomSummary {
  room_id: string;
  name: string | null;
  topic: string | null;
  avatar: string | null;
  canonical_alias: string | null;
  joined_members: number;
  joined_local_members: number;
  version: string;
  creator: string;
  encryption: string | null;
  federatable: boolean;
  public: boolean;
  join_rules: string | null;
  guest_access: string | null;
  history_visibility: string | null;
  state_events: number;
  room_type: string | null;
}

export interface RoomPage {
  rooms: AdminRoomSummary[];
  offset: number;
  total_rooms: number;
  next_batch?: number;
  prev_batch?: number;
}

const stringOrNull = (value: unknown): string | null => (typeof value === 'string' ? value : null);

/** The summary of a room from its counts and its current state events. */
export function summarise(row: AdminRoomRow, state: readonly EventRow[]): AdminRoomSummary {
  const content = (type: string): Record<string, unknown> => {
    const event = state.find((e) => e.pdu.type === type && e.pdu.state_key === '');
    return event && !event.redactedBy ? (event.pdu.content as Record<string, unknown>) : {};
  };
  const create = content('m.room.create');
  return {
    room_id: row.roomId,
    name: stringOrNull(content('m.room.name').name),
    topic: stringOrNull(content('m.room.topic').topic),
    avatar: stringOrNull(content('m.room.avatar').url),
    canonical_alias: stringOrNull(content('m.room.canonical_alias').alias),
    joined_members: row.joinedMembers,
    joined_local_members: row.joinedLocalMembers,
    version: row.roomVersion,
    creator: row.creator,
    encryption: stringOrNull(content('m.room.encryption').algorithm),
    federatable: create['m.federate'] !== false,
    public: row.isPublic,
    join_rules: stringOrNull(content('m.room.join_rules').join_rule),
    guest_access: stringOrNull(content('m.room.guest_access').guest_access),
    history_visibility: stringOrNull(content('m.room.history_visibility').history_visibility),
    state_events: row.stateEvents,
    room_type: stringOrNull(create.type),
  };
}

export function createAdminRoomService(ctx: ServiceContext, timeline: TimelineService) {
  const stores = ctx.storage.stores;
  const serverName = ctx.settings.serverName;

  async function existingRoom(roomId: string): Promise<AdminRoomRow> {
    if (!roomId.startsWith('!')) throw invalidParam('Invalid room ID');
    const row = await stores.admin.selectRoomCounts(roomId, serverName);
    if (!row) throw notFound('Room not found');
    return row;
  }

  return {
    existingRoom,

    async list(query: RoomQuery): Promise<RoomPage> {
      const { rows, total } = await stores.admin.selectRooms(query, serverName);
      const states = await stores.rooms.selectAllStateEventsOfRooms(rows.map((r) => r.roomId));
      const end = query.offset + rows.length;
      return {
        rooms: rows.map((row) => summarise(row, states.get(row.roomId) ?? [])),
        offset: query.offset,
        total_rooms: total,
        ...(end < total ? { next_batch: end } : {}),
        ...(query.offset > 0 ? { prev_batch: Math.max(0, query.offset - query.limit) } : {}),
      };
    },

    async details(roomId: string): Promise<AdminRoomSummary> {
      const row = await existingRoom(roomId);
      return summarise(row, await stores.rooms.selectAllStateEvents(roomId));
    },

    async members(roomId: string): Promise<{ members: string[]; total: number }> {
      await existingRoom(roomId);
      const members = await stores.rooms.selectMembersOfRoom(roomId, 'join');
      return { members, total: members.length };
    },

    async state(roomId: string): Promise<ClientEvent[]> {
      const row = await existingRoom(roomId);
      const events = await stores.rooms.selectAllStateEvents(roomId);
      return Promise.all(events.map((e) => timeline.present(e, row.roomVersion as RoomVersionId)));
    },

    /** A page of the room's events as the client's /messages pages them, with no visibility check. */
    async messages(
      admin: Requester,
      roomId: string,
      options: Parameters<TimelineService['messages']>[2],
    ): ReturnType<TimelineService['messages']> {
      await existingRoom(roomId);
      return timeline.messages(admin, roomId, { ...options, unrestricted: true });
    },
  };
}

export type AdminRoomService = ReturnType<typeof createAdminRoomService>;
