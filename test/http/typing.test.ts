import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { assertMatchesSpec } from '../helpers/spec-contract.js';
import { expectError } from '../helpers/assertions.js';
import { servicesOf, watchChanges } from '../helpers/services.js';
import type { Services } from '../../src/services/index.js';

const V3 = '/_matrix/client/v3';
const r = encodeURIComponent;

forEachDatabase('typing notifications', (dialect) => {
  let server: TestServer;
  let services: Services;
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  before(async () => {
    server = await startTestServer(dialect);
    services = servicesOf(server);
    [alice, bob, carol] = [
      await registerUser(server),
      await registerUser(server),
      await registerUser(server),
    ];
  });
  after(async () => server.close());

  const position = () => server.running.storage.stores.stream.selectCurrentPosition();

  async function sharedRoom(): Promise<string> {
    const created = await server.request<{ room_id: string }>('POST', `${V3}/createRoom`, {
      token: alice.accessToken,
      body: { preset: 'public_chat' },
    });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    const roomId = created.body.room_id;
    const joined = await server.request('POST', `${V3}/join/${r(roomId)}`, {
      token: bob.accessToken,
      body: {},
    });
    assert.equal(joined.status, 200, JSON.stringify(joined.body));
    return roomId;
  }

  const setTyping = (user: TestUser, roomId: string, body: unknown, target = user.userId) =>
    server.request('PUT', `${V3}/rooms/${r(roomId)}/typing/${r(target)}`, {
      token: user.accessToken,
      body,
    });

  const typingIn = async (roomIds: string[], since: number) =>
    services.typing.ephemeralSince(roomIds, since, await position());

  it('PUT /typing marks the user as typing, and /sync’s source lists them', async () => {
    const roomId = await sharedRoom();
    const quiet = await sharedRoom();
    const changes = watchChanges(server);
    const response = await setTyping(alice, roomId, { typing: true, timeout: 30000 });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assertMatchesSpec('typing.yaml', 'put', '/rooms/{roomId}/typing/{userId}', 200, response.body);
    assert.deepEqual(response.body, {});
    assert.equal((await setTyping(bob, roomId, { typing: true })).status, 200);

    const initial = await typingIn([roomId, quiet], 0);
    assert.deepEqual([...initial.keys()], [roomId], 'only rooms where someone types');
    assert.deepEqual(initial.get(roomId), {
      type: 'm.typing',
      content: { user_ids: [alice.userId, bob.userId].sort() },
    });
    await changes.waitFor((c) => c.rooms?.includes(roomId) ?? false);
    changes.stop();
  });

  it('a stop is a change with a position; typing again while typing is not', async () => {
    const roomId = await sharedRoom();
    assert.equal((await setTyping(alice, roomId, { typing: true, timeout: 30000 })).status, 200);
    const started = await position();
    assert.equal((await setTyping(alice, roomId, { typing: true, timeout: 30000 })).status, 200);
    assert.equal(await position(), started, 'a renewal moves no position');
    assert.equal((await typingIn([roomId], started)).size, 0);

    assert.equal((await setTyping(alice, roomId, { typing: false })).status, 200);
    const stopped = await position();
    assert.ok(stopped > started);
    const changes = await typingIn([roomId], started);
    assert.deepEqual(changes.get(roomId), { type: 'm.typing', content: { user_ids: [] } });
    assert.equal((await typingIn([roomId], 0)).size, 0, 'nobody types now');

    assert.equal((await setTyping(alice, roomId, { typing: false })).status, 200);
    assert.equal(await position(), stopped, 'stopping again changes nothing');
  });

  it('a start that runs out is written as a stop when it expires', async () => {
    const roomId = await sharedRoom();
    assert.equal((await setTyping(alice, roomId, { typing: true, timeout: 200 })).status, 200);
    const started = await position();
    assert.deepEqual((await typingIn([roomId], 0)).get(roomId)?.content.user_ids, [alice.userId]);
    const deadline = Date.now() + 5000;
    while ((await position()) === started && Date.now() < deadline) await sleep(50);
    assert.ok((await position()) > started, 'the expiry took a position');
    assert.deepEqual((await typingIn([roomId], started)).get(roomId)?.content.user_ids, []);
  });

  it('the timeout is capped at 120 seconds; a start without one lasts 30', async () => {
    const roomId = await sharedRoom();
    const before = Date.now();
    await setTyping(alice, roomId, { typing: true, timeout: 3_600_000 });
    const capped = await server.running.storage.stores.typing.selectTyping(roomId, alice.userId);
    assert.ok(capped && capped.expiresTs <= Date.now() + 120_000, JSON.stringify(capped));
    assert.ok(capped.expiresTs >= before + 120_000);
    await setTyping(bob, roomId, { typing: true });
    const plain = await server.running.storage.stores.typing.selectTyping(roomId, bob.userId);
    assert.ok(
      plain && plain.expiresTs <= Date.now() + 30_000 && plain.expiresTs >= before + 30_000,
    );
    await setTyping(alice, roomId, { typing: false });
    await setTyping(bob, roomId, { typing: false });
  });

  it('works under r0 too', async () => {
    const roomId = await sharedRoom();
    const response = await server.request(
      'PUT',
      `/_matrix/client/r0/rooms/${r(roomId)}/typing/${r(alice.userId)}`,
      { token: alice.accessToken, body: { typing: false } },
    );
    assert.equal(response.status, 200, JSON.stringify(response.body));
  });

  it('403 M_FORBIDDEN for another user’s typing, or a room the user is not in', async () => {
    const roomId = await sharedRoom();
    expectError(await setTyping(alice, roomId, { typing: true }, bob.userId), 403, 'M_FORBIDDEN');
    expectError(await setTyping(carol, roomId, { typing: true }), 403, 'M_FORBIDDEN');
    expectError(
      await setTyping(alice, '!nosuchroom:test.local', { typing: true }),
      403,
      'M_FORBIDDEN',
    );
    assert.equal((await typingIn([roomId], 0)).size, 0, 'nothing was recorded');
  });

  it('400 M_INVALID_PARAM for a malformed room or user ID', async () => {
    const roomId = await sharedRoom();
    expectError(await setTyping(alice, 'not-a-room', { typing: true }), 400, 'M_INVALID_PARAM');
    expectError(
      await setTyping(alice, roomId, { typing: true }, 'not-a-user'),
      400,
      'M_INVALID_PARAM',
    );
  });

  it('400 M_BAD_JSON without `typing` or with wrong types; M_NOT_JSON for non-JSON', async () => {
    const roomId = await sharedRoom();
    for (const body of [
      {},
      { typing: 'yes' },
      { typing: true, timeout: -1 },
      { typing: true, timeout: 'x' },
    ]) {
      expectError(await setTyping(alice, roomId, body), 400, 'M_BAD_JSON');
    }
    const notJson = await server.request(
      'PUT',
      `${V3}/rooms/${r(roomId)}/typing/${r(alice.userId)}`,
      {
        token: alice.accessToken,
        rawBody: '{typing',
        headers: { 'Content-Type': 'application/json' },
      },
    );
    expectError(notJson, 400, 'M_NOT_JSON');
  });

  it('401 M_MISSING_TOKEN without a token', async () => {
    const response = await server.request(
      'PUT',
      `${V3}/rooms/${r('!a:test.local')}/typing/${r(alice.userId)}`,
      { body: { typing: true } },
    );
    expectError(response, 401, 'M_MISSING_TOKEN');
  });
});
