/**
 * Auth chains: the events reachable from an event by following `auth_events`, and the
 * *auth difference* of several room states, as state resolution v2 defines them.
 * Spec: https://spec.matrix.org/v1.16/rooms/v2/#definitions ("Auth chain", "Auth difference").
 *
 * Events come from a caller-provided lookup (memory, a cache in front of storage, …): this
 * code does no I/O. Every event reached must be known to the lookup; otherwise a
 * `MissingEventsError` names all the missing ones found in that walk, so the caller can fetch
 * them (`/event_auth`, `/event`) and call again.
 */
import type { AuthEvent } from '../auth-rules.js';
import type { RoomVersionId } from '../pdu.js';
import { getRoomVersion } from '../room-versions.js';

/** An event as state resolution and the auth chain helpers read it. A stored PDU plus its ID fits. */
export interface ResolvableEvent extends AuthEvent {
  readonly event_id: string;
  readonly auth_events: readonly string[];
  readonly origin_server_ts: number;
  /**
   * The event was rejected on receipt (it failed the auth rules against its auth events or
   * the state before it). Rejected events never enter resolved state and are not used as
   * auth events.
   */
  readonly rejected?: boolean;
}

/** Finds an event by ID; undefined when the caller does not have it. */
export type EventLookup = (eventId: string) => ResolvableEvent | undefined;

/**
 * The lookup to walk auth chains with in `roomVersion`. From room version 12 the create
 * event is not listed in `auth_events` (the room ID names it) but is still an auth event of
 * every other event of the room: the returned lookup lists it, so that auth chains, the
 * auth difference and the orderings see the same graph as in earlier versions (and as other
 * servers do). Before version 12 it returns `lookup` itself.
 */
export function authGraphLookup(lookup: EventLookup, roomVersion: RoomVersionId): EventLookup {
  if (!getRoomVersion(roomVersion).roomIdFromCreateEvent) return lookup;
  const completed = new Map<string, ResolvableEvent>();
  return (eventId) => {
    const known = completed.get(eventId);
    if (known !== undefined) return known;
    const event = lookup(eventId);
    if (event === undefined) return undefined;
    let result = event;
    if (event.type !== 'm.room.create' && event.room_id?.startsWith('!') === true) {
      const createId = `$${event.room_id.slice(1)}`;
      if (!event.auth_events.includes(createId)) {
        result = { ...event, auth_events: [...event.auth_events, createId] };
      }
    }
    completed.set(eventId, result);
    return result;
  };
}

/** Thrown when events needed for a computation are not known to the lookup. */
export class MissingEventsError extends Error {
  readonly eventIds: readonly string[];
  constructor(eventIds: readonly string[]) {
    super(`Events needed but not available: ${eventIds.slice(0, 10).join(', ')}`);
    this.name = 'MissingEventsError';
    this.eventIds = eventIds;
  }
}

/** Looks an event up, throwing `MissingEventsError` when it is unknown. */
export function requireEvent(lookup: EventLookup, eventId: string): ResolvableEvent {
  const event = lookup(eventId);
  if (event === undefined) throw new MissingEventsError([eventId]);
  return event;
}

/**
 * Every event reachable from `start` through `auth_events`, added to `into` (a new set by
 * default). With `includeStart` the starting events are in the result too. A walk never
 * descends below an event in `stopAt` (whose own auth chain the caller already has), nor
 * adds it. Iterative, so deep chains cannot overflow the stack; each event is visited once.
 */
export function collectAuthChain(
  start: Iterable<string>,
  lookup: EventLookup,
  options: {
    readonly includeStart?: boolean;
    readonly stopAt?: ReadonlySet<string>;
    readonly into?: Set<string>;
  } = {},
): Set<string> {
  const chain = options.into ?? new Set<string>();
  const stopAt = options.stopAt;
  const missing = new Set<string>();
  const stack: string[] = [];
  const visited = new Set<string>();
  const visit = (eventId: string, isStart: boolean): void => {
    if (stopAt?.has(eventId) === true) return;
    if (!isStart || options.includeStart === true) chain.add(eventId);
    if (visited.has(eventId)) return;
    visited.add(eventId);
    stack.push(eventId);
  };
  for (const eventId of start) visit(eventId, true);
  while (stack.length > 0) {
    const eventId = stack.pop() as string;
    const event = lookup(eventId);
    if (event === undefined) {
      missing.add(eventId);
      continue;
    }
    for (const authId of event.auth_events) visit(authId, false);
  }
  if (missing.size > 0) throw new MissingEventsError([...missing]);
  return chain;
}

/** The auth chain of a set of events: the union of their auth chains (not the events themselves). */
export function authChain(eventIds: Iterable<string>, lookup: EventLookup): Set<string> {
  return collectAuthChain(eventIds, lookup);
}

/**
 * The auth difference of room states given as sets of event IDs: ∪Cᵢ − ∩Cᵢ, where Cᵢ is the
 * full auth chain of state i.
 *
 * Cᵢ here includes the state events themselves, as Synapse computes it: an event present in
 * every state is then never in the difference. (Events that are in some states only are in
 * the conflicted state set anyway, so for them the choice changes nothing.)
 *
 * Efficient for states that mostly agree: the auth chain of the events common to all states
 * is walked once, and each state's own events are walked only down to it.
 */
export function authChainDifference(
  states: readonly ReadonlySet<string>[],
  lookup: EventLookup,
): Set<string> {
  if (states.length < 2) return new Set();
  const [first, ...rest] = states as [ReadonlySet<string>, ...ReadonlySet<string>[]];
  const common = new Set<string>();
  for (const eventId of first) if (rest.every((state) => state.has(eventId))) common.add(eventId);
  const base = collectAuthChain(common, lookup, { includeStart: true });

  const counts = new Map<string, number>();
  for (const state of states) {
    const own: string[] = [];
    for (const eventId of state) if (!common.has(eventId)) own.push(eventId);
    const extra = collectAuthChain(own, lookup, { includeStart: true, stopAt: base });
    for (const eventId of extra) counts.set(eventId, (counts.get(eventId) ?? 0) + 1);
  }
  const difference = new Set<string>();
  for (const [eventId, count] of counts) if (count < states.length) difference.add(eventId);
  return difference;
}
