/**
 * Partial-state joins (MSC3706, spec v1.6 `omit_members`): which events of a room's state a
 * resident server sends a joining server that asked for a reduced answer.
 * https://spec.matrix.org/v1.19/server-server-api/#put_matrixfederationv2send_joinroomideventid
 */
import { stateKeyOf, type StateKey } from './pdu.js';

/** At most this many heroes, as the client API's room summary (`m.heroes`). */
export const MAX_PARTIAL_JOIN_HEROES = 5;

const MEMBER_PREFIX = stateKeyOf('m.room.member', '');

interface StateEventLike {
  pdu: { type: string; state_key?: string; content: Record<string, unknown> };
}

/**
 * The IDs of the state events to send in a partial-state `send_join` answer, from the state
 * before the join (`state`, key → event ID; `events`, those events by ID):
 * - every event that is not an `m.room.member`;
 * - the joining user's own membership before the join (an invite, a knock, an earlier
 *   leave), which the join's auth depends on;
 * - when the room has neither `m.room.name` nor `m.room.canonical_alias`, the membership
 *   events of the room's heroes as `/sync` would name them for the joiner: up to five other
 *   joined members by user ID, then invited ones (the spec asks for these so that the
 *   joiner's clients can name the room).
 * Member events other state events need for their own auth are not in `state`: they are in
 * the answer's `auth_chain`, which the caller builds from what is kept here.
 */
export function partialJoinState(
  state: ReadonlyMap<StateKey, string>,
  events: ReadonlyMap<string, StateEventLike>,
  joiner: string,
): Set<string> {
  const kept = new Set<string>();
  const joined: string[] = [];
  const invited: string[] = [];
  for (const [key, id] of state) {
    if (!key.startsWith(MEMBER_PREFIX)) {
      kept.add(id);
      continue;
    }
    const userId = key.slice(MEMBER_PREFIX.length);
    if (userId === joiner) {
      kept.add(id);
      continue;
    }
    const membership = events.get(id)?.pdu.content.membership;
    if (membership === 'join') joined.push(userId);
    else if (membership === 'invite') invited.push(userId);
  }
  const named =
    state.has(stateKeyOf('m.room.name', '')) || state.has(stateKeyOf('m.room.canonical_alias', ''));
  if (!named) {
    const heroes = [...joined.sort(), ...invited.sort()].slice(0, MAX_PARTIAL_JOIN_HEROES);
    for (const userId of heroes) {
      const id = state.get(stateKeyOf('m.room.member', userId));
      if (id !== undefined) kept.add(id);
    }
  }
  return kept;
}

interface AuthEventLike {
  readonly type: string;
  readonly state_key?: string;
}

/**
 * The auth state to check a received event against in a room whose state is partial: the
 * state we have, with the event's own auth events filling the member entries it lacks (a
 * member we have no event for yet). The state we have wins where it has an entry; nothing
 * but `m.room.member` is filled in (every other state event was sent in full).
 */
export function fillMissingMembers<T extends AuthEventLike, U extends T>(
  authState: ReadonlyMap<StateKey, T>,
  authEvents: readonly U[],
): Map<StateKey, T> {
  const out = new Map(authState);
  for (const event of authEvents) {
    if (event.type !== 'm.room.member' || event.state_key === undefined) continue;
    const key = stateKeyOf(event.type, event.state_key);
    if (!out.has(key)) out.set(key, event);
  }
  return out;
}
