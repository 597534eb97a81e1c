/**
 * Checks 4–6 on receipt of a PDU: the auth rules against the event's own auth events (else
 * rejected), against the state before the event (else rejected) and against the room's
 * current state (else soft-failed).
 * Spec: https://spec.matrix.org/v1.16/server-server-api/#checks-performed-on-receipt-of-a-pdu
 */
import {
  authStateFrom,
  authorizeEvent,
  checkAuthEvents,
  type AuthChecks,
  type AuthEventEntry,
  type AuthResult,
  type AuthState,
} from '../auth-rules.js';
import { stateKeyOf, type Pdu, type RoomVersionId } from '../pdu.js';
import { getRoomVersion } from '../room-versions.js';

/** An auth event as the caller has it: the event, its ID, and whether it was rejected. */
export interface KnownAuthEvent extends AuthEventEntry {
  readonly event_id: string;
}

/** The check against auth events can also find that some of them are not available yet. */
export type AuthEventsResult =
  | AuthResult
  | { readonly allowed: false; readonly reason: string; readonly missing: readonly string[] };

/** The PDU in the shape the auth rules read, with its event ID. */
const asAuthEvent = (pdu: Pdu, eventId: string) => ({ ...pdu, event_id: eventId });

/**
 * Check 4: the auth rules about the `auth_events` list (each one the auth events selection
 * allows, no two for one state key, none rejected, the create event among them before
 * version 12, all in the event's room), then every rule against the state those events
 * form. In version 12, `createEvent` (the room's create event, whose ID the room ID
 * derives from) completes that state; it is required there for any other event.
 */
export function checkAgainstAuthEvents(
  pdu: Pdu,
  eventId: string,
  lookupAuthEvent: (eventId: string) => KnownAuthEvent | undefined,
  roomVersion: RoomVersionId,
  options: { readonly createEvent?: KnownAuthEvent; readonly checks?: AuthChecks } = {},
): AuthEventsResult {
  const entries: KnownAuthEvent[] = [];
  const missing: string[] = [];
  const seen = new Set<string>();
  for (const authId of pdu.auth_events) {
    if (seen.has(authId)) return { allowed: false, reason: `auth_events lists ${authId} twice` };
    seen.add(authId);
    const entry = lookupAuthEvent(authId);
    if (entry === undefined) missing.push(authId);
    else entries.push(entry);
  }
  if (missing.length > 0) {
    return { allowed: false, reason: 'Some auth events are not available', missing };
  }
  const event = asAuthEvent(pdu, eventId);
  const listCheck = checkAuthEvents(event, entries, roomVersion);
  if (!listCheck.allowed) return listCheck;

  const state = new Map(authStateFrom(entries));
  if (getRoomVersion(roomVersion).roomIdFromCreateEvent && pdu.type !== 'm.room.create') {
    const create = options.createEvent;
    if (create === undefined) {
      return { allowed: false, reason: 'The room create event is needed', missing: [] };
    }
    if (create.rejected === true) {
      return { allowed: false, reason: "The room's m.room.create event was rejected" };
    }
    state.set(stateKeyOf('m.room.create', ''), create);
  }
  return authorizeEvent(event, state, roomVersion, options.checks);
}

/**
 * Checks 5 and 6: the auth rules against a state — the state before the event (resolved
 * from its prev events' states) or the room's current state. The state must hold the create
 * event, in version 12 too.
 */
export function checkAgainstState(
  pdu: Pdu,
  eventId: string,
  state: AuthState,
  roomVersion: RoomVersionId,
  checks?: AuthChecks,
): AuthResult {
  return authorizeEvent(asAuthEvent(pdu, eventId), state, roomVersion, checks);
}
