/**
 * Check 1 on receipt of a PDU: it is a valid event in the format of its room version,
 * otherwise it is dropped. Spec: https://spec.matrix.org/v1.16/server-server-api/#checks-performed-on-receipt-of-a-pdu
 * (step 1), the PDU formats of rooms v10/v11 (`pdu_v11`) and v12 (`pdu_v12`), and the size
 * limits of https://spec.matrix.org/v1.16/client-server-api/#size-limits.
 */
import { canonicalJsonBytes } from '../canonical-json.js';
import { computeEventId } from '../event-hashing.js';
import { MAX_IDENTIFIER_BYTES, parseRoomId, parseUserId, type EventId } from '../identifiers.js';
import type { JsonObject, JsonValue, Pdu, RoomVersionId } from '../pdu.js';
import { getRoomVersion } from '../room-versions.js';

/** The largest PDU, as canonical JSON in the federation format with its signatures. */
export const MAX_PDU_BYTES = 65_536;
/** `type` and `state_key` are at most this many bytes of UTF-8. */
export const MAX_TYPE_BYTES = 255;
export const MAX_STATE_KEY_BYTES = 255;
/** At most this many `auth_events` and `prev_events` (room versions 4 and later). */
export const MAX_AUTH_EVENTS = 10;
export const MAX_PREV_EVENTS = 20;
/** Depth is below the largest integer canonical JSON allows. */
export const MAX_DEPTH = Number.MAX_SAFE_INTEGER;

/** Event IDs from room version 4 on: `$` + URL-safe unpadded Base64 of a SHA-256 hash. */
const EVENT_ID_V4 = /^\$[A-Za-z0-9_-]{43}$/;
/** Room IDs from room version 12 on: `!` + the create event's reference hash, likewise. */
const ROOM_ID_V12 = /^![A-Za-z0-9_-]{43}$/;

export type FormatResult =
  | { readonly valid: true; readonly pdu: Pdu; readonly eventId: EventId }
  | { readonly valid: false; readonly reason: string };

const invalid = (reason: string): FormatResult => ({ valid: false, reason });
const bytes = (s: string): number => Buffer.byteLength(s, 'utf8');
const isObject = (value: unknown): value is JsonObject =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
const isInteger = (value: unknown): value is number =>
  typeof value === 'number' && Number.isSafeInteger(value);

/** A list of event IDs in the v4+ format, at most `max` long; a reason when it is not. */
function eventIdListProblem(value: JsonValue | undefined, name: string, max: number) {
  if (!Array.isArray(value)) return `${name} must be an array of event IDs`;
  if (value.length > max) return `${name} lists ${value.length} events, more than ${max}`;
  for (const entry of value) {
    if (typeof entry !== 'string' || !EVENT_ID_V4.test(entry)) {
      return `${name} holds ${JSON.stringify(entry)}, which is not an event ID`;
    }
  }
  return undefined;
}

/** `signatures`: server name → key ID → signature string. */
function signaturesProblem(value: JsonValue | undefined): string | undefined {
  if (!isObject(value)) return 'signatures must be an object';
  for (const [server, byKey] of Object.entries(value)) {
    if (!isObject(byKey)) return `signatures of ${server} must be an object`;
    for (const [keyId, signature] of Object.entries(byKey)) {
      if (typeof signature !== 'string') return `signature ${server} ${keyId} must be a string`;
    }
  }
  return undefined;
}

/**
 * Checks that `raw` is a PDU of `roomVersion` and returns it typed, with its event ID. The
 * room version comes from the caller (the room's create event, or `room_version` of a
 * `send_join` / invite exchange); in version 12 a create event carries no `room_id`.
 */
export function checkPduFormat(raw: unknown, roomVersion: RoomVersionId): FormatResult {
  if (!isObject(raw)) return invalid('A PDU must be a JSON object');
  let size: number;
  try {
    size = canonicalJsonBytes(raw).length;
  } catch (error) {
    return invalid(`The PDU is not canonical JSON: ${(error as Error).message}`);
  }
  if (size > MAX_PDU_BYTES) {
    return invalid(`The PDU is ${size} bytes, more than ${MAX_PDU_BYTES}`);
  }

  const { type, sender, content, origin_server_ts: ts, depth } = raw;
  if (typeof type !== 'string' || type === '') return invalid('type must be a non-empty string');
  if (bytes(type) > MAX_TYPE_BYTES) return invalid(`type is longer than ${MAX_TYPE_BYTES} bytes`);
  if (typeof sender !== 'string' || parseUserId(sender) === null) {
    return invalid('sender must be a valid user ID');
  }
  if (Object.hasOwn(raw, 'state_key')) {
    const stateKey = raw['state_key'];
    if (typeof stateKey !== 'string') return invalid('state_key must be a string');
    if (bytes(stateKey) > MAX_STATE_KEY_BYTES) {
      return invalid(`state_key is longer than ${MAX_STATE_KEY_BYTES} bytes`);
    }
  }
  if (!isObject(content)) return invalid('content must be an object');
  if (!isInteger(ts)) return invalid('origin_server_ts must be an integer');
  if (!isInteger(depth) || depth < 0 || depth > MAX_DEPTH) {
    return invalid('depth must be an integer from 0 to 2^53 - 1');
  }
  const hashes = raw['hashes'];
  if (!isObject(hashes) || typeof hashes['sha256'] !== 'string') {
    return invalid('hashes.sha256 must be a string');
  }
  const signaturesIssue = signaturesProblem(raw['signatures']);
  if (signaturesIssue !== undefined) return invalid(signaturesIssue);
  if (Object.hasOwn(raw, 'unsigned') && !isObject(raw['unsigned'])) {
    return invalid('unsigned must be an object');
  }
  const listIssue =
    eventIdListProblem(raw['auth_events'], 'auth_events', MAX_AUTH_EVENTS) ??
    eventIdListProblem(raw['prev_events'], 'prev_events', MAX_PREV_EVENTS);
  if (listIssue !== undefined) return invalid(listIssue);
  if (Object.hasOwn(raw, 'redacts') && typeof raw['redacts'] !== 'string') {
    return invalid('redacts must be an event ID');
  }

  // room_id: required, `!opaque:server` before version 12; in version 12 the room's hash,
  // and absent from the create event, whose ID defines the room ID.
  const version = getRoomVersion(roomVersion);
  const roomId = raw['room_id'];
  if (!version.createEventHasRoomId && type === 'm.room.create' && raw['state_key'] === '') {
    if (Object.hasOwn(raw, 'room_id')) {
      return invalid(`A room version ${roomVersion} m.room.create event has no room_id`);
    }
  } else if (typeof roomId !== 'string' || parseRoomId(roomId) === null) {
    return invalid('room_id must be a room ID');
  } else if (version.roomIdFromCreateEvent ? !ROOM_ID_V12.test(roomId) : !roomId.includes(':')) {
    return invalid(`room_id ${roomId} is not a room ID of room version ${roomVersion}`);
  } else if (bytes(roomId) > MAX_IDENTIFIER_BYTES) {
    return invalid('room_id is too long');
  }

  const pdu = raw as unknown as Pdu;
  return { valid: true, pdu, eventId: computeEventId(pdu, roomVersion) };
}
