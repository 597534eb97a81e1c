/**
 * matrix-bot-sdk against Commons: getJoinedRooms, getJoinedRoomMembers(+WithProfiles),
 * getRoomMembers with membership / notMembership / a batch token, and the single-filter
 * helpers built on it. Each SDK answer is compared with what the test performed and with the
 * server's own HTTP answer. (`start()` and auto-join need /sync; not covered here.)
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import {
  LogService,
  MatrixClient,
  MatrixError,
  MemoryStorageProvider,
  type ILogger,
  type Membership as SdkMembership,
  type MembershipEvent,
} from 'matrix-bot-sdk';
import { registerUser, type TestUser } from '../helpers/client.js';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const C = '/_matrix/client/v3';
type Membership = 'join' | 'invite' | 'knock' | 'leave' | 'ban';
/** The SDK's Membership type predates knocking; the server understands `knock` all the same. */
const sdk = (m: Membership): SdkMembership => m as SdkMembership;

const silent: ILogger = {
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  debug: () => undefined,
  trace: () => undefined,
};
LogService.setLogger(silent);

const sorted = <T>(record: Record<string, T>): Record<string, T> =>
  Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : 1)));

/** userId → membership from the SDK's MembershipEvents, each user once. */
function sdkView(events: MembershipEvent[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const event of events) {
    assert.ok(!(event.membershipFor in out), `${event.membershipFor} twice`);
    out[event.membershipFor] = event.membership;
  }
  return sorted(out);
}

forEachDatabase('matrix-bot-sdk: joined rooms and member lists', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  let dave: TestUser;
  let eve: TestUser;
  let frank: TestUser;
  let outsider: TestUser;
  let client: MatrixClient;
  let roomId: string;
  let otherRoom: string;
  let leftRoom: string;
  let expected: Record<string, Membership>;
  let before1: Record<string, Membership>;
  let token1: string;

  const r = (id: string) => encodeURIComponent(id);
  const post = async (user: TestUser, path: string, body: unknown = {}) => {
    const res = await server.request<Record<string, unknown>>('POST', `${C}${path}`, {
      token: user.accessToken,
      body,
    });
    assert.equal(res.status, 200, `${path}: ${JSON.stringify(res.body)}`);
    return res.body;
  };
  /** The server's own answer to GET /members with `query`, as userId → membership. */
  const httpView = async (user: TestUser, id: string, query = '') => {
    const res = await server.request<{
      chunk: { state_key: string; content: { membership: string } }[];
    }>('GET', `${C}/rooms/${r(id)}/members${query}`, { token: user.accessToken });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return sorted(
      Object.fromEntries(res.body.chunk.map((e) => [e.state_key, e.content.membership])),
    );
  };
  const pick = (view: Record<string, string>, keep: (m: string) => boolean) =>
    sorted(Object.fromEntries(Object.entries(view).filter(([, m]) => keep(m))));

  before(async () => {
    server = await startTestServer(dialect);
    [alice, bob, carol, dave, eve, frank, outsider] = [
      await registerUser(server),
      await registerUser(server),
      await registerUser(server),
      await registerUser(server),
      await registerUser(server),
      await registerUser(server),
      await registerUser(server),
    ];
    client = new MatrixClient(server.url, alice.accessToken, new MemoryStorageProvider());

    // A knockable room with every membership: alice join, bob join, carol invite,
    // dave knock, eve leave, frank ban.
    roomId = (await post(alice, '/createRoom', { preset: 'private_chat', name: 'bot-sdk room' }))
      .room_id as string;
    const rule = await server.request('PUT', `${C}/rooms/${r(roomId)}/state/m.room.join_rules/`, {
      token: alice.accessToken,
      body: { join_rule: 'knock' },
    });
    assert.equal(rule.status, 200);
    await post(alice, `/rooms/${r(roomId)}/invite`, { user_id: bob.userId });
    await post(bob, `/join/${r(roomId)}`);
    await post(alice, `/rooms/${r(roomId)}/invite`, { user_id: eve.userId });
    await post(eve, `/join/${r(roomId)}`);
    const messages = await server.request<{ start: string }>(
      'GET',
      `${C}/rooms/${r(roomId)}/messages?dir=b&limit=1`,
      { token: alice.accessToken },
    );
    assert.equal(messages.status, 200);
    token1 = messages.body.start;
    before1 = sorted({ [alice.userId]: 'join', [bob.userId]: 'join', [eve.userId]: 'join' });
    await post(alice, `/rooms/${r(roomId)}/invite`, { user_id: carol.userId });
    await post(dave, `/knock/${r(roomId)}`);
    await post(eve, `/rooms/${r(roomId)}/leave`);
    await post(alice, `/rooms/${r(roomId)}/ban`, { user_id: frank.userId });
    expected = sorted({
      [alice.userId]: 'join',
      [bob.userId]: 'join',
      [carol.userId]: 'invite',
      [dave.userId]: 'knock',
      [eve.userId]: 'leave',
      [frank.userId]: 'ban',
    });

    otherRoom = (await post(bob, '/createRoom', { preset: 'public_chat' })).room_id as string;
    await post(alice, `/join/${r(otherRoom)}`);
    leftRoom = (await post(bob, '/createRoom', { preset: 'public_chat' })).room_id as string;
    await post(alice, `/join/${r(leftRoom)}`);
    await post(alice, `/rooms/${r(leftRoom)}/leave`);
    // Rooms where alice is only invited do not count as joined.
    const invitedRoom = (await post(carol, '/createRoom', { preset: 'private_chat' }))
      .room_id as string;
    await post(carol, `/rooms/${r(invitedRoom)}/invite`, { user_id: alice.userId });

    const name = 'Bob the Builder';
    const profile = await server.request(
      'PUT',
      `${C}/profile/${encodeURIComponent(bob.userId)}/displayname`,
      { token: bob.accessToken, body: { displayname: name } },
    );
    assert.equal(profile.status, 200);
  });
  after(async () => server.close());

  it('whoami works through the SDK (the client is wired to the test server)', async () => {
    assert.equal(await client.getUserId(), alice.userId);
  });

  it('getJoinedRooms equals /joined_rooms: only rooms where the bot is joined', async () => {
    const rooms = await client.getJoinedRooms();
    assert.deepEqual([...rooms].sort(), [roomId, otherRoom].sort());
    const http = await server.request<{ joined_rooms: string[] }>('GET', `${C}/joined_rooms`, {
      token: alice.accessToken,
    });
    assert.deepEqual([...rooms].sort(), [...http.body.joined_rooms].sort());
    assert.ok(!rooms.includes(leftRoom));
  });

  it('getJoinedRoomMembers and getJoinedRoomMembersWithProfiles equal /joined_members', async () => {
    const members = await client.getJoinedRoomMembers(roomId);
    assert.deepEqual([...members].sort(), [alice.userId, bob.userId].sort());
    const profiles = await client.getJoinedRoomMembersWithProfiles(roomId);
    const http = await server.request<{ joined: Record<string, unknown> }>(
      'GET',
      `${C}/rooms/${r(roomId)}/joined_members`,
      { token: alice.accessToken },
    );
    assert.equal(http.status, 200);
    assert.deepEqual(profiles, http.body.joined);
    assert.equal(profiles[bob.userId]?.display_name, 'Bob the Builder');
    assert.deepEqual(
      [...(await client.getJoinedRoomMembers(otherRoom))].sort(),
      [alice.userId, bob.userId].sort(),
    );
  });

  it('getRoomMembers / getAllRoomMembers: every member, as /members says', async () => {
    const all = await client.getRoomMembers(roomId);
    assert.deepEqual(sdkView(all), expected);
    assert.deepEqual(sdkView(all), await httpView(alice, roomId));
    assert.deepEqual(sdkView(await client.getAllRoomMembers(roomId)), expected);
    for (const event of all) {
      assert.equal(event.type, 'm.room.member');
      assert.equal(event.raw.room_id, roomId);
    }
    const bobEvent = all.find((e) => e.membershipFor === bob.userId);
    assert.equal(bobEvent?.sender, bob.userId);
    assert.equal(bobEvent?.content.displayname, 'Bob the Builder');
    const carolEvent = all.find((e) => e.membershipFor === carol.userId);
    assert.equal(carolEvent?.sender, alice.userId);
  });

  it('getRoomMembers with membership[] and notMembership[] (one request per value, unioned)', async () => {
    assert.deepEqual(
      sdkView(await client.getRoomMembers(roomId, undefined, ['join', 'invite'])),
      pick(expected, (m) => m === 'join' || m === 'invite'),
    );
    assert.deepEqual(
      sdkView(await client.getRoomMembers(roomId, undefined, ['ban', sdk('knock'), 'leave'])),
      pick(expected, (m) => ['ban', 'knock', 'leave'].includes(m)),
    );
    assert.deepEqual(
      sdkView(await client.getRoomMembers(roomId, undefined, undefined, ['leave'])),
      pick(expected, (m) => m !== 'leave'),
    );
    // The SDK asks once per value and unions the answers: join ∪ (not invite).
    assert.deepEqual(
      sdkView(await client.getRoomMembers(roomId, undefined, ['join'], ['invite'])),
      pick(expected, (m) => m !== 'invite'),
    );
    // And the union equals the union of the server's own answers.
    const union = {
      ...(await httpView(alice, roomId, '?membership=ban')),
      ...(await httpView(alice, roomId, '?not_membership=join')),
    };
    assert.deepEqual(
      sdkView(await client.getRoomMembers(roomId, undefined, ['ban'], ['join'])),
      sorted(union),
    );
    for (const m of ['join', 'invite', 'knock', 'leave', 'ban'] as const) {
      assert.deepEqual(
        sdkView(await client.getRoomMembersByMembership(roomId, sdk(m))),
        await httpView(alice, roomId, `?membership=${m}`),
        `getRoomMembersByMembership ${m}`,
      );
      assert.deepEqual(
        sdkView(await client.getRoomMembersByMembership(roomId, sdk(m))),
        pick(expected, (x) => x === m),
      );
      assert.deepEqual(
        sdkView(await client.getRoomMembersWithoutMembership(roomId, sdk(m))),
        pick(expected, (x) => x !== m),
        `getRoomMembersWithoutMembership ${m}`,
      );
    }
  });

  it('getRoomMembers with a batch token: the members as of that point', async () => {
    assert.deepEqual(sdkView(await client.getRoomMembers(roomId, token1)), before1);
    assert.deepEqual(sdkView(await client.getAllRoomMembers(roomId, token1)), before1);
    assert.deepEqual(
      sdkView(await client.getRoomMembers(roomId, token1, ['join'])),
      before1,
      'everyone was joined at token1',
    );
    assert.deepEqual(sdkView(await client.getRoomMembers(roomId, token1, ['leave'])), {});
    assert.deepEqual(
      sdkView(await client.getRoomMembersByMembership(roomId, 'join', token1)),
      await httpView(alice, roomId, `?membership=join&at=${token1}`),
    );
  });

  it('errors come back as MatrixError: 403 M_FORBIDDEN for a non-member, 400 for a bad token', async () => {
    const stranger = new MatrixClient(
      server.url,
      outsider.accessToken,
      new MemoryStorageProvider(),
    );
    await assert.rejects(stranger.getRoomMembers(roomId), (err: unknown) => {
      assert.ok(err instanceof MatrixError, String(err));
      assert.equal(err.statusCode, 403);
      assert.equal(err.errcode, 'M_FORBIDDEN');
      return true;
    });
    await assert.rejects(stranger.getJoinedRoomMembers(roomId), (err: unknown) => {
      assert.ok(err instanceof MatrixError, String(err));
      assert.equal(err.statusCode, 403);
      assert.equal(err.errcode, 'M_FORBIDDEN');
      return true;
    });
    assert.deepEqual(await stranger.getJoinedRooms(), []);
    await assert.rejects(client.getRoomMembers(roomId, 'not-a-token'), (err: unknown) => {
      assert.ok(err instanceof MatrixError, String(err));
      assert.equal(err.statusCode, 400);
      assert.equal(err.errcode, 'M_INVALID_PARAM');
      return true;
    });
  });
});
