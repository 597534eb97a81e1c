import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  authEventSelection,
  authStateFrom,
  authorizeEvent,
  canApplyRedaction,
  checkAuthEvents,
  powerLevelOf,
  requiredPowerForEvent,
  roomCreators,
  type AuthChecks,
  type AuthEvent,
  type AuthEventEntry,
  type AuthState,
} from '../../src/core/auth-rules.js';
import { stateKeyOf, type JsonObject, type RoomVersionId } from '../../src/core/pdu.js';
import {
  ALICE,
  BOB,
  CAROL,
  DAVE,
  VERSIONS,
  createEvent,
  defaultPowerLevels,
  makeEvent,
  makeRoom,
  makeState,
  member,
  type TestRoom,
} from '../fixtures/auth-fixtures.js';

interface Case {
  readonly name: string;
  readonly versions?: readonly RoomVersionId[];
  readonly room?: (version: RoomVersionId) => TestRoom;
  readonly state?: (room: TestRoom) => AuthState;
  readonly event: (room: TestRoom) => AuthEvent;
  readonly checks?: AuthChecks;
  /** `'allow'`, or a pattern the refusal's reason must match. */
  readonly expect: 'allow' | RegExp;
}

function runTable(title: string, cases: readonly Case[]): void {
  describe(title, () => {
    for (const c of cases) {
      for (const version of c.versions ?? VERSIONS) {
        it(`${c.name} [v${version}]`, () => {
          const room = c.room?.(version) ?? makeRoom(version);
          const state = c.state?.(room) ?? makeState(room);
          const result = authorizeEvent(c.event(room), state, version, c.checks);
          if (c.expect === 'allow') {
            assert.deepEqual(result, { allowed: true });
          } else {
            assert.equal(result.allowed, false, 'expected a refusal');
            if (!result.allowed) assert.match(result.reason, c.expect);
          }
        });
      }
    }
  });
}

const signedByAll: AuthChecks = { isSignedBy: () => true, verifyThirdPartySigned: () => true };
/** Power levels for the tests that move thresholds: Alice, and Bob at 50, over `extra`. */
const levels = (room: TestRoom, extra: JsonObject): JsonObject => ({
  ...defaultPowerLevels(room.version),
  ...extra,
});
const withUsers = (room: TestRoom, users: JsonObject): JsonObject => {
  const base = defaultPowerLevels(room.version).users;
  return { users: { ...(base as JsonObject), ...users } };
};

runTable('m.room.create', [
  { name: 'a well-formed create event is allowed', event: (r) => createEvent(r), expect: 'allow' },
  {
    name: 'a create event with prev_events is refused',
    event: (r) => ({ ...createEvent(r), prev_events: ['$earlier'] }),
    expect: /must not have prev_events/,
  },
  {
    name: "the room ID's server must be the sender's",
    versions: ['10', '11'],
    event: (r) => createEvent(r, {}, BOB),
    expect: /server name \(a\.test\) does not match the sender's \(b\.test\)/,
  },
  {
    name: 'a create event from any server is allowed when it has no room_id',
    versions: ['12'],
    event: (r) => createEvent(r, {}, BOB),
    expect: 'allow',
  },
  {
    name: 'a create event with a room_id is refused',
    versions: ['12'],
    event: (r) => ({ ...createEvent(r), room_id: r.roomId }),
    expect: /must not have a room_id/,
  },
  {
    name: 'an unrecognised room_version is refused',
    event: (r) => createEvent(r, { room_version: 'com.example.custom' }),
    expect: /Unrecognised room version "com\.example\.custom"/,
  },
  {
    name: 'a create event without creator is refused',
    versions: ['10'],
    event: (r) => ({ ...createEvent(r), content: { room_version: '10' } }),
    expect: /must have a creator/,
  },
  {
    name: 'a create event without creator is allowed',
    versions: ['11', '12'],
    event: (r) => createEvent(r),
    expect: 'allow',
  },
  {
    name: 'additional_creators of valid user IDs are allowed',
    versions: ['12'],
    event: (r) => createEvent(r, { additional_creators: [BOB, CAROL] }),
    expect: 'allow',
  },
  {
    name: 'additional_creators that is not an array is refused',
    versions: ['12'],
    event: (r) => createEvent(r, { additional_creators: BOB }),
    expect: /must be an array of user IDs/,
  },
  {
    name: 'additional_creators with an invalid user ID is refused',
    versions: ['12'],
    event: (r) => createEvent(r, { additional_creators: [BOB, 'not-a-user'] }),
    expect: /"not-a-user", which is not a valid user ID/,
  },
  {
    name: 'additional_creators is not validated before version 12',
    versions: ['10', '11'],
    event: (r) => createEvent(r, { additional_creators: 42 }),
    expect: 'allow',
  },
]);

runTable('room, create event and m.federate', [
  {
    name: 'an event without a create event in the state is refused',
    state: (r) => {
      const state = new Map(makeState(r));
      state.delete(stateKeyOf('m.room.create', ''));
      return state;
    },
    event: (r) => makeEvent(r, { type: 'm.room.message', sender: BOB }),
    expect: /no m\.room\.create event/,
  },
  {
    name: "a room ID other than the create event's is refused",
    versions: ['12'],
    event: (r) => ({
      ...makeEvent(r, { type: 'm.room.message', sender: BOB }),
      room_id: '!SomeOtherRoom',
    }),
    expect: /is not that of the room's m\.room\.create event/,
  },
  {
    name: 'm.federate false refuses senders from other servers',
    room: (v) => makeRoom(v, { createContent: { 'm.federate': false } }),
    event: (r) => makeEvent(r, { type: 'm.room.message', sender: BOB }),
    expect: /does not accept events from other servers \(b\.test\)/,
  },
  {
    name: "m.federate false allows the creator's server",
    room: (v) => makeRoom(v, { createContent: { 'm.federate': false } }),
    state: (r) => makeState(r, { members: { [ALICE]: 'join', [DAVE]: 'join' } }),
    event: (r) => makeEvent(r, { type: 'm.room.message', sender: DAVE }),
    expect: 'allow',
  },
]);

const restrictedVia = (r: TestRoom, via: string): AuthEvent =>
  member(r, CAROL, CAROL, 'join', { join_authorised_via_users_server: via });

runTable('m.room.member join', [
  {
    name: "the creator's join right after the create event is allowed",
    state: (r) => makeState(r, { members: {}, joinRule: null, powerLevels: null }),
    event: (r) => ({ ...member(r, ALICE, ALICE, 'join'), prev_events: [r.createId] }),
    expect: 'allow',
  },
  {
    name: "the creator's first join is allowed with the create event ID derived from the room ID",
    versions: ['12'],
    room: (v) => makeRoom(v, { withEventId: false }),
    state: (r) => makeState(r, { members: {}, joinRule: null, powerLevels: null }),
    event: (r) => ({ ...member(r, ALICE, ALICE, 'join'), prev_events: [r.createId] }),
    expect: 'allow',
  },
  {
    name: 'the first join is for content.creator, even when it is not the sender',
    versions: ['10'],
    room: (v) => makeRoom(v, { createContent: { creator: DAVE } }),
    state: (r) => makeState(r, { members: {}, joinRule: null, powerLevels: null }),
    event: (r) => ({ ...member(r, DAVE, DAVE, 'join'), prev_events: [r.createId] }),
    expect: 'allow',
  },
  {
    name: 'the first join is for the create sender, not content.creator',
    versions: ['11', '12'],
    room: (v) => makeRoom(v, { createContent: { creator: DAVE } }),
    state: (r) => makeState(r, { members: {}, joinRule: null, powerLevels: null }),
    event: (r) => ({ ...member(r, DAVE, DAVE, 'join'), prev_events: [r.createId] }),
    expect: /no join rules/,
  },
  {
    name: 'a non-creator cannot join right after the create event',
    state: (r) => makeState(r, { members: {}, joinRule: null, powerLevels: null }),
    event: (r) => ({ ...member(r, BOB, BOB, 'join'), prev_events: [r.createId] }),
    expect: /You cannot join a room that has no join rules/,
  },
  {
    name: 'joining on behalf of another user is refused',
    state: (r) => makeState(r, { joinRule: 'public' }),
    event: (r) => member(r, BOB, CAROL, 'join'),
    expect: /cannot join on behalf of another user/,
  },
  {
    name: 'a banned user cannot join',
    state: (r) =>
      makeState(r, { joinRule: 'public', members: { [ALICE]: 'join', [CAROL]: 'ban' } }),
    event: (r) => member(r, CAROL, CAROL, 'join'),
    expect: /^You are banned from this room$/,
  },
  {
    name: 'anyone can join a public room',
    state: (r) => makeState(r, { joinRule: 'public' }),
    event: (r) => member(r, CAROL, CAROL, 'join'),
    expect: 'allow',
  },
  ...(['invite', 'knock'] as const).flatMap((joinRule): Case[] => [
    {
      name: `an invited user can join (join rule ${joinRule})`,
      state: (r) => makeState(r, { joinRule, members: { [ALICE]: 'join', [CAROL]: 'invite' } }),
      event: (r) => member(r, CAROL, CAROL, 'join'),
      expect: 'allow',
    },
    {
      name: `a joined user can join again (join rule ${joinRule})`,
      state: (r) => makeState(r, { joinRule, members: { [ALICE]: 'join', [CAROL]: 'join' } }),
      event: (r) => member(r, CAROL, CAROL, 'join', { displayname: 'Carol' }),
      expect: 'allow',
    },
    {
      name: `an uninvited user cannot join (join rule ${joinRule})`,
      state: (r) => makeState(r, { joinRule, members: { [ALICE]: 'join', [CAROL]: 'knock' } }),
      event: (r) => member(r, CAROL, CAROL, 'join'),
      expect: new RegExp(`must be invited to join this room \\(join rule "${joinRule}"\\)`),
    },
  ]),
  ...(['restricted', 'knock_restricted'] as const).flatMap((joinRule): Case[] => [
    {
      name: `an invited user can join (join rule ${joinRule})`,
      state: (r) => makeState(r, { joinRule, members: { [ALICE]: 'join', [CAROL]: 'invite' } }),
      event: (r) => member(r, CAROL, CAROL, 'join'),
      expect: 'allow',
    },
    {
      name: `a join authorised by a member who can invite is allowed (${joinRule})`,
      state: (r) => makeState(r, { joinRule, powerLevels: levels(r, { invite: 50 }) }),
      event: (r) => restrictedVia(r, BOB),
      checks: signedByAll,
      expect: 'allow',
    },
    {
      name: `a join with no authorising user is refused (${joinRule})`,
      state: (r) => makeState(r, { joinRule }),
      event: (r) => member(r, CAROL, CAROL, 'join'),
      expect: new RegExp(`have your join authorised by a member \\(join rule "${joinRule}"\\)`),
    },
  ]),
  {
    name: 'a join authorised by a user who is not in the room is refused',
    state: (r) =>
      makeState(r, { joinRule: 'restricted', members: { [ALICE]: 'join', [BOB]: 'leave' } }),
    event: (r) => restrictedVia(r, BOB),
    checks: signedByAll,
    expect: /@bob:b\.test, who authorised the join, is not in the room/,
  },
  {
    name: 'a join authorised by a user who cannot invite is refused',
    state: (r) => makeState(r, { joinRule: 'restricted', powerLevels: levels(r, { invite: 60 }) }),
    event: (r) => restrictedVia(r, BOB),
    checks: signedByAll,
    expect: /who authorised the join, cannot invite users \(power level 50 < 60\)/,
  },
  {
    name: 'a join authorised by a creator is allowed whatever the invite level',
    state: (r) => makeState(r, { joinRule: 'restricted', powerLevels: levels(r, { invite: 100 }) }),
    event: (r) => restrictedVia(r, ALICE),
    checks: signedByAll,
    expect: 'allow',
  },
  {
    name: "a join not signed by the authorising user's server is refused",
    state: (r) => makeState(r, { joinRule: 'restricted' }),
    event: (r) => restrictedVia(r, BOB),
    checks: { isSignedBy: (server) => server === 'c.test' },
    expect: /not signed by b\.test, the server of the authorising user/,
  },
  {
    name: 'join_authorised_via_users_server is refused when signatures cannot be checked',
    state: (r) => makeState(r, { joinRule: 'restricted' }),
    event: (r) => restrictedVia(r, BOB),
    expect: /signature of b\.test, which authorised this join, cannot be checked here/,
  },
  {
    name: 'join_authorised_via_users_server that is not a user ID is refused',
    state: (r) => makeState(r, { joinRule: 'restricted' }),
    event: (r) => restrictedVia(r, 'bob'),
    checks: signedByAll,
    expect: /join_authorised_via_users_server must be a valid user ID/,
  },
  {
    name: 'a join to a room whose join rule is private is refused',
    state: (r) => makeState(r, { joinRule: 'private' }),
    event: (r) => member(r, CAROL, CAROL, 'join'),
    expect: /join rule is "private"/,
  },
]);

const thirdPartyState = (
  r: TestRoom,
  sender = BOB,
  members?: Record<string, 'join' | 'ban'>,
): AuthState =>
  makeState(r, {
    ...(members === undefined ? {} : { members }),
    extra: [
      {
        type: 'm.room.third_party_invite',
        state_key: 'tok3n',
        sender,
        room_id: r.roomId,
        content: {
          display_name: 'c...@example.org',
          key_validity_url: 'https://id.example/v',
          public_key: 'a2V5',
          public_keys: [{ public_key: 'b3RoZXI' }],
        },
      },
    ],
  });
const thirdPartyInvite = (r: TestRoom, signed: JsonObject | undefined, sender = BOB): AuthEvent =>
  member(r, sender, CAROL, 'invite', {
    third_party_invite: {
      display_name: 'c...@example.org',
      ...(signed === undefined ? {} : { signed }),
    },
  });
const validSigned: JsonObject = {
  mxid: CAROL,
  token: 'tok3n',
  signatures: { 'id.example': { 'ed25519:0': 'sig' } },
};

runTable('m.room.member invite', [
  {
    name: 'a joined user can invite',
    event: (r) => member(r, BOB, CAROL, 'invite'),
    expect: 'allow',
  },
  {
    name: 'a user who is not in the room cannot invite',
    state: (r) => makeState(r, { members: { [ALICE]: 'join', [BOB]: 'invite' } }),
    event: (r) => member(r, BOB, CAROL, 'invite'),
    expect: /You must be in the room to invite users/,
  },
  {
    name: 'a user who is already in the room cannot be invited',
    state: (r) => makeState(r, { members: { [ALICE]: 'join', [BOB]: 'join', [CAROL]: 'join' } }),
    event: (r) => member(r, BOB, CAROL, 'invite'),
    expect: /@carol:c\.test is already in the room/,
  },
  {
    name: 'a banned user cannot be invited',
    state: (r) => makeState(r, { members: { [ALICE]: 'join', [BOB]: 'join', [CAROL]: 'ban' } }),
    event: (r) => member(r, BOB, CAROL, 'invite'),
    expect: /^@carol:c\.test is banned from this room$/,
  },
  {
    name: 'an invited or knocking user can be invited (again)',
    state: (r) => makeState(r, { members: { [ALICE]: 'join', [BOB]: 'join', [CAROL]: 'knock' } }),
    event: (r) => member(r, BOB, CAROL, 'invite'),
    expect: 'allow',
  },
  {
    name: 'inviting needs the invite level',
    state: (r) =>
      makeState(r, {
        members: { [ALICE]: 'join', [DAVE]: 'join' },
        powerLevels: levels(r, { invite: 50 }),
      }),
    event: (r) => member(r, DAVE, CAROL, 'invite'),
    expect: /^You do not have permission to invite users \(power level 0 < 50\)$/,
  },
  {
    name: 'users_default counts towards the invite level',
    state: (r) =>
      makeState(r, {
        members: { [ALICE]: 'join', [DAVE]: 'join' },
        powerLevels: levels(r, { invite: 10, users_default: 10 }),
      }),
    event: (r) => member(r, DAVE, CAROL, 'invite'),
    expect: 'allow',
  },
  {
    name: 'a third-party invite with a valid signature is allowed',
    state: (r) => thirdPartyState(r),
    event: (r) => thirdPartyInvite(r, validSigned),
    checks: {
      verifyThirdPartySigned: (signed, keys) =>
        signed.token === 'tok3n' && keys.join() === 'a2V5,b3RoZXI',
    },
    expect: 'allow',
  },
  {
    name: 'a third-party invite is refused when signatures cannot be checked',
    state: (r) => thirdPartyState(r),
    event: (r) => thirdPartyInvite(r, validSigned),
    expect: /signature on the third-party invite cannot be checked here/,
  },
  {
    name: 'a third-party invite with a bad signature is refused',
    state: (r) => thirdPartyState(r),
    event: (r) => thirdPartyInvite(r, validSigned),
    checks: { verifyThirdPartySigned: () => false },
    expect: /not signed by any of its public keys/,
  },
  {
    name: 'a third-party invite to a banned user is refused',
    state: (r) => thirdPartyState(r, BOB, { [ALICE]: 'join', [BOB]: 'join', [CAROL]: 'ban' }),
    event: (r) => thirdPartyInvite(r, validSigned),
    checks: signedByAll,
    expect: /banned from this room and cannot be invited/,
  },
  {
    name: 'a third-party invite without signed is refused',
    state: (r) => thirdPartyState(r),
    event: (r) => thirdPartyInvite(r, undefined),
    checks: signedByAll,
    expect: /must have a signed object/,
  },
  {
    name: 'a third-party invite without a token is refused',
    state: (r) => thirdPartyState(r),
    event: (r) => thirdPartyInvite(r, { mxid: CAROL }),
    checks: signedByAll,
    expect: /must have mxid and token/,
  },
  {
    name: 'a third-party invite for another user ID is refused',
    state: (r) => thirdPartyState(r),
    event: (r) => thirdPartyInvite(r, { ...validSigned, mxid: DAVE }),
    checks: signedByAll,
    expect: /mxid does not match the invited user/,
  },
  {
    name: 'a third-party invite with an unknown token is refused',
    state: (r) => thirdPartyState(r),
    event: (r) => thirdPartyInvite(r, { ...validSigned, token: 'other' }),
    checks: signedByAll,
    expect: /no third-party invite in the room for this token/,
  },
  {
    name: 'a third-party invite sent by someone else than the original inviter is refused',
    state: (r) => thirdPartyState(r, ALICE),
    event: (r) => thirdPartyInvite(r, validSigned),
    checks: signedByAll,
    expect: /Only the sender of the third-party invite/,
  },
]);

runTable('m.room.member leave, kick and unban', [
  ...(['join', 'invite', 'knock'] as const).map((membership): Case => ({
    name: `a user can leave from ${membership}`,
    state: (r) => makeState(r, { members: { [ALICE]: 'join', [CAROL]: membership } }),
    event: (r) => member(r, CAROL, CAROL, 'leave'),
    expect: 'allow',
  })),
  {
    name: 'a banned user cannot leave',
    state: (r) => makeState(r, { members: { [ALICE]: 'join', [CAROL]: 'ban' } }),
    event: (r) => member(r, CAROL, CAROL, 'leave'),
    expect: /banned from this room and cannot leave it/,
  },
  {
    name: 'a user who left cannot leave again',
    state: (r) => makeState(r, { members: { [ALICE]: 'join', [CAROL]: 'leave' } }),
    event: (r) => member(r, CAROL, CAROL, 'leave'),
    expect: /cannot leave a room you are not in/,
  },
  {
    name: 'a moderator can kick a user below them',
    state: (r) => makeState(r, { members: { [ALICE]: 'join', [BOB]: 'join', [CAROL]: 'join' } }),
    event: (r) => member(r, BOB, CAROL, 'leave'),
    expect: 'allow',
  },
  {
    name: 'kicking needs the sender to be in the room',
    state: (r) => makeState(r, { members: { [ALICE]: 'join', [BOB]: 'invite', [CAROL]: 'join' } }),
    event: (r) => member(r, BOB, CAROL, 'leave'),
    expect: /must be in the room to kick or unban users/,
  },
  {
    name: 'kicking needs the kick level',
    state: (r) =>
      makeState(r, {
        members: { [ALICE]: 'join', [BOB]: 'join', [CAROL]: 'join' },
        powerLevels: levels(r, { kick: 60 }),
      }),
    event: (r) => member(r, BOB, CAROL, 'leave'),
    expect: /^You do not have permission to kick users \(power level 50 < 60\)$/,
  },
  {
    name: 'a user at your own level cannot be kicked',
    state: (r) =>
      makeState(r, {
        members: { [ALICE]: 'join', [BOB]: 'join', [CAROL]: 'join' },
        powerLevels: withUsers(r, { [CAROL]: 50 }),
      }),
    event: (r) => member(r, BOB, CAROL, 'leave'),
    expect: /cannot kick @carol:c\.test: their power level \(50\) is not below yours \(50\)/,
  },
  {
    name: 'the creator can kick a user at 99',
    state: (r) =>
      makeState(r, {
        members: { [ALICE]: 'join', [BOB]: 'join', [CAROL]: 'join' },
        powerLevels: withUsers(r, { [CAROL]: 99 }),
      }),
    event: (r) => member(r, ALICE, CAROL, 'leave'),
    expect: 'allow',
  },
  {
    name: 'a creator at 100 cannot kick a user at 100',
    versions: ['10', '11'],
    state: (r) =>
      makeState(r, {
        members: { [ALICE]: 'join', [CAROL]: 'join' },
        powerLevels: withUsers(r, { [CAROL]: 100 }),
      }),
    event: (r) => member(r, ALICE, CAROL, 'leave'),
    expect: /their power level \(100\) is not below yours \(100\)/,
  },
  {
    name: 'a creator (infinite power) can kick a user at 100',
    versions: ['12'],
    state: (r) =>
      makeState(r, {
        members: { [ALICE]: 'join', [CAROL]: 'join' },
        powerLevels: withUsers(r, { [CAROL]: 100 }),
      }),
    event: (r) => member(r, ALICE, CAROL, 'leave'),
    expect: 'allow',
  },
  {
    name: 'a creator cannot kick another creator',
    versions: ['12'],
    room: (v) => makeRoom(v, { createContent: { additional_creators: [CAROL] } }),
    state: (r) => makeState(r, { members: { [ALICE]: 'join', [CAROL]: 'join' } }),
    event: (r) => member(r, ALICE, CAROL, 'leave'),
    expect: /their power level \(infinite\) is not below yours \(infinite\)/,
  },
  {
    name: 'an additional creator can kick anyone who is not a creator',
    versions: ['12'],
    room: (v) => makeRoom(v, { createContent: { additional_creators: [CAROL] } }),
    state: (r) => makeState(r, { members: { [ALICE]: 'join', [BOB]: 'join', [CAROL]: 'join' } }),
    event: (r) => member(r, CAROL, BOB, 'leave'),
    expect: 'allow',
  },
  {
    name: 'unbanning needs the ban level',
    state: (r) =>
      makeState(r, {
        members: { [ALICE]: 'join', [BOB]: 'join', [CAROL]: 'ban' },
        powerLevels: levels(r, { ban: 60 }),
      }),
    event: (r) => member(r, BOB, CAROL, 'leave'),
    expect: /^You do not have permission to unban users \(power level 50 < 60\)$/,
  },
  {
    name: 'unbanning with the ban and kick levels is allowed',
    state: (r) => makeState(r, { members: { [ALICE]: 'join', [BOB]: 'join', [CAROL]: 'ban' } }),
    event: (r) => member(r, BOB, CAROL, 'leave'),
    expect: 'allow',
  },
  {
    name: 'unbanning also needs the kick level',
    state: (r) =>
      makeState(r, {
        members: { [ALICE]: 'join', [BOB]: 'join', [CAROL]: 'ban' },
        powerLevels: levels(r, { kick: 70 }),
      }),
    event: (r) => member(r, BOB, CAROL, 'leave'),
    expect: /permission to kick users \(power level 50 < 70\)/,
  },
]);

runTable('m.room.member ban', [
  {
    name: 'a moderator can ban a user below them',
    event: (r) => member(r, BOB, CAROL, 'ban'),
    expect: 'allow',
  },
  {
    name: 'banning needs the sender to be in the room',
    state: (r) => makeState(r, { members: { [ALICE]: 'join', [BOB]: 'leave' } }),
    event: (r) => member(r, BOB, CAROL, 'ban'),
    expect: /must be in the room to ban users/,
  },
  {
    name: 'banning needs the ban level',
    state: (r) => makeState(r, { powerLevels: levels(r, { ban: 51 }) }),
    event: (r) => member(r, BOB, CAROL, 'ban'),
    expect: /^You do not have permission to ban users \(power level 50 < 51\)$/,
  },
  {
    name: 'a user above you cannot be banned',
    event: (r) => member(r, BOB, ALICE, 'ban'),
    expect:
      /cannot ban @alice:a\.test: their power level \((100|infinite)\) is not below yours \(50\)/,
  },
]);

runTable('m.room.member knock', [
  ...(['knock', 'knock_restricted'] as const).map((joinRule): Case => ({
    name: `knocking is allowed with join rule ${joinRule}`,
    state: (r) => makeState(r, { joinRule }),
    event: (r) => member(r, CAROL, CAROL, 'knock'),
    expect: 'allow',
  })),
  ...(['invite', 'public', 'restricted'] as const).map((joinRule): Case => ({
    name: `knocking is refused with join rule ${joinRule}`,
    state: (r) => makeState(r, { joinRule }),
    event: (r) => member(r, CAROL, CAROL, 'knock'),
    expect: new RegExp(`cannot knock on a room whose join rule is "${joinRule}"`),
  })),
  {
    name: 'knocking on a room without join rules is refused',
    state: (r) => makeState(r, { joinRule: null }),
    event: (r) => member(r, CAROL, CAROL, 'knock'),
    expect: /cannot knock on a room that has no join rules/,
  },
  {
    name: 'knocking on behalf of another user is refused',
    state: (r) => makeState(r, { joinRule: 'knock' }),
    event: (r) => member(r, BOB, CAROL, 'knock'),
    expect: /cannot knock on behalf of another user/,
  },
  ...(
    [
      ['ban', /you are banned/],
      ['invite', /you are already invited/],
      ['join', /you are already in the room/],
    ] as const
  ).map(([membership, reason]): Case => ({
    name: `a user whose membership is ${membership} cannot knock`,
    state: (r) =>
      makeState(r, { joinRule: 'knock', members: { [ALICE]: 'join', [CAROL]: membership } }),
    event: (r) => member(r, CAROL, CAROL, 'knock'),
    expect: reason,
  })),
  {
    name: 'a user who left can knock again',
    state: (r) =>
      makeState(r, { joinRule: 'knock', members: { [ALICE]: 'join', [CAROL]: 'leave' } }),
    event: (r) => member(r, CAROL, CAROL, 'knock'),
    expect: 'allow',
  },
]);

runTable('m.room.member malformed', [
  {
    name: 'a membership event without state_key is refused',
    event: (r) =>
      makeEvent(r, { type: 'm.room.member', sender: BOB, content: { membership: 'join' } }),
    expect: /must have a state_key/,
  },
  {
    name: 'a membership event without membership is refused',
    event: (r) => makeEvent(r, { type: 'm.room.member', sender: BOB, state_key: BOB, content: {} }),
    expect: /must have a membership/,
  },
  {
    name: 'an unknown membership is refused',
    event: (r) => member(r, BOB, BOB, 'lurk'),
    expect: /Unknown membership "lurk"/,
  },
]);

const message = (r: TestRoom, sender: string, type = 'm.room.message'): AuthEvent =>
  makeEvent(r, { type, sender, content: { body: 'hi' } });
const stateEvent = (r: TestRoom, sender: string, type: string, stateKey = ''): AuthEvent =>
  makeEvent(r, { type, sender, state_key: stateKey, content: {} });

runTable('other events and power', [
  { name: 'a member can send a message', event: (r) => message(r, BOB), expect: 'allow' },
  {
    name: 'a user who is not in the room cannot send',
    state: (r) => makeState(r, { members: { [ALICE]: 'join', [CAROL]: 'invite' } }),
    event: (r) => message(r, CAROL),
    expect: /^You are not in this room$/,
  },
  {
    name: 'events_default sets the level of messages',
    state: (r) => makeState(r, { powerLevels: levels(r, { events_default: 60 }) }),
    event: (r) => message(r, BOB),
    expect: /^You do not have permission to send m\.room\.message events \(power level 50 < 60\)$/,
  },
  {
    name: 'events overrides events_default',
    state: (r) =>
      makeState(r, { powerLevels: levels(r, { events_default: 60, events: { 'm.reaction': 0 } }) }),
    event: (r) => message(r, BOB, 'm.reaction'),
    expect: 'allow',
  },
  {
    name: 'state_default (50) lets a moderator send state',
    event: (r) => stateEvent(r, BOB, 'm.room.topic'),
    expect: 'allow',
  },
  {
    name: 'state_default (50) stops a user at 0',
    state: (r) => makeState(r, { members: { [ALICE]: 'join', [CAROL]: 'join' } }),
    event: (r) => stateEvent(r, CAROL, 'm.room.topic'),
    expect:
      /^You do not have permission to send m\.room\.topic state events \(power level 0 < 50\)$/,
  },
  {
    name: 'events overrides state_default',
    state: (r) => makeState(r, { powerLevels: levels(r, { events: { 'm.room.name': 75 } }) }),
    event: (r) => stateEvent(r, BOB, 'm.room.name'),
    expect: /m\.room\.name state events \(power level 50 < 75\)/,
  },
  {
    name: 'without power levels the creator can send state',
    state: (r) => makeState(r, { powerLevels: null }),
    event: (r) => stateEvent(r, ALICE, 'm.room.name'),
    expect: 'allow',
  },
  {
    name: 'without power levels other users are at 0',
    state: (r) => makeState(r, { powerLevels: null }),
    event: (r) => stateEvent(r, BOB, 'm.room.name'),
    expect: /power level 0 < 50/,
  },
  {
    name: 'a state_key that is another user ID is refused',
    event: (r) => stateEvent(r, BOB, 'org.example.status', ALICE),
    expect: /Only @alice:a\.test may send state with their user ID as the state_key/,
  },
  {
    name: "a state_key that is the sender's user ID is allowed",
    event: (r) => stateEvent(r, BOB, 'org.example.status', BOB),
    expect: 'allow',
  },
  {
    name: 'm.room.third_party_invite needs the invite level',
    state: (r) => makeState(r, { powerLevels: levels(r, { invite: 60 }) }),
    event: (r) =>
      makeEvent(r, {
        type: 'm.room.third_party_invite',
        sender: BOB,
        state_key: 'tok',
        content: {},
      }),
    expect: /invite users by third-party ID \(power level 50 < 60\)/,
  },
  {
    name: 'm.room.third_party_invite is allowed at the invite level, whatever state_default says',
    state: (r) => makeState(r, { members: { [ALICE]: 'join', [CAROL]: 'join' } }),
    event: (r) =>
      makeEvent(r, {
        type: 'm.room.third_party_invite',
        sender: CAROL,
        state_key: 'tok',
        content: {},
      }),
    expect: 'allow',
  },
  {
    name: 'a redaction is allowed by events_default, whatever the redact level',
    state: (r) =>
      makeState(r, {
        members: { [ALICE]: 'join', [CAROL]: 'join' },
        powerLevels: levels(r, { redact: 100 }),
      }),
    event: (r) =>
      makeEvent(r, { type: 'm.room.redaction', sender: CAROL, content: { redacts: '$target' } }),
    expect: 'allow',
  },
  {
    name: 'a redaction needs the level events sets for m.room.redaction',
    state: (r) =>
      makeState(r, {
        members: { [ALICE]: 'join', [CAROL]: 'join' },
        powerLevels: levels(r, { events: { 'm.room.redaction': 20 } }),
      }),
    event: (r) =>
      makeEvent(r, { type: 'm.room.redaction', sender: CAROL, content: { redacts: '$target' } }),
    expect: /m\.room\.redaction events \(power level 0 < 20\)/,
  },
]);

const powerLevels = (r: TestRoom, sender: string, content: JsonObject): AuthEvent =>
  makeEvent(r, { type: 'm.room.power_levels', sender, state_key: '', content });

runTable('m.room.power_levels', [
  {
    name: 'the first power levels event is allowed',
    state: (r) => makeState(r, { powerLevels: null }),
    event: (r) =>
      powerLevels(r, ALICE, { ...defaultPowerLevels(r.version), ban: 100, state_default: 100 }),
    expect: 'allow',
  },
  ...(
    ['users_default', 'events_default', 'state_default', 'ban', 'redact', 'kick', 'invite'] as const
  ).flatMap((key): Case[] => [
    {
      name: `"${key}" as a string is refused`,
      event: (r) => powerLevels(r, ALICE, levels(r, { [key]: '50' })),
      expect: new RegExp(`The "${key}" power level must be an integer`),
    },
    {
      name: `"${key}" as a fraction is refused`,
      event: (r) => powerLevels(r, ALICE, levels(r, { [key]: 1.5 })),
      expect: new RegExp(`The "${key}" power level must be an integer`),
    },
  ]),
  {
    name: 'events with a string value is refused',
    event: (r) => powerLevels(r, ALICE, levels(r, { events: { 'm.room.name': '50' } })),
    expect: /The "events" power level for "m\.room\.name" must be an integer/,
  },
  {
    name: 'notifications that is not an object is refused',
    event: (r) => powerLevels(r, ALICE, levels(r, { notifications: 50 })),
    expect: /The "notifications" power levels must be an object/,
  },
  {
    name: 'users with an invalid user ID is refused',
    event: (r) => powerLevels(r, ALICE, withUsers(r, { bob: 10 })),
    expect: /"bob" in "users" is not a valid user ID/,
  },
  {
    name: 'users with a string level is refused',
    event: (r) => powerLevels(r, ALICE, withUsers(r, { [CAROL]: '10' })),
    expect: /The power level of @carol:c\.test must be an integer/,
  },
  {
    name: 'users that is not an object is refused',
    event: (r) => powerLevels(r, ALICE, { users: [] }),
    expect: /The "users" power levels must be an object/,
  },
  {
    name: 'listing the creator in users is refused',
    versions: ['12'],
    state: (r) => makeState(r, { powerLevels: null }),
    event: (r) => powerLevels(r, ALICE, { users: { [ALICE]: 100 } }),
    expect: /Room creator @alice:a\.test cannot be given a power level/,
  },
  {
    name: 'listing an additional creator in users is refused',
    versions: ['12'],
    room: (v) => makeRoom(v, { createContent: { additional_creators: [CAROL] } }),
    event: (r) => powerLevels(r, ALICE, withUsers(r, { [CAROL]: 50 })),
    expect: /Room creator @carol:c\.test cannot be given a power level/,
  },
  {
    name: 'listing the creator in users is allowed',
    versions: ['10', '11'],
    event: (r) => powerLevels(r, ALICE, withUsers(r, { [CAROL]: 10 })),
    expect: 'allow',
  },
  {
    name: 'a moderator can raise a default up to their own level',
    event: (r) => powerLevels(r, BOB, levels(r, { events_default: 50 })),
    expect: 'allow',
  },
  {
    name: 'raising a default above your own level is refused',
    event: (r) => powerLevels(r, BOB, levels(r, { kick: 51 })),
    expect: /cannot set the "kick" power level to 51, above your own \(50\)/,
  },
  {
    name: 'changing a default that is above your own level is refused',
    state: (r) => makeState(r, { powerLevels: levels(r, { ban: 60 }) }),
    event: (r) => powerLevels(r, BOB, levels(r, { ban: 40 })),
    expect: /cannot change the "ban" power level from 60, above your own \(50\)/,
  },
  {
    name: 'removing a default that is above your own level is refused',
    state: (r) => makeState(r, { powerLevels: levels(r, { redact: 60 }) }),
    event: (r) => powerLevels(r, BOB, defaultPowerLevels(r.version)),
    expect: /cannot change the "redact" power level from 60/,
  },
  {
    name: 'adding an events entry above your own level is refused',
    event: (r) => powerLevels(r, BOB, levels(r, { events: { 'm.room.name': 75 } })),
    expect: /cannot set the "events" power level of "m\.room\.name" to 75, above your own \(50\)/,
  },
  {
    name: 'changing an events entry that is above your own level is refused',
    state: (r) => makeState(r, { powerLevels: levels(r, { events: { 'm.room.name': 75 } }) }),
    event: (r) => powerLevels(r, BOB, levels(r, { events: { 'm.room.name': 10 } })),
    expect: /cannot change the "events" power level of "m\.room\.name" from 75/,
  },
  {
    name: 'an events entry at your own level can be changed',
    state: (r) => makeState(r, { powerLevels: levels(r, { notifications: { room: 50 } }) }),
    event: (r) => powerLevels(r, BOB, levels(r, { notifications: { room: 20 } })),
    expect: 'allow',
  },
  {
    name: 'promoting a user up to your own level is allowed',
    event: (r) => powerLevels(r, BOB, withUsers(r, { [CAROL]: 50 })),
    expect: 'allow',
  },
  {
    name: 'promoting a user above your own level is refused',
    event: (r) => powerLevels(r, BOB, withUsers(r, { [CAROL]: 51 })),
    expect: /cannot give @carol:c\.test power level 51, above your own \(50\)/,
  },
  {
    name: 'changing a user at your own level is refused',
    state: (r) => makeState(r, { powerLevels: withUsers(r, { [CAROL]: 50 }) }),
    event: (r) => powerLevels(r, BOB, withUsers(r, { [CAROL]: 0 })),
    expect:
      /cannot change the power level of @carol:c\.test \(50\): it is not below your own \(50\)/,
  },
  {
    name: 'removing a user at your own level is refused',
    state: (r) => makeState(r, { powerLevels: withUsers(r, { [CAROL]: 50 }) }),
    event: (r) => powerLevels(r, BOB, defaultPowerLevels(r.version)),
    expect: /cannot change the power level of @carol:c\.test \(50\)/,
  },
  {
    name: 'lowering your own level is allowed',
    event: (r) => powerLevels(r, BOB, withUsers(r, { [BOB]: 10 })),
    expect: 'allow',
  },
  {
    name: 'the creator at 100 cannot demote another user at 100',
    versions: ['10', '11'],
    state: (r) => makeState(r, { powerLevels: withUsers(r, { [CAROL]: 100 }) }),
    event: (r) => powerLevels(r, ALICE, withUsers(r, { [CAROL]: 0 })),
    expect:
      /cannot change the power level of @carol:c\.test \(100\): it is not below your own \(100\)/,
  },
  {
    name: 'a creator can demote a user at 100 and set any level',
    versions: ['12'],
    state: (r) => makeState(r, { powerLevels: withUsers(r, { [CAROL]: 100 }) }),
    event: (r) =>
      powerLevels(r, ALICE, { ...withUsers(r, { [CAROL]: 0, [DAVE]: 9000 }), ban: 9000 }),
    expect: 'allow',
  },
  {
    name: 'a power levels event without users is allowed',
    state: (r) => makeState(r, { powerLevels: null }),
    event: (r) => powerLevels(r, ALICE, { ban: 50 }),
    expect: 'allow',
  },
  {
    name: 'a user below state_default cannot send power levels',
    state: (r) => makeState(r, { members: { [ALICE]: 'join', [CAROL]: 'join' } }),
    event: (r) => powerLevels(r, CAROL, withUsers(r, {})),
    expect: /m\.room\.power_levels state events \(power level 0 < 50\)/,
  },
]);

describe('powerLevelOf and requiredPowerForEvent', () => {
  it('gives the creator 100 and others 0 without power levels (v10: content.creator)', () => {
    const room = makeRoom('10', { createContent: { creator: DAVE } });
    const state = makeState(room, { powerLevels: null });
    assert.equal(powerLevelOf(DAVE, state, '10'), 100);
    assert.equal(powerLevelOf(ALICE, state, '10'), 0);
  });
  it('gives the create sender 100 without power levels (v11)', () => {
    const room = makeRoom('11', { createContent: { creator: DAVE } });
    const state = makeState(room, { powerLevels: null });
    assert.equal(powerLevelOf(ALICE, state, '11'), 100);
    assert.equal(powerLevelOf(DAVE, state, '11'), 0);
  });
  it('gives creators infinite power with or without power levels (v12)', () => {
    const room = makeRoom('12', { createContent: { additional_creators: [CAROL] } });
    for (const powerLevels of [null, { users_default: 5 }]) {
      const state = makeState(room, { powerLevels });
      assert.equal(powerLevelOf(ALICE, state, '12'), Infinity);
      assert.equal(powerLevelOf(CAROL, state, '12'), Infinity);
    }
    assert.deepEqual([...roomCreators(makeState(room), '12')].sort(), [ALICE, CAROL].sort());
  });
  it('uses users, then users_default', () => {
    const room = makeRoom('11');
    const state = makeState(room, { powerLevels: { users: { [BOB]: 42 }, users_default: 7 } });
    assert.equal(powerLevelOf(BOB, state, '11'), 42);
    assert.equal(powerLevelOf(CAROL, state, '11'), 7);
    assert.equal(powerLevelOf(ALICE, state, '11'), 7);
  });
  it('defaults state events to 50 and others to 0', () => {
    const state = makeState(makeRoom('11'), { powerLevels: null });
    assert.equal(requiredPowerForEvent('m.room.topic', true, state), 50);
    assert.equal(requiredPowerForEvent('m.room.message', false, state), 0);
    const set = makeState(makeRoom('11'), {
      powerLevels: { state_default: 20, events_default: 5, events: { 'm.room.topic': 1 } },
    });
    assert.equal(requiredPowerForEvent('m.room.topic', true, set), 1);
    assert.equal(requiredPowerForEvent('m.room.name', true, set), 20);
    assert.equal(requiredPowerForEvent('m.room.message', false, set), 5);
  });
});

describe('canApplyRedaction', () => {
  const room = makeRoom('11');
  const state = makeState(room, { members: { [ALICE]: 'join', [BOB]: 'join', [CAROL]: 'join' } });
  it('applies a redaction from the redact level', () =>
    assert.equal(canApplyRedaction(BOB, CAROL, state, '11'), true));
  it('applies a redaction from the same server', () =>
    assert.equal(canApplyRedaction(DAVE, ALICE, state, '11'), true));
  it('does not apply a redaction from below the redact level on another server', () =>
    assert.equal(canApplyRedaction(CAROL, BOB, state, '11'), false));
});

describe('authEventSelection', () => {
  const create = stateKeyOf('m.room.create', '');
  const power = stateKeyOf('m.room.power_levels', '');
  const joinRules = stateKeyOf('m.room.join_rules', '');
  const memberOf = (userId: string): string => stateKeyOf('m.room.member', userId);

  it('selects nothing for m.room.create', () => {
    assert.deepEqual(authEventSelection('m.room.create', '', ALICE, {}, '11'), []);
  });
  it('selects create, power levels and the sender for a message (v10, v11)', () => {
    for (const version of ['10', '11'] as const) {
      assert.deepEqual(authEventSelection('m.room.message', undefined, BOB, {}, version), [
        create,
        power,
        memberOf(BOB),
      ]);
    }
  });
  it('never selects the create event in v12', () => {
    assert.deepEqual(authEventSelection('m.room.message', undefined, BOB, {}, '12'), [
      power,
      memberOf(BOB),
    ]);
  });
  it('adds the target, join rules and the authorising user for a restricted join', () => {
    const content = { membership: 'join', join_authorised_via_users_server: BOB };
    assert.deepEqual(authEventSelection('m.room.member', CAROL, CAROL, content, '12'), [
      power,
      memberOf(CAROL),
      joinRules,
      memberOf(BOB),
    ]);
  });
  it('adds the third-party invite named by the token', () => {
    const content = {
      membership: 'invite',
      third_party_invite: { signed: { mxid: CAROL, token: 'tok' } },
    };
    assert.deepEqual(authEventSelection('m.room.member', CAROL, BOB, content, '11'), [
      create,
      power,
      memberOf(BOB),
      memberOf(CAROL),
      joinRules,
      stateKeyOf('m.room.third_party_invite', 'tok'),
    ]);
  });
  it('does not add join rules for leave and ban', () => {
    for (const membership of ['leave', 'ban']) {
      assert.deepEqual(authEventSelection('m.room.member', CAROL, BOB, { membership }, '12'), [
        power,
        memberOf(BOB),
        memberOf(CAROL),
      ]);
    }
  });
});

describe('checkAuthEvents', () => {
  const entriesFor = (room: TestRoom): AuthEventEntry[] => {
    const state = makeState(room);
    const keep = [
      stateKeyOf('m.room.create', ''),
      stateKeyOf('m.room.power_levels', ''),
      stateKeyOf('m.room.member', BOB),
    ];
    return keep.flatMap((key) => {
      const event = state.get(key);
      return event === undefined || (room.version === '12' && event.type === 'm.room.create')
        ? []
        : [event];
    });
  };

  for (const version of VERSIONS) {
    const room = makeRoom(version);
    const event = message(room, BOB);
    it(`allows the selected auth events [v${version}]`, () => {
      assert.deepEqual(checkAuthEvents(event, entriesFor(room), version), { allowed: true });
    });
    it(`refuses duplicates [v${version}]`, () => {
      const entries = entriesFor(room);
      const result = checkAuthEvents(event, [...entries, entries[0]!], version);
      assert.match(result.allowed ? '' : result.reason, /twice/);
    });
    it(`refuses entries outside the selection [v${version}]`, () => {
      const joinRules = makeState(room).get(stateKeyOf('m.room.join_rules', ''))!;
      const result = checkAuthEvents(event, [...entriesFor(room), joinRules], version);
      assert.match(
        result.allowed ? '' : result.reason,
        /m\.room\.join_rules .* is not one this event may cite/,
      );
    });
    it(`refuses rejected entries [v${version}]`, () => {
      const [first, ...rest] = entriesFor(room);
      const result = checkAuthEvents(event, [{ ...first!, rejected: true }, ...rest], version);
      assert.match(result.allowed ? '' : result.reason, /was itself rejected/);
    });
    it(`refuses entries from another room [v${version}]`, () => {
      const entries = entriesFor(room).map((entry) =>
        entry.type === 'm.room.power_levels' ? { ...entry, room_id: '!elsewhere:b.test' } : entry,
      );
      const result = checkAuthEvents(event, entries, version);
      assert.match(
        result.allowed ? '' : result.reason,
        /belongs to another room \(!elsewhere:b\.test\)/,
      );
    });
  }
  it('refuses a list without the create event [v10, v11]', () => {
    for (const version of ['10', '11'] as const) {
      const room = makeRoom(version);
      const entries = entriesFor(room).filter((entry) => entry.type !== 'm.room.create');
      const result = checkAuthEvents(message(room, BOB), entries, version);
      assert.match(result.allowed ? '' : result.reason, /do not include the m\.room\.create event/);
    }
  });
  it('refuses a list that includes the create event [v12]', () => {
    const room = makeRoom('12');
    const result = checkAuthEvents(message(room, BOB), [...entriesFor(room), room.create], '12');
    assert.match(
      result.allowed ? '' : result.reason,
      /m\.room\.create .* is not one this event may cite/,
    );
  });
  it('builds an auth state from auth events that authorizes the event', () => {
    const room = makeRoom('11');
    const result = authorizeEvent(message(room, BOB), authStateFrom(entriesFor(room)), '11');
    assert.deepEqual(result, { allowed: true });
  });
});
