/**
 * Power levels as the auth rules compute them, and the rules for changing
 * `m.room.power_levels` (rule 9 in room versions 10–11, rule 10 in version 12).
 * Spec: https://spec.matrix.org/v1.16/client-server-api/#mroompower_levels
 */
import { parseUserId } from '../identifiers.js';
import type { JsonObject, JsonValue, RoomVersionId } from '../pdu.js';
import {
  ALLOW,
  CREATE_KEY,
  POWER_LEVELS_KEY,
  asObject,
  asString,
  deny,
  domainOf,
  field,
  formatLevel,
  hasOwn,
  isPowerInteger,
  type AuthResult,
  type AuthState,
  type AuthStateEvent,
} from './types.js';

/** The levels of `invite`, `kick`, `ban` and `redact` when the power levels do not set them. */
export const ACTION_LEVEL_DEFAULTS = { invite: 0, kick: 50, ban: 50, redact: 50 } as const;
export type PowerAction = keyof typeof ACTION_LEVEL_DEFAULTS;

/** The level a room creator has when the room has no `m.room.power_levels` (versions 10 and 11). */
export const CREATOR_DEFAULT_LEVEL = 100;

const intOr = (value: JsonValue | undefined, fallback: number): number =>
  isPowerInteger(value) ? value : fallback;

const powerLevelsContent = (authState: AuthState): JsonObject | undefined =>
  authState.get(POWER_LEVELS_KEY)?.content;

/**
 * The room's creators. Version 10: `content.creator` of the create event. Version 11: its
 * `sender`. Version 12: its `sender` plus `content.additional_creators`.
 */
export function roomCreators(
  authState: AuthState,
  roomVersion: RoomVersionId,
): ReadonlySet<string> {
  const create = authState.get(CREATE_KEY);
  if (create === undefined) return new Set();
  return creatorsOfCreateEvent(create, roomVersion);
}

export function creatorsOfCreateEvent(
  create: AuthStateEvent,
  roomVersion: RoomVersionId,
): ReadonlySet<string> {
  if (roomVersion === '10') {
    const creator = asString(field(create.content, 'creator'));
    return new Set(creator === undefined ? [] : [creator]);
  }
  const creators = new Set([create.sender]);
  if (roomVersion === '12') {
    const additional = field(create.content, 'additional_creators');
    if (Array.isArray(additional)) {
      for (const userId of additional) if (typeof userId === 'string') creators.add(userId);
    }
  }
  return creators;
}

/**
 * A user's power level. Version 12 creators: `Infinity`, whatever the power levels say.
 * Otherwise `users[userId]`, else `users_default` (0); with no power levels event, a
 * creator has 100 (versions 10 and 11) and everyone else 0.
 */
export function powerLevelOf(
  userId: string,
  authState: AuthState,
  roomVersion: RoomVersionId,
): number {
  const creators = roomCreators(authState, roomVersion);
  if (roomVersion === '12' && creators.has(userId)) return Infinity;
  const content = powerLevelsContent(authState);
  if (content === undefined) return creators.has(userId) ? CREATOR_DEFAULT_LEVEL : 0;
  const users = asObject(field(content, 'users'));
  const explicit = users === undefined ? undefined : field(users, userId);
  return isPowerInteger(explicit) ? explicit : intOr(field(content, 'users_default'), 0);
}

/**
 * The *required power level* of an event type: `events[type]`, else `state_default` (50) for
 * state events or `events_default` (0) for the others. Membership events do not use it.
 */
export function requiredPowerForEvent(
  type: string,
  isState: boolean,
  authState: AuthState,
): number {
  const content = powerLevelsContent(authState) ?? {};
  const events = asObject(field(content, 'events'));
  const explicit = events === undefined ? undefined : field(events, type);
  if (isPowerInteger(explicit)) return explicit;
  return isState
    ? intOr(field(content, 'state_default'), 50)
    : intOr(field(content, 'events_default'), 0);
}

/** The *invite level*, *kick level*, *ban level* or *redact level*. */
export function actionLevel(action: PowerAction, authState: AuthState): number {
  const content = powerLevelsContent(authState) ?? {};
  return intOr(field(content, action), ACTION_LEVEL_DEFAULTS[action]);
}

/**
 * Whether a redaction that passed the auth rules may be applied to the event it redacts
 * ("Handling redactions", unchanged since room version 3): its sender has the *redact
 * level*, or is on the same server as the redacted event's sender.
 */
export function canApplyRedaction(
  redactionSender: string,
  redactedEventSender: string,
  authState: AuthState,
  roomVersion: RoomVersionId,
): boolean {
  if (domainOf(redactionSender) === domainOf(redactedEventSender)) return true;
  return powerLevelOf(redactionSender, authState, roomVersion) >= actionLevel('redact', authState);
}

const LEVEL_PROPERTIES = [
  'users_default',
  'events_default',
  'state_default',
  'ban',
  'redact',
  'kick',
  'invite',
] as const;
const LEVEL_MAPS = ['events', 'notifications'] as const;

const sameValue = (a: JsonValue | undefined, b: JsonValue | undefined): boolean =>
  a === b || JSON.stringify(a) === JSON.stringify(b);

/** A present value as a level for comparison; values that are not integers compare as absent. */
const levelOrUndefined = (value: JsonValue | undefined): number | undefined =>
  isPowerInteger(value) ? value : undefined;

/** Rule 9 (versions 10, 11) / rule 10 (version 12): a new `m.room.power_levels` event. */
export function authorizePowerLevels(
  event: AuthStateEvent,
  authState: AuthState,
  roomVersion: RoomVersionId,
): AuthResult {
  const content = event.content;

  for (const key of LEVEL_PROPERTIES) {
    if (hasOwn(content, key) && !isPowerInteger(content[key])) {
      return deny(`The "${key}" power level must be an integer`);
    }
  }
  for (const key of LEVEL_MAPS) {
    if (!hasOwn(content, key)) continue;
    const map = asObject(content[key]);
    if (map === undefined) return deny(`The "${key}" power levels must be an object`);
    for (const [name, value] of Object.entries(map)) {
      if (!isPowerInteger(value)) {
        return deny(`The "${key}" power level for "${name}" must be an integer`);
      }
    }
  }
  // The spec says "if the users property is not an object …"; like the two maps above, an
  // absent `users` is taken as an empty one.
  const users = hasOwn(content, 'users') ? asObject(content.users) : {};
  if (users === undefined) return deny('The "users" power levels must be an object');
  for (const [userId, value] of Object.entries(users)) {
    if (parseUserId(userId) === null) return deny(`"${userId}" in "users" is not a valid user ID`);
    if (!isPowerInteger(value)) return deny(`The power level of ${userId} must be an integer`);
  }

  if (roomVersion === '12') {
    for (const creator of roomCreators(authState, roomVersion)) {
      if (hasOwn(users, creator)) {
        return deny(`Room creator ${creator} cannot be given a power level in "users"`);
      }
    }
  }

  const current = authState.get(POWER_LEVELS_KEY);
  if (current === undefined) return ALLOW;
  const previous = current.content;
  const senderLevel = powerLevelOf(event.sender, authState, roomVersion);
  const own = formatLevel(senderLevel);

  for (const key of LEVEL_PROPERTIES) {
    const before = field(previous, key);
    const after = field(content, key);
    if (sameValue(before, after)) continue;
    const beforeLevel = levelOrUndefined(before);
    if (beforeLevel !== undefined && beforeLevel > senderLevel) {
      return deny(
        `You cannot change the "${key}" power level from ${beforeLevel}, above your own (${own})`,
      );
    }
    const afterLevel = levelOrUndefined(after);
    if (afterLevel !== undefined && afterLevel > senderLevel) {
      return deny(
        `You cannot set the "${key}" power level to ${afterLevel}, above your own (${own})`,
      );
    }
  }

  for (const key of LEVEL_MAPS) {
    const refusal = checkMapChanges(
      asObject(field(previous, key)) ?? {},
      asObject(field(content, key)) ?? {},
      senderLevel,
      (name, before) =>
        `You cannot change the "${key}" power level of "${name}" from ${before}, above your own (${own})`,
      (name, after) =>
        `You cannot set the "${key}" power level of "${name}" to ${after}, above your own (${own})`,
      false,
      undefined,
    );
    if (refusal !== undefined) return refusal;
  }

  const refusal = checkMapChanges(
    asObject(field(previous, 'users')) ?? {},
    users,
    senderLevel,
    (userId, before) =>
      `You cannot change the power level of ${userId} (${before}): it is not below your own (${own})`,
    (userId, after) => `You cannot give ${userId} power level ${after}, above your own (${own})`,
    true,
    event.sender,
  );
  return refusal ?? ALLOW;
}

/**
 * Checks the entries changed, removed or added between two level maps. For `users`
 * (`atOrAbove`), an existing entry other than the sender's own may only be touched if it is
 * below the sender's level; elsewhere, if it is not above it.
 */
function checkMapChanges(
  before: JsonObject,
  after: JsonObject,
  senderLevel: number,
  cannotChange: (name: string, before: number) => string,
  cannotSet: (name: string, after: number) => string,
  atOrAbove: boolean,
  sender: string | undefined,
): AuthResult | undefined {
  const names = new Set([...Object.keys(before), ...Object.keys(after)]);
  for (const name of names) {
    const old = field(before, name);
    const now = field(after, name);
    if (sameValue(old, now)) continue;
    const oldLevel = levelOrUndefined(old);
    if (oldLevel !== undefined && name !== sender) {
      const blocked = atOrAbove ? oldLevel >= senderLevel : oldLevel > senderLevel;
      if (blocked) return deny(cannotChange(name, oldLevel));
    }
    const newLevel = levelOrUndefined(now);
    if (newLevel !== undefined && newLevel > senderLevel) return deny(cannotSet(name, newLevel));
  }
  return undefined;
}
