/**
 * The redaction algorithm: what of an event survives redaction, per room version. It also
 * defines what event signatures and reference hashes cover.
 * https://spec.matrix.org/v1.19/rooms/v10/#redactions (the v9 rules)
 * https://spec.matrix.org/v1.19/rooms/v11/#redactions (also used by v12)
 */
import type { JsonObject, JsonValue, Pdu, RoomVersionId, UnsignedPdu } from './pdu.js';
import { getRoomVersion } from './room-versions.js';

/** Anything in event shape: a typed PDU, or raw event JSON as received over federation. */
export type PduLike = Pdu | UnsignedPdu | JsonObject;

type Rules = 'v9' | 'v11';

const V11_TOP_LEVEL = [
  'event_id',
  'type',
  'room_id',
  'sender',
  'state_key',
  'content',
  'hashes',
  'signatures',
  'depth',
  'prev_events',
  'auth_events',
  'origin_server_ts',
] as const;

const TOP_LEVEL_KEYS: Record<Rules, ReadonlySet<string>> = {
  v9: new Set([...V11_TOP_LEVEL, 'prev_state', 'origin', 'membership']),
  v11: new Set(V11_TOP_LEVEL),
};

/** Content keys kept per event type; `'all'` keeps the whole content. */
type ContentRule = readonly string[] | 'all';

const POWER_LEVELS_V9 = [
  'ban',
  'events',
  'events_default',
  'kick',
  'redact',
  'state_default',
  'users',
  'users_default',
];

const CONTENT_KEYS: Record<Rules, Readonly<Record<string, ContentRule>>> = {
  v9: {
    'm.room.member': ['membership', 'join_authorised_via_users_server'],
    'm.room.create': ['creator'],
    'm.room.join_rules': ['join_rule', 'allow'],
    'm.room.power_levels': POWER_LEVELS_V9,
    'm.room.history_visibility': ['history_visibility'],
  },
  v11: {
    'm.room.member': ['membership', 'join_authorised_via_users_server'],
    'm.room.create': 'all',
    'm.room.join_rules': ['join_rule', 'allow'],
    'm.room.power_levels': [...POWER_LEVELS_V9, 'invite'],
    'm.room.history_visibility': ['history_visibility'],
    'm.room.redaction': ['redacts'],
  },
};

const isObject = (value: JsonValue | undefined): value is JsonObject =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

function redactContent(type: JsonValue | undefined, content: JsonObject, rules: Rules): JsonObject {
  const table = CONTENT_KEYS[rules];
  if (typeof type !== 'string' || !Object.hasOwn(table, type)) return {};
  const rule = table[type];
  if (rule === undefined) return {};
  if (rule === 'all') return structuredClone(content);
  const kept: JsonObject = {};
  for (const key of rule) {
    const value = content[key];
    if (value !== undefined) kept[key] = structuredClone(value);
  }
  // v11: a member event keeps only the `signed` part of `third_party_invite`.
  const invite = content['third_party_invite'];
  if (
    rules === 'v11' &&
    type === 'm.room.member' &&
    isObject(invite) &&
    invite['signed'] !== undefined
  ) {
    kept['third_party_invite'] = { signed: structuredClone(invite['signed']) };
  }
  return kept;
}

/** Redacts raw event JSON under the rules of a room version; the input is left unchanged. */
export function redactEventJson(event: JsonObject, roomVersion: RoomVersionId): JsonObject {
  const rules = getRoomVersion(roomVersion).redactionRules;
  const keep = TOP_LEVEL_KEYS[rules];
  const redacted: JsonObject = {};
  for (const [key, value] of Object.entries(event)) {
    if (!keep.has(key) || key === 'content' || value === undefined) continue;
    redacted[key] = structuredClone(value);
  }
  const content = event['content'];
  redacted['content'] = isObject(content) ? redactContent(event['type'], content, rules) : {};
  return redacted;
}

/** Redacts a PDU under the rules of its room version, returning a new object of the same shape. */
export function redactPdu<T extends PduLike>(pdu: T, roomVersion: RoomVersionId): T {
  return redactEventJson(pdu as unknown as JsonObject, roomVersion) as unknown as T;
}
