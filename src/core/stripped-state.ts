/**
 * The state an invitee or knocker sees of a room before joining it (stripped state): the
 * event types the spec recommends a server include.
 * https://spec.matrix.org/v1.19/client-server-api/#stripped-state
 */
export const STRIPPED_STATE_TYPES = [
  'm.room.create',
  'm.room.join_rules',
  'm.room.name',
  'm.room.avatar',
  'm.room.canonical_alias',
  'm.room.encryption',
  'm.room.topic',
] as const;
