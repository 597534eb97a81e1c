/**
 * State resolution: v2 (room versions 10 and 11) and v2.1 (room version 12, MSC4297).
 * Spec: https://spec.matrix.org/v1.16/rooms/v2/#state-resolution and
 * https://spec.matrix.org/v1.16/rooms/v12/#state-resolution
 *
 * `resolveState` takes the states to merge (maps from (type, state_key) to event ID) and a
 * lookup for the events they name and their auth chains, and returns the resolved state.
 * It is pure: the same inputs give the same state on every server.
 *
 * Where the spec leaves room to read it two ways, this follows what the deployed servers
 * (Synapse, and the ruma crate used by Conduit-family servers) do, so that rooms converge:
 * - a state's full auth chain includes the state's own events (`authChainDifference`);
 * - the create event counts as a power event (it can only be conflicted in a broken room);
 * - events rejected on receipt stay in the full conflicted set, where they take part in the
 *   orderings, but are never admitted into the resolved state (the spec would re-admit an
 *   event rejected against the state before it if it passed here; Synapse keeps the
 *   rejection, and so does this code, so that rooms converge);
 * - step 1 enlarges the power events with those of their auth events that are in the full
 *   conflicted set, walking through the full conflicted set only;
 * - the sender's power level for the ordering comes from the event's own auth events (in
 *   version 12, creators have infinite power, as in the auth rules).
 */
import {
  authEventSelection,
  authorizeEvent,
  powerLevelOf,
  type AuthChecks,
  type AuthState,
  type AuthStateEvent,
} from '../auth-rules.js';
import { compareByCodePoint } from '../canonical-json.js';
import { stateKeyOf, type RoomVersionId, type StateKey } from '../pdu.js';
import { verifyThirdPartySigned } from '../pdu-checks/signatures.js';
import { getRoomVersion } from '../room-versions.js';
import {
  MissingEventsError,
  authChainDifference,
  authGraphLookup,
  requireEvent,
  type EventLookup,
  type ResolvableEvent,
} from './auth-chain.js';
import { MinHeap } from './heap.js';

/** A room state: (type, state_key) → event ID, keyed by `stateKeyOf`. */
export type StateMap = ReadonlyMap<StateKey, string>;

export interface ResolveOptions {
  /**
   * The signature checks the auth rules call for. By default the signature of a restricted
   * join's authorising server counts as present (it is checked on receipt, before an event
   * can reach state resolution) and a third-party invite's `signed` is verified against the
   * public keys of its `m.room.third_party_invite` (`verifyThirdPartySigned`).
   */
  readonly checks?: AuthChecks;
}

const POWER_LEVELS_KEY = stateKeyOf('m.room.power_levels', '');
const CREATE_KEY = stateKeyOf('m.room.create', '');

const POWER_TYPES: ReadonlySet<string> = new Set([
  'm.room.power_levels',
  'm.room.join_rules',
  'm.room.create',
]);

const keyOf = (event: ResolvableEvent): StateKey | undefined =>
  event.state_key === undefined ? undefined : stateKeyOf(event.type, event.state_key);

/**
 * A *power event*: `m.room.power_levels`, `m.room.join_rules`, or an `m.room.member` leave or
 * ban whose sender is not its target (a kick or a ban) — and `m.room.create`, as deployed
 * servers count it.
 */
export function isPowerEvent(event: AuthStateEvent): boolean {
  if (event.state_key === undefined) return false;
  if (event.state_key === '' && POWER_TYPES.has(event.type)) return true;
  if (event.type !== 'm.room.member') return false;
  const membership = event.content['membership'];
  return (membership === 'leave' || membership === 'ban') && event.sender !== event.state_key;
}

/**
 * The *unconflicted state map* (keys present in every state with the same event) and the
 * *conflicted state set* (every event of every other key).
 */
export function partitionStates(states: readonly StateMap[]): {
  unconflicted: Map<StateKey, string>;
  conflicted: Set<string>;
} {
  const unconflicted = new Map<StateKey, string>();
  const conflicted = new Set<string>();
  const keys = new Set<StateKey>();
  for (const state of states) for (const key of state.keys()) keys.add(key);
  for (const key of keys) {
    const first = states[0]?.get(key);
    if (first !== undefined && states.every((state) => state.get(key) === first)) {
      unconflicted.set(key, first);
      continue;
    }
    for (const state of states) {
      const eventId = state.get(key);
      if (eventId !== undefined) conflicted.add(eventId);
    }
  }
  return { unconflicted, conflicted };
}

/**
 * The *conflicted state subgraph* (room version 12): every event on an `auth_events` path
 * from one event of the conflicted state set to another, endpoints included. An event is on
 * such a path when it is reachable from a conflicted event and itself reaches one. Linear in
 * the size of the conflicted events' auth chains.
 */
export function conflictedStateSubgraph(
  conflicted: ReadonlySet<string>,
  lookup: EventLookup,
): Set<string> {
  // Post-order walk from every conflicted event; `reaches` memoises, for each event met,
  // whether it or something below it is conflicted.
  const reaches = new Map<string, boolean>();
  const missing = new Set<string>();
  for (const startId of conflicted) {
    if (reaches.has(startId)) continue;
    const stack: { id: string; next: number }[] = [{ id: startId, next: 0 }];
    const onStack = new Set<string>([startId]);
    while (stack.length > 0) {
      const frame = stack[stack.length - 1] as { id: string; next: number };
      const event = lookup(frame.id);
      if (event === undefined) {
        missing.add(frame.id);
        reaches.set(frame.id, conflicted.has(frame.id));
        stack.pop();
        onStack.delete(frame.id);
        continue;
      }
      if (frame.next < event.auth_events.length) {
        const child = event.auth_events[frame.next] as string;
        frame.next += 1;
        if (!reaches.has(child) && !onStack.has(child)) {
          stack.push({ id: child, next: 0 });
          onStack.add(child);
        }
        continue;
      }
      let result = conflicted.has(frame.id);
      for (const child of event.auth_events) if (reaches.get(child) === true) result = true;
      reaches.set(frame.id, result);
      stack.pop();
      onStack.delete(frame.id);
    }
  }
  if (missing.size > 0) throw new MissingEventsError([...missing]);
  // Everything in `reaches` was reached from a conflicted event; keep those that reach one.
  const subgraph = new Set<string>();
  for (const [eventId, reachesConflicted] of reaches) if (reachesConflicted) subgraph.add(eventId);
  return subgraph;
}

/** The create event of the room an event belongs to (found by room ID in version 12). */
function createEventFor(
  event: ResolvableEvent,
  roomVersion: RoomVersionId,
  lookup: EventLookup,
): ResolvableEvent | undefined {
  if (event.type === 'm.room.create') return event;
  if (getRoomVersion(roomVersion).roomIdFromCreateEvent) {
    if (event.room_id === undefined || !event.room_id.startsWith('!')) return undefined;
    return lookup(`$${event.room_id.slice(1)}`);
  }
  for (const authId of event.auth_events) {
    const auth = lookup(authId);
    if (auth?.type === 'm.room.create' && auth.state_key === '') return auth;
  }
  return undefined;
}

/** The power level of an event's sender according to its own auth events. */
function senderPowerFromAuthEvents(
  event: ResolvableEvent,
  roomVersion: RoomVersionId,
  lookup: EventLookup,
): number {
  const state = new Map<StateKey, AuthStateEvent>();
  const create = createEventFor(event, roomVersion, lookup);
  if (create !== undefined) state.set(CREATE_KEY, create);
  for (const authId of event.auth_events) {
    const auth = lookup(authId);
    if (auth?.type === 'm.room.power_levels' && auth.state_key === '') {
      state.set(POWER_LEVELS_KEY, auth);
    }
  }
  return powerLevelOf(event.sender, state, roomVersion);
}

/** Ties broken by `origin_server_ts`, then event ID (code-point order). */
function compareTimestampThenId(x: ResolvableEvent, y: ResolvableEvent): number {
  if (x.origin_server_ts !== y.origin_server_ts) return x.origin_server_ts - y.origin_server_ts;
  return compareByCodePoint(x.event_id, y.event_id);
}

/**
 * The *reverse topological power ordering* of `eventIds`: Kahn's algorithm over the auth DAG
 * restricted to those events, taking at each step the candidate whose sender has the
 * greatest power (by the event's own auth events), then the earliest `origin_server_ts`,
 * then the smallest event ID. Earliest first. O((n + edges) log n).
 */
export function reverseTopologicalPowerSort(
  eventIds: Iterable<string>,
  roomVersion: RoomVersionId,
  lookup: EventLookup,
): string[] {
  const nodes = new Map<string, ResolvableEvent>();
  for (const eventId of eventIds) nodes.set(eventId, requireEvent(lookup, eventId));

  // Edges point from an event to its auth events; an event becomes a candidate once every
  // one of its auth events in the set has been output.
  const pending = new Map<string, number>();
  const dependents = new Map<string, string[]>();
  for (const [eventId, event] of nodes) {
    let count = 0;
    for (const authId of new Set(event.auth_events)) {
      if (!nodes.has(authId)) continue;
      count += 1;
      const list = dependents.get(authId);
      if (list === undefined) dependents.set(authId, [eventId]);
      else list.push(eventId);
    }
    pending.set(eventId, count);
  }

  const power = new Map<string, number>();
  for (const [eventId, event] of nodes) {
    power.set(eventId, senderPowerFromAuthEvents(event, roomVersion, lookup));
  }
  const heap = new MinHeap<ResolvableEvent>((x, y) => {
    const px = power.get(x.event_id) as number;
    const py = power.get(y.event_id) as number;
    if (px !== py) return px > py ? -1 : 1;
    return compareTimestampThenId(x, y);
  });
  for (const [eventId, count] of pending)
    if (count === 0) heap.push(nodes.get(eventId) as ResolvableEvent);

  const ordered: string[] = [];
  for (let event = heap.pop(); event !== undefined; event = heap.pop()) {
    ordered.push(event.event_id);
    for (const dependent of dependents.get(event.event_id) ?? []) {
      const left = (pending.get(dependent) as number) - 1;
      pending.set(dependent, left);
      if (left === 0) heap.push(nodes.get(dependent) as ResolvableEvent);
    }
  }
  if (ordered.length !== nodes.size) {
    throw new Error('The auth events of the conflicted events contain a cycle');
  }
  return ordered;
}

/** The `m.room.power_levels` event among an event's auth events, if any. */
function powerLevelsAuthEvent(event: ResolvableEvent, lookup: EventLookup): string | undefined {
  for (const authId of event.auth_events) {
    const auth = requireEvent(lookup, authId);
    if (auth.type === 'm.room.power_levels' && auth.state_key === '') return authId;
  }
  return undefined;
}

/**
 * The *mainline ordering* of `eventIds` based on the power levels event `powerLevelsId`:
 * events whose power-levels ancestry meets the mainline at an older point come first (those
 * that never meet it first of all), then by `origin_server_ts`, then by event ID.
 */
export function mainlineSort(
  eventIds: readonly string[],
  powerLevelsId: string | undefined,
  lookup: EventLookup,
): string[] {
  // Mainline index: P₀ (the given power levels) is 0, its power-levels auth event 1, …
  const mainline = new Map<string, number>();
  for (let id = powerLevelsId, index = 0; id !== undefined; index += 1) {
    if (mainline.has(id)) break;
    mainline.set(id, index);
    id = powerLevelsAuthEvent(requireEvent(lookup, id), lookup);
  }

  // Mainline position of each event, memoised along power-levels chains shared by events.
  const positionOfChainFrom = new Map<string, number>();
  const positionOf = (event: ResolvableEvent): number => {
    const walked: string[] = [];
    let position = Infinity;
    for (let id = powerLevelsAuthEvent(event, lookup); id !== undefined;) {
      const known = mainline.get(id) ?? positionOfChainFrom.get(id);
      if (known !== undefined) {
        position = known;
        break;
      }
      walked.push(id);
      id = powerLevelsAuthEvent(requireEvent(lookup, id), lookup);
    }
    for (const id of walked) positionOfChainFrom.set(id, position);
    return position;
  };

  const keyed = eventIds.map((eventId) => {
    const event = requireEvent(lookup, eventId);
    return { event, position: positionOf(event) };
  });
  keyed.sort((x, y) => {
    if (x.position !== y.position) return x.position > y.position ? -1 : 1;
    return compareTimestampThenId(x.event, y.event);
  });
  return keyed.map(({ event }) => event.event_id);
}

/**
 * The *iterative auth checks algorithm*: applies each event in order to `state` when the
 * auth rules allow it against that state, where keys the rules need but `state` lacks are
 * taken from the event's own (non-rejected) auth events. Mutates and returns `state`.
 */
export function iterativeAuthChecks(
  state: Map<StateKey, string>,
  eventIds: readonly string[],
  roomVersion: RoomVersionId,
  lookup: EventLookup,
  checks: AuthChecks,
): Map<StateKey, string> {
  const usable = (eventId: string | undefined): ResolvableEvent | undefined => {
    if (eventId === undefined) return undefined;
    const event = lookup(eventId);
    return event === undefined || event.rejected === true ? undefined : event;
  };
  for (const eventId of eventIds) {
    const event = requireEvent(lookup, eventId);
    const key = keyOf(event);
    if (key === undefined || event.rejected === true) continue;

    const authState = new Map<StateKey, AuthStateEvent>();
    for (const authId of event.auth_events) {
      const auth = usable(authId);
      const authKey = auth === undefined ? undefined : keyOf(auth);
      if (auth !== undefined && authKey !== undefined) authState.set(authKey, auth);
    }
    const selection = authEventSelection(
      event.type,
      event.state_key,
      event.sender,
      event.content,
      roomVersion,
    );
    for (const needed of selection) {
      const current = usable(state.get(needed));
      if (current !== undefined) authState.set(needed, current);
    }
    if (getRoomVersion(roomVersion).roomIdFromCreateEvent) {
      // Version 12: the create event is named by the room ID, not by auth_events.
      const create = createEventFor(event, roomVersion, lookup);
      if (create !== undefined && create.rejected !== true) authState.set(CREATE_KEY, create);
    }
    const result = authorizeEvent(event, authState as AuthState, roomVersion, checks);
    if (result.allowed) state.set(key, eventId);
  }
  return state;
}

/**
 * Resolves `states` (each the state after one of an event's `prev_events`) into one state,
 * by the algorithm of `roomVersion`. Throws `MissingEventsError` when the lookup lacks an
 * event named by the states or reachable through their `auth_events`.
 */
export function resolveState(
  roomVersion: RoomVersionId,
  states: readonly StateMap[],
  givenLookup: EventLookup,
  options: ResolveOptions = {},
): Map<StateKey, string> {
  if (states.length === 0) return new Map();
  if (states.length === 1) return new Map(states[0]);
  const lookup = authGraphLookup(givenLookup, roomVersion);
  const checks: AuthChecks = {
    isSignedBy: () => true,
    verifyThirdPartySigned,
    ...options.checks,
  };
  const v21 = getRoomVersion(roomVersion).stateResolution === 'v2.1';

  const { unconflicted, conflicted } = partitionStates(states);
  if (conflicted.size === 0) return unconflicted;

  // Full conflicted set: conflicted state set ∪ auth difference (∪ conflicted state subgraph
  // in v2.1). Events rejected on receipt stay in it; iterativeAuthChecks never admits them.
  const full = new Set(conflicted);
  const stateEventSets = states.map((state) => new Set(state.values()));
  for (const eventId of authChainDifference(stateEventSets, lookup)) full.add(eventId);
  if (v21) for (const eventId of conflictedStateSubgraph(conflicted, lookup)) full.add(eventId);

  // Step 1: the power events of the full conflicted set and, walking their auth events
  // within the full conflicted set, the events those depend on; sorted by power.
  const selected = new Set<string>();
  const stack: string[] = [];
  for (const eventId of full) {
    if (isPowerEvent(requireEvent(lookup, eventId))) {
      selected.add(eventId);
      stack.push(eventId);
    }
  }
  while (stack.length > 0) {
    const event = requireEvent(lookup, stack.pop() as string);
    for (const authId of event.auth_events) {
      if (full.has(authId) && !selected.has(authId)) {
        selected.add(authId);
        stack.push(authId);
      }
    }
  }
  const powerOrdered = reverseTopologicalPowerSort(selected, roomVersion, lookup);

  // Step 2: iterative auth checks from the unconflicted state (v2) or from nothing (v2.1).
  const partial = iterativeAuthChecks(
    v21 ? new Map() : new Map(unconflicted),
    powerOrdered,
    roomVersion,
    lookup,
    checks,
  );

  // Steps 3–4: the other events, in mainline order of the partial state's power levels.
  const others = [...full].filter((eventId) => !selected.has(eventId));
  const mainlineOrdered = mainlineSort(others, partial.get(POWER_LEVELS_KEY), lookup);
  const resolved = iterativeAuthChecks(partial, mainlineOrdered, roomVersion, lookup, checks);

  // Step 5: the unconflicted state map wins over anything resolved for its keys.
  for (const [key, eventId] of unconflicted) resolved.set(key, eventId);
  return resolved;
}
