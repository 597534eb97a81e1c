/**
 * Check 3 on receipt of a PDU: its content hash; on a mismatch the event is redacted
 * before being processed further (it is not dropped: its redacted form was signed).
 * Spec: https://spec.matrix.org/v1.16/server-server-api/#validating-hashes-and-signatures-on-received-events
 */
import { checkContentHash } from '../event-hashing.js';
import type { Pdu, RoomVersionId } from '../pdu.js';
import { redactPdu } from '../redaction.js';

export type ContentHashResult =
  | { readonly matches: true; readonly pdu: Pdu }
  /** `pdu` is the redacted event, to be processed (and stored) instead of the one received. */
  | { readonly matches: false; readonly pdu: Pdu; readonly reason: string };

export function checkPduContentHash(pdu: Pdu, roomVersion: RoomVersionId): ContentHashResult {
  if (checkContentHash(pdu)) return { matches: true, pdu };
  return {
    matches: false,
    pdu: redactPdu(pdu, roomVersion),
    reason: 'The content hash does not match: the event is processed redacted',
  };
}
