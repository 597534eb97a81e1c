/**
 * The state at every event, kept as state groups: a whole snapshot, or a delta on an earlier
 * group. A group made by changing another is at the next step of its chain; the group at step
 * `s` is a delta on the chain's group at step `s - lowbit(s)` (`deltaBaseStep`; a Fenwick tree
 * over the steps), holding every change made between the two. So reading the state at any
 * event walks at most log2(s) + 1 groups (one recursive statement), and the deltas written for
 * `n` changes hold O(n log n) entries in all, the whole state never being copied again — a
 * change to a room of 100,000 members costs about what it costs to a room of 1,000. Used by
 * the event writer for local events and by the room DAG service for received ones.
 */
import { stateKeyOf, type Pdu, type RoomVersionId, type StateKey } from '../../core/pdu.js';
import { getRoomVersion } from '../../core/room-versions.js';
import type { StateEntry, StateGroupHead, Stores } from '../../storage/index.js';

/** Past this step a chain starts again from a whole snapshot (the column is a 32-bit integer). */
export const MAX_STATE_GROUP_STEP = 2 ** 30;

/**
 * The step of the group a group at `step` (> 0) is a delta on: `step` with its lowest set bit
 * cleared. It is always on the chain of the group at `step - 1`.
 */
export function deltaBaseStep(step: number): number {
  let bit = 1;
  while (step % (bit * 2) === 0) bit *= 2;
  return step - bit;
}

/** A room state: `stateKeyOf(type, state_key)` → event ID. */
export type StateMap = ReadonlyMap<StateKey, string>;

/** The state key of a state event, or undefined for a message. */
export const stateKeyOfPdu = (pdu: Pick<Pdu, 'type' | 'state_key'>): StateKey | undefined =>
  pdu.state_key === undefined ? undefined : stateKeyOf(pdu.type, pdu.state_key);

/**
 * The events an event's auth chain walks from it: its `auth_events` and, in room versions
 * whose room ID names the create event (12), that create event.
 */
export function authEdgesOf(pdu: Pdu, roomId: string, version: RoomVersionId): string[] {
  const edges = [...pdu.auth_events];
  if (getRoomVersion(version).roomIdFromCreateEvent && pdu.type !== 'm.room.create') {
    edges.push(`$${roomId.slice(1)}`);
  }
  return edges;
}

/** A group holding `base` changed by `changes` (null: removed), at the step after `base`'s. */
export async function extendGroup(
  stores: Stores,
  roomId: string,
  base: StateGroupHead,
  changes: ReadonlyMap<StateKey, string | null>,
): Promise<StateGroupHead> {
  if (changes.size === 0) return base;
  const step = base.hops + 1;
  if (step < MAX_STATE_GROUP_STEP) {
    const baseStep = deltaBaseStep(step);
    if (baseStep === base.hops) {
      return stores.roomDag.insertStateGroup(roomId, base, toEntries(changes), step);
    }
    // The changes between the group at `baseStep` and `base`, then these.
    const delta = await stores.roomDag.selectStateGroupDelta(base.groupId, baseStep);
    if (delta) {
      const merged = new Map<StateKey, string | null>();
      for (const [type, stateKey, eventId] of delta.entries) {
        merged.set(stateKeyOf(type, stateKey), eventId);
      }
      for (const [key, id] of changes) merged.set(key, id);
      return stores.roomDag.insertStateGroup(roomId, delta.base, toEntries(merged), step);
    }
  }
  // A chain that is too long (or, not expected, lacks its base step): a whole snapshot.
  const whole = new Map(await stores.roomDag.selectStateGroup(base.groupId));
  for (const [key, id] of changes) {
    if (id === null) whole.delete(key);
    else whole.set(key, id);
  }
  return stores.roomDag.insertStateGroup(roomId, null, toEntries(whole));
}

/** A group holding exactly `state`: a delta on `base` (whose state is `baseState`) when given. */
export async function groupForState(
  stores: Stores,
  roomId: string,
  state: StateMap,
  base?: { head: StateGroupHead; state: StateMap },
): Promise<StateGroupHead> {
  if (!base) return stores.roomDag.insertStateGroup(roomId, null, toEntries(state));
  return extendGroup(stores, roomId, base.head, diffStates(base.state, state));
}

/** What changes `from` into `to` (null: removed). */
export function diffStates(from: StateMap, to: StateMap): Map<StateKey, string | null> {
  const changes = new Map<StateKey, string | null>();
  for (const [key, id] of to) if (from.get(key) !== id) changes.set(key, id);
  for (const key of from.keys()) if (!to.has(key)) changes.set(key, null);
  return changes;
}

/** The events a change of current state names, apart from the event that caused it. */
export interface StateDeltaPlan {
  /** Events that now hold an entry (resolution's choices), in the order of `changes`. */
  added: string[];
  /** Events that held an entry resolution changed or removed. */
  replaced: string[];
  /** Both, once each: the events to load. */
  eventIds: string[];
}

/**
 * Which events a current-state change (`changes`, as `diffStates` gives it, from `before`)
 * names besides `eventId`, the event whose arrival caused it: the entries it sets itself are
 * derived from the event; every other entry changed (replaced by another event, or removed)
 * is resolution's doing and is derived from the events named here.
 */
export function planStateDelta(
  before: StateMap,
  changes: ReadonlyMap<StateKey, string | null>,
  eventId: string,
): StateDeltaPlan {
  const added: string[] = [];
  const replaced: string[] = [];
  for (const [key, id] of changes) {
    if (id === eventId) continue;
    if (id !== null) added.push(id);
    const previous = before.get(key);
    if (previous !== undefined) replaced.push(previous);
  }
  return { added, replaced, eventIds: [...new Set([...added, ...replaced])] };
}

/** `stateKeyOf`'s inverse. */
function splitStateKey(key: StateKey): [string, string] {
  const at = key.indexOf('\u0000');
  return [key.slice(0, at), key.slice(at + 1)];
}

function toEntries(state: ReadonlyMap<StateKey, string | null>): StateEntry[] {
  return [...state].map(([key, id]) => [...splitStateKey(key), id] as const);
}

/**
 * The room's current state group; a room without one (made before state groups were kept)
 * gets a snapshot of its `current_state` rows.
 */
export async function currentGroupOf(stores: Stores, roomId: string): Promise<StateGroupHead> {
  const head = await stores.roomDag.selectCurrentGroup(roomId);
  if (head) return head;
  const rows = await stores.rooms.selectAllStateEvents(roomId);
  const state = new Map<StateKey, string>();
  for (const row of rows) state.set(stateKeyOf(row.pdu.type, row.pdu.state_key ?? ''), row.eventId);
  const made = await groupForState(stores, roomId, state);
  await stores.roomDag.upsertCurrentGroup(roomId, made.groupId);
  return made;
}

/**
 * Records a new local event's state (before it: the room's current group; after it: that
 * plus the event when it is a state event) and its auth edges, and moves the room's current
 * group. Called by the event writer in the event's transaction, before its rows are written.
 */
export async function recordLocalEventState(
  stores: Stores,
  roomId: string,
  eventId: string,
  pdu: Pdu,
  version: RoomVersionId,
): Promise<void> {
  const before = await currentGroupOf(stores, roomId);
  const key = stateKeyOfPdu(pdu);
  const after =
    key === undefined
      ? before
      : await extendGroup(stores, roomId, before, new Map([[key, eventId]]));
  await stores.roomDag.insertEventStateGroups(eventId, roomId, before.groupId, after.groupId);
  await stores.roomDag.insertAuthEdges(eventId, authEdgesOf(pdu, roomId, version));
  if (after !== before) await stores.roomDag.upsertCurrentGroup(roomId, after.groupId);
}
