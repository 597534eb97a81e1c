/**
 * The checks performed on receipt of a PDU, in the spec's order, as one function:
 * 1. format and room version — else dropped;
 * 2. signatures — else dropped;
 * 3. content hash — else processed redacted;
 * 4. auth rules against the event's auth events — else rejected;
 * 5. auth rules against the state before the event — else rejected;
 * 6. auth rules against the current state of the room — else soft-failed.
 * (Step 7, a room's policy server, is not implemented.)
 * Spec: https://spec.matrix.org/v1.16/server-server-api/#checks-performed-on-receipt-of-a-pdu
 *
 * Everything the checks need comes from the caller; states may be given as functions so that
 * they are only computed (state resolution over the prev events) when the cheaper checks
 * have passed. A caller that must fetch between steps (missing auth events, the state
 * before a gap) calls the step functions one by one instead.
 */
import type { AuthChecks, AuthState } from '../auth-rules.js';
import type { EventId } from '../identifiers.js';
import type { Pdu, RoomVersionId } from '../pdu.js';
import { checkAgainstAuthEvents, checkAgainstState, type KnownAuthEvent } from './authorization.js';
import { checkPduContentHash } from './content-hash.js';
import { checkPduFormat } from './format.js';
import { checkPduSignatures, verifyThirdPartySigned, type VerifyKeyLookup } from './signatures.js';

export interface ReceiptInput {
  readonly roomVersion: RoomVersionId;
  /** The PDU as received (parsed JSON). */
  readonly pdu: unknown;
  readonly lookupKey: VerifyKeyLookup;
  /** The events named in the PDU's `auth_events`, as the caller has them. */
  readonly lookupAuthEvent: (eventId: string) => KnownAuthEvent | undefined;
  /** The room's create event (needed in room version 12, where it is not an auth event). */
  readonly createEvent?: KnownAuthEvent;
  /** The state before the event: the resolution of the states after its prev events. */
  readonly stateBefore: AuthState | (() => AuthState);
  /**
   * The room's current state (the resolution over its forward extremities). Absent for
   * events that do not become part of the live timeline (backfill, outliers): no soft-fail
   * check then.
   */
  readonly currentState?: AuthState | (() => AuthState);
  /** Defaults to ed25519 verification of third-party invites (`verifyThirdPartySigned`). */
  readonly verifyThirdPartySigned?: AuthChecks['verifyThirdPartySigned'];
}

interface Checked {
  readonly eventId: EventId;
  /** The event to store: the one received, or its redacted form when its hash did not match. */
  readonly pdu: Pdu;
  readonly redacted: boolean;
}

export type ReceiptVerdict =
  | { readonly verdict: 'dropped'; readonly step: 'format' | 'signatures'; readonly reason: string }
  /** Some auth events are not available: fetch them (`/event_auth`, `/event`) and check again. */
  | {
      readonly verdict: 'incomplete';
      readonly eventId: EventId;
      readonly missing: readonly string[];
    }
  | (Checked & {
      readonly verdict: 'rejected';
      readonly step: 'auth-events' | 'state-before';
      readonly reason: string;
    })
  | (Checked & { readonly verdict: 'soft-failed'; readonly reason: string })
  | (Checked & { readonly verdict: 'accepted' });

const valueOf = (state: AuthState | (() => AuthState)): AuthState =>
  typeof state === 'function' ? state() : state;

export function checkReceivedPdu(input: ReceiptInput): ReceiptVerdict {
  const { roomVersion } = input;
  const format = checkPduFormat(input.pdu, roomVersion);
  if (!format.valid) return { verdict: 'dropped', step: 'format', reason: format.reason };
  const { eventId } = format;

  const signatures = checkPduSignatures(format.pdu, roomVersion, input.lookupKey);
  if (!signatures.valid) {
    return { verdict: 'dropped', step: 'signatures', reason: signatures.reason };
  }

  const hash = checkPduContentHash(format.pdu, roomVersion);
  const checked: Checked = { eventId, pdu: hash.pdu, redacted: !hash.matches };
  const checks: AuthChecks = {
    isSignedBy: (server) => signatures.signedBy.has(server),
    verifyThirdPartySigned: input.verifyThirdPartySigned ?? verifyThirdPartySigned,
  };

  const byAuthEvents = checkAgainstAuthEvents(
    checked.pdu,
    eventId,
    input.lookupAuthEvent,
    roomVersion,
    { checks, ...(input.createEvent === undefined ? {} : { createEvent: input.createEvent }) },
  );
  if ('missing' in byAuthEvents) {
    return { verdict: 'incomplete', eventId, missing: byAuthEvents.missing };
  }
  if (!byAuthEvents.allowed) {
    return { ...checked, verdict: 'rejected', step: 'auth-events', reason: byAuthEvents.reason };
  }

  const before = checkAgainstState(
    checked.pdu,
    eventId,
    valueOf(input.stateBefore),
    roomVersion,
    checks,
  );
  if (!before.allowed) {
    return { ...checked, verdict: 'rejected', step: 'state-before', reason: before.reason };
  }

  if (input.currentState !== undefined) {
    const current = checkAgainstState(
      checked.pdu,
      eventId,
      valueOf(input.currentState),
      roomVersion,
      checks,
    );
    if (!current.allowed) return { ...checked, verdict: 'soft-failed', reason: current.reason };
  }
  return { ...checked, verdict: 'accepted' };
}
