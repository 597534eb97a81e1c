/**
 * Content hashes, reference hashes, event IDs and (room version 12) room IDs.
 * https://spec.matrix.org/v1.19/server-server-api/#calculating-the-content-hash-for-an-event
 * https://spec.matrix.org/v1.19/server-server-api/#calculating-the-reference-hash-for-an-event
 * https://spec.matrix.org/v1.19/rooms/v12/#event-format
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import {
  base64Unpadded,
  canonicalJsonBytes,
  decodeBase64Unpadded,
  urlSafeBase64Unpadded,
} from './canonical-json.js';
import type { EventId, RoomId } from './identifiers.js';
import type { JsonObject, RoomVersionId } from './pdu.js';
import { redactEventJson, type PduLike } from './redaction.js';
import { getRoomVersion } from './room-versions.js';

const sha256 = (bytes: Uint8Array): Buffer => createHash('sha256').update(bytes).digest();

/** A shallow copy of an object without the named top-level keys. */
function without(event: PduLike, keys: readonly string[]): JsonObject {
  const copy: JsonObject = { ...(event as JsonObject) };
  for (const key of keys) delete copy[key];
  return copy;
}

/** The SHA-256 content hash: of the whole event minus `unsigned`, `signatures` and `hashes`. */
export function computeContentHash(event: PduLike): Buffer {
  return sha256(canonicalJsonBytes(without(event, ['unsigned', 'signatures', 'hashes'])));
}

/** Returns a copy of the event with `hashes.sha256` set to its content hash (unpadded Base64). */
export function addContentHash<T extends PduLike>(event: T): T & { hashes: { sha256: string } } {
  const hashes = { sha256: base64Unpadded(computeContentHash(event)) };
  return { ...event, hashes };
}

/** Whether the event's `hashes.sha256` matches its content (false if absent or malformed). */
export function checkContentHash(event: PduLike): boolean {
  const hashes = (event as JsonObject)['hashes'];
  if (typeof hashes !== 'object' || hashes === null || Array.isArray(hashes)) return false;
  const claimed = hashes['sha256'];
  if (typeof claimed !== 'string') return false;
  let claimedBytes: Buffer;
  try {
    claimedBytes = decodeBase64Unpadded(claimed);
  } catch {
    return false;
  }
  const actual = computeContentHash(event);
  return claimedBytes.length === actual.length && timingSafeEqual(claimedBytes, actual);
}

/** The reference hash: SHA-256 of the redacted event without `signatures` and `unsigned`. */
export function computeReferenceHash(event: PduLike, roomVersion: RoomVersionId): Buffer {
  const redacted = redactEventJson(without(event, ['signatures', 'unsigned']), roomVersion);
  return sha256(canonicalJsonBytes(redacted));
}

/** The event ID of a PDU (room versions 4+): `$` + URL-safe unpadded Base64 of its reference hash. */
export function computeEventId(event: PduLike, roomVersion: RoomVersionId): EventId {
  return `$${urlSafeBase64Unpadded(computeReferenceHash(event, roomVersion))}` as EventId;
}

/**
 * The room ID a create event defines in room versions that derive it (v12): `!` + URL-safe
 * unpadded Base64 of the create event's reference hash, with no server name.
 */
export function roomIdFromCreateEvent(createEvent: PduLike, roomVersion: RoomVersionId): RoomId {
  if (!getRoomVersion(roomVersion).roomIdFromCreateEvent) {
    throw new Error(`Room version ${roomVersion} does not derive room IDs from the create event`);
  }
  if ((createEvent as JsonObject)['type'] !== 'm.room.create') {
    throw new Error('Room IDs are derived from m.room.create events only');
  }
  return `!${urlSafeBase64Unpadded(computeReferenceHash(createEvent, roomVersion))}` as RoomId;
}
