/**
 * `/members` and `/joined_rooms` asked again and again (clients re-reading member lists, bots
 * polling their rooms): the bodies a process keeps are the ones it would read, and every change
 * that alters an answer — a join, a leave, a kick, a profile change, a redacted member event,
 * a room joined or left — is in the next answer, while other events leave it as it was. Each
 * point in time and each choice of memberships is its own answer, and access is checked first.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { expectError } from '../helpers/assertions.js';
import { servicesOf } from '../helpers/services.js';

const C = '/_matrix/client/v3';
const r = encodeURIComponent;

interface MemberEvent {
  event_id: string;
  state_key: string;
  content: { membership?: string; displayname?: string };
}

forEachDatabase('/members and /joined_rooms asked again: kept bodies follow changes', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  let roomId: string;
  let txn = 0;

  const call = async <T = unknown>(
    user: TestUser,
    method: string,
    path: string,
    body: unknown = {},
  ) => {
    const res = await server.request<T>(method, `${C}${path}`, { token: user.accessToken, body });
    assert.equal(res.status, 200, `${method} ${path}: ${JSON.stringify(res.body)}`);
    return res.body;
  };
  const text = async (user: TestUser, path: string) => {
    const res = await server.request<string>('GET', `${C}${path}`, {
      token: user.accessToken,
      headers: { accept: 'application/json' },
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    return typeof res.body === 'string' ? res.body : JSON.stringify(res.body);
  };
  const members = async (user: TestUser, query = '') =>
    (
      JSON.parse(await text(user, `/rooms/${r(roomId)}/members${query}`)) as {
        chunk: MemberEvent[];
      }
    ).chunk;
  const memberships = async (user: TestUser, query = '') =>
    Object.fromEntries(
      (await members(user, query)).map((e) => [e.state_key, e.content.membership]),
    );
  const joinedRooms = async (user: TestUser) =>
    (JSON.parse(await text(user, '/joined_rooms')) as { joined_rooms: string[] }).joined_rooms;

  before(async () => {
    server = await startTestServer(dialect);
    [alice, bob, carol] = [
      await registerUser(server),
      await registerUser(server),
      await registerUser(server),
    ];
    roomId = (
      await call<{ room_id: string }>(alice, 'POST', '/createRoom', { preset: 'public_chat' })
    ).room_id;
    await call(bob, 'POST', `/rooms/${r(roomId)}/join`);
  });
  after(() => server?.close());

  it('answers /members with the same bytes again, for every member', async () => {
    const first = await text(alice, `/rooms/${r(roomId)}/members`);
    assert.equal(await text(alice, `/rooms/${r(roomId)}/members`), first);
    assert.equal(await text(bob, `/rooms/${r(roomId)}/members`), first);
    assert.deepEqual(Object.keys(JSON.parse(first) as object), ['chunk']);
  });

  it('a join, a profile change, a kick and a leave each show in the next answer', async () => {
    await members(alice);
    await call(carol, 'POST', `/rooms/${r(roomId)}/join`);
    assert.equal((await memberships(alice))[carol.userId], 'join');
    await call(carol, 'PUT', `/profile/${r(carol.userId)}/displayname`, { displayname: 'Carol K' });
    const carolEvent = (await members(alice)).find((e) => e.state_key === carol.userId);
    assert.equal(carolEvent?.content.displayname, 'Carol K');
    await call(alice, 'POST', `/rooms/${r(roomId)}/kick`, { user_id: carol.userId });
    assert.equal((await memberships(alice))[carol.userId], 'leave');
    assert.ok(!(carol.userId in (await memberships(alice, '?membership=join'))));
    await call(carol, 'POST', `/rooms/${r(roomId)}/join`);
    assert.equal((await memberships(alice, '?membership=join'))[carol.userId], 'join');
    await call(carol, 'POST', `/rooms/${r(roomId)}/leave`);
    assert.equal((await memberships(alice, '?not_membership=join'))[carol.userId], 'leave');
  });

  it('messages and other state leave /members as it was', async () => {
    const before = await text(alice, `/rooms/${r(roomId)}/members`);
    await call(bob, 'PUT', `/rooms/${r(roomId)}/send/m.room.message/t${++txn}`, {
      msgtype: 'm.text',
      body: 'hello',
    });
    await call(alice, 'PUT', `/rooms/${r(roomId)}/state/m.room.topic/`, { topic: 'kept' });
    assert.equal(await text(alice, `/rooms/${r(roomId)}/members`), before);
  });

  it('a redacted member event reads redacted in the next answer', async () => {
    await call(carol, 'POST', `/rooms/${r(roomId)}/join`);
    await call(carol, 'PUT', `/rooms/${r(roomId)}/state/m.room.member/${r(carol.userId)}`, {
      membership: 'join',
      displayname: 'Carol Redact Me',
    });
    const event = (await members(alice)).find((e) => e.state_key === carol.userId)!;
    assert.equal(event.content.displayname, 'Carol Redact Me');
    await call(alice, 'PUT', `/rooms/${r(roomId)}/redact/${r(event.event_id)}/t${++txn}`, {});
    const after = (await members(alice)).find((e) => e.state_key === carol.userId)!;
    assert.equal(after.event_id, event.event_id);
    assert.equal(after.content.displayname, undefined);
    assert.equal(after.content.membership, 'join');
  });

  it('each point in time is its own answer: `at` and a former member see the past', async () => {
    const messages = JSON.parse(
      await text(alice, `/rooms/${r(roomId)}/messages?dir=b&limit=1`),
    ) as { start: string };
    const past = await memberships(alice, `?at=${r(messages.start)}`);
    const dave = await registerUser(server);
    await call(dave, 'POST', `/rooms/${r(roomId)}/join`);
    assert.deepEqual(await memberships(alice, `?at=${r(messages.start)}`), past);
    assert.ok(!(dave.userId in past));
    assert.equal((await memberships(alice))[dave.userId], 'join');

    // Bob leaves: his list stays as of his leaving, while others' goes on.
    await call(bob, 'POST', `/rooms/${r(roomId)}/leave`);
    const erin = await registerUser(server);
    await call(erin, 'POST', `/rooms/${r(roomId)}/join`);
    const bobs = await memberships(bob);
    assert.equal(bobs[bob.userId], 'leave');
    assert.ok(!(erin.userId in bobs), 'a former member does not see later joins');
    assert.equal((await memberships(alice))[erin.userId], 'join');
    assert.ok(!(erin.userId in (await memberships(bob))), 'nor on asking again');
  });

  it('a filter with senders or a limit is answered, not kept', async () => {
    const filter = r(JSON.stringify({ senders: [alice.userId] }));
    const services = servicesOf(server);
    const requester = { userId: alice.userId, deviceId: alice.deviceId, isAdmin: false };
    const read = async (query: Parameters<typeof services.memberLists.members>[2]) => {
      const answer = await services.memberLists.members(requester, roomId, query);
      if ('body' in answer) return 'kept';
      for await (const entries of answer.entries) assert.ok(Array.isArray(entries));
      return 'read';
    };
    assert.equal(await read({}), 'read');
    assert.equal(await read({}), 'kept');
    assert.equal(await read({ memberships: ['join'] }), 'read', 'other memberships: other answer');
    assert.equal(await read({ memberships: ['join'] }), 'kept');
    assert.equal(await read({ filter: { senders: [alice.userId] } }), 'read');
    assert.equal(await read({ filter: { senders: [alice.userId] } }), 'read');
    const only = await members(alice, `?filter=${filter}`);
    assert.ok(only.length > 0);
    assert.ok(
      only.every((e) => e.state_key === alice.userId || e.content.membership !== undefined),
    );
  });

  it('someone never in the room is refused, though bodies are kept for members', async () => {
    await members(alice);
    const stranger = await registerUser(server);
    expectError(
      await server.request('GET', `${C}/rooms/${r(roomId)}/members`, {
        token: stranger.accessToken,
      }),
      403,
      'M_FORBIDDEN',
    );
  });

  it('/joined_rooms: the same bytes again, and a room joined or left is in the next answer', async () => {
    const frank = await registerUser(server);
    const before = await text(frank, '/joined_rooms');
    assert.deepEqual(JSON.parse(before), { joined_rooms: [] });
    assert.equal(await text(frank, '/joined_rooms'), before);
    await call(frank, 'POST', `/rooms/${r(roomId)}/join`);
    assert.deepEqual(await joinedRooms(frank), [roomId]);
    const own = (await call<{ room_id: string }>(frank, 'POST', '/createRoom', {})).room_id;
    assert.deepEqual((await joinedRooms(frank)).sort(), [roomId, own].sort());
    // Someone else's join changes nothing of Frank's.
    const kept = await text(frank, '/joined_rooms');
    const gina = await registerUser(server);
    await call(gina, 'POST', `/rooms/${r(roomId)}/join`);
    assert.equal(await text(frank, '/joined_rooms'), kept);
    await call(frank, 'POST', `/rooms/${r(roomId)}/leave`);
    assert.deepEqual(await joinedRooms(frank), [own]);
  });
});
