/**
 * Every membership transition a room allows and refuses, through HTTP, for room versions
 * 10, 11 and 12 (Dendrite's table-driven membership tests, in spirit). Each row makes a
 * fresh room, runs its setup steps (each must succeed), then one action, and checks the
 * outcome: the membership (or power levels) it leads to, or 403 M_FORBIDDEN with a readable
 * reason and nothing changed.
 * Spec: https://spec.matrix.org/v1.16/rooms/v12/#authorization-rules and
 * https://spec.matrix.org/v1.16/client-server-api/#room-membership
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestResponse, type TestServer } from '../helpers/server.js';
import { registerUser, type TestUser } from '../helpers/client.js';

const C = '/_matrix/client/v3';
const VERSIONS = ['10', '11', '12'] as const;
type Version = (typeof VERSIONS)[number];

const ACTORS = ['alice', 'bob', 'carol', 'erin', 'modA', 'modB'] as const;
/** alice creates every room; bob is in the allowed room of restricted rooms, carol is not. */
type Actor = (typeof ACTORS)[number];

type JoinRule = 'public' | 'invite' | 'knock' | 'restricted' | 'knock_restricted';

interface RoomSetup {
  rule: JoinRule;
  /** `users` levels (v10/v11 rooms also keep alice at 100, as the default content has her). */
  users?: Partial<Record<Actor, number>>;
  /** Other top-level power level fields, e.g. `{ invite: 50 }`. */
  fields?: Record<string, number>;
  /** `events` levels, e.g. `{ 'm.room.power_levels': 50 }`. */
  events?: Record<string, number>;
  additionalCreators?: Actor[];
}

type Step =
  | { as: Actor; do: 'join' | 'knock' | 'leave'; reason?: string }
  | { as: Actor; do: 'invite' | 'kick' | 'ban' | 'unban'; target: Actor; reason?: string }
  /** PUT m.room.power_levels with these `users` entries changed (null removes one). */
  | { as: Actor; do: 'setUsers'; users: Partial<Record<Actor, number | null>> }
  /** PUT m.room.power_levels with these top-level fields changed. */
  | { as: Actor; do: 'setFields'; fields: Record<string, number> };

type Outcome =
  /** Allowed; for membership steps the target (or the actor) ends with `membership`. */
  { status: 200; membership?: string } | { status: 403; error: RegExp };

interface Case {
  name: string;
  room: RoomSetup;
  setup?: Step[];
  act: Step;
  expect: Outcome | ((version: Version) => Outcome);
  /** Only for these room versions. */
  versions?: readonly Version[];
  /** Further checks after an allowed action. */
  check?: (t: CaseContext) => Promise<void>;
}

interface CaseContext {
  version: Version;
  roomId: string;
  member(actor: Actor): Promise<Record<string, unknown> | undefined>;
  powerLevels(): Promise<Record<string, unknown>>;
  id(actor: Actor): string;
}

const allowed = (membership?: string): Outcome =>
  membership === undefined ? { status: 200 } : { status: 200, membership };
const refused = (error: RegExp): Outcome => ({ status: 403, error });

const joinCases: Case[] = [
  {
    name: 'join a public room',
    room: { rule: 'public' },
    act: { as: 'bob', do: 'join' },
    expect: allowed('join'),
  },
  {
    name: 'join an invite-only room without an invite',
    room: { rule: 'invite' },
    act: { as: 'bob', do: 'join' },
    expect: refused(/must be invited to join this room \(join rule "invite"\)/),
  },
  {
    name: 'join an invite-only room after an invite',
    room: { rule: 'invite' },
    setup: [{ as: 'alice', do: 'invite', target: 'bob' }],
    act: { as: 'bob', do: 'join' },
    expect: allowed('join'),
  },
  {
    name: 'knock on a knock room',
    room: { rule: 'knock' },
    act: { as: 'bob', do: 'knock' },
    expect: allowed('knock'),
  },
  {
    name: 'join a knock room without an invite',
    room: { rule: 'knock' },
    act: { as: 'bob', do: 'join' },
    expect: refused(/must be invited to join this room \(join rule "knock"\)/),
  },
  {
    name: 'join a knock room while knocking',
    room: { rule: 'knock' },
    setup: [{ as: 'bob', do: 'knock' }],
    act: { as: 'bob', do: 'join' },
    expect: refused(/must be invited/),
  },
  {
    name: 'join a knock room once the knock is accepted (invited)',
    room: { rule: 'knock' },
    setup: [
      { as: 'bob', do: 'knock' },
      { as: 'alice', do: 'invite', target: 'bob' },
    ],
    act: { as: 'bob', do: 'join' },
    expect: allowed('join'),
  },
  {
    name: 'knock on an invite-only room',
    room: { rule: 'invite' },
    act: { as: 'bob', do: 'knock' },
    expect: refused(/cannot knock on a room whose join rule is "invite"/),
  },
  {
    name: 'knock on a public room',
    room: { rule: 'public' },
    act: { as: 'bob', do: 'knock' },
    expect: refused(/cannot knock on a room whose join rule is "public"/),
  },
  {
    name: 'knock while already in the room',
    room: { rule: 'knock' },
    setup: [
      { as: 'alice', do: 'invite', target: 'bob' },
      { as: 'bob', do: 'join' },
    ],
    act: { as: 'bob', do: 'knock' },
    expect: refused(/already in the room/),
  },
  {
    name: 'join a restricted room as a member of an allowed room',
    room: { rule: 'restricted' },
    act: { as: 'bob', do: 'join' },
    expect: allowed('join'),
    check: async (t) => {
      const content = await t.member('bob');
      assert.equal(content?.join_authorised_via_users_server, t.id('alice'));
    },
  },
  {
    name: 'join a restricted room without membership of an allowed room',
    room: { rule: 'restricted' },
    act: { as: 'carol', do: 'join' },
    expect: refused(/must be invited to join this room, or have your join authorised/),
  },
  {
    name: 'join a restricted room after an invite, without membership of an allowed room',
    room: { rule: 'restricted' },
    setup: [{ as: 'alice', do: 'invite', target: 'carol' }],
    act: { as: 'carol', do: 'join' },
    expect: allowed('join'),
    check: async (t) => {
      const content = await t.member('carol');
      assert.equal(content?.join_authorised_via_users_server, undefined);
    },
  },
  {
    name: 'knock on a restricted room',
    room: { rule: 'restricted' },
    act: { as: 'carol', do: 'knock' },
    expect: refused(/cannot knock on a room whose join rule is "restricted"/),
  },
  {
    name: 'join a knock_restricted room as a member of an allowed room',
    room: { rule: 'knock_restricted' },
    act: { as: 'bob', do: 'join' },
    expect: allowed('join'),
  },
  {
    name: 'join a knock_restricted room without membership of an allowed room',
    room: { rule: 'knock_restricted' },
    act: { as: 'carol', do: 'join' },
    expect: refused(/join rule "knock_restricted"/),
  },
  {
    name: 'knock on a knock_restricted room',
    room: { rule: 'knock_restricted' },
    act: { as: 'carol', do: 'knock' },
    expect: allowed('knock'),
  },
];

const inviteCases: Case[] = [
  {
    name: 'invite by a member without invite power',
    room: { rule: 'public', fields: { invite: 50 } },
    setup: [{ as: 'bob', do: 'join' }],
    act: { as: 'bob', do: 'invite', target: 'carol' },
    expect: refused(/do not have permission to invite users \(power level 0 < 50\)/),
  },
  {
    name: 'invite by a member with invite power',
    room: { rule: 'public', fields: { invite: 50 }, users: { modA: 50 } },
    setup: [{ as: 'modA', do: 'join' }],
    act: { as: 'modA', do: 'invite', target: 'carol', reason: 'come along' },
    expect: allowed('invite'),
  },
  {
    name: 'invite by a non-member',
    room: { rule: 'public' },
    act: { as: 'bob', do: 'invite', target: 'carol' },
    expect: refused(/must be in the room to invite/),
  },
  {
    name: 'invite of a banned user',
    room: { rule: 'public' },
    setup: [{ as: 'alice', do: 'ban', target: 'carol' }],
    act: { as: 'alice', do: 'invite', target: 'carol' },
    expect: refused(/is banned from/),
  },
  {
    name: 'invite of a user already in the room',
    room: { rule: 'public' },
    setup: [{ as: 'bob', do: 'join' }],
    act: { as: 'alice', do: 'invite', target: 'bob' },
    expect: refused(/already in the room/),
  },
];

const leaveCases: Case[] = [
  {
    name: 'leave a room never joined',
    room: { rule: 'public' },
    act: { as: 'bob', do: 'leave' },
    expect: refused(/not in this room/),
  },
  {
    name: 'leave a room already left',
    room: { rule: 'public' },
    setup: [
      { as: 'bob', do: 'join' },
      { as: 'bob', do: 'leave' },
    ],
    act: { as: 'bob', do: 'leave' },
    expect: refused(/not in this room/),
  },
  {
    name: 'leave a joined room, with a reason',
    room: { rule: 'public' },
    setup: [{ as: 'bob', do: 'join' }],
    act: { as: 'bob', do: 'leave', reason: 'off to bed' },
    expect: allowed('leave'),
  },
  {
    name: 'reject an invite',
    room: { rule: 'invite' },
    setup: [{ as: 'alice', do: 'invite', target: 'bob' }],
    act: { as: 'bob', do: 'leave', reason: 'no thanks' },
    expect: allowed('leave'),
  },
  {
    name: 'withdraw a knock',
    room: { rule: 'knock' },
    setup: [{ as: 'bob', do: 'knock' }],
    act: { as: 'bob', do: 'leave' },
    expect: allowed('leave'),
  },
  {
    name: 'leave while banned',
    room: { rule: 'public' },
    setup: [
      { as: 'bob', do: 'join' },
      { as: 'alice', do: 'ban', target: 'bob' },
    ],
    act: { as: 'bob', do: 'leave' },
    expect: refused(/banned/),
  },
];

const kickCases: Case[] = [
  {
    name: 'kick by a user without kick power',
    room: { rule: 'public' },
    setup: [
      { as: 'bob', do: 'join' },
      { as: 'carol', do: 'join' },
    ],
    act: { as: 'bob', do: 'kick', target: 'carol' },
    expect: refused(/do not have permission to kick users \(power level 0 < 50\)/),
  },
  {
    name: 'kick of a moderator at the same level (50 by 50)',
    room: { rule: 'public', users: { modA: 50, modB: 50 } },
    setup: [
      { as: 'modA', do: 'join' },
      { as: 'modB', do: 'join' },
    ],
    act: { as: 'modA', do: 'kick', target: 'modB' },
    expect: refused(/cannot kick @modb\S*: their power level \(50\) is not below yours \(50\)/i),
  },
  {
    name: 'kick of a user above your level',
    room: { rule: 'public', users: { modA: 50 } },
    setup: [{ as: 'modA', do: 'join' }],
    act: { as: 'modA', do: 'kick', target: 'alice' },
    expect: (v) =>
      refused(
        v === '12'
          ? /their power level \(infinite\) is not below yours \(50\)/
          : /their power level \(100\) is not below yours \(50\)/,
      ),
  },
  {
    name: 'kick of a user below your level, with a reason',
    room: { rule: 'public', users: { modA: 50 } },
    setup: [
      { as: 'modA', do: 'join' },
      { as: 'bob', do: 'join' },
    ],
    act: { as: 'modA', do: 'kick', target: 'bob', reason: 'spamming' },
    expect: allowed('leave'),
  },
  {
    name: 'kick refused when the kick level is above yours',
    room: { rule: 'public', users: { modA: 50 }, fields: { kick: 75 } },
    setup: [
      { as: 'modA', do: 'join' },
      { as: 'bob', do: 'join' },
    ],
    act: { as: 'modA', do: 'kick', target: 'bob' },
    expect: refused(/permission to kick users \(power level 50 < 75\)/),
  },
  {
    name: 'kick to refuse a knock',
    room: { rule: 'knock' },
    setup: [{ as: 'bob', do: 'knock' }],
    act: { as: 'alice', do: 'kick', target: 'bob' },
    expect: allowed('leave'),
  },
  {
    name: 'kick withdraws an invite',
    room: { rule: 'invite' },
    setup: [{ as: 'alice', do: 'invite', target: 'bob' }],
    act: { as: 'alice', do: 'kick', target: 'bob' },
    expect: allowed('leave'),
  },
  {
    name: 'kick of a user not in the room',
    room: { rule: 'public' },
    act: { as: 'alice', do: 'kick', target: 'bob' },
    expect: refused(/is not in the room/),
  },
];

const banCases: Case[] = [
  {
    name: 'ban by a user without ban power',
    room: { rule: 'public' },
    setup: [
      { as: 'bob', do: 'join' },
      { as: 'carol', do: 'join' },
    ],
    act: { as: 'bob', do: 'ban', target: 'carol' },
    expect: refused(/do not have permission to ban users \(power level 0 < 50\)/),
  },
  {
    name: 'ban by a moderator with ban power, with a reason',
    room: { rule: 'public', users: { modA: 50 } },
    setup: [
      { as: 'modA', do: 'join' },
      { as: 'bob', do: 'join' },
    ],
    act: { as: 'modA', do: 'ban', target: 'bob', reason: 'abuse' },
    expect: allowed('ban'),
  },
  {
    name: 'ban of a user who never joined',
    room: { rule: 'public' },
    act: { as: 'alice', do: 'ban', target: 'carol' },
    expect: allowed('ban'),
  },
  {
    name: 'ban refused when the ban level is above yours',
    room: { rule: 'public', users: { modA: 50 }, fields: { ban: 75 } },
    setup: [
      { as: 'modA', do: 'join' },
      { as: 'bob', do: 'join' },
    ],
    act: { as: 'modA', do: 'ban', target: 'bob' },
    expect: refused(/permission to ban users \(power level 50 < 75\)/),
  },
  {
    name: 'ban of a moderator at the same level',
    room: { rule: 'public', users: { modA: 50, modB: 50 } },
    setup: [
      { as: 'modA', do: 'join' },
      { as: 'modB', do: 'join' },
    ],
    act: { as: 'modA', do: 'ban', target: 'modB' },
    expect: refused(/cannot ban @modb\S*: their power level \(50\) is not below yours \(50\)/i),
  },
  {
    name: 'unban by a user without ban power',
    room: { rule: 'public' },
    setup: [
      { as: 'bob', do: 'join' },
      { as: 'alice', do: 'ban', target: 'carol' },
    ],
    act: { as: 'bob', do: 'unban', target: 'carol' },
    expect: refused(/do not have permission to unban users \(power level 0 < 50\)/),
  },
  {
    name: 'unban by a moderator with ban power, with a reason',
    room: { rule: 'public', users: { modA: 50 } },
    setup: [
      { as: 'modA', do: 'join' },
      { as: 'alice', do: 'ban', target: 'carol' },
    ],
    act: { as: 'modA', do: 'unban', target: 'carol', reason: 'second chance' },
    expect: allowed('leave'),
  },
  {
    name: 'unban of a user who is not banned',
    room: { rule: 'public' },
    setup: [{ as: 'bob', do: 'join' }],
    act: { as: 'alice', do: 'unban', target: 'bob' },
    expect: refused(/is not banned/),
  },
  {
    name: "banned user's join",
    room: { rule: 'public' },
    setup: [{ as: 'alice', do: 'ban', target: 'bob' }],
    act: { as: 'bob', do: 'join' },
    expect: refused(/banned/),
  },
  {
    name: "banned user's join of an invite-only room",
    room: { rule: 'invite' },
    setup: [{ as: 'alice', do: 'ban', target: 'bob' }],
    act: { as: 'bob', do: 'join' },
    expect: refused(/banned/),
  },
  {
    name: "banned user's knock",
    room: { rule: 'knock' },
    setup: [{ as: 'alice', do: 'ban', target: 'bob' }],
    act: { as: 'bob', do: 'knock' },
    expect: refused(/banned/),
  },
  {
    name: 'unbanned user rejoins a public room',
    room: { rule: 'public' },
    setup: [
      { as: 'bob', do: 'join' },
      { as: 'alice', do: 'ban', target: 'bob' },
      { as: 'alice', do: 'unban', target: 'bob' },
    ],
    act: { as: 'bob', do: 'join', reason: 'I am back' },
    expect: allowed('join'),
  },
];

/** Moderators at 50 may send power levels here; bob sits at 10. */
const modRoom: RoomSetup = {
  rule: 'public',
  users: { modA: 50, modB: 50, bob: 10 },
  events: { 'm.room.power_levels': 50 },
};
const modsJoined: Step[] = [
  { as: 'modA', do: 'join' },
  { as: 'modB', do: 'join' },
  { as: 'bob', do: 'join' },
];

const powerCases: Case[] = [
  {
    name: 'power levels: raise a user above your own level',
    room: modRoom,
    setup: modsJoined,
    act: { as: 'modA', do: 'setUsers', users: { bob: 75 } },
    expect: refused(/cannot give @bob\S* power level 75, above your own \(50\)/),
  },
  {
    name: 'power levels: raise a user to your own level',
    room: modRoom,
    setup: modsJoined,
    act: { as: 'modA', do: 'setUsers', users: { bob: 50 } },
    expect: allowed(),
  },
  {
    name: 'power levels: demote a user at your level',
    room: modRoom,
    setup: modsJoined,
    act: { as: 'modA', do: 'setUsers', users: { modB: 0 } },
    expect: refused(/cannot change the power level of @modb\S* \(50\): it is not below your own/i),
  },
  {
    name: 'power levels: remove a user at your level',
    room: modRoom,
    setup: modsJoined,
    act: { as: 'modA', do: 'setUsers', users: { modB: null } },
    expect: refused(/cannot change the power level of @modb\S* \(50\)/i),
  },
  {
    name: 'power levels: demote a user below your level',
    room: modRoom,
    setup: modsJoined,
    act: { as: 'modA', do: 'setUsers', users: { bob: 0 } },
    expect: allowed(),
  },
  {
    name: 'power levels: demote yourself',
    room: modRoom,
    setup: modsJoined,
    act: { as: 'modA', do: 'setUsers', users: { modA: 20 } },
    expect: allowed(),
  },
  {
    name: 'power levels: raise an action level above your own',
    room: modRoom,
    setup: modsJoined,
    act: { as: 'modA', do: 'setFields', fields: { ban: 75 } },
    expect: refused(/cannot set the "ban" power level to 75, above your own \(50\)/),
  },
  {
    name: 'power levels: sent by a user below the event level',
    room: modRoom,
    setup: modsJoined,
    act: { as: 'bob', do: 'setUsers', users: { bob: 10 } },
    expect: refused(
      /permission to send m\.room\.power_levels state events \(power level 10 < 50\)/,
    ),
  },
];

const creatorCases: Case[] = [
  {
    name: 'the creator kicks a user at 100',
    room: { rule: 'public', users: { carol: 100 } },
    setup: [{ as: 'carol', do: 'join' }],
    act: { as: 'alice', do: 'kick', target: 'carol' },
    // v12 creators outrank everyone; in v10/v11 the creator is at 100 like carol.
    expect: (v) =>
      v === '12'
        ? allowed('leave')
        : refused(/their power level \(100\) is not below yours \(100\)/),
  },
  {
    name: 'a user at 100 kicks the creator',
    room: { rule: 'public', users: { carol: 100 } },
    setup: [{ as: 'carol', do: 'join' }],
    act: { as: 'carol', do: 'kick', target: 'alice' },
    expect: (v) =>
      refused(
        v === '12'
          ? /\(infinite\) is not below yours \(100\)/
          : /\(100\) is not below yours \(100\)/,
      ),
  },
  {
    name: 'a user at 100 kicks an additional creator',
    room: { rule: 'public', users: { carol: 100 }, additionalCreators: ['erin'] },
    setup: [
      { as: 'erin', do: 'join' },
      { as: 'carol', do: 'join' },
    ],
    act: { as: 'carol', do: 'kick', target: 'erin' },
    // additional_creators means nothing before v12: erin is at users_default there.
    expect: (v) =>
      v === '12' ? refused(/\(infinite\) is not below yours \(100\)/) : allowed('leave'),
  },
  {
    name: 'a user at 100 bans an additional creator',
    room: { rule: 'public', users: { carol: 100 }, additionalCreators: ['erin'] },
    setup: [
      { as: 'erin', do: 'join' },
      { as: 'carol', do: 'join' },
    ],
    act: { as: 'carol', do: 'ban', target: 'erin' },
    expect: (v) =>
      v === '12' ? refused(/\(infinite\) is not below yours \(100\)/) : allowed('ban'),
  },
  {
    name: 'an additional creator kicks a user at 100',
    room: { rule: 'public', users: { carol: 100 }, additionalCreators: ['erin'] },
    setup: [
      { as: 'erin', do: 'join' },
      { as: 'carol', do: 'join' },
    ],
    act: { as: 'erin', do: 'kick', target: 'carol' },
    expect: (v) =>
      v === '12' ? allowed('leave') : refused(/permission to kick users \(power level 0 < 50\)/),
  },
  {
    name: 'an additional creator changes power levels',
    room: { rule: 'public', users: { carol: 100 }, additionalCreators: ['erin'] },
    setup: [
      { as: 'erin', do: 'join' },
      { as: 'carol', do: 'join' },
    ],
    act: { as: 'erin', do: 'setUsers', users: { carol: 0 } },
    expect: (v) => (v === '12' ? allowed() : refused(/permission to send m\.room\.power_levels/)),
  },
  {
    name: 'a user at 100 gives the creator a power level',
    versions: ['12'],
    room: { rule: 'public', users: { carol: 100 } },
    setup: [{ as: 'carol', do: 'join' }],
    act: { as: 'carol', do: 'setUsers', users: { alice: 100 } },
    expect: refused(/creator @alice\S* cannot be given a power level/),
  },
  {
    name: 'a user at 100 gives an additional creator a power level',
    versions: ['12'],
    room: { rule: 'public', users: { carol: 100 }, additionalCreators: ['erin'] },
    setup: [
      { as: 'erin', do: 'join' },
      { as: 'carol', do: 'join' },
    ],
    act: { as: 'carol', do: 'setUsers', users: { erin: 50 } },
    expect: refused(/creator @erin\S* cannot be given a power level/),
  },
];

const CASES: Case[] = [
  ...joinCases,
  ...inviteCases,
  ...leaveCases,
  ...kickCases,
  ...banCases,
  ...powerCases,
  ...creatorCases,
];

forEachDatabase('membership rules', (dialect) => {
  let server: TestServer;
  const users = {} as Record<Actor, TestUser>;
  /** A private room alice made, with bob joined: the allowed room of restricted rooms. */
  let space: string;

  const id = (actor: Actor): string => users[actor].userId;
  const room = (roomId: string) => `${C}/rooms/${encodeURIComponent(roomId)}`;
  const post = (actor: Actor, path: string, body: unknown = {}) =>
    server.request<Record<string, unknown>>('POST', `${C}${path}`, {
      token: users[actor].accessToken,
      body,
    });
  const get = (actor: Actor, path: string) =>
    server.request<Record<string, unknown>>('GET', path, { token: users[actor].accessToken });

  before(async () => {
    server = await startTestServer(dialect);
    for (const actor of ACTORS) users[actor] = await registerUser(server, `${actor.toLowerCase()}`);
    const created = await post('alice', '/createRoom', {
      preset: 'private_chat',
      invite: [id('bob')],
    });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    space = created.body.room_id as string;
    assert.equal((await post('bob', `/rooms/${encodeURIComponent(space)}/join`)).status, 200);
  });
  after(async () => server.close());

  async function createRoom(version: Version, setup: RoomSetup): Promise<string> {
    const levels: Record<string, unknown> = { ...setup.fields };
    if (setup.users !== undefined) {
      const entries = Object.entries(setup.users).map(([actor, level]) => [
        id(actor as Actor),
        level,
      ]);
      // The override replaces `users` whole; before v12 the creator's own 100 must stay.
      levels.users = Object.fromEntries(
        version === '12' ? entries : [[id('alice'), 100], ...entries],
      );
    }
    if (setup.events !== undefined) {
      levels.events = {
        'm.room.name': 50,
        'm.room.power_levels': 100,
        'm.room.history_visibility': 100,
        ...setup.events,
      };
    }
    const initialState =
      setup.rule === 'public' || setup.rule === 'invite'
        ? []
        : [
            {
              type: 'm.room.join_rules',
              content:
                setup.rule === 'knock'
                  ? { join_rule: 'knock' }
                  : {
                      join_rule: setup.rule,
                      allow: [{ type: 'm.room_membership', room_id: space }],
                    },
            },
          ];
    const res = await post('alice', '/createRoom', {
      preset: setup.rule === 'public' ? 'public_chat' : 'private_chat',
      room_version: version,
      initial_state: initialState,
      power_level_content_override: levels,
      ...(setup.additionalCreators
        ? { creation_content: { additional_creators: setup.additionalCreators.map(id) } }
        : {}),
    });
    assert.equal(res.status, 200, `createRoom: ${JSON.stringify(res.body)}`);
    return res.body.room_id as string;
  }

  /** The member event content of `actor`, as alice (always joined) sees it. */
  async function memberContent(
    roomId: string,
    actor: Actor,
  ): Promise<Record<string, unknown> | undefined> {
    const res = await get(
      'alice',
      `${room(roomId)}/state/m.room.member/${encodeURIComponent(id(actor))}`,
    );
    if (res.status === 404) return undefined;
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body;
  }

  async function powerLevels(roomId: string): Promise<Record<string, unknown>> {
    const res = await get('alice', `${room(roomId)}/state/m.room.power_levels`);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body;
  }

  /** Whose membership a step changes. */
  const subject = (step: Step): Actor => ('target' in step ? step.target : step.as);

  async function perform(
    roomId: string,
    step: Step,
  ): Promise<TestResponse<Record<string, unknown>>> {
    const reason = 'reason' in step && step.reason !== undefined ? { reason: step.reason } : {};
    const r = encodeURIComponent(roomId);
    switch (step.do) {
      case 'join':
        return post(step.as, `/rooms/${r}/join`, reason);
      case 'knock':
        return post(step.as, `/knock/${r}`, reason);
      case 'leave':
        return post(step.as, `/rooms/${r}/leave`, reason);
      case 'invite':
      case 'kick':
      case 'ban':
      case 'unban':
        return post(step.as, `/rooms/${r}/${step.do}`, { user_id: id(step.target), ...reason });
      case 'setUsers':
      case 'setFields': {
        const content = await powerLevels(roomId);
        if (step.do === 'setUsers') {
          const levels = { ...(content.users as Record<string, number>) };
          for (const [actor, level] of Object.entries(step.users)) {
            if (level === null) delete levels[id(actor as Actor)];
            else levels[id(actor as Actor)] = level;
          }
          content.users = levels;
        } else {
          Object.assign(content, step.fields);
        }
        return server.request('PUT', `${room(roomId)}/state/m.room.power_levels`, {
          token: users[step.as].accessToken,
          body: content,
        });
      }
    }
  }

  for (const version of VERSIONS) {
    describe(`room version ${version}`, () => {
      for (const c of CASES) {
        if (c.versions !== undefined && !c.versions.includes(version)) continue;
        const outcome = typeof c.expect === 'function' ? c.expect(version) : c.expect;
        const verdict = outcome.status === 200 ? 'allowed' : 'refused';
        it(`${c.name}: ${verdict}`, async () => {
          const roomId = await createRoom(version, c.room);
          for (const step of c.setup ?? []) {
            const res = await perform(roomId, step);
            assert.equal(
              res.status,
              200,
              `setup ${JSON.stringify(step)}: ${JSON.stringify(res.body)}`,
            );
          }
          const isLevels = c.act.do === 'setUsers' || c.act.do === 'setFields';
          const who = subject(c.act);
          const before = isLevels ? await powerLevels(roomId) : await memberContent(roomId, who);

          const res = await perform(roomId, c.act);

          if (outcome.status === 403) {
            assert.equal(res.status, 403, JSON.stringify(res.body));
            assert.equal(res.body.errcode, 'M_FORBIDDEN');
            assert.equal(typeof res.body.error, 'string');
            assert.match(res.body.error as string, outcome.error);
            const now = isLevels ? await powerLevels(roomId) : await memberContent(roomId, who);
            assert.deepEqual(now, before, 'a refused action changes nothing');
            return;
          }
          assert.equal(res.status, 200, JSON.stringify(res.body));
          if (isLevels) {
            const now = await powerLevels(roomId);
            assert.notDeepEqual(now, before, 'the power levels changed');
            if (c.act.do === 'setUsers') {
              const levels = now.users as Record<string, number>;
              for (const [actor, level] of Object.entries(c.act.users)) {
                assert.equal(levels[id(actor as Actor)], level ?? undefined);
              }
            }
          } else {
            const content = await memberContent(roomId, who);
            assert.ok(content, `${who} has a member event`);
            if (outcome.membership !== undefined)
              assert.equal(content.membership, outcome.membership);
            if ('reason' in c.act && c.act.reason !== undefined) {
              assert.equal(content.reason, c.act.reason, 'the reason is in the member event');
            } else {
              assert.equal(content.reason, undefined);
            }
          }
          await c.check?.({
            version,
            roomId,
            id,
            member: (actor) => memberContent(roomId, actor),
            powerLevels: () => powerLevels(roomId),
          });
        });
      }

      it('the creator has an entry in power_levels.users before v12 only, and full power', async () => {
        const roomId = await createRoom(version, { rule: 'public' });
        const levels = await powerLevels(roomId);
        const entries = levels.users as Record<string, number>;
        if (version === '12') assert.equal(id('alice') in entries, false);
        else assert.equal(entries[id('alice')], 100);
        // Full power either way: alice may set the power levels (level 100) and raise bob to 100.
        const res = await perform(roomId, { as: 'alice', do: 'setUsers', users: { bob: 100 } });
        assert.equal(res.status, 200, JSON.stringify(res.body));
      });

      it('additional_creators are creators in v12 only (no power level entry needed)', async () => {
        const roomId = await createRoom(version, { rule: 'public', additionalCreators: ['erin'] });
        const levels = await powerLevels(roomId);
        assert.equal(id('erin') in (levels.users as Record<string, number>), false);
        assert.equal((await perform(roomId, { as: 'erin', do: 'join' })).status, 200);
        assert.equal((await perform(roomId, { as: 'bob', do: 'join' })).status, 200);
        const ban = await perform(roomId, { as: 'erin', do: 'ban', target: 'bob' });
        assert.equal(ban.status, version === '12' ? 200 : 403, JSON.stringify(ban.body));
      });

      it('forget after leave, after kick and after ban; not while joined, invited or knocking', async () => {
        const roomId = await createRoom(version, { rule: 'knock' });
        const r = encodeURIComponent(roomId);
        const forgotten = async (actor: Actor) =>
          (await server.running.storage.stores.rooms.selectMembership(roomId, id(actor)))
            ?.forgotten;

        // bob: invited (refused), joined (refused), left (allowed).
        assert.equal(
          (await perform(roomId, { as: 'alice', do: 'invite', target: 'bob' })).status,
          200,
        );
        const whileInvited = await post('bob', `/rooms/${r}/forget`);
        assert.equal(whileInvited.status, 400, JSON.stringify(whileInvited.body));
        assert.equal((await perform(roomId, { as: 'bob', do: 'join' })).status, 200);
        const whileJoined = await post('bob', `/rooms/${r}/forget`);
        assert.equal(whileJoined.status, 400, JSON.stringify(whileJoined.body));
        assert.equal(typeof whileJoined.body.errcode, 'string');
        assert.equal(await forgotten('bob'), false);
        assert.equal((await perform(roomId, { as: 'bob', do: 'leave' })).status, 200);
        assert.equal((await post('bob', `/rooms/${r}/forget`)).status, 200);
        assert.equal(await forgotten('bob'), true);
        // Rejoining (after an invite) clears the flag.
        assert.equal(
          (await perform(roomId, { as: 'alice', do: 'invite', target: 'bob' })).status,
          200,
        );
        assert.equal(await forgotten('bob'), false);

        // carol: knocking (refused), kicked (allowed).
        assert.equal((await perform(roomId, { as: 'carol', do: 'knock' })).status, 200);
        assert.equal((await post('carol', `/rooms/${r}/forget`)).status, 400);
        assert.equal(
          (await perform(roomId, { as: 'alice', do: 'kick', target: 'carol' })).status,
          200,
        );
        assert.equal((await post('carol', `/rooms/${r}/forget`)).status, 200);
        assert.equal(await forgotten('carol'), true);

        // erin: banned (allowed); the ban stays.
        assert.equal(
          (await perform(roomId, { as: 'alice', do: 'ban', target: 'erin' })).status,
          200,
        );
        assert.equal((await post('erin', `/rooms/${r}/forget`)).status, 200);
        assert.equal(await forgotten('erin'), true);
        assert.equal((await memberContent(roomId, 'erin'))?.membership, 'ban');
      });

      it('reason is stored in the member event of every transition that takes one', async () => {
        const roomId = await createRoom(version, { rule: 'knock' });
        const steps: Step[] = [
          { as: 'bob', do: 'knock', reason: 'knock: let me in' },
          { as: 'alice', do: 'invite', target: 'bob', reason: 'invite: welcome' },
          { as: 'bob', do: 'join', reason: 'join: hello' },
          { as: 'alice', do: 'kick', target: 'bob', reason: 'kick: calm down' },
          { as: 'alice', do: 'ban', target: 'bob', reason: 'ban: enough' },
          { as: 'alice', do: 'unban', target: 'bob', reason: 'unban: try again' },
          { as: 'alice', do: 'invite', target: 'bob' },
          { as: 'bob', do: 'leave', reason: 'leave: no thanks' },
        ];
        for (const step of steps) {
          const res = await perform(roomId, step);
          assert.equal(res.status, 200, `${JSON.stringify(step)}: ${JSON.stringify(res.body)}`);
          const content = await memberContent(roomId, 'bob');
          assert.equal(content?.reason, 'reason' in step ? step.reason : undefined, step.do);
        }
      });

      // The spec's 400 M_INVALID_ROOM_STATE when the request's own parameters give an invalid state.
      it('createRoom whose power_level_content_override refuses its own state: 400 M_INVALID_ROOM_STATE', async () => {
        // v10/v11: the creator set to 0 cannot then set the name (50). v12: a creator may not
        // be listed in `users` at all.
        const override =
          version === '12' ? { users: { [id('alice')]: 100 } } : { users: { [id('alice')]: 0 } };
        const res = await post('alice', '/createRoom', {
          room_version: version,
          name: 'Unnamable',
          power_level_content_override: override,
        });
        assert.notEqual(res.status, 200, 'the room is refused');
        assert.equal(res.status, 400, JSON.stringify(res.body));
        assert.equal(res.body.errcode, 'M_INVALID_ROOM_STATE');
      });

      if (version === '12') {
        // trusted_private_chat in v12: invitees are appended to additional_creators.
        it('trusted_private_chat: the invitees become additional creators', async () => {
          const res = await post('alice', '/createRoom', {
            room_version: version,
            preset: 'trusted_private_chat',
            invite: [id('bob')],
          });
          assert.equal(res.status, 200, JSON.stringify(res.body));
          const roomId = res.body.room_id as string;
          const create = await get('alice', `${room(roomId)}/state/m.room.create`);
          assert.equal(create.status, 200);
          assert.deepEqual(create.body.additional_creators, [id('bob')]);
          const levels = await powerLevels(roomId);
          assert.equal(id('bob') in (levels.users as Record<string, number>), false);
        });
      }
    });
  }
});
