/** Path and body pieces several route modules share. */
import { Type } from 'typebox';
import { invalidParam } from '../../core/errors.js';
import { parseRoomId } from '../../core/identifiers.js';

export const RoomParams = Type.Object({ roomId: Type.String({ minLength: 1, maxLength: 255 }) });
export const ReasonBody = Type.Object({ reason: Type.Optional(Type.String({ maxLength: 2048 })) });
export const TargetBody = Type.Object({
  user_id: Type.String({ minLength: 1, maxLength: 255 }),
  reason: Type.Optional(Type.String({ maxLength: 2048 })),
});
export const EventContent = Type.Record(Type.String(), Type.Unknown());
/** The `filter` query parameter: a RoomEventFilter as JSON (see room-filter.ts). */
export const FilterParam = Type.Optional(Type.String({ maxLength: 8192 }));

/** A room ID from the path, or 400 M_INVALID_PARAM. */
export function roomIdParam(raw: string): string {
  const roomId = parseRoomId(raw);
  if (!roomId) throw invalidParam('Invalid room ID');
  return roomId;
}
