/**
 * Events made as another server would make them: hashed and signed with that server's key,
 * for tests that hand Commons PDUs from a "remote server" (over /send, send_join, or straight
 * to the room DAG service).
 */
import { addContentHash, computeEventId } from '../../src/core/event-hashing.js';
import type { JsonObject, Pdu, RoomVersionId } from '../../src/core/pdu.js';
import { signPdu, type SigningKey } from '../../src/core/signing.js';

export interface RemoteEventSpec {
  roomId: string;
  type: string;
  sender: string;
  stateKey?: string;
  content?: JsonObject;
  authEvents: readonly string[];
  prevEvents: readonly string[];
  depth: number;
  ts?: number;
}

/** A PDU with its content hash, signed by `server` with `key`, and its event ID. */
export function remoteEvent(
  version: RoomVersionId,
  server: string,
  key: SigningKey,
  spec: RemoteEventSpec,
): { eventId: string; pdu: Pdu } {
  const base = {
    room_id: spec.roomId,
    type: spec.type,
    sender: spec.sender,
    ...(spec.stateKey === undefined ? {} : { state_key: spec.stateKey }),
    content: spec.content ?? {},
    origin_server_ts: spec.ts ?? Date.now(),
    depth: spec.depth,
    auth_events: [...spec.authEvents],
    prev_events: [...spec.prevEvents],
  };
  let pdu: Pdu = { ...addContentHash(base), signatures: {} };
  pdu = { ...pdu, signatures: signPdu(pdu, version, server, key).signatures };
  return { eventId: computeEventId(pdu, version), pdu };
}
