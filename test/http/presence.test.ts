import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { assertMatchesSpec } from '../helpers/spec-contract.js';
import { expectError, uniqueName, type SpecOperation } from '../helpers/assertions.js';

const V3 = '/_matrix/client/v3';
const SPEC = 'presence.yaml';
const STATUS = '/presence/{userId}/status';
const spec = (method: string): SpecOperation => ({ file: SPEC, method, path: STATUS });

interface Presence {
  presence: string;
  last_active_ago?: number;
  status_msg?: string;
  currently_active?: boolean;
}
interface PresenceEvent {
  type: string;
  sender: string;
  content: Presence;
}
interface SyncBody {
  next_batch: string;
  presence?: { events: PresenceEvent[] };
}

forEachDatabase('presence', (dialect) => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer(dialect);
  });
  after(async () => server.close());

  const e = encodeURIComponent;
  const statusPath = (userId: string) => `${V3}/presence/${e(userId)}/status`;
  const newUser = (prefix = 'present') => registerUser(server, uniqueName(prefix));

  async function setPresence(user: TestUser, body: unknown): Promise<void> {
    const response = await server.request('PUT', statusPath(user.userId), {
      token: user.accessToken,
      body,
    });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assertMatchesSpec(SPEC, 'put', STATUS, 200, response.body);
    assert.deepEqual(response.body, {});
  }

  async function presenceOf(viewer: TestUser, userId: string): Promise<Presence> {
    const response = await server.request<Presence>('GET', statusPath(userId), {
      token: viewer.accessToken,
    });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assertMatchesSpec(SPEC, 'get', STATUS, 200, response.body);
    return response.body;
  }

  async function sharedRoom(creator: TestUser, ...others: TestUser[]): Promise<string> {
    const created = await server.request<{ room_id: string }>('POST', `${V3}/createRoom`, {
      token: creator.accessToken,
      body: { preset: 'public_chat' },
    });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    for (const other of others) {
      const joined = await server.request('POST', `${V3}/join/${e(created.body.room_id)}`, {
        token: other.accessToken,
        body: {},
      });
      assert.equal(joined.status, 200, JSON.stringify(joined.body));
    }
    return created.body.room_id;
  }

  async function sync(user: TestUser, query = ''): Promise<SyncBody> {
    const response = await server.request<SyncBody>('GET', `${V3}/sync${query}`, {
      token: user.accessToken,
    });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    return response.body;
  }
  const senders = (body: SyncBody) => (body.presence?.events ?? []).map((ev) => ev.sender).sort();

  it('GET before any presence was set: offline', async () => {
    const user = await newUser();
    assert.deepEqual(await presenceOf(user, user.userId), { presence: 'offline' });
  });

  it('PUT then GET own presence, with and then without a status message', async () => {
    const user = await newUser();
    await setPresence(user, { presence: 'online', status_msg: 'I am here.' });
    const online = await presenceOf(user, user.userId);
    assert.equal(online.presence, 'online');
    assert.equal(online.status_msg, 'I am here.');
    assert.equal(online.currently_active, true);
    assert.ok(
      typeof online.last_active_ago === 'number' &&
        online.last_active_ago >= 0 &&
        online.last_active_ago < 60_000,
      JSON.stringify(online),
    );

    await setPresence(user, { presence: 'unavailable' });
    const away = await presenceOf(user, user.userId);
    assert.equal(away.presence, 'unavailable');
    assert.equal(away.status_msg, undefined);
    assert.equal(away.currently_active, false);

    await setPresence(user, { presence: 'offline', status_msg: null });
    assert.equal((await presenceOf(user, user.userId)).presence, 'offline');
  });

  it("GET someone's presence: allowed when sharing a joined room, else 403 M_FORBIDDEN", async () => {
    const alice = await newUser('alice');
    const bob = await newUser('bob');
    const stranger = await newUser('stranger');
    await setPresence(bob, { presence: 'online', status_msg: 'busy' });
    expectError(
      await server.request('GET', statusPath(bob.userId), { token: alice.accessToken }),
      403,
      'M_FORBIDDEN',
      spec('get'),
    );
    await sharedRoom(alice, bob);
    const seen = await presenceOf(alice, bob.userId);
    assert.equal(seen.presence, 'online');
    assert.equal(seen.status_msg, 'busy');
    // Sharing a room, with no presence set yet: offline.
    await sharedRoom(alice, stranger);
    assert.deepEqual(await presenceOf(stranger, alice.userId), { presence: 'offline' });
    expectError(
      await server.request('GET', statusPath(`@${uniqueName('nobody')}:test.local`), {
        token: alice.accessToken,
      }),
      403,
      'M_FORBIDDEN',
      spec('get'),
    );
  });

  it("PUT someone else's presence: 403 M_FORBIDDEN, nothing changes", async () => {
    const alice = await newUser('alice');
    const bob = await newUser('bob');
    await sharedRoom(alice, bob);
    await setPresence(bob, { presence: 'unavailable' });
    for (const target of [bob.userId, `@${uniqueName('ghost')}:test.local`]) {
      expectError(
        await server.request('PUT', statusPath(target), {
          token: alice.accessToken,
          body: { presence: 'online' },
        }),
        403,
        'M_FORBIDDEN',
      );
    }
    assert.equal((await presenceOf(alice, bob.userId)).presence, 'unavailable');
  });

  for (const presence of ['away', 'ONLINE', 'busy', '']) {
    it(`PUT presence ${JSON.stringify(presence)}: 400 M_INVALID_PARAM`, async () => {
      const user = await newUser();
      expectError(
        await server.request('PUT', statusPath(user.userId), {
          token: user.accessToken,
          body: { presence },
        }),
        400,
        'M_INVALID_PARAM',
      );
      assert.deepEqual(await presenceOf(user, user.userId), { presence: 'offline' });
    });
  }

  const badBodies: [string, unknown][] = [
    ['no presence', { status_msg: 'hi' }],
    ['a presence that is not a string', { presence: 1 }],
    ['a status_msg that is not a string', { presence: 'online', status_msg: 5 }],
    ['an array', ['online']],
  ];
  for (const [what, body] of badBodies) {
    it(`PUT with ${what}: 400 M_BAD_JSON`, async () => {
      const user = await newUser();
      expectError(
        await server.request('PUT', statusPath(user.userId), { token: user.accessToken, body }),
        400,
        'M_BAD_JSON',
      );
    });
  }

  it('PUT with a body that is not JSON, or none: 400 M_NOT_JSON', async () => {
    const user = await newUser();
    for (const rawBody of ['presence=online', '']) {
      expectError(
        await server.request('PUT', statusPath(user.userId), { token: user.accessToken, rawBody }),
        400,
        'M_NOT_JSON',
      );
    }
  });

  for (const userId of ['alice', '@alice', '@:test.local', '@al ice:test.local']) {
    it(`an invalid user ID (${JSON.stringify(userId)}): 400 M_INVALID_PARAM`, async () => {
      const user = await newUser();
      for (const method of ['GET', 'PUT']) {
        expectError(
          await server.request(method, statusPath(userId), {
            token: user.accessToken,
            body: method === 'PUT' ? { presence: 'online' } : undefined,
          }),
          400,
          'M_INVALID_PARAM',
        );
      }
    });
  }

  it('without a token: 401 M_MISSING_TOKEN; with a bad one: 401 M_UNKNOWN_TOKEN', async () => {
    const user = await newUser();
    for (const method of ['GET', 'PUT']) {
      const body = method === 'PUT' ? { presence: 'online' } : undefined;
      expectError(
        await server.request(method, statusPath(user.userId), { body }),
        401,
        'M_MISSING_TOKEN',
      );
      expectError(
        await server.request(method, statusPath(user.userId), { body, token: 'mct_bogus' }),
        401,
        'M_UNKNOWN_TOKEN',
      );
    }
  });

  it('/sync delivers the presence of the user and of room-mates only, then only changes', async () => {
    const alice = await newUser('alice');
    const bob = await newUser('bob');
    const stranger = await newUser('stranger');
    await sharedRoom(alice, bob);
    await setPresence(alice, { presence: 'online' });
    await setPresence(bob, { presence: 'unavailable', status_msg: 'lunch' });
    await setPresence(stranger, { presence: 'online' });

    const initial = await sync(alice, '?set_presence=online');
    assert.deepEqual(senders(initial), [alice.userId, bob.userId].sort());
    const bobs = initial.presence?.events.find((ev) => ev.sender === bob.userId);
    assert.equal(bobs?.type, 'm.presence');
    assert.equal(bobs?.content.presence, 'unavailable');
    assert.equal(bobs?.content.status_msg, 'lunch');

    const quiet = await sync(alice, `?since=${e(initial.next_batch)}&timeout=0`);
    assert.deepEqual(senders(quiet), []);

    await setPresence(stranger, { presence: 'unavailable' });
    await setPresence(bob, { presence: 'online' });
    const next = await sync(alice, `?since=${e(initial.next_batch)}&timeout=0`);
    assert.deepEqual(senders(next), [bob.userId]);
    assert.equal(next.presence?.events[0]?.content.presence, 'online');
  });

  it('an incremental /sync carries the unchanged presence of users who come to share a room', async () => {
    const alice = await newUser('alice');
    const bob = await newUser('bob');
    const carol = await newUser('carol');
    const dave = await newUser('dave');
    await setPresence(bob, { presence: 'online', status_msg: 'here' });
    await setPresence(carol, { presence: 'unavailable' });
    await setPresence(dave, { presence: 'online' });
    const alicesRoom = await sharedRoom(alice);
    const carolsRoom = await sharedRoom(carol, dave);
    const join = async (user: TestUser, roomId: string) => {
      const joined = await server.request('POST', `${V3}/join/${e(roomId)}`, {
        token: user.accessToken,
        body: {},
      });
      assert.equal(joined.status, 200, JSON.stringify(joined.body));
    };
    // set_presence=offline: alice's own syncs write no presence of hers.
    const since = (body: SyncBody) => `?since=${e(body.next_batch)}&timeout=0&set_presence=offline`;
    const initial = await sync(alice, '?set_presence=offline');
    assert.deepEqual(senders(initial), []);

    // Bob joins alice's room: his presence, set before and unchanged since, comes with it.
    await join(bob, alicesRoom);
    const bobJoined = await sync(alice, since(initial));
    assert.deepEqual(senders(bobJoined), [bob.userId]);
    assert.equal(bobJoined.presence?.events[0]?.content.presence, 'online');
    assert.equal(bobJoined.presence?.events[0]?.content.status_msg, 'here');

    // Alice joins carol's room: the presence of everyone in it (bob is not).
    await join(alice, carolsRoom);
    const aliceJoined = await sync(alice, since(bobJoined));
    assert.deepEqual(senders(aliceJoined), [carol.userId, dave.userId].sort());
    const carols = aliceJoined.presence?.events.find((ev) => ev.sender === carol.userId);
    assert.equal(carols?.content.presence, 'unavailable');

    // Told once: the next sync has none of it.
    assert.deepEqual(senders(await sync(alice, since(aliceJoined))), []);
  });

  it("a room-mate's PUT wakes a waiting /sync", async () => {
    const alice = await newUser('alice');
    const bob = await newUser('bob');
    await sharedRoom(alice, bob);
    const initial = await sync(alice);
    const started = Date.now();
    const waiting = server.request<SyncBody>(
      'GET',
      `${V3}/sync?since=${e(initial.next_batch)}&timeout=10000`,
      { token: alice.accessToken },
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
    await setPresence(bob, { presence: 'online', status_msg: 'back' });
    const woken = await waiting;
    assert.equal(woken.status, 200, JSON.stringify(woken.body));
    assert.ok(Date.now() - started < 8000, 'woken before the timeout');
    assert.deepEqual(senders(woken.body), [bob.userId]);
  });

  it('set_presence on /sync records the presence, once per change', async () => {
    const user = await newUser();
    const first = await sync(user, '?set_presence=unavailable');
    assert.equal((await presenceOf(user, user.userId)).presence, 'unavailable');
    // The same presence again writes nothing: the next sync sees no change.
    const second = await sync(
      user,
      `?since=${e(first.next_batch)}&timeout=0&set_presence=unavailable`,
    );
    const third = await sync(
      user,
      `?since=${e(second.next_batch)}&timeout=0&set_presence=unavailable`,
    );
    assert.deepEqual(senders(third), []);
    // Without set_presence a sync means online.
    await sync(user, `?since=${e(third.next_batch)}&timeout=0`);
    assert.equal((await presenceOf(user, user.userId)).presence, 'online');
  });
});
