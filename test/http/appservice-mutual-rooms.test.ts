/**
 * Mutual rooms asked with an application service's token. On the query forms `user_id` names
 * the other user, so the service asks as its sender; on the proposal's path forms the other
 * user is in the path and `user_id` masquerades as one of the service's users, as everywhere.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { expectError } from '../helpers/assertions.js';
import { writeRegistrations } from '../helpers/appservice.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const V3 = '/_matrix/client/v3';
const V1 = '/_matrix/client/v1/mutual_rooms';
const V1_USER = '/_matrix/client/v1/user/mutual_rooms';
const UNSTABLE = '/_matrix/client/unstable/uk.half-shot.msc2666/user/mutual_rooms';
const legacy = (name: string, userId: string) =>
  `/_matrix/client/unstable/uk.half-shot.msc2666/user/${name}/${encodeURIComponent(userId)}`;
const r = encodeURIComponent;
const AS_TOKEN = 'as_token_mutual_abcdef';
const HS_TOKEN = 'hs_token_mutual_abcdef';
const BOT = '@mutualbot:test.local';
const GHOST = '@_mutual_ghost:test.local';

interface MutualBody {
  joined: string[];
  count: number;
}

forEachDatabase('application services asking for mutual rooms', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  /** Alice's room the bot is in, and the one the ghost is in. */
  let botRoom: string;
  let ghostRoom: string;

  const get = (path: string, token = AS_TOKEN) =>
    server.request<MutualBody>('GET', path, { token });

  before(async () => {
    server = await startTestServer(dialect, {
      COMMONS_APP_SERVICES_CONFIG_FILES: writeRegistrations([
        {
          id: 'mutual',
          url: null,
          as_token: AS_TOKEN,
          hs_token: HS_TOKEN,
          sender_localpart: 'mutualbot',
          namespaces: { users: [{ exclusive: true, regex: '@_mutual_.*:test\\.local' }] },
          rate_limited: false,
        },
      ]),
    });
    alice = await registerUser(server);
    const create = async () => {
      const created = await server.request<{ room_id: string }>('POST', `${V3}/createRoom`, {
        token: alice.accessToken,
        body: { preset: 'public_chat' },
      });
      assert.equal(created.status, 200);
      return created.body.room_id;
    };
    botRoom = await create();
    ghostRoom = await create();
    const registered = await server.request('POST', `${V3}/register`, {
      token: AS_TOKEN,
      body: { type: 'm.login.application_service', username: '_mutual_ghost', inhibit_login: true },
    });
    assert.equal(registered.status, 200);
    const botJoined = await server.request('POST', `${V3}/join/${r(botRoom)}`, {
      token: AS_TOKEN,
      body: {},
    });
    assert.equal(botJoined.status, 200);
    const ghostJoined = await server.request(
      'POST',
      `${V3}/join/${r(ghostRoom)}?user_id=${r(GHOST)}`,
      { token: AS_TOKEN, body: {} },
    );
    assert.equal(ghostJoined.status, 200);
  });
  after(async () => {
    await server.close();
  });

  it('answers for its sender on the query forms, user_id naming the other user', async () => {
    for (const path of [V1, V1_USER, UNSTABLE]) {
      const res = await get(`${path}?user_id=${r(alice.userId)}`);
      assert.equal(res.status, 200, `${path}: ${JSON.stringify(res.body)}`);
      assert.deepEqual(res.body.joined, [botRoom], path);
      assert.equal(res.body.count, 1, path);
    }
    // About one of its own users: the rooms the bot shares with the ghost (none).
    const ghost = await get(`${V1}?user_id=${r(GHOST)}`);
    assert.equal(ghost.status, 200);
    assert.deepEqual(ghost.body, { joined: [], count: 0 });
  });

  it('masquerades on the path forms, where the other user is in the path', async () => {
    for (const name of ['mutual_rooms', 'shared_rooms']) {
      const asGhost = await get(`${legacy(name, alice.userId)}?user_id=${r(GHOST)}`);
      assert.equal(asGhost.status, 200, JSON.stringify(asGhost.body));
      assert.deepEqual(asGhost.body.joined, [ghostRoom], name);
      // Without user_id it is the sender's.
      const asBot = await get(legacy(name, alice.userId));
      assert.equal(asBot.status, 200);
      assert.deepEqual(asBot.body.joined, [botRoom], name);
    }
  });

  it('is unchanged for an ordinary user', async () => {
    const res = await get(`${V1}?user_id=${r(GHOST)}`, alice.accessToken);
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { joined: [ghostRoom], count: 1 });
  });

  it('refuses what it refuses for anyone, with the same errors', async () => {
    // Its sender asking about itself.
    expectError(await get(`${V1}?user_id=${r(BOT)}`), 400, 'M_INVALID_PARAM');
    expectError(await get(`${UNSTABLE}?user_id=${r(BOT)}`), 400, 'M_UNKNOWN');
    // No user, a bad one, the user twice (without mutual_rooms.multi_user).
    expectError(await get(V1), 400, 'M_MISSING_PARAM');
    expectError(await get(`${V1}?user_id=alice`), 400, 'M_INVALID_PARAM');
    expectError(
      await get(`${V1}?user_id=${r(alice.userId)}&user_id=${r(GHOST)}`),
      400,
      'M_INVALID_PARAM',
    );
    // The ghost asking about itself on a path form.
    expectError(
      await get(`${legacy('mutual_rooms', GHOST)}?user_id=${r(GHOST)}`),
      400,
      'M_UNKNOWN',
    );
  });

  it('refuses masquerading outside its namespace or as an unregistered user (403)', async () => {
    expectError(
      await get(`${legacy('mutual_rooms', BOT)}?user_id=${r(alice.userId)}`),
      403,
      'M_FORBIDDEN',
    );
    expectError(
      await get(
        `${legacy('mutual_rooms', alice.userId)}?user_id=${r('@_mutual_nobody:test.local')}`,
      ),
      403,
      'M_FORBIDDEN',
    );
  });

  it('checks a device_id against its sender on the query forms', async () => {
    expectError(
      await get(`${V1}?user_id=${r(alice.userId)}&device_id=NOSUCHDEVICE`),
      400,
      'M_UNKNOWN_DEVICE',
    );
  });

  it('never takes the hs_token', async () => {
    expectError(await get(`${V1}?user_id=${r(alice.userId)}`, HS_TOKEN), 401, 'M_UNKNOWN_TOKEN');
  });
});
