/**
 * Shapes used by the room authorization rules (room versions 10, 11 and 12), and the small
 * JSON readers the rule files share. Spec: https://spec.matrix.org/v1.16/rooms/v12/#authorization-rules
 */
import { stateKeyOf, type JsonObject, type JsonValue, type StateKey } from '../pdu.js';

/** A state event as the auth rules read it. A `Pdu` fits; so does a stored event plus its ID. */
export interface AuthStateEvent {
  readonly type: string;
  readonly state_key?: string;
  readonly sender: string;
  readonly content: JsonObject;
  /** Absent on room version 12 create events. */
  readonly room_id?: string;
  /**
   * The event's ID, when known. Needed on the `m.room.create` entry in room versions 10 and
   * 11 for the creator's first join (rule "the only previous event is the create event"); in
   * version 12 it is derived from the room ID, and when given it is checked against it.
   */
  readonly event_id?: string;
}

/** The event being authorized. A `Pdu` fits. */
export interface AuthEvent extends AuthStateEvent {
  readonly prev_events: readonly string[];
}

/**
 * The state the event is checked against, keyed by `stateKeyOf(type, stateKey)`: the create
 * event (in version 12 too, though it is not among the auth events there), the power levels,
 * the join rules, the sender's and the target's membership, the third-party invite and the
 * authorising user's membership when relevant. Extra entries are ignored.
 */
export type AuthState = ReadonlyMap<StateKey, AuthStateEvent>;

export type AuthResult =
  { readonly allowed: true } | { readonly allowed: false; readonly reason: string };

/**
 * Signature checks the rules call for but that pure code cannot do (they need keys and
 * ed25519). Each one that is missing makes the rule that needs it refuse the event.
 */
export interface AuthChecks {
  /**
   * Whether the event being authorized is validly signed by `serverName` (used for
   * `join_authorised_via_users_server`, whose server must have signed the join).
   */
  readonly isSignedBy?: (serverName: string) => boolean;
  /**
   * Whether `signed` (from `content.third_party_invite.signed`) carries a valid signature by
   * one of `publicKeys` (unpadded base64 ed25519 keys from the `m.room.third_party_invite`).
   */
  readonly verifyThirdPartySigned?: (signed: JsonObject, publicKeys: readonly string[]) => boolean;
}

export const ALLOW: AuthResult = Object.freeze({ allowed: true });
export const deny = (reason: string): AuthResult => ({ allowed: false, reason });

export const CREATE_KEY = stateKeyOf('m.room.create', '');
export const POWER_LEVELS_KEY = stateKeyOf('m.room.power_levels', '');
export const JOIN_RULES_KEY = stateKeyOf('m.room.join_rules', '');
export const memberKey = (userId: string): StateKey => stateKeyOf('m.room.member', userId);

export const hasOwn = (object: JsonObject, key: string): boolean =>
  Object.prototype.hasOwnProperty.call(object, key);

/** `object[key]`, own properties only (so `"constructor"` in content is not the prototype's). */
export const field = (object: JsonObject, key: string): JsonValue | undefined =>
  hasOwn(object, key) ? object[key] : undefined;

export const asObject = (value: JsonValue | undefined): JsonObject | undefined =>
  typeof value === 'object' && value !== null && !Array.isArray(value) ? value : undefined;

export const asString = (value: JsonValue | undefined): string | undefined =>
  typeof value === 'string' ? value : undefined;

/** Power level values are integers in room versions 10 and later (within canonical JSON's range). */
export const isPowerInteger = (value: JsonValue | undefined): value is number =>
  typeof value === 'number' && Number.isSafeInteger(value);

/** The server name of a user ID or (before version 12) a room ID: everything after the first colon. */
export const domainOf = (id: string): string => {
  const colon = id.indexOf(':');
  return colon < 0 ? '' : id.slice(colon + 1);
};

/** A power level for a sentence; room creators in version 12 have an infinite one. */
export const formatLevel = (level: number): string =>
  level === Infinity ? 'infinite' : String(level);
