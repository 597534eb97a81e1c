/**
 * The `m.room.member` auth rules (rule 4 in room versions 10–11, rule 5 in version 12; the
 * text is the same in all three apart from who the creator is).
 * Spec: https://spec.matrix.org/v1.16/rooms/v12/#authorization-rules
 */
import { parseUserId } from '../identifiers.js';
import { stateKeyOf, type JsonObject, type RoomVersionId } from '../pdu.js';
import { actionLevel, powerLevelOf } from './power-levels.js';
import {
  ALLOW,
  CREATE_KEY,
  JOIN_RULES_KEY,
  asObject,
  asString,
  deny,
  field,
  formatLevel,
  hasOwn,
  memberKey,
  type AuthChecks,
  type AuthEvent,
  type AuthResult,
  type AuthState,
} from './types.js';

/** A user's current membership, or undefined when the state has no member event for them. */
export function membershipOf(userId: string, authState: AuthState): string | undefined {
  const member = authState.get(memberKey(userId));
  return member === undefined ? undefined : asString(field(member.content, 'membership'));
}

/** The room's current `join_rule`, or undefined when there is no `m.room.join_rules` event. */
export function joinRuleOf(authState: AuthState): string | undefined {
  const joinRules = authState.get(JOIN_RULES_KEY);
  return joinRules === undefined ? undefined : asString(field(joinRules.content, 'join_rule'));
}

/** The event ID of the room's create event, when it can be known. */
function createEventId(
  authState: AuthState,
  roomId: string | undefined,
  roomVersion: RoomVersionId,
): string | undefined {
  const create = authState.get(CREATE_KEY);
  if (create?.event_id !== undefined) return create.event_id;
  if (roomVersion === '12' && roomId?.startsWith('!')) return `$${roomId.slice(1)}`;
  return undefined;
}

/** Who may send the first join: `content.creator` in version 10, the create `sender` after. */
function firstJoiner(authState: AuthState, roomVersion: RoomVersionId): string | undefined {
  const create = authState.get(CREATE_KEY);
  if (create === undefined) return undefined;
  return roomVersion === '10' ? asString(field(create.content, 'creator')) : create.sender;
}

export function authorizeMember(
  event: AuthEvent,
  authState: AuthState,
  roomVersion: RoomVersionId,
  checks: AuthChecks,
): AuthResult {
  const { content, sender } = event;
  const target = event.state_key;
  if (target === undefined) return deny('A membership event must have a state_key');
  if (!hasOwn(content, 'membership')) return deny('A membership event must have a membership');

  if (hasOwn(content, 'join_authorised_via_users_server')) {
    const via = asString(content.join_authorised_via_users_server);
    const server = via === undefined ? undefined : parseUserId(via)?.serverName;
    if (server === undefined) {
      return deny('join_authorised_via_users_server must be a valid user ID');
    }
    if (checks.isSignedBy === undefined) {
      return deny(`The signature of ${server}, which authorised this join, cannot be checked here`);
    }
    if (!checks.isSignedBy(server)) {
      return deny(`The event is not signed by ${server}, the server of the authorising user`);
    }
  }

  const membership = content.membership;
  const senderMembership = membershipOf(sender, authState);
  const senderLevel = () => powerLevelOf(sender, authState, roomVersion);
  const targetLevel = () => powerLevelOf(target, authState, roomVersion);

  switch (membership) {
    case 'join':
      return authorizeJoin(event, target, senderMembership, authState, roomVersion);

    case 'invite': {
      const targetMembership = membershipOf(target, authState);
      if (hasOwn(content, 'third_party_invite')) {
        return authorizeThirdPartyInvite(event, target, targetMembership, authState, checks);
      }
      if (senderMembership !== 'join') return deny('You must be in the room to invite users');
      if (targetMembership === 'join') return deny(`${target} is already in the room`);
      if (targetMembership === 'ban') return deny(`${target} is banned from this room`);
      const level = senderLevel();
      const invite = actionLevel('invite', authState);
      if (level >= invite) return ALLOW;
      return deny(
        `You do not have permission to invite users (power level ${formatLevel(level)} < ${invite})`,
      );
    }

    case 'leave': {
      if (sender === target) {
        if (
          senderMembership === 'invite' ||
          senderMembership === 'join' ||
          senderMembership === 'knock'
        ) {
          return ALLOW;
        }
        return senderMembership === 'ban'
          ? deny('You are banned from this room and cannot leave it')
          : deny('You cannot leave a room you are not in, invited to or knocking on');
      }
      if (senderMembership !== 'join')
        return deny('You must be in the room to kick or unban users');
      const level = senderLevel();
      const ban = actionLevel('ban', authState);
      if (membershipOf(target, authState) === 'ban' && level < ban) {
        return deny(
          `You do not have permission to unban users (power level ${formatLevel(level)} < ${ban})`,
        );
      }
      const kick = actionLevel('kick', authState);
      const theirs = targetLevel();
      if (level >= kick && theirs < level) return ALLOW;
      if (level < kick) {
        return deny(
          `You do not have permission to kick users (power level ${formatLevel(level)} < ${kick})`,
        );
      }
      return deny(
        `You cannot kick ${target}: their power level (${formatLevel(theirs)}) is not below yours (${formatLevel(level)})`,
      );
    }

    case 'ban': {
      if (senderMembership !== 'join') return deny('You must be in the room to ban users');
      const level = senderLevel();
      const ban = actionLevel('ban', authState);
      const theirs = targetLevel();
      if (level >= ban && theirs < level) return ALLOW;
      if (level < ban) {
        return deny(
          `You do not have permission to ban users (power level ${formatLevel(level)} < ${ban})`,
        );
      }
      return deny(
        `You cannot ban ${target}: their power level (${formatLevel(theirs)}) is not below yours (${formatLevel(level)})`,
      );
    }

    case 'knock': {
      const joinRule = joinRuleOf(authState);
      if (joinRule !== 'knock' && joinRule !== 'knock_restricted') {
        return deny(
          joinRule === undefined
            ? 'You cannot knock on a room that has no join rules'
            : `You cannot knock on a room whose join rule is "${joinRule}"`,
        );
      }
      if (sender !== target) return deny('You cannot knock on behalf of another user');
      if (senderMembership === 'ban')
        return deny('You cannot knock: you are banned from this room');
      if (senderMembership === 'invite') return deny('You cannot knock: you are already invited');
      if (senderMembership === 'join') return deny('You cannot knock: you are already in the room');
      return ALLOW;
    }

    default:
      return deny(`Unknown membership ${JSON.stringify(membership)}`);
  }
}

function authorizeJoin(
  event: AuthEvent,
  target: string,
  senderMembership: string | undefined,
  authState: AuthState,
  roomVersion: RoomVersionId,
): AuthResult {
  const { sender, content } = event;
  const createId = createEventId(authState, event.room_id, roomVersion);
  if (
    event.prev_events.length === 1 &&
    createId !== undefined &&
    event.prev_events[0] === createId &&
    target === firstJoiner(authState, roomVersion)
  ) {
    return ALLOW;
  }
  if (sender !== target) return deny('You cannot join on behalf of another user');
  if (senderMembership === 'ban') return deny('You are banned from this room');

  const joinRule = joinRuleOf(authState);
  const invitedOrJoined = senderMembership === 'invite' || senderMembership === 'join';
  if (joinRule === 'invite' || joinRule === 'knock') {
    if (invitedOrJoined) return ALLOW;
    return deny(`You must be invited to join this room (join rule "${joinRule}")`);
  }
  if (joinRule === 'restricted' || joinRule === 'knock_restricted') {
    if (invitedOrJoined) return ALLOW;
    const via = asString(field(content, 'join_authorised_via_users_server'));
    if (via === undefined) {
      return deny(
        `You must be invited to join this room, or have your join authorised by a member (join rule "${joinRule}")`,
      );
    }
    if (membershipOf(via, authState) !== 'join') {
      return deny(`${via}, who authorised the join, is not in the room`);
    }
    const level = powerLevelOf(via, authState, roomVersion);
    const invite = actionLevel('invite', authState);
    if (level < invite) {
      return deny(
        `${via}, who authorised the join, cannot invite users (power level ${formatLevel(level)} < ${invite})`,
      );
    }
    return ALLOW;
  }
  if (joinRule === 'public') return ALLOW;
  return deny(
    joinRule === undefined
      ? 'You cannot join a room that has no join rules'
      : `You cannot join a room whose join rule is "${joinRule}"`,
  );
}

/** The rules for an invite carrying `content.third_party_invite`. */
function authorizeThirdPartyInvite(
  event: AuthEvent,
  target: string,
  targetMembership: string | undefined,
  authState: AuthState,
  checks: AuthChecks,
): AuthResult {
  if (targetMembership === 'ban')
    return deny(`${target} is banned from this room and cannot be invited`);
  const invite = asObject(field(event.content, 'third_party_invite'));
  const signed = invite === undefined ? undefined : asObject(field(invite, 'signed'));
  if (signed === undefined) return deny('third_party_invite must have a signed object');
  if (!hasOwn(signed, 'mxid') || !hasOwn(signed, 'token')) {
    return deny('third_party_invite.signed must have mxid and token');
  }
  if (signed.mxid !== target)
    return deny('third_party_invite.signed.mxid does not match the invited user');
  const token = asString(signed.token);
  const pending =
    token === undefined ? undefined : authState.get(stateKeyOf('m.room.third_party_invite', token));
  if (pending === undefined)
    return deny('There is no third-party invite in the room for this token');
  if (pending.sender !== event.sender) {
    return deny('Only the sender of the third-party invite can turn it into an invite');
  }
  const keys = publicKeysOf(pending.content);
  if (checks.verifyThirdPartySigned === undefined) {
    return deny('The signature on the third-party invite cannot be checked here');
  }
  if (checks.verifyThirdPartySigned(signed, keys)) return ALLOW;
  return deny('The third-party invite is not signed by any of its public keys');
}

/** `public_key` and every `public_keys[].public_key` of an `m.room.third_party_invite`. */
export function publicKeysOf(content: JsonObject): string[] {
  const keys: string[] = [];
  const single = asString(field(content, 'public_key'));
  if (single !== undefined) keys.push(single);
  const list = field(content, 'public_keys');
  if (Array.isArray(list)) {
    for (const entry of list) {
      const object = asObject(entry);
      const key = object === undefined ? undefined : asString(field(object, 'public_key'));
      if (key !== undefined) keys.push(key);
    }
  }
  return keys;
}
