/**
 * The room authorization rules for room versions 10, 11 and 12, as the spec states them.
 * Spec: https://spec.matrix.org/v1.16/rooms/v10/#authorization-rules (and v11, v12).
 *
 * `authorizeEvent` applies every rule except those about the `auth_events` list itself
 * (`checkAuthEvents`) and the signature by the sender's server, which is checked on receipt
 * before the auth rules. The two signature checks inside the rules (the authorising server
 * of a restricted join, a third-party invite's `signed`) go through `AuthChecks` callbacks;
 * when a callback is not given, the rule that needs it refuses.
 *
 * Redactions are not special in these rules: the *redact level* is applied when a redaction
 * is handled, see `canApplyRedaction`.
 */
import { parseUserId } from './identifiers.js';
import type { RoomVersionId } from './pdu.js';
import { authorizeMember, membershipOf } from './auth/membership.js';
import {
  actionLevel,
  authorizePowerLevels,
  powerLevelOf,
  requiredPowerForEvent,
} from './auth/power-levels.js';
import {
  ALLOW,
  CREATE_KEY,
  deny,
  domainOf,
  field,
  formatLevel,
  hasOwn,
  type AuthChecks,
  type AuthEvent,
  type AuthResult,
  type AuthState,
} from './auth/types.js';

export type { AuthChecks, AuthEvent, AuthResult, AuthState, AuthStateEvent } from './auth/types.js';
export {
  ACTION_LEVEL_DEFAULTS,
  CREATOR_DEFAULT_LEVEL,
  actionLevel,
  canApplyRedaction,
  creatorsOfCreateEvent,
  powerLevelOf,
  requiredPowerForEvent,
  roomCreators,
  type PowerAction,
} from './auth/power-levels.js';
export { joinRuleOf, membershipOf, publicKeysOf } from './auth/membership.js';
export {
  authEventSelection,
  authStateFrom,
  checkAuthEvents,
  type AuthEventEntry,
} from './auth/selection.js';

/** The room versions a create event's `content.room_version` may name here. */
export const RECOGNISED_ROOM_VERSIONS: readonly RoomVersionId[] = ['10', '11', '12'];

/**
 * Whether `event` is allowed by the authorization rules of `roomVersion`, checked against
 * `authState` (the state before the event, the current state, or the event's auth events —
 * the three checks on receipt of a PDU). In room version 12 `authState` must still hold the
 * room's create event.
 */
export function authorizeEvent(
  event: AuthEvent,
  authState: AuthState,
  roomVersion: RoomVersionId,
  checks: AuthChecks = {},
): AuthResult {
  if (event.type === 'm.room.create') return authorizeCreate(event, roomVersion);

  const create = authState.get(CREATE_KEY);
  if (create === undefined) return deny('The room has no m.room.create event');
  if (roomVersion === '12') {
    if (event.room_id === undefined) return deny('The event has no room_id');
    if (create.event_id !== undefined && event.room_id !== `!${create.event_id.slice(1)}`) {
      return deny(`The room ID ${event.room_id} is not that of the room's m.room.create event`);
    }
  }

  if (
    field(create.content, 'm.federate') === false &&
    domainOf(event.sender) !== domainOf(create.sender)
  ) {
    return deny(`This room does not accept events from other servers (${domainOf(event.sender)})`);
  }

  if (event.type === 'm.room.member') return authorizeMember(event, authState, roomVersion, checks);

  if (membershipOf(event.sender, authState) !== 'join') return deny('You are not in this room');

  const senderLevel = powerLevelOf(event.sender, authState, roomVersion);
  if (event.type === 'm.room.third_party_invite') {
    const invite = actionLevel('invite', authState);
    if (senderLevel >= invite) return ALLOW;
    return deny(
      `You do not have permission to invite users by third-party ID (power level ${formatLevel(senderLevel)} < ${invite})`,
    );
  }

  const isState = event.state_key !== undefined;
  const required = requiredPowerForEvent(event.type, isState, authState);
  if (required > senderLevel) {
    return deny(
      `You do not have permission to send ${event.type} ${isState ? 'state ' : ''}events (power level ${formatLevel(senderLevel)} < ${required})`,
    );
  }

  if (event.state_key?.startsWith('@') === true && event.state_key !== event.sender) {
    return deny(`Only ${event.state_key} may send state with their user ID as the state_key`);
  }

  if (event.type === 'm.room.power_levels')
    return authorizePowerLevels(event, authState, roomVersion);
  return ALLOW;
}

/** Rule 1: `m.room.create`, which must be the room's first event. */
function authorizeCreate(event: AuthEvent, roomVersion: RoomVersionId): AuthResult {
  if (event.prev_events.length > 0)
    return deny('The m.room.create event must not have prev_events');

  if (roomVersion === '12') {
    if (event.room_id !== undefined) {
      return deny('In room version 12 the m.room.create event must not have a room_id');
    }
  } else if (event.room_id === undefined || domainOf(event.room_id) !== domainOf(event.sender)) {
    return deny(
      `The room ID's server name (${domainOf(event.room_id ?? '') || 'none'}) does not match the sender's (${domainOf(event.sender)})`,
    );
  }

  const { content } = event;
  if (hasOwn(content, 'room_version')) {
    const version = content.room_version;
    if (
      typeof version !== 'string' ||
      !(RECOGNISED_ROOM_VERSIONS as readonly string[]).includes(version)
    ) {
      return deny(`Unrecognised room version ${JSON.stringify(version)}`);
    }
  }

  if (roomVersion === '10' && !hasOwn(content, 'creator')) {
    return deny('In room version 10 the m.room.create event must have a creator');
  }

  if (roomVersion === '12' && hasOwn(content, 'additional_creators')) {
    const additional = content.additional_creators;
    if (!Array.isArray(additional)) return deny('additional_creators must be an array of user IDs');
    for (const userId of additional) {
      if (typeof userId !== 'string' || parseUserId(userId) === null) {
        return deny(
          `additional_creators holds ${JSON.stringify(userId)}, which is not a valid user ID`,
        );
      }
    }
  }
  return ALLOW;
}
