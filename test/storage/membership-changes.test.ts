/**
 * Membership changes in a user's rooms over a span of the stream (the device-list part of an
 * incremental /sync): a short span is read by position and a long one room by room, and both
 * give the same changes, in stream order, only from rooms the user has a membership in.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { registerUser, type TestUser } from '../helpers/client.js';

const C = '/_matrix/client/v3';

forEachDatabase('membership changes around a user, by position and by room', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  before(async () => {
    server = await startTestServer(dialect);
    [alice, bob, carol] = [
      await registerUser(server),
      await registerUser(server),
      await registerUser(server),
    ];
  });
  after(() => server?.close());

  const call = async (user: TestUser, path: string, body: unknown = {}) => {
    const res = await server.request<{ room_id?: string }>('POST', `${C}${path}`, {
      token: user.accessToken,
      body,
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body;
  };

  it('gives the same changes both ways, only from the user’s rooms', async () => {
    const store = server.running.storage.stores.deviceKeys;
    const start = await server.running.storage.stores.stream.selectCurrentPosition();
    const shared = (await call(alice, '/createRoom', { preset: 'public_chat' })).room_id!;
    const elsewhere = (await call(carol, '/createRoom', { preset: 'public_chat' })).room_id!;
    await call(bob, `/rooms/${encodeURIComponent(shared)}/join`);
    await call(bob, `/rooms/${encodeURIComponent(elsewhere)}/join`);
    await call(bob, `/rooms/${encodeURIComponent(shared)}/leave`);
    const upTo = await server.running.storage.stores.stream.selectCurrentPosition();

    const short = await store.selectMembershipChangesAround(alice.userId, start, upTo);
    const long = await store.selectMembershipChangesAround(alice.userId, upTo - 50_000, upTo);
    assert.deepEqual(long.slice(-short.length), short);
    assert.deepEqual(
      short.map((c) => [c.roomId, c.userId, c.membership]),
      [
        [shared, alice.userId, 'join'],
        [shared, bob.userId, 'join'],
        [shared, bob.userId, 'leave'],
      ],
    );
    assert.ok(!long.some((c) => c.roomId === elsewhere), 'not from a room alice is not in');
  });
});
