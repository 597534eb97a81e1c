/**
 * Synapse's make_room_admin: gives a local user the power of the room's most powerful local
 * member, through an ordinary power-levels event sent by that member (and an invite from them
 * first when the user is not in the room). Refused when no local member may change power
 * levels. https://element-hq.github.io/synapse/latest/admin_api/rooms.html#make-room-admin-api
 */
import {
  authStateFrom,
  powerLevelOf,
  requiredPowerForEvent,
  type AuthStateEvent,
} from '../../core/auth-rules.js';
import { MatrixError, notFound } from '../../core/errors.js';
import type { JsonObject, RoomVersionId } from '../../core/pdu.js';
import type { ServiceContext } from '../context.js';
import type { EventWriter } from '../event-writer.js';
import type { RoomService } from '../rooms.js';

/** The level a room's creator has by default: what an admin of a v12 room is given. */
const ADMIN_LEVEL = 100;

export function createRoomAdminService(
  ctx: ServiceContext,
  deps: { writer: EventWriter; rooms: RoomService },
) {
  const isLocal = (userId: string) => userId.endsWith(`:${ctx.settings.serverName}`);

  return {
    async makeRoomAdmin(roomId: string, userId: string): Promise<void> {
      if (!(await ctx.storage.stores.accounts.selectUser(userId))) {
        throw notFound('User not found');
      }
      await ctx.storage.tx('makeRoomAdmin', async (tx) => {
        await tx.rooms.lockRoom(roomId);
        const room = await tx.rooms.selectRoom(roomId);
        if (!room) throw notFound('Room not found');
        const version = room.roomVersion as RoomVersionId;
        const state = await tx.rooms.selectAllStateEvents(roomId);
        const authState = authStateFrom(
          state.map((row): AuthStateEvent => ({ ...row.pdu, event_id: row.eventId })),
        );
        const needed = requiredPowerForEvent('m.room.power_levels', true, authState);
        let best: { userId: string; level: number } | null = null;
        for (const member of await tx.rooms.selectMembersOfRoom(roomId, 'join')) {
          if (!isLocal(member) || member === userId) continue;
          const level = powerLevelOf(member, authState, version);
          if (level >= needed && (best === null || level > best.level)) {
            best = { userId: member, level };
          }
        }
        if (best === null) {
          throw new MatrixError(
            400,
            'M_UNKNOWN',
            'No local member of the room may change its power levels',
          );
        }
        const membership = await tx.rooms.selectMembership(roomId, userId);
        if (membership?.membership !== 'join' && membership?.membership !== 'invite') {
          await deps.writer.append(tx, roomId, {
            type: 'm.room.member',
            stateKey: userId,
            sender: best.userId,
            content: await deps.rooms.memberContent(tx, userId, 'invite'),
          });
        }
        const current = state.find((e) => e.pdu.type === 'm.room.power_levels')?.pdu.content ?? {};
        const users = { ...((current.users as JsonObject | undefined) ?? {}) };
        users[userId] = Number.isFinite(best.level) ? best.level : Math.max(ADMIN_LEVEL, needed);
        await deps.writer.append(tx, roomId, {
          type: 'm.room.power_levels',
          stateKey: '',
          sender: best.userId,
          content: { ...current, users },
        });
      });
    },
  };
}

export type RoomAdminService = ReturnType<typeof createRoomAdminService>;
