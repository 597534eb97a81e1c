/**
 * Member lists: GET /rooms/{roomId}/members (membership / not_membership as the spec text
 * combines them, MSC2895 option 1's repeated values, `at`, MSC2895 option 2's `filter`),
 * GET /rooms/{roomId}/joined_members, and MSC2895 option 3 (`filter.membership` on
 * /rooms/{roomId}/state and /rooms/{roomId}/context/{eventId}). Black-box: everything goes
 * through HTTP, and expectations come from the actions the test performed.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { expectError } from '../helpers/assertions.js';
import { assertMatchesSpec } from '../helpers/spec-contract.js';

const C = '/_matrix/client/v3';
const MEMBERSHIPS = ['join', 'invite', 'knock', 'leave', 'ban'] as const;
type Membership = (typeof MEMBERSHIPS)[number];

interface ClientEvent {
  event_id: string;
  type: string;
  sender: string;
  state_key?: string;
  room_id: string;
  origin_server_ts: number;
  content: Record<string, unknown>;
}
interface MembersBody {
  chunk: ClientEvent[];
}
interface JoinedMembersBody {
  joined: Record<string, { display_name?: string; avatar_url?: string }>;
}

/** The answer the spec text gives: membership IS one of `membership` OR IS NOT one of `not_membership`. */
function specSelects(value: Membership, membership: Membership[], notMembership: Membership[]) {
  if (membership.length === 0 && notMembership.length === 0) return true;
  if (membership.includes(value)) return true;
  return notMembership.length > 0 && !notMembership.includes(value);
}

/** userId → membership, from a /members chunk; also checks each user appears once. */
function membershipMap(chunk: ClientEvent[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const event of chunk) {
    assert.equal(event.type, 'm.room.member', JSON.stringify(event));
    assert.equal(typeof event.state_key, 'string');
    const userId = event.state_key as string;
    assert.ok(!(userId in out), `${userId} appears twice in ${JSON.stringify(chunk)}`);
    out[userId] = String(event.content.membership);
  }
  return sorted(out);
}

function sorted<T>(record: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : 1)));
}

function select(
  view: Record<string, string>,
  membership: Membership[],
  notMembership: Membership[],
): Record<string, string> {
  return sorted(
    Object.fromEntries(
      Object.entries(view).filter(([, m]) =>
        specSelects(m as Membership, membership, notMembership),
      ),
    ),
  );
}

forEachDatabase('member lists: /members, /joined_members, MSC2895', (dialect) => {
  let server: TestServer;
  let alice: TestUser; // creates the rooms
  let bob: TestUser;
  let carol: TestUser;
  let dave: TestUser;
  let eve: TestUser;
  let frank: TestUser;
  let outsider: TestUser;

  before(async () => {
    server = await startTestServer(dialect);
    alice = await registerUser(server);
    bob = await registerUser(server);
    carol = await registerUser(server);
    dave = await registerUser(server);
    eve = await registerUser(server);
    frank = await registerUser(server);
    outsider = await registerUser(server);
  });
  after(async () => server.close());

  const r = (roomId: string) => encodeURIComponent(roomId);
  const ok = <T>(res: { status: number; body: T }, what: string): T => {
    assert.equal(res.status, 200, `${what}: ${JSON.stringify(res.body)}`);
    return res.body;
  };
  const createRoom = async (body: Record<string, unknown>, user: TestUser = alice) =>
    ok(
      await server.request<{ room_id: string }>('POST', `${C}/createRoom`, {
        token: user.accessToken,
        body,
      }),
      'createRoom',
    ).room_id;
  const post = async (user: TestUser, path: string, body: unknown = {}) =>
    ok(await server.request('POST', `${C}${path}`, { token: user.accessToken, body }), path);
  const invite = (by: TestUser, roomId: string, who: TestUser) =>
    post(by, `/rooms/${r(roomId)}/invite`, { user_id: who.userId });
  const join = (who: TestUser, roomId: string) => post(who, `/join/${r(roomId)}`);
  const leave = (who: TestUser, roomId: string) => post(who, `/rooms/${r(roomId)}/leave`);
  const kick = (by: TestUser, roomId: string, who: TestUser) =>
    post(by, `/rooms/${r(roomId)}/kick`, { user_id: who.userId });
  const ban = (by: TestUser, roomId: string, who: TestUser) =>
    post(by, `/rooms/${r(roomId)}/ban`, { user_id: who.userId });
  const knock = (who: TestUser, roomId: string) => post(who, `/knock/${r(roomId)}`);
  const makeKnockable = async (roomId: string) =>
    ok(
      await server.request('PUT', `${C}/rooms/${r(roomId)}/state/m.room.join_rules/`, {
        token: alice.accessToken,
        body: { join_rule: 'knock' },
      }),
      'join_rules knock',
    );
  const send = async (user: TestUser, roomId: string, text: string) =>
    ok(
      await server.request<{ event_id: string }>(
        'PUT',
        `${C}/rooms/${r(roomId)}/send/m.room.message/${encodeURIComponent(text)}`,
        { token: user.accessToken, body: { msgtype: 'm.text', body: text } },
      ),
      'send',
    ).event_id;
  /** The current stream token, as /messages hands it out (`start` of a backward page from now). */
  const tokenNow = async (user: TestUser, roomId: string) => {
    const body = ok(
      await server.request<{ start: string }>(
        'GET',
        `${C}/rooms/${r(roomId)}/messages?dir=b&limit=1`,
        { token: user.accessToken },
      ),
      'messages',
    );
    assert.match(body.start, /^s\d+$/);
    return body.start;
  };
  /** GET /members with the query given as [name, value] pairs, in order. */
  const members = (user: TestUser | null, roomId: string, query: [string, string][] = []) => {
    const qs = new URLSearchParams(query).toString();
    return server.request<MembersBody>(
      'GET',
      `${C}/rooms/${r(roomId)}/members${qs ? `?${qs}` : ''}`,
      user ? { token: user.accessToken } : {},
    );
  };
  const memberView = async (user: TestUser, roomId: string, query: [string, string][] = []) => {
    const res = await members(user, roomId, query);
    assert.equal(
      res.status,
      200,
      `GET /members?${new URLSearchParams(query)}: ${JSON.stringify(res.body)}`,
    );
    assertMatchesSpec('rooms.yaml', 'get', '/rooms/{roomId}/members', 200, res.body);
    return membershipMap(res.body.chunk);
  };
  const joinedMembers = (user: TestUser | null, roomId: string) =>
    server.request<JoinedMembersBody>(
      'GET',
      `${C}/rooms/${r(roomId)}/joined_members`,
      user ? { token: user.accessToken } : {},
    );
  const filterParam = (filter: unknown): [string, string] => ['filter', JSON.stringify(filter)];

  /**
   * A knockable room where every membership is present at once:
   * alice join (creator), bob join, carol invite, dave knock, eve leave, frank ban.
   */
  const mixedRoom = async (roomVersion?: string) => {
    const roomId = await createRoom({
      preset: 'private_chat',
      ...(roomVersion !== undefined ? { room_version: roomVersion } : {}),
    });
    await makeKnockable(roomId);
    await invite(alice, roomId, bob);
    await join(bob, roomId);
    await invite(alice, roomId, carol);
    await knock(dave, roomId);
    await invite(alice, roomId, eve);
    await join(eve, roomId);
    await leave(eve, roomId);
    await ban(alice, roomId, frank);
    const expected = sorted({
      [alice.userId]: 'join',
      [bob.userId]: 'join',
      [carol.userId]: 'invite',
      [dave.userId]: 'knock',
      [eve.userId]: 'leave',
      [frank.userId]: 'ban',
    });
    return { roomId, expected };
  };

  describe('GET /rooms/{roomId}/members', () => {
    let roomId: string;
    let expected: Record<string, string>;
    before(async () => {
      ({ roomId, expected } = await mixedRoom());
    });

    it('unfiltered: one current m.room.member event per user, every membership, client format', async () => {
      const res = await members(alice, roomId);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assertMatchesSpec('rooms.yaml', 'get', '/rooms/{roomId}/members', 200, res.body);
      assert.deepEqual(membershipMap(res.body.chunk), expected);
      for (const event of res.body.chunk) {
        assert.equal(event.room_id, roomId);
        assert.match(event.event_id, /^\$/);
        assert.equal(typeof event.origin_server_ts, 'number');
      }
      // The events are the current state events: the same as /state/m.room.member/{userId}.
      for (const event of res.body.chunk) {
        const state = await server.request<Record<string, unknown>>(
          'GET',
          `${C}/rooms/${r(roomId)}/state/m.room.member/${encodeURIComponent(event.state_key as string)}`,
          { token: alice.accessToken },
        );
        assert.equal(state.status, 200);
        assert.deepEqual(state.body, event.content);
      }
      // Senders as performed: invites and bans by alice, joins/knocks/leaves by the user.
      const senders = Object.fromEntries(res.body.chunk.map((e) => [e.state_key, e.sender]));
      assert.deepEqual(
        sorted(senders),
        sorted({
          [alice.userId]: alice.userId,
          [bob.userId]: bob.userId,
          [carol.userId]: alice.userId,
          [dave.userId]: dave.userId,
          [eve.userId]: eve.userId,
          [frank.userId]: alice.userId,
        }),
      );
    });

    it('membership=X returns exactly the members with membership X, for each of the five', async () => {
      for (const m of MEMBERSHIPS) {
        assert.deepEqual(
          await memberView(alice, roomId, [['membership', m]]),
          select(expected, [m], []),
          `membership=${m}`,
        );
      }
    });

    it('not_membership=X returns every member except those with membership X', async () => {
      for (const m of MEMBERSHIPS) {
        assert.deepEqual(
          await memberView(alice, roomId, [['not_membership', m]]),
          select(expected, [], [m]),
          `not_membership=${m}`,
        );
      }
    });

    it('repeated values (MSC2895 option 1): membership=join&membership=invite means either', async () => {
      assert.deepEqual(
        await memberView(alice, roomId, [
          ['membership', 'join'],
          ['membership', 'invite'],
        ]),
        sorted({ [alice.userId]: 'join', [bob.userId]: 'join', [carol.userId]: 'invite' }),
      );
      assert.deepEqual(
        await memberView(alice, roomId, [
          ['membership', 'knock'],
          ['membership', 'ban'],
          ['membership', 'leave'],
        ]),
        sorted({ [dave.userId]: 'knock', [eve.userId]: 'leave', [frank.userId]: 'ban' }),
      );
      // Repeated not_membership excludes all of them.
      assert.deepEqual(
        await memberView(alice, roomId, [
          ['not_membership', 'join'],
          ['not_membership', 'leave'],
        ]),
        sorted({ [carol.userId]: 'invite', [dave.userId]: 'knock', [frank.userId]: 'ban' }),
      );
      // The same value twice is the same as once.
      assert.deepEqual(
        await memberView(alice, roomId, [
          ['membership', 'ban'],
          ['membership', 'ban'],
        ]),
        sorted({ [frank.userId]: 'ban' }),
      );
    });

    it('membership and not_membership together are an "or", as the spec text says', async () => {
      // The spec's own example shape: membership=join&not_membership=leave → join, invite, knock, ban.
      assert.deepEqual(
        await memberView(alice, roomId, [
          ['membership', 'join'],
          ['not_membership', 'leave'],
        ]),
        sorted({
          [alice.userId]: 'join',
          [bob.userId]: 'join',
          [carol.userId]: 'invite',
          [dave.userId]: 'knock',
          [frank.userId]: 'ban',
        }),
      );
      // ban OR not join → invite, knock, leave, ban (an "and" would give only ban).
      assert.deepEqual(
        await memberView(alice, roomId, [
          ['membership', 'ban'],
          ['not_membership', 'join'],
        ]),
        sorted({
          [carol.userId]: 'invite',
          [dave.userId]: 'knock',
          [eve.userId]: 'leave',
          [frank.userId]: 'ban',
        }),
      );
      // leave OR not leave → everyone (an "and" would give nobody).
      assert.deepEqual(
        await memberView(alice, roomId, [
          ['membership', 'leave'],
          ['not_membership', 'leave'],
        ]),
        expected,
      );
      // Every single-value pair against the rule.
      for (const m of MEMBERSHIPS) {
        for (const n of MEMBERSHIPS) {
          assert.deepEqual(
            await memberView(alice, roomId, [
              ['not_membership', n],
              ['membership', m],
            ]),
            select(expected, [m], [n]),
            `membership=${m}&not_membership=${n}`,
          );
        }
      }
      // Repeated on both sides: (join|knock) OR not (join|invite|knock) → join, knock, leave, ban.
      assert.deepEqual(
        await memberView(alice, roomId, [
          ['membership', 'join'],
          ['membership', 'knock'],
          ['not_membership', 'join'],
          ['not_membership', 'invite'],
          ['not_membership', 'knock'],
        ]),
        sorted({
          [alice.userId]: 'join',
          [bob.userId]: 'join',
          [dave.userId]: 'knock',
          [eve.userId]: 'leave',
          [frank.userId]: 'ban',
        }),
      );
    });

    it('an unknown membership value is 400 M_INVALID_PARAM', async () => {
      for (const query of [
        [['membership', 'joined']],
        [['membership', 'JOIN']],
        [['not_membership', 'banned']],
        [['membership', '']],
        [
          ['membership', 'join'],
          ['membership', 'nope'],
        ],
        [
          ['membership', 'join'],
          ['not_membership', 'x'],
        ],
      ] as [string, string][][]) {
        const res = await members(alice, roomId, query);
        expectError(res, 400, 'M_INVALID_PARAM');
        assert.ok(!('chunk' in (res.body as object)), `?${new URLSearchParams(query)}`);
      }
    });

    it('filter (MSC2895 option 2): membership, limit, senders, not_senders; other fields ignored', async () => {
      assert.deepEqual(
        await memberView(alice, roomId, [filterParam({ membership: ['join', 'invite'] })]),
        select(expected, ['join', 'invite'], []),
      );
      for (const m of MEMBERSHIPS) {
        assert.deepEqual(
          await memberView(alice, roomId, [filterParam({ membership: [m] })]),
          select(expected, [m], []),
          `filter.membership=[${m}]`,
        );
      }
      assert.deepEqual(
        await memberView(alice, roomId, [filterParam({ membership: [] })]),
        {},
        'an empty membership list matches nothing',
      );
      assert.deepEqual(await memberView(alice, roomId, [filterParam({})]), expected);
      // senders/not_senders look at the member event's sender.
      assert.deepEqual(
        await memberView(alice, roomId, [filterParam({ senders: [alice.userId] })]),
        sorted({ [alice.userId]: 'join', [carol.userId]: 'invite', [frank.userId]: 'ban' }),
      );
      assert.deepEqual(
        await memberView(alice, roomId, [filterParam({ not_senders: [alice.userId] })]),
        sorted({ [bob.userId]: 'join', [dave.userId]: 'knock', [eve.userId]: 'leave' }),
      );
      assert.deepEqual(
        await memberView(alice, roomId, [
          filterParam({ senders: [alice.userId, dave.userId], membership: ['invite', 'knock'] }),
        ]),
        sorted({ [carol.userId]: 'invite', [dave.userId]: 'knock' }),
      );
      // limit: at most that many, all of them real members.
      for (const limit of [1, 2, 5]) {
        const view = await memberView(alice, roomId, [filterParam({ limit })]);
        assert.equal(Object.keys(view).length, limit, `limit ${limit}`);
        for (const [user, m] of Object.entries(view)) assert.equal(expected[user], m);
      }
      const large = await memberView(alice, roomId, [filterParam({ limit: 1000 })]);
      assert.deepEqual(large, expected);
      const limitedJoins = await memberView(alice, roomId, [
        filterParam({ membership: ['join', 'ban'], limit: 2 }),
      ]);
      assert.equal(Object.keys(limitedJoins).length, 2);
      for (const m of Object.values(limitedJoins)) assert.ok(m === 'join' || m === 'ban');
      // Fields of a RoomEventFilter other than those are ignored.
      assert.deepEqual(
        await memberView(alice, roomId, [
          filterParam({
            types: ['m.room.message'],
            not_types: ['m.room.member'],
            rooms: ['!elsewhere:test.local'],
            contains_url: true,
            lazy_load_members: true,
            membership: ['join'],
          }),
        ]),
        select(expected, ['join'], []),
      );
    });

    it('filter and the query parameters both apply (and)', async () => {
      assert.deepEqual(
        await memberView(alice, roomId, [
          ['membership', 'join'],
          filterParam({ membership: ['join', 'invite'] }),
        ]),
        select(expected, ['join'], []),
      );
      assert.deepEqual(
        await memberView(alice, roomId, [
          ['not_membership', 'join'],
          filterParam({ membership: ['join', 'invite'] }),
        ]),
        select(expected, ['invite'], []),
      );
      assert.deepEqual(
        await memberView(alice, roomId, [
          ['membership', 'ban'],
          filterParam({ membership: ['join'] }),
        ]),
        {},
      );
      assert.deepEqual(
        await memberView(alice, roomId, [
          ['membership', 'invite'],
          ['membership', 'leave'],
          filterParam({ senders: [alice.userId] }),
        ]),
        sorted({ [carol.userId]: 'invite' }),
      );
    });

    it('a bad filter is 400 M_INVALID_PARAM', async () => {
      for (const raw of [
        'notjson',
        '{"membership":',
        '[]',
        '"join"',
        '{"membership":"join"}',
        '{"membership":["joined"]}',
        '{"membership":[1]}',
        '{"membership":null}',
        '{"limit":0}',
        '{"limit":-1}',
        '{"limit":1.5}',
        '{"limit":"2"}',
        '{"senders":"@a:test.local"}',
        '{"senders":[1]}',
        '{"not_senders":{}}',
      ]) {
        const res = await members(alice, roomId, [['filter', raw]]);
        expectError(res, 400, 'M_INVALID_PARAM');
      }
    });

    it('request errors: invalid room ID 400, unknown room 403, never-member 403, no token 401', async () => {
      expectError(await members(alice, 'not-a-room-id'), 400, 'M_INVALID_PARAM');
      expectError(await members(alice, '!nosuchroom:test.local'), 403, 'M_FORBIDDEN');
      const outside = await members(outsider, roomId);
      expectError(outside, 403, 'M_FORBIDDEN');
      // An unknown room and a room one was never in look the same.
      const unknown = await members(outsider, '!nosuchroom:test.local');
      expectError(unknown, 403, 'M_FORBIDDEN');
      assert.deepEqual(unknown.body, outside.body, 'the same answer: existence is not revealed');
      const unknownV12 = await members(outsider, '!NoSuchRoomAtAllInThisServer00000000000000001');
      assert.deepEqual(unknownV12.body, outside.body);
      expectError(await members(null, roomId), 401, 'M_MISSING_TOKEN');
      // A pending invitation (never joined) gives no access to the member list.
      expectError(await members(carol, roomId), 403, 'M_FORBIDDEN');
      // A knock (never joined) neither, nor a ban without ever joining.
      expectError(await members(dave, roomId), 403, 'M_FORBIDDEN');
      expectError(await members(frank, roomId), 403, 'M_FORBIDDEN');
      // Parameters are checked as well as access, whichever comes first: never a 200.
      assert.notEqual((await members(outsider, roomId, [['membership', 'nope']])).status, 200);
    });

    it('answers JSON with a JSON content type', async () => {
      const res = await members(alice, roomId);
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
      const joined = await joinedMembers(alice, roomId);
      assert.match(joined.headers.get('content-type') ?? '', /^application\/json/);
    });
  });

  describe('older room versions (room IDs with a server name)', () => {
    for (const version of ['10', '11']) {
      it(`room version ${version}: /members filters, \`at\`, /joined_members`, async () => {
        const { roomId, expected } = await mixedRoom(version);
        assert.match(roomId, /^![A-Za-z0-9]+:test\.local$/);
        assert.deepEqual(await memberView(alice, roomId), expected);
        const t0 = await tokenNow(alice, roomId);
        await join(carol, roomId);
        for (const m of MEMBERSHIPS) {
          assert.deepEqual(
            await memberView(alice, roomId, [
              ['at', t0],
              ['membership', m],
              ['not_membership', 'join'],
            ]),
            select(expected, [m], ['join']),
          );
        }
        const joined = ok(await joinedMembers(alice, roomId), 'joined_members');
        assertMatchesSpec('rooms.yaml', 'get', '/rooms/{roomId}/joined_members', 200, joined);
        assert.deepEqual(
          Object.keys(joined.joined).sort(),
          [alice.userId, bob.userId, carol.userId].sort(),
        );
        expectError(await members(outsider, roomId), 403, 'M_FORBIDDEN');
      });
    }
  });

  describe('`at`: the member list as of a /messages token', () => {
    it('a token taken before changes yields the old view; the present is unaffected', async () => {
      const { roomId, expected: before } = await mixedRoom();
      const t0 = await tokenNow(alice, roomId);
      // Change every kind of membership after t0.
      await join(carol, roomId); // invite → join
      await leave(bob, roomId); // join → leave
      await kick(alice, roomId, dave); // knock → leave (refused knock)
      await post(alice, `/rooms/${r(roomId)}/unban`, { user_id: frank.userId }); // ban → leave
      await invite(alice, roomId, outsider); // (new) → invite
      await ban(alice, roomId, eve); // leave → ban
      const after = sorted({
        [alice.userId]: 'join',
        [bob.userId]: 'leave',
        [carol.userId]: 'join',
        [dave.userId]: 'leave',
        [eve.userId]: 'ban',
        [frank.userId]: 'leave',
        [outsider.userId]: 'invite',
      });
      assert.deepEqual(await memberView(alice, roomId), after);
      assert.deepEqual(await memberView(alice, roomId, [['at', t0]]), before);
      const t1 = await tokenNow(alice, roomId);
      assert.deepEqual(await memberView(alice, roomId, [['at', t1]]), after);

      // `at` combines with membership/not_membership and with filter.
      for (const m of MEMBERSHIPS) {
        assert.deepEqual(
          await memberView(alice, roomId, [
            ['at', t0],
            ['membership', m],
          ]),
          select(before, [m], []),
          `at t0, membership=${m}`,
        );
        assert.deepEqual(
          await memberView(alice, roomId, [
            ['not_membership', m],
            ['at', t0],
          ]),
          select(before, [], [m]),
          `at t0, not_membership=${m}`,
        );
      }
      assert.deepEqual(
        await memberView(alice, roomId, [
          ['at', t0],
          ['membership', 'join'],
          ['not_membership', 'leave'],
        ]),
        select(before, ['join'], ['leave']),
      );
      assert.deepEqual(
        await memberView(alice, roomId, [
          ['at', t0],
          filterParam({ membership: ['invite', 'knock'] }),
        ]),
        sorted({ [carol.userId]: 'invite', [dave.userId]: 'knock' }),
      );
      // `at` combines with the filter's senders (the sender of the event current at t0).
      assert.deepEqual(
        await memberView(alice, roomId, [['at', t0], filterParam({ senders: [alice.userId] })]),
        sorted({ [alice.userId]: 'join', [carol.userId]: 'invite', [frank.userId]: 'ban' }),
      );
      assert.deepEqual(
        await memberView(alice, roomId, [filterParam({ senders: [alice.userId] })]),
        sorted({
          [alice.userId]: 'join',
          [dave.userId]: 'leave',
          [eve.userId]: 'ban',
          [frank.userId]: 'leave',
          [outsider.userId]: 'invite',
        }),
      );
      // The events returned at t0 are the ones that were current then (same event IDs).
      const t0Events = (await members(alice, roomId, [['at', t0]])).body.chunk;
      const carolAtT0 = t0Events.find((e) => e.state_key === carol.userId);
      assert.equal(carolAtT0?.content.membership, 'invite');
      assert.equal(carolAtT0?.sender, alice.userId);
    });

    it('tokens from /messages paging (start and end) both work as `at`', async () => {
      const roomId = await createRoom({ preset: 'public_chat' });
      await join(bob, roomId);
      await send(alice, roomId, 'after bob');
      const afterBob = await tokenNow(alice, roomId);
      await join(carol, roomId);
      await send(alice, roomId, 'after carol');
      await leave(bob, roomId);
      await send(alice, roomId, 'after bob left');
      // Two messages backwards: `start` is now, `end` points just before 'after carol'
      // (carol joined, bob not yet left).
      const page = ok(
        await server.request<{ start: string; end: string }>(
          'GET',
          `${C}/rooms/${r(roomId)}/messages?dir=b&limit=2&filter=${encodeURIComponent(
            JSON.stringify({ types: ['m.room.message'] }),
          )}`,
          { token: alice.accessToken },
        ),
        'messages',
      );
      assert.deepEqual(
        await memberView(alice, roomId, [['at', page.start]]),
        sorted({ [alice.userId]: 'join', [bob.userId]: 'leave', [carol.userId]: 'join' }),
      );
      assert.deepEqual(
        await memberView(alice, roomId, [['at', page.end]]),
        sorted({ [alice.userId]: 'join', [bob.userId]: 'join', [carol.userId]: 'join' }),
      );
      assert.deepEqual(
        await memberView(alice, roomId, [['at', afterBob]]),
        sorted({ [alice.userId]: 'join', [bob.userId]: 'join' }),
      );
    });

    it('`at` returns the member events as they were then (profile changes included)', async () => {
      const user = await registerUser(server);
      const roomId = await createRoom({ preset: 'public_chat' });
      await join(user, roomId);
      const before = (await members(alice, roomId)).body.chunk.find(
        (e) => e.state_key === user.userId,
      );
      assert.ok(before);
      const t0 = await tokenNow(alice, roomId);
      ok(
        await server.request('PUT', `${C}/profile/${encodeURIComponent(user.userId)}/displayname`, {
          token: user.accessToken,
          body: { displayname: 'Renamed' },
        }),
        'displayname',
      );
      const now = (await members(alice, roomId)).body.chunk.find(
        (e) => e.state_key === user.userId,
      );
      assert.equal(now?.content.displayname, 'Renamed');
      assert.notEqual(now?.event_id, before.event_id);
      const then = (await members(alice, roomId, [['at', t0]])).body.chunk.find(
        (e) => e.state_key === user.userId,
      );
      assert.equal(then?.event_id, before.event_id);
      assert.deepEqual(then?.content, before.content);
      // joined_members follows the current member event.
      const joined = ok(await joinedMembers(alice, roomId), 'joined_members');
      assert.equal(joined.joined[user.userId]?.display_name, 'Renamed');
    });

    it('a token from before the room existed: nobody was a member yet', async () => {
      const other = await createRoom({ preset: 'public_chat' });
      const early = await tokenNow(alice, other);
      const roomId = await createRoom({ preset: 'public_chat' });
      await join(bob, roomId);
      assert.deepEqual(await memberView(alice, roomId, [['at', early]]), {});
      assert.deepEqual(await memberView(bob, roomId, [['at', early]]), {});
    });

    it('a malformed `at` is 400 M_INVALID_PARAM, never a fall-back to the present', async () => {
      const roomId = await createRoom({ preset: 'public_chat' });
      for (const at of ['xyz', 's-1', 's1.5', 's', '1', 's1x', 'S1', 't1']) {
        expectError(await members(alice, roomId, [['at', at]]), 400, 'M_INVALID_PARAM');
      }
    });
  });

  describe('a member who left sees the list as of leaving', () => {
    const scenario = async (
      departure: (roomId: string, who: TestUser) => Promise<unknown>,
      finalMembership: string,
    ) => {
      const roomId = await createRoom({ preset: 'public_chat' });
      await join(bob, roomId);
      await join(carol, roomId);
      await invite(alice, roomId, dave);
      const beforeCarolLeft = await tokenNow(alice, roomId);
      await leave(bob, roomId);
      const atDeparture = sorted({
        [alice.userId]: 'join',
        [bob.userId]: 'leave',
        [carol.userId]: finalMembership,
        [dave.userId]: 'invite',
      });
      await departure(roomId, carol);
      // Later changes carol must not see.
      await join(dave, roomId);
      await join(eve, roomId);
      await kick(alice, roomId, eve);
      await invite(alice, roomId, frank);
      const now = await tokenNow(alice, roomId);
      assert.deepEqual(
        await memberView(alice, roomId),
        sorted({
          [alice.userId]: 'join',
          [bob.userId]: 'leave',
          [carol.userId]: finalMembership,
          [dave.userId]: 'join',
          [eve.userId]: 'leave',
          [frank.userId]: 'invite',
        }),
      );
      assert.deepEqual(await memberView(carol, roomId), atDeparture);
      assert.deepEqual(
        await memberView(carol, roomId, [['at', now]]),
        atDeparture,
        'a later `at` does not reveal what happened after leaving',
      );
      assert.deepEqual(
        await memberView(carol, roomId, [['membership', 'join']]),
        select(atDeparture, ['join'], []),
      );
      assert.deepEqual(
        await memberView(carol, roomId, [['not_membership', 'invite']]),
        select(atDeparture, [], ['invite']),
      );
      assert.deepEqual(
        await memberView(carol, roomId, [filterParam({ membership: ['invite', 'join'] })]),
        select(atDeparture, ['invite', 'join'], []),
      );
      // An earlier `at` (while still a member) shows that earlier point.
      assert.deepEqual(
        await memberView(carol, roomId, [['at', beforeCarolLeft]]),
        sorted({
          [alice.userId]: 'join',
          [bob.userId]: 'join',
          [carol.userId]: 'join',
          [dave.userId]: 'invite',
        }),
      );
      // /joined_members is for current members only.
      expectError(await joinedMembers(carol, roomId), 403, 'M_FORBIDDEN');
      return roomId;
    };

    it('after leaving', async () => {
      await scenario((roomId, who) => leave(who, roomId), 'leave');
    });
    it('after being kicked', async () => {
      await scenario((roomId, who) => kick(alice, roomId, who), 'leave');
    });
    it('after being banned', async () => {
      await scenario((roomId, who) => ban(alice, roomId, who), 'ban');
    });
    it('after leaving and rejoining, the current list again', async () => {
      const roomId = await scenario((id, who) => leave(who, id), 'leave');
      await join(carol, roomId);
      assert.deepEqual(await memberView(carol, roomId), await memberView(alice, roomId));
    });
  });

  describe('a room with more members than one batch', () => {
    // 1,205 members: bans of remote users need no accounts, so the room is cheap to fill.
    const BANNED = 1200;
    const remote = (i: number) =>
      `@${['a', 'B', '_', '.', '=', 'z', '0', 'Q-'][i % 8]}${i}:elsewhere.example`;
    let roomId: string;
    let all: Record<string, string>;
    let midway: string;
    let midwayView: Record<string, string>;
    let bobsView: Record<string, string>;
    before(async () => {
      roomId = await createRoom({ preset: 'public_chat' });
      await join(bob, roomId);
      await join(carol, roomId);
      await invite(alice, roomId, dave);
      await invite(alice, roomId, eve);
      const view: Record<string, string> = {
        [alice.userId]: 'join',
        [bob.userId]: 'join',
        [carol.userId]: 'join',
        [dave.userId]: 'invite',
        [eve.userId]: 'invite',
      };
      for (let i = 0; i < BANNED; i++) {
        const res = await server.request('POST', `${C}/rooms/${r(roomId)}/ban`, {
          token: alice.accessToken,
          body: { user_id: remote(i) },
        });
        assert.equal(res.status, 200, `ban ${remote(i)}: ${JSON.stringify(res.body)}`);
        view[remote(i)] = 'ban';
        if (i === 700) {
          midway = await tokenNow(alice, roomId);
          midwayView = sorted({ ...view });
        }
        if (i === 1100) {
          await leave(bob, roomId);
          view[bob.userId] = 'leave';
          bobsView = sorted({ ...view });
        }
      }
      all = sorted(view);
    });

    it('/members lists every member once, across batches', async () => {
      assert.equal(Object.keys(all).length, BANNED + 5);
      assert.deepEqual(await memberView(alice, roomId), all);
      assert.deepEqual(
        await memberView(alice, roomId, [['membership', 'ban']]),
        select(all, ['ban'], []),
      );
      assert.deepEqual(
        await memberView(alice, roomId, [['not_membership', 'ban']]),
        select(all, [], ['ban']),
      );
      assert.deepEqual(
        await memberView(alice, roomId, [filterParam({ senders: [alice.userId] })]),
        sorted(
          Object.fromEntries(
            Object.entries(all).filter(([u]) => u !== bob.userId && u !== carol.userId),
          ),
        ),
      );
    });

    it('`at` and a departed member view, across batches', async () => {
      assert.deepEqual(await memberView(alice, roomId, [['at', midway]]), midwayView);
      assert.equal(Object.keys(midwayView).length, 701 + 5);
      assert.deepEqual(await memberView(bob, roomId), bobsView);
      assert.deepEqual(
        await memberView(bob, roomId, [['membership', 'ban']]),
        select(bobsView, ['ban'], []),
      );
    });

    it('filter.limit around the batch size', async () => {
      for (const limit of [999, 1000, 1001, 1204, 1205, 1206, 5000]) {
        const view = await memberView(alice, roomId, [filterParam({ limit })]);
        assert.equal(Object.keys(view).length, Math.min(limit, BANNED + 5), `limit ${limit}`);
        for (const [user, m] of Object.entries(view)) assert.equal(all[user], m, user);
      }
    });

    it('the MSC2895 state filter and /joined_members on the same room', async () => {
      const state = await server.request<ClientEvent[]>(
        'GET',
        `${C}/rooms/${r(roomId)}/state?filter=${encodeURIComponent(
          JSON.stringify({ types: ['m.room.member'], not_senders: [alice.userId] }),
        )}`,
        { token: alice.accessToken },
      );
      assert.equal(state.status, 200);
      assert.deepEqual(
        membershipMap(state.body),
        sorted({ [bob.userId]: 'leave', [carol.userId]: 'join' }),
      );
      const joined = ok(await joinedMembers(carol, roomId), 'joined_members');
      assert.deepEqual(Object.keys(joined.joined).sort(), [alice.userId, carol.userId].sort());
    });

    it('while memberships change during the answer: valid JSON, each member once, nobody unchanged missing', async () => {
      // Runs last in this group: it adds members. Whatever the interleaving, members who do
      // not change must all be there, each user at most once, and new ones at most once.
      const added = Array.from({ length: 40 }, (_, i) => `@late${i}:elsewhere.example`);
      const writes = (async () => {
        for (const userId of added) {
          const res = await server.request('POST', `${C}/rooms/${r(roomId)}/ban`, {
            token: alice.accessToken,
            body: { user_id: userId },
          });
          assert.equal(res.status, 200);
        }
      })();
      const reads = Promise.all([
        members(alice, roomId),
        members(alice, roomId),
        members(bob, roomId),
      ]);
      const [[now, again, departed]] = await Promise.all([reads, writes]);
      for (const res of [now, again]) {
        assert.equal(res.status, 200);
        const view = membershipMap(res.body.chunk);
        for (const [user, m] of Object.entries(all)) assert.equal(view[user], m, user);
        for (const user of Object.keys(view))
          assert.ok(user in all || added.includes(user), `unexpected ${user}`);
      }
      assert.equal(departed.status, 200);
      assert.deepEqual(membershipMap(departed.body.chunk), bobsView);
      const after = await memberView(alice, roomId);
      assert.equal(Object.keys(after).length, BANNED + 5 + added.length);
    });
  });

  describe('GET /rooms/{roomId}/joined_members', () => {
    it('current joined members only, with display names and avatars from the member events', async () => {
      const { roomId } = await mixedRoom();
      const name = `Bob ${dialect}`;
      ok(
        await server.request('PUT', `${C}/profile/${encodeURIComponent(bob.userId)}/displayname`, {
          token: bob.accessToken,
          body: { displayname: name },
        }),
        'displayname',
      );
      const avatar = 'mxc://test.local/bobavatar';
      ok(
        await server.request('PUT', `${C}/profile/${encodeURIComponent(bob.userId)}/avatar_url`, {
          token: bob.accessToken,
          body: { avatar_url: avatar },
        }),
        'avatar_url',
      );
      const res = await joinedMembers(alice, roomId);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assertMatchesSpec('rooms.yaml', 'get', '/rooms/{roomId}/joined_members', 200, res.body);
      assert.deepEqual(Object.keys(res.body.joined).sort(), [alice.userId, bob.userId].sort());
      assert.equal(res.body.joined[bob.userId]?.display_name, name);
      assert.equal(res.body.joined[bob.userId]?.avatar_url, avatar);
      // Alice set no avatar: hers must not carry bob's.
      assert.notEqual(res.body.joined[alice.userId]?.avatar_url, avatar);
      // The same answer for every joined member.
      const asBob = await joinedMembers(bob, roomId);
      assert.deepEqual(asBob.body, res.body);
      // /members agrees on who is joined and on the profile in the join event.
      const joinEvents = (await members(alice, roomId, [['membership', 'join']])).body.chunk;
      const bobsEvent = joinEvents.find((e) => e.state_key === bob.userId);
      assert.equal(bobsEvent?.content.displayname, name);
      assert.equal(bobsEvent?.content.avatar_url, avatar);
    });

    it('a display name set before joining is carried into the room', async () => {
      const user = await registerUser(server);
      ok(
        await server.request('PUT', `${C}/profile/${encodeURIComponent(user.userId)}/displayname`, {
          token: user.accessToken,
          body: { displayname: 'Early Name' },
        }),
        'displayname',
      );
      const roomId = await createRoom({ preset: 'public_chat' });
      await join(user, roomId);
      const res = await joinedMembers(alice, roomId);
      assert.equal(res.status, 200);
      assert.deepEqual(res.body.joined[user.userId], { display_name: 'Early Name' });
    });

    it('403 M_FORBIDDEN unless currently joined; 400 for a bad room ID; 401 without a token', async () => {
      const { roomId } = await mixedRoom();
      for (const user of [
        carol /* invited */,
        dave /* knocked */,
        eve /* left */,
        frank /* banned */,
        outsider,
      ]) {
        expectError(await joinedMembers(user, roomId), 403, 'M_FORBIDDEN');
      }
      expectError(await joinedMembers(alice, '!nosuchroom:test.local'), 403, 'M_FORBIDDEN');
      expectError(await joinedMembers(alice, 'nosuchroom'), 400, 'M_INVALID_PARAM');
      expectError(await joinedMembers(null, roomId), 401, 'M_MISSING_TOKEN');
    });
  });

  describe('MSC2895 option 3: filter.membership on /state and /context', () => {
    type StateEvent = ClientEvent;
    const state = (user: TestUser, roomId: string, filter?: unknown, raw?: string) => {
      const qs =
        raw !== undefined
          ? `?filter=${encodeURIComponent(raw)}`
          : filter !== undefined
            ? `?filter=${encodeURIComponent(JSON.stringify(filter))}`
            : '';
      return server.request<StateEvent[]>('GET', `${C}/rooms/${r(roomId)}/state${qs}`, {
        token: user.accessToken,
      });
    };

    it('/state with types + membership returns only the matching member events', async () => {
      const { roomId, expected } = await mixedRoom();
      const all = ok(await state(alice, roomId), 'state');
      const allMembers = membershipMap(all.filter((e) => e.type === 'm.room.member'));
      assert.deepEqual(allMembers, expected);

      for (const m of MEMBERSHIPS) {
        const res = ok(
          await state(alice, roomId, { types: ['m.room.member'], membership: [m] }),
          `state membership ${m}`,
        );
        assert.deepEqual(membershipMap(res), select(expected, [m], []), `membership [${m}]`);
      }
      const joinOrBan = ok(
        await state(alice, roomId, { types: ['m.room.member'], membership: ['join', 'ban'] }),
        'state',
      );
      assert.deepEqual(membershipMap(joinOrBan), select(expected, ['join', 'ban'], []));

      // membership constrains member events only: other state stays.
      const withOthers = ok(await state(alice, roomId, { membership: ['invite'] }), 'state');
      assert.deepEqual(
        membershipMap(withOthers.filter((e) => e.type === 'm.room.member')),
        select(expected, ['invite'], []),
      );
      const nonMember = (events: StateEvent[]) =>
        events
          .filter((e) => e.type !== 'm.room.member')
          .map((e) => e.event_id)
          .sort();
      assert.deepEqual(nonMember(withOthers), nonMember(all));
      assert.ok(withOthers.some((e) => e.type === 'm.room.create'));

      // types / not_types / senders / not_senders as in a RoomEventFilter.
      const onlyJoinRules = ok(await state(alice, roomId, { types: ['m.room.join_rules'] }), 's');
      assert.deepEqual(
        onlyJoinRules.map((e) => e.type),
        ['m.room.join_rules'],
      );
      assert.equal(onlyJoinRules[0]?.content.join_rule, 'knock');
      const noMembers = ok(await state(alice, roomId, { not_types: ['m.room.member'] }), 's');
      assert.deepEqual(noMembers.map((e) => e.event_id).sort(), nonMember(all));
      const byAlice = ok(
        await state(alice, roomId, { types: ['m.room.member'], senders: [alice.userId] }),
        's',
      );
      assert.deepEqual(
        membershipMap(byAlice),
        sorted({ [alice.userId]: 'join', [carol.userId]: 'invite', [frank.userId]: 'ban' }),
      );
      const notByAlice = ok(
        await state(alice, roomId, {
          types: ['m.room.member'],
          not_senders: [alice.userId],
          membership: ['join', 'leave'],
        }),
        's',
      );
      assert.deepEqual(
        membershipMap(notByAlice),
        sorted({ [bob.userId]: 'join', [eve.userId]: 'leave' }),
      );
      // Without a filter: unchanged (the whole state).
      assert.ok(all.some((e) => e.type === 'm.room.power_levels'));
    });

    it('/state with a membership filter for a member who left: the state as of leaving', async () => {
      const roomId = await createRoom({ preset: 'public_chat' });
      await join(bob, roomId);
      await join(carol, roomId);
      await leave(carol, roomId);
      await join(dave, roomId);
      await ban(alice, roomId, bob);
      const res = ok(
        await state(carol, roomId, { types: ['m.room.member'], membership: ['join'] }),
        'state',
      );
      assert.deepEqual(
        membershipMap(res),
        sorted({ [alice.userId]: 'join', [bob.userId]: 'join' }),
      );
      const leaves = ok(
        await state(carol, roomId, { types: ['m.room.member'], membership: ['leave', 'ban'] }),
        'state',
      );
      assert.deepEqual(membershipMap(leaves), sorted({ [carol.userId]: 'leave' }));
    });

    it('/state rejects a bad filter with 400 M_INVALID_PARAM', async () => {
      const { roomId } = await mixedRoom();
      for (const raw of [
        'notjson',
        '{"membership":"join"}',
        '{"membership":["member"]}',
        '{"types":"m.room.member"}',
        '{"senders":[1]}',
      ]) {
        expectError(await state(alice, roomId, undefined, raw), 400, 'M_INVALID_PARAM');
      }
    });

    it('/context applies filter.membership to the state at the event (members as they were then)', async () => {
      const roomId = await createRoom({ preset: 'private_chat' });
      await invite(alice, roomId, bob);
      await invite(alice, roomId, carol);
      await join(bob, roomId);
      const then = await send(alice, roomId, 'while carol is invited');
      await join(carol, roomId);
      await invite(alice, roomId, dave);
      await leave(bob, roomId);
      const context = (filter: unknown) =>
        server.request<{ state: StateEvent[]; event: ClientEvent }>(
          'GET',
          `${C}/rooms/${r(roomId)}/context/${encodeURIComponent(then)}?filter=${encodeURIComponent(
            JSON.stringify(filter),
          )}`,
          { token: alice.accessToken },
        );
      const invited = ok(await context({ membership: ['invite'] }), 'context');
      assertMatchesSpec(
        'event_context.yaml',
        'get',
        '/rooms/{roomId}/context/{eventId}',
        200,
        invited,
      );
      assert.equal(invited.event.event_id, then);
      assert.deepEqual(
        membershipMap(invited.state.filter((e) => e.type === 'm.room.member')),
        sorted({ [carol.userId]: 'invite' }),
      );
      assert.ok(
        invited.state.some((e) => e.type === 'm.room.create'),
        'other state kept',
      );
      const joined = ok(await context({ membership: ['join'] }), 'context');
      assert.deepEqual(
        membershipMap(joined.state.filter((e) => e.type === 'm.room.member')),
        sorted({ [alice.userId]: 'join', [bob.userId]: 'join' }),
      );
      const both = ok(await context({ membership: ['join', 'invite', 'leave'] }), 'context');
      assert.deepEqual(
        membershipMap(both.state.filter((e) => e.type === 'm.room.member')),
        sorted({ [alice.userId]: 'join', [bob.userId]: 'join', [carol.userId]: 'invite' }),
      );
      const res = await server.request(
        'GET',
        `${C}/rooms/${r(roomId)}/context/${encodeURIComponent(then)}?filter=${encodeURIComponent('{"membership":["x"]}')}`,
        { token: alice.accessToken },
      );
      expectError(res, 400, 'M_INVALID_PARAM');
    });
  });
  it('decided edge cases: a token never issued, a forgotten room, membership only narrows state', async () => {
    const roomId = await createRoom({ preset: 'public_chat' });
    await join(bob, roomId);
    // A well-formed token beyond the stream was never handed out: 400, not the present.
    const now = Number((await tokenNow(alice, roomId)).slice(1));
    expectError(await members(alice, roomId, [['at', `s${now + 1000}`]]), 400, 'M_INVALID_PARAM');
    assert.equal((await members(alice, roomId, [['at', `s${now}`]])).status, 200);
    // A former member who forgot the room no longer sees its members.
    await leave(bob, roomId);
    assert.equal((await members(bob, roomId)).status, 200);
    await post(bob, `/rooms/${r(roomId)}/forget`);
    expectError(await members(bob, roomId), 403, 'M_FORBIDDEN');
    // filter.membership narrows member state, never the timeline of /messages.
    const timeline = ok(
      await server.request<{ chunk: { type: string; content: { membership?: string } }[] }>(
        'GET',
        `${C}/rooms/${r(roomId)}/messages?dir=b&limit=50&filter=${encodeURIComponent(JSON.stringify({ membership: ['leave'] }))}`,
        { token: alice.accessToken },
      ),
      'messages',
    );
    assert.ok(
      timeline.chunk.some((e) => e.type === 'm.room.member' && e.content.membership === 'join'),
    );
  });
});
