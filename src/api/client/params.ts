/** Path and body pieces several route modules share. */
import { Type } from 'typebox';
import { invalidParam } from '../../core/errors.js';
import { parseRoomId, parseUserId } from '../../core/identifiers.js';

export const RoomParams = Type.Object({ roomId: Type.String({ minLength: 1, maxLength: 255 }) });
const Reason = Type.String({ maxLength: 2048 });
export const ReasonBody = Type.Object({ reason: Type.Optional(Reason) });
export const TargetBody = Type.Object({
  user_id: Type.String({ minLength: 1, maxLength: 255 }),
  reason: Type.Optional(Reason),
});
export const EventContent = Type.Record(Type.String(), Type.Unknown());
/**
 * Text kept in a column of its own rather than inside an event's JSON (display names, status
 * messages): NUL is refused (400 M_BAD_JSON), since PostgreSQL cannot store it in text.
 */
export const ColumnText = (options: { maxLength: number }) =>
  Type.String({ ...options, pattern: '^[^\\u0000]*$' });

/** The longest display name and avatar URI a profile, or a member event, may hold. */
export const MAX_DISPLAYNAME_LENGTH = 256;
export const MAX_AVATAR_URL_LENGTH = 1000;

/**
 * The content of a member event sent as state: a membership, and the display name and avatar
 * within the profile's limits (they are kept in columns of their own); anything else as given.
 */
export const MemberContent = Type.Object({
  membership: Type.Union(['invite', 'join', 'knock', 'leave', 'ban'].map((m) => Type.Literal(m))),
  displayname: Type.Optional(
    Type.Union([ColumnText({ maxLength: MAX_DISPLAYNAME_LENGTH }), Type.Null()]),
  ),
  avatar_url: Type.Optional(
    Type.Union([ColumnText({ maxLength: MAX_AVATAR_URL_LENGTH }), Type.Null()]),
  ),
  reason: Type.Optional(Reason),
});

/** The `filter` query parameter: a RoomEventFilter as JSON (see room-filter.ts). */
export const FilterParam = Type.Optional(Type.String({ maxLength: 8192 }));

/** A user ID from the path, or 400 M_INVALID_PARAM. */
export function userIdParam(raw: string): string {
  const parsed = parseUserId(raw);
  if (!parsed) throw invalidParam('Invalid user ID');
  return parsed.userId;
}

/** A room ID from the path, or 400 M_INVALID_PARAM. */
export function roomIdParam(raw: string): string {
  const roomId = parseRoomId(raw);
  if (!roomId) throw invalidParam('Invalid room ID');
  return roomId;
}
