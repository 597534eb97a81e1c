/**
 * /joined_members answered again and again (as bridges and bots ask): the body a process keeps
 * for a room is the one it would stream, byte for byte, and every member event in the room —
 * a join, a leave, a kick, a ban, a profile change, a per-room name — is in the next answer,
 * while other events leave it as it was. Access is checked before anything kept is used.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { expectError } from '../helpers/assertions.js';
import { servicesOf } from '../helpers/services.js';

const C = '/_matrix/client/v3';

interface JoinedBody {
  joined: Record<string, { display_name?: string; avatar_url?: string }>;
}

forEachDatabase('/joined_members asked again: the kept body follows member events', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  let roomId: string;
  let txn = 0;

  const call = async (user: TestUser, method: string, path: string, body: unknown = {}) => {
    const res = await server.request(method, `${C}${path}`, { token: user.accessToken, body });
    assert.equal(res.status, 200, `${method} ${path}: ${JSON.stringify(res.body)}`);
    return res.body;
  };
  const room = () => encodeURIComponent(roomId);
  /** The raw text of /joined_members as `user` sees it. */
  const joinedText = async (user: TestUser) => {
    const res = await server.request<string>('GET', `${C}/rooms/${room()}/joined_members`, {
      token: user.accessToken,
      headers: { accept: 'application/json' },
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    return typeof res.body === 'string' ? res.body : JSON.stringify(res.body);
  };
  const joined = async (user: TestUser = alice) =>
    (JSON.parse(await joinedText(user)) as JoinedBody).joined;

  before(async () => {
    server = await startTestServer(dialect);
    [alice, bob, carol] = [
      await registerUser(server),
      await registerUser(server),
      await registerUser(server),
    ];
    roomId = (
      (await call(alice, 'POST', '/createRoom', { preset: 'public_chat' })) as {
        room_id: string;
      }
    ).room_id;
  });
  after(() => server?.close());

  it('answers the same bytes the second time as the first (streamed, then kept)', async () => {
    await call(bob, 'POST', `/rooms/${room()}/join`);
    const first = await joinedText(alice);
    const second = await joinedText(alice);
    const third = await joinedText(bob);
    assert.equal(second, first);
    assert.equal(third, first);
    assert.deepEqual(
      Object.keys((JSON.parse(first) as JoinedBody).joined).sort(),
      [alice.userId, bob.userId].sort(),
    );
  });

  it('a join, a profile change, a per-room name and a leave each show in the next answer', async () => {
    await joined();
    await call(carol, 'POST', `/rooms/${room()}/join`);
    assert.ok(carol.userId in (await joined()), 'carol joined');

    await call(carol, 'PUT', `/profile/${encodeURIComponent(carol.userId)}/displayname`, {
      displayname: 'Carol Everywhere',
    });
    assert.equal((await joined())[carol.userId]?.display_name, 'Carol Everywhere');

    await call(
      carol,
      'PUT',
      `/rooms/${room()}/state/m.room.member/${encodeURIComponent(carol.userId)}`,
      { membership: 'join', displayname: 'Carol Here', avatar_url: 'mxc://test.local/c' },
    );
    assert.deepEqual((await joined())[carol.userId], {
      display_name: 'Carol Here',
      avatar_url: 'mxc://test.local/c',
    });

    await call(carol, 'POST', `/rooms/${room()}/leave`);
    assert.ok(!(carol.userId in (await joined())), 'carol left');
  });

  it('a kick and a ban show in the next answer', async () => {
    await call(carol, 'POST', `/rooms/${room()}/join`);
    assert.ok(carol.userId in (await joined()));
    await call(alice, 'POST', `/rooms/${room()}/kick`, { user_id: carol.userId });
    assert.ok(!(carol.userId in (await joined())), 'kicked');
    await call(carol, 'POST', `/rooms/${room()}/join`);
    assert.ok(carol.userId in (await joined()));
    await call(alice, 'POST', `/rooms/${room()}/ban`, { user_id: carol.userId });
    assert.ok(!(carol.userId in (await joined())), 'banned');
  });

  it('messages and other state leave the answer as it was', async () => {
    const before = await joinedText(alice);
    await call(bob, 'PUT', `/rooms/${room()}/send/m.room.message/t${++txn}`, {
      msgtype: 'm.text',
      body: 'hello',
    });
    await call(alice, 'PUT', `/rooms/${room()}/state/m.room.topic/`, { topic: 'kept' });
    assert.equal(await joinedText(alice), before);
  });

  it('the service answers whole from what it kept, and reads again after a member event', async () => {
    const { memberLists } = servicesOf(server);
    const requester = { userId: alice.userId, deviceId: alice.deviceId, isAdmin: false };
    const consume = async () => {
      const answer = await memberLists.joinedMembers(requester, roomId);
      if ('body' in answer) return 'kept';
      for await (const entries of answer.entries) assert.ok(Array.isArray(entries));
      return 'read';
    };
    assert.equal(await consume(), 'read', 'a new service holds nothing');
    assert.equal(await consume(), 'kept');
    await call(bob, 'PUT', `/profile/${encodeURIComponent(bob.userId)}/avatar_url`, {
      avatar_url: 'mxc://test.local/b',
    });
    assert.equal(await consume(), 'read', 'a member event dropped it');
    assert.equal(await consume(), 'kept');
    await call(bob, 'PUT', `/rooms/${room()}/send/m.room.message/t${++txn}`, {
      msgtype: 'm.text',
      body: 'still kept',
    });
    assert.equal(await consume(), 'kept', 'a message did not');
  });

  it('a member who left is refused, though the body is kept for the others', async () => {
    await joined(bob);
    await call(bob, 'POST', `/rooms/${room()}/leave`);
    expectError(
      await server.request('GET', `${C}/rooms/${room()}/joined_members`, {
        token: bob.accessToken,
      }),
      403,
      'M_FORBIDDEN',
    );
    assert.deepEqual(Object.keys(await joined(alice)), [alice.userId]);
  });
});
