/**
 * Event relationships (https://spec.matrix.org/v1.19/client-server-api/#forming-relationships-between-events):
 * what an event's `m.relates_to` says, and which relations the server bundles.
 */
import type { JsonObject } from './pdu.js';

export interface Relation {
  relType: string;
  /** The parent event. */
  eventId: string;
}

/** The relation types aggregated into `unsigned.m.relations`. */
export const AGGREGATED_REL_TYPES = ['m.thread', 'm.replace', 'm.reference'] as const;

const MAX_ID_LENGTH = 255;

/**
 * The relation an event's content declares: `m.relates_to` with a string `rel_type` and an
 * event ID (`$…`). Replies (`m.in_reply_to` alone) are not relations. Anything malformed is
 * no relation, as the spec asks of servers.
 */
export function relationOf(content: JsonObject, eventType: string): Relation | null {
  // A redaction's own content never relates (its target is `redacts`).
  if (eventType === 'm.room.redaction') return null;
  const relatesTo = content['m.relates_to'];
  if (typeof relatesTo !== 'object' || relatesTo === null || Array.isArray(relatesTo)) return null;
  const { rel_type: relType, event_id: eventId } = relatesTo as JsonObject;
  if (typeof relType !== 'string' || relType.length === 0 || relType.length > MAX_ID_LENGTH)
    return null;
  if (typeof eventId !== 'string' || !eventId.startsWith('$') || eventId.length > MAX_ID_LENGTH)
    return null;
  if (relType.includes('\u0000') || eventId.includes('\u0000')) return null;
  return { relType, eventId };
}

/** The depth `recurse=true` follows relations of relations to (the spec asks for at least 3). */
export const RECURSION_DEPTH = 3;
