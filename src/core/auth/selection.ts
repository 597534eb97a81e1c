/**
 * Which state an event's `auth_events` must reference ("auth events selection"), and the
 * auth rules that look at the `auth_events` list itself (rule 2 in room versions 10–11,
 * rule 3 in version 12).
 * Spec: https://spec.matrix.org/v1.16/server-server-api/#auth-events-selection
 */
import { stateKeyOf, type JsonObject, type RoomVersionId, type StateKey } from '../pdu.js';
import {
  ALLOW,
  CREATE_KEY,
  JOIN_RULES_KEY,
  POWER_LEVELS_KEY,
  asObject,
  asString,
  deny,
  field,
  memberKey,
  type AuthEvent,
  type AuthResult,
  type AuthState,
  type AuthStateEvent,
} from './types.js';

/**
 * The state keys an event's `auth_events` may reference, each "if any" in the current state:
 * the create event (versions 10 and 11 only; version 12 must not select it), the power
 * levels, the sender's membership and, for membership events, the target's membership,
 * the join rules (join, invite, knock), the third-party invite named by
 * `third_party_invite.signed.token` (invite) and the authorising user's membership
 * (join with `join_authorised_via_users_server`). Empty for `m.room.create`.
 */
export function authEventSelection(
  type: string,
  stateKey: string | undefined,
  sender: string,
  content: JsonObject,
  roomVersion: RoomVersionId,
): StateKey[] {
  if (type === 'm.room.create') return [];
  const keys = new Set<StateKey>();
  if (roomVersion !== '12') keys.add(CREATE_KEY);
  keys.add(POWER_LEVELS_KEY);
  keys.add(memberKey(sender));
  if (type === 'm.room.member' && stateKey !== undefined) {
    keys.add(memberKey(stateKey));
    const membership = field(content, 'membership');
    if (membership === 'join' || membership === 'invite' || membership === 'knock') {
      keys.add(JOIN_RULES_KEY);
    }
    if (membership === 'invite') {
      const invite = asObject(field(content, 'third_party_invite'));
      const signed = invite === undefined ? undefined : asObject(field(invite, 'signed'));
      const token = signed === undefined ? undefined : asString(field(signed, 'token'));
      if (token !== undefined) keys.add(stateKeyOf('m.room.third_party_invite', token));
    }
    // Every room version here (10–12) supports restricted rooms.
    if (membership === 'join') {
      const via = asString(field(content, 'join_authorised_via_users_server'));
      if (via !== undefined) keys.add(memberKey(via));
    }
  }
  return [...keys];
}

/** An event named in `auth_events`, with whether it was itself rejected. */
export interface AuthEventEntry extends AuthStateEvent {
  readonly rejected?: boolean;
}

/**
 * The rules about the `auth_events` list: no two entries for one (type, state_key); only
 * entries the auth events selection allows; none rejected; a create event among them
 * (versions 10 and 11); all in the event's room. Always allowed for `m.room.create`, whose
 * rule comes first and decides alone.
 */
export function checkAuthEvents(
  event: AuthEvent,
  authEvents: readonly AuthEventEntry[],
  roomVersion: RoomVersionId,
): AuthResult {
  if (event.type === 'm.room.create') return ALLOW;
  const selected = new Set(
    authEventSelection(event.type, event.state_key, event.sender, event.content, roomVersion),
  );
  const seen = new Set<StateKey>();
  for (const entry of authEvents) {
    const name = `${entry.type} (state_key ${JSON.stringify(entry.state_key ?? null)})`;
    if (entry.state_key === undefined) return deny(`The auth event ${name} is not a state event`);
    const key = stateKeyOf(entry.type, entry.state_key);
    if (seen.has(key)) return deny(`The auth events list ${name} twice`);
    seen.add(key);
    if (!selected.has(key)) return deny(`The auth event ${name} is not one this event may cite`);
    if (entry.rejected === true) return deny(`The auth event ${name} was itself rejected`);
  }
  if (roomVersion !== '12' && !seen.has(CREATE_KEY)) {
    return deny('The auth events do not include the m.room.create event');
  }
  for (const entry of authEvents) {
    if (entry.room_id !== event.room_id) {
      return deny(
        `The auth event ${entry.type} belongs to another room (${entry.room_id ?? 'none'})`,
      );
    }
  }
  return ALLOW;
}

/** Builds an `AuthState` from state events (for example an event's auth events). */
export function authStateFrom(events: Iterable<AuthStateEvent>): AuthState {
  const state = new Map<StateKey, AuthStateEvent>();
  for (const event of events) {
    if (event.state_key !== undefined) state.set(stateKeyOf(event.type, event.state_key), event);
  }
  return state;
}
