/**
 * Events fetched to complete what a received event needs (its auth chain from `/event_auth`,
 * the state after a prev event from `/state_ids` and `/event`) pass check 4 too before they
 * are kept: each one against its own auth events, auth events first, so that one rejected
 * event rejects those it authorises.
 * Spec: https://spec.matrix.org/v1.16/server-server-api/#checks-performed-on-receipt-of-a-pdu
 * ("the auth events … must also be checked").
 */
import type { AuthChecks } from '../auth-rules.js';
import type { Pdu, RoomVersionId } from '../pdu.js';
import { checkAgainstAuthEvents, type KnownAuthEvent } from './authorization.js';

/** A fetched event that passed the format, signature and hash checks. */
export interface FetchedEvent {
  readonly eventId: string;
  readonly pdu: Pdu;
  /** The checks the auth rules call back (whose signatures verified, third-party invites). */
  readonly checks?: AuthChecks;
}

export type FetchedVerdict =
  | { readonly verdict: 'accepted' }
  | { readonly verdict: 'rejected'; readonly reason: string }
  /** Some auth event is neither known nor among the fetched ones: it cannot be checked. */
  | { readonly verdict: 'missing'; readonly missing: readonly string[] };

/**
 * Check 4 for each fetched event, in an order where an event's auth events come before it.
 * `lookupKnown` answers events the server already has (with `rejected` set when they were);
 * in room version 12, `createEventId` names the room's create event (known or fetched).
 * An event on a cycle of auth events (impossible with hashed IDs, but not trusted) is
 * rejected.
 */
export function checkFetchedEvents(
  events: readonly FetchedEvent[],
  lookupKnown: (eventId: string) => KnownAuthEvent | undefined,
  roomVersion: RoomVersionId,
  options: { readonly createEventId?: string } = {},
): Map<string, FetchedVerdict> {
  const byId = new Map(events.map((e) => [e.eventId, e]));
  const verdicts = new Map<string, FetchedVerdict>();
  const visiting = new Set<string>();

  /** An event as the checks of those it authorises see it (undefined: not available). */
  function entryOf(id: string): KnownAuthEvent | undefined {
    const fetched = byId.get(id);
    if (!fetched) return lookupKnown(id);
    const verdict = decide(fetched);
    if (verdict.verdict === 'missing') return undefined;
    return {
      ...fetched.pdu,
      event_id: id,
      ...(verdict.verdict === 'rejected' ? { rejected: true } : {}),
    };
  }

  function decide(event: FetchedEvent): FetchedVerdict {
    const done = verdicts.get(event.eventId);
    if (done) return done;
    if (visiting.has(event.eventId)) {
      return { verdict: 'rejected', reason: 'Its auth events form a cycle' };
    }
    visiting.add(event.eventId);
    const checks = event.checks;
    const create =
      options.createEventId !== undefined && options.createEventId !== event.eventId
        ? entryOf(options.createEventId)
        : undefined;
    const result = checkAgainstAuthEvents(event.pdu, event.eventId, entryOf, roomVersion, {
      ...(create ? { createEvent: create } : {}),
      ...(checks ? { checks } : {}),
    });
    visiting.delete(event.eventId);
    const verdict: FetchedVerdict =
      'missing' in result
        ? { verdict: 'missing', missing: result.missing }
        : result.allowed
          ? { verdict: 'accepted' }
          : { verdict: 'rejected', reason: result.reason };
    // A cycle found below this event decided it already: keep that answer.
    const settled = verdicts.get(event.eventId) ?? verdict;
    verdicts.set(event.eventId, settled);
    return settled;
  }

  for (const event of events) decide(event);
  return verdicts;
}
