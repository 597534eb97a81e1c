import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { assertMatchesSpec } from '../helpers/spec-contract.js';
import { expectError, uniqueName, type SpecOperation } from '../helpers/assertions.js';
import { defaultPushRules, rulesetToJson } from '../../src/core/push-rules.js';

const V3 = '/_matrix/client/v3';
const SPEC = 'account-data.yaml';
const GLOBAL_PATH = '/user/{userId}/account_data/{type}';
const ROOM_PATH = '/user/{userId}/rooms/{roomId}/account_data/{type}';
const spec = (method: string, path: string): SpecOperation => ({ file: SPEC, method, path });

interface SyncBody {
  next_batch: string;
  account_data?: { events: { type: string; content: Record<string, unknown> }[] };
  rooms?: {
    join?: Record<string, { account_data?: { events: { type: string; content: unknown }[] } }>;
  };
}

forEachDatabase('account data', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  before(async () => {
    server = await startTestServer(dialect);
    alice = await registerUser(server, uniqueName('alice'));
    bob = await registerUser(server, uniqueName('bob'));
  });
  after(async () => server.close());

  const e = encodeURIComponent;
  const globalPath = (user: TestUser | string, type: string) =>
    `${V3}/user/${e(typeof user === 'string' ? user : user.userId)}/account_data/${e(type)}`;
  const roomPath = (user: TestUser | string, roomId: string, type: string) =>
    `${V3}/user/${e(typeof user === 'string' ? user : user.userId)}/rooms/${e(roomId)}/account_data/${e(type)}`;

  async function put(user: TestUser, path: string, body: unknown): Promise<void> {
    const response = await server.request('PUT', path, { token: user.accessToken, body });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assert.deepEqual(response.body, {});
    const template = path.includes('/rooms/') ? ROOM_PATH : GLOBAL_PATH;
    assertMatchesSpec(SPEC, 'put', template, 200, response.body);
  }

  async function get(user: TestUser, path: string): Promise<unknown> {
    const response = await server.request('GET', path, { token: user.accessToken });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    const template = path.includes('/rooms/') ? ROOM_PATH : GLOBAL_PATH;
    assertMatchesSpec(SPEC, 'get', template, 200, response.body);
    return response.body;
  }

  async function createRoom(user: TestUser): Promise<string> {
    const response = await server.request<{ room_id: string }>('POST', `${V3}/createRoom`, {
      token: user.accessToken,
      body: {},
    });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    return response.body.room_id;
  }

  async function sync(user: TestUser, since?: string): Promise<SyncBody> {
    const query = since ? `?since=${e(since)}&timeout=0` : '';
    const response = await server.request<SyncBody>('GET', `${V3}/sync${query}`, {
      token: user.accessToken,
    });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    return response.body;
  }

  it('PUT then GET global account data gives back the content; a second PUT replaces it', async () => {
    const type = 'org.example.custom.config';
    const content = { custom_account_data_key: 'custom_config_value', nested: { n: [1, 'ü'] } };
    await put(alice, globalPath(alice, type), content);
    assert.deepEqual(await get(alice, globalPath(alice, type)), content);
    await put(alice, globalPath(alice, type), { replaced: true });
    assert.deepEqual(await get(alice, globalPath(alice, type)), { replaced: true });
    await put(alice, globalPath(alice, type), {});
    assert.deepEqual(await get(alice, globalPath(alice, type)), {});
  });

  it('PUT then GET room account data, kept apart per room and from global data', async () => {
    const type = 'org.example.custom.room.config';
    const room1 = await createRoom(alice);
    const room2 = await createRoom(alice);
    await put(alice, roomPath(alice, room1, type), { room: 1 });
    await put(alice, roomPath(alice, room2, type), { room: 2 });
    assert.deepEqual(await get(alice, roomPath(alice, room1, type)), { room: 1 });
    assert.deepEqual(await get(alice, roomPath(alice, room2, type)), { room: 2 });
    expectError(
      await server.request('GET', globalPath(alice, type), { token: alice.accessToken }),
      404,
      'M_NOT_FOUND',
      spec('get', GLOBAL_PATH),
    );
    // Room account data needs no membership (as for tags of rooms one has left).
    const elsewhere = '!somewhere:remote.example';
    await put(alice, roomPath(alice, elsewhere, type), { far: true });
    assert.deepEqual(await get(alice, roomPath(alice, elsewhere, type)), { far: true });
  });

  it('each user has their own account data', async () => {
    const type = uniqueName('org.example.mine.');
    await put(alice, globalPath(alice, type), { owner: 'alice' });
    await put(bob, globalPath(bob, type), { owner: 'bob' });
    assert.deepEqual(await get(alice, globalPath(alice, type)), { owner: 'alice' });
    assert.deepEqual(await get(bob, globalPath(bob, type)), { owner: 'bob' });
  });

  it('GET of a type never set: 404 M_NOT_FOUND', async () => {
    const roomId = await createRoom(alice);
    expectError(
      await server.request('GET', globalPath(alice, 'org.example.unset'), {
        token: alice.accessToken,
      }),
      404,
      'M_NOT_FOUND',
      spec('get', GLOBAL_PATH),
    );
    expectError(
      await server.request('GET', roomPath(alice, roomId, 'org.example.unset'), {
        token: alice.accessToken,
      }),
      404,
      'M_NOT_FOUND',
      spec('get', ROOM_PATH),
    );
  });

  it('GET m.push_rules before any change gives the default rules', async () => {
    const user = await registerUser(server, uniqueName('rules'));
    assert.deepEqual(await get(user, globalPath(user, 'm.push_rules')), {
      global: rulesetToJson(defaultPushRules(user.userId)),
    });
  });

  it("another user's account data: 403 M_FORBIDDEN on GET and PUT, nothing written", async () => {
    const type = 'org.example.private';
    await put(bob, globalPath(bob, type), { secret: 1 });
    const roomId = await createRoom(bob);
    await put(bob, roomPath(bob, roomId, type), { secret: 2 });
    for (const target of [bob.userId, `@${uniqueName('ghost')}:test.local`, 'not-a-user']) {
      expectError(
        await server.request('GET', globalPath(target, type), { token: alice.accessToken }),
        403,
        'M_FORBIDDEN',
        spec('get', GLOBAL_PATH),
      );
      expectError(
        await server.request('PUT', globalPath(target, type), {
          token: alice.accessToken,
          body: { secret: 'pwned' },
        }),
        403,
        'M_FORBIDDEN',
        spec('put', GLOBAL_PATH),
      );
      expectError(
        await server.request('GET', roomPath(target, roomId, type), { token: alice.accessToken }),
        403,
        'M_FORBIDDEN',
        spec('get', ROOM_PATH),
      );
      expectError(
        await server.request('PUT', roomPath(target, roomId, type), {
          token: alice.accessToken,
          body: { secret: 'pwned' },
        }),
        403,
        'M_FORBIDDEN',
        spec('put', ROOM_PATH),
      );
    }
    assert.deepEqual(await get(bob, globalPath(bob, type)), { secret: 1 });
    assert.deepEqual(await get(bob, roomPath(bob, roomId, type)), { secret: 2 });
  });

  for (const type of ['m.fully_read', 'm.push_rules']) {
    it(`PUT ${type} through the account data API: 405 M_BAD_JSON, global and per room`, async () => {
      const user = await registerUser(server, uniqueName('managed'));
      const roomId = await createRoom(user);
      const body = type === 'm.fully_read' ? { event_id: '$x' } : { global: {} };
      expectError(
        await server.request('PUT', globalPath(user, type), { token: user.accessToken, body }),
        405,
        'M_BAD_JSON',
        spec('put', GLOBAL_PATH),
      );
      expectError(
        await server.request('PUT', roomPath(user, roomId, type), {
          token: user.accessToken,
          body,
        }),
        405,
        'M_BAD_JSON',
        spec('put', ROOM_PATH),
      );
      // Reading them stays allowed.
      const read = await server.request('GET', roomPath(user, roomId, type), {
        token: user.accessToken,
      });
      expectError(read, 404, 'M_NOT_FOUND');
    });
  }

  const notObjects: [string, string][] = [
    ['an array', '[1, 2]'],
    ['a string', '"text"'],
    ['a number', '42'],
    ['null', 'null'],
  ];
  for (const [what, rawBody] of notObjects) {
    it(`PUT with ${what} as content: 400 M_BAD_JSON`, async () => {
      const roomId = await createRoom(alice);
      for (const [path, template] of [
        [globalPath(alice, 'org.example.bad'), GLOBAL_PATH],
        [roomPath(alice, roomId, 'org.example.bad'), ROOM_PATH],
      ] as const) {
        expectError(
          await server.request('PUT', path, { token: alice.accessToken, rawBody }),
          400,
          'M_BAD_JSON',
          spec('put', template),
        );
      }
    });
  }

  it('PUT with a body that is not JSON, or none: 400 M_NOT_JSON', async () => {
    const roomId = await createRoom(alice);
    for (const [path, template] of [
      [globalPath(alice, 'org.example.bad'), GLOBAL_PATH],
      [roomPath(alice, roomId, 'org.example.bad'), ROOM_PATH],
    ] as const) {
      for (const rawBody of ['{"unterminated": ', '']) {
        expectError(
          await server.request('PUT', path, { token: alice.accessToken, rawBody }),
          400,
          'M_NOT_JSON',
          spec('put', template),
        );
      }
    }
    expectError(
      await server.request('GET', globalPath(alice, 'org.example.bad'), {
        token: alice.accessToken,
      }),
      404,
      'M_NOT_FOUND',
    );
  });

  for (const roomId of ['@notaroomid:example.org', 'room', '!', '!with space:example.org']) {
    it(`an invalid room ID (${JSON.stringify(roomId)}): 400 M_INVALID_PARAM on GET and PUT`, async () => {
      expectError(
        await server.request('GET', roomPath(alice, roomId, 'org.example.x'), {
          token: alice.accessToken,
        }),
        400,
        'M_INVALID_PARAM',
        spec('get', ROOM_PATH),
      );
      expectError(
        await server.request('PUT', roomPath(alice, roomId, 'org.example.x'), {
          token: alice.accessToken,
          body: { a: 1 },
        }),
        400,
        'M_INVALID_PARAM',
        spec('put', ROOM_PATH),
      );
    });
  }

  it('a type over 255 characters: 400 M_INVALID_PARAM', async () => {
    expectError(
      await server.request('PUT', globalPath(alice, 'x'.repeat(256)), {
        token: alice.accessToken,
        body: {},
      }),
      400,
      'M_INVALID_PARAM',
    );
  });

  it('without a token: 401 M_MISSING_TOKEN; with a bad one: 401 M_UNKNOWN_TOKEN', async () => {
    const roomId = await createRoom(alice);
    for (const path of [globalPath(alice, 'org.example.x'), roomPath(alice, roomId, 'x.y')]) {
      for (const method of ['GET', 'PUT']) {
        const body = method === 'PUT' ? { a: 1 } : undefined;
        expectError(await server.request(method, path, { body }), 401, 'M_MISSING_TOKEN');
        expectError(
          await server.request(method, path, { body, token: 'mct_bogus' }),
          401,
          'M_UNKNOWN_TOKEN',
        );
      }
    }
  });

  it('/sync delivers account data: all on an initial sync, then only what changed', async () => {
    const user = await registerUser(server, uniqueName('syncer'));
    const roomId = await createRoom(user);
    await put(user, globalPath(user, 'org.example.a'), { a: 1 });
    await put(user, roomPath(user, roomId, 'org.example.r'), { r: 1 });

    const initial = await sync(user);
    const globalTypes = (initial.account_data?.events ?? []).map((ev) => ev.type).sort();
    assert.deepEqual(globalTypes, ['m.push_rules', 'org.example.a']);
    const pushRules = initial.account_data?.events.find((ev) => ev.type === 'm.push_rules');
    assert.deepEqual(pushRules?.content, { global: rulesetToJson(defaultPushRules(user.userId)) });
    assert.deepEqual(initial.rooms?.join?.[roomId]?.account_data?.events, [
      { type: 'org.example.r', content: { r: 1 } },
    ]);

    const quiet = await sync(user, initial.next_batch);
    assert.deepEqual(quiet.account_data?.events ?? [], []);

    await put(user, globalPath(user, 'org.example.b'), { b: 2 });
    await put(user, roomPath(user, roomId, 'org.example.r'), { r: 2 });
    const next = await sync(user, initial.next_batch);
    assert.deepEqual(next.account_data?.events, [{ type: 'org.example.b', content: { b: 2 } }]);
    assert.deepEqual(next.rooms?.join?.[roomId]?.account_data?.events, [
      { type: 'org.example.r', content: { r: 2 } },
    ]);
  });

  it('a PUT wakes a waiting /sync of the user', async () => {
    const user = await registerUser(server, uniqueName('waiter'));
    const initial = await sync(user);
    const started = Date.now();
    const waiting = server.request<SyncBody>(
      'GET',
      `${V3}/sync?since=${e(initial.next_batch)}&timeout=10000`,
      { token: user.accessToken },
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
    await put(user, globalPath(user, 'org.example.wake'), { now: true });
    const woken = await waiting;
    assert.equal(woken.status, 200, JSON.stringify(woken.body));
    assert.ok(Date.now() - started < 8000, 'woken before the timeout');
    assert.deepEqual(woken.body.account_data?.events, [
      { type: 'org.example.wake', content: { now: true } },
    ]);
  });
});
