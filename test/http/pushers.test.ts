/**
 * GET /pushers, POST /pushers/set, and delivery to a push gateway (a real HTTP receiver in the
 * test that checks each body against the Push Gateway API's schema): formats, priorities,
 * counts, tweaks, retries, rejected pushkeys, removal with the device, a restart with
 * notifications queued, and two processes on one database.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, it } from 'node:test';
import { createTestDatabase, forEachDatabase, type TestDatabase } from '../helpers/databases.js';
import { startServerOn, type ConfigEnv, type TestServer } from '../helpers/server.js';
import { loginUser, passwordAuth, registerUser, type TestUser } from '../helpers/client.js';
import { eventually } from '../helpers/eventually.js';
import { TestPushGateway, type Notification } from '../helpers/push-gateway.js';
import { assertMatchesSpec } from '../helpers/spec-contract.js';

const C = '/_matrix/client/v3';
const r = encodeURIComponent;
const WAIT_MS = 20_000;

interface Pusher {
  pushkey: string;
  kind: string;
  app_id: string;
  app_display_name: string;
  device_display_name: string;
  profile_tag?: string;
  lang: string;
  data: Record<string, unknown>;
}

forEachDatabase('pushers and delivery to push gateways', (dialect) => {
  let database: TestDatabase;
  let dataDir: string;
  let server: TestServer;
  let gateway: TestPushGateway;
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  let txn = 0;
  let key = 0;
  const env: ConfigEnv = { COMMONS_PUSH_RETRY_MAX_SECONDS: '1' };

  before(async () => {
    gateway = new TestPushGateway();
    await gateway.start();
    database = await createTestDatabase(dialect);
    dataDir = mkdtempSync(path.join(tmpdir(), 'commons-data-'));
    server = await startServerOn(database, dataDir, env);
    [alice, bob, carol] = [
      await registerUser(server),
      await registerUser(server),
      await registerUser(server),
    ];
  });
  after(async () => {
    await server.close();
    await gateway.stop();
    await database.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const pusherBody = (overrides: Record<string, unknown> = {}) => ({
    kind: 'http',
    app_id: 'org.example.app.ios',
    pushkey: `key-${++key}`,
    app_display_name: 'Example',
    device_display_name: "Bob's phone",
    lang: 'en',
    data: { url: gateway.url, custom: 'kept' },
    ...overrides,
  });
  async function setPusher(user: TestUser, body: Record<string, unknown>, status = 200) {
    const res = await server.request<{ errcode?: string }>('POST', `${C}/pushers/set`, {
      token: user.accessToken,
      body,
    });
    assert.equal(res.status, status, JSON.stringify(res.body));
    return res.body;
  }
  async function pushersOf(user: TestUser): Promise<Pusher[]> {
    const res = await server.request<{ pushers: Pusher[] }>('GET', `${C}/pushers`, {
      token: user.accessToken,
    });
    assert.equal(res.status, 200);
    assertMatchesSpec('pusher.yaml', 'get', '/pushers', 200, res.body);
    return res.body.pushers;
  }
  async function createRoom(members: TestUser[], name?: string): Promise<string> {
    const res = await server.request<{ room_id: string }>('POST', `${C}/createRoom`, {
      token: alice.accessToken,
      body: { preset: 'public_chat', ...(name === undefined ? {} : { name }) },
    });
    assert.equal(res.status, 200);
    for (const member of members) {
      const join = await server.request('POST', `${C}/join/${r(res.body.room_id)}`, {
        token: member.accessToken,
        body: {},
      });
      assert.equal(join.status, 200);
    }
    return res.body.room_id;
  }
  async function send(room: string, body: string, through = server): Promise<string> {
    const res = await through.request<{ event_id: string }>(
      'PUT',
      `${C}/rooms/${r(room)}/send/m.room.message/p${++txn}`,
      { token: alice.accessToken, body: { msgtype: 'm.text', body } },
    );
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body.event_id;
  }
  /** The notifications delivered for these events to this pushkey, once each is there. */
  async function deliveredFor(eventIds: string[], pushkey: string): Promise<Notification[]> {
    const of = () =>
      gateway.delivered.filter(
        (n) => n.devices[0]?.pushkey === pushkey && eventIds.includes(n.event_id ?? ''),
      );
    const got = await eventually(
      async () => of(),
      (list) => eventIds.every((id) => list.some((n) => n.event_id === id)),
      WAIT_MS,
    );
    assert.deepEqual(
      [...new Set(got.map((n) => n.event_id))].sort(),
      [...eventIds].sort(),
      'every notification delivered',
    );
    return got;
  }
  async function queueDrained(through = server) {
    const left = await eventually(
      () => through.running.storage.stores.pushers.countQueued(),
      (n) => n === 0,
      WAIT_MS,
    );
    assert.equal(left, 0, 'the push queue drains');
  }

  it('GET /pushers lists, /pushers/set creates, updates and deletes (kind null)', async () => {
    const user = await registerUser(server);
    assert.deepEqual(await pushersOf(user), []);
    const first = pusherBody({ profile_tag: 'tag' });
    await setPusher(user, first);
    const second = pusherBody({ data: { url: gateway.url, format: 'event_id_only' } });
    await setPusher(user, second);
    let listed = await pushersOf(user);
    assert.equal(listed.length, 2);
    const one = listed.find((p) => p.pushkey === first.pushkey);
    assert.deepEqual(one, {
      pushkey: first.pushkey,
      kind: 'http',
      app_id: 'org.example.app.ios',
      app_display_name: 'Example',
      device_display_name: "Bob's phone",
      profile_tag: 'tag',
      lang: 'en',
      data: { url: gateway.url, custom: 'kept' },
    });
    // The same app ID and pushkey: an update, not a second pusher.
    await setPusher(user, { ...first, device_display_name: 'Renamed', lang: 'fr' });
    listed = await pushersOf(user);
    assert.equal(listed.length, 2);
    const updated = listed.find((p) => p.pushkey === first.pushkey);
    assert.equal(updated?.device_display_name, 'Renamed');
    assert.equal(updated?.lang, 'fr');
    // kind null deletes (only the app ID and pushkey are needed); deleting nothing is fine.
    await setPusher(user, { kind: null, app_id: first.app_id, pushkey: first.pushkey });
    await setPusher(user, { kind: null, app_id: first.app_id, pushkey: first.pushkey });
    listed = await pushersOf(user);
    assert.deepEqual(
      listed.map((p) => p.pushkey),
      [second.pushkey],
    );
  });

  it('append false takes the pushkey from other users; append true shares it', async () => {
    const [u1, u2, u3] = [
      await registerUser(server),
      await registerUser(server),
      await registerUser(server),
    ];
    const shared = pusherBody();
    await setPusher(u1, shared);
    await setPusher(u2, { ...shared, append: true });
    assert.equal((await pushersOf(u1)).length, 1);
    assert.equal((await pushersOf(u2)).length, 1);
    await setPusher(u3, shared);
    assert.equal((await pushersOf(u1)).length, 0);
    assert.equal((await pushersOf(u2)).length, 0);
    assert.equal((await pushersOf(u3)).length, 1);
  });

  it('refuses bad /pushers/set bodies with the spec errors', async () => {
    const base = pusherBody();
    const cases: Array<[string, unknown, string]> = [
      ['no kind', { ...base, kind: undefined }, 'M_MISSING_PARAM'],
      ['no app_id', { ...base, app_id: undefined }, 'M_MISSING_PARAM'],
      ['no pushkey', { ...base, pushkey: undefined }, 'M_MISSING_PARAM'],
      ['no app_display_name', { ...base, app_display_name: undefined }, 'M_MISSING_PARAM'],
      ['no device_display_name', { ...base, device_display_name: undefined }, 'M_MISSING_PARAM'],
      ['no lang', { ...base, lang: undefined }, 'M_MISSING_PARAM'],
      ['no data', { ...base, data: undefined }, 'M_MISSING_PARAM'],
      ['no data.url', { ...base, data: {} }, 'M_MISSING_PARAM'],
      ['kind email', { ...base, kind: 'email' }, 'M_INVALID_PARAM'],
      ['kind a number', { ...base, kind: 3 }, 'M_INVALID_PARAM'],
      ['app_id too long', { ...base, app_id: 'a'.repeat(65) }, 'M_INVALID_PARAM'],
      ['pushkey too long', { ...base, pushkey: 'é'.repeat(257) }, 'M_INVALID_PARAM'],
      ['data.url not a URL', { ...base, data: { url: 'nope' } }, 'M_INVALID_PARAM'],
      [
        'data.url another path',
        { ...base, data: { url: 'https://push.example/notify' } },
        'M_INVALID_PARAM',
      ],
      [
        'data.url ftp',
        { ...base, data: { url: 'ftp://push.example/_matrix/push/v1/notify' } },
        'M_INVALID_PARAM',
      ],
      [
        'data.format unknown',
        { ...base, data: { url: gateway.url, format: 'full' } },
        'M_INVALID_PARAM',
      ],
      ['data not an object', { ...base, data: 'x' }, 'M_INVALID_PARAM'],
      ['append not a boolean', { ...base, append: 'yes' }, 'M_INVALID_PARAM'],
      ['profile_tag a number', { ...base, profile_tag: 5 }, 'M_INVALID_PARAM'],
    ];
    for (const [what, body, errcode] of cases) {
      const res = await server.request<{ errcode: string }>('POST', `${C}/pushers/set`, {
        token: bob.accessToken,
        body,
      });
      assert.equal(res.status, 400, what);
      assert.equal(res.body.errcode, errcode, what);
    }
    const array = await server.request<{ errcode: string }>('POST', `${C}/pushers/set`, {
      token: bob.accessToken,
      body: [],
    });
    assert.equal(array.status, 400);
    assert.equal(array.body.errcode, 'M_BAD_JSON');
    for (const [method, p] of [
      ['GET', `${C}/pushers`],
      ['POST', `${C}/pushers/set`],
    ] as const) {
      const res = await server.request<{ errcode: string }>(
        method,
        p,
        method === 'POST' ? { body: base } : {},
      );
      assert.equal(res.status, 401);
      assert.equal(res.body.errcode, 'M_MISSING_TOKEN');
    }
    assert.equal((await pushersOf(bob)).length, 0, 'nothing was stored');
  });

  it('delivers the full format: event, room, sender, counts, priority, device and tweaks', async () => {
    const room = await createRoom([bob], 'Mission Control');
    const pusher = pusherBody();
    await setPusher(bob, pusher);
    const before = Date.now();
    const eventId = await send(room, 'floating in a most peculiar way');
    const [n] = await deliveredFor([eventId], pusher.pushkey);
    assert.ok(n);
    assert.deepEqual(gateway.invalid, [], 'every body matches the Push Gateway API schema');
    // Two members: the one-to-one rule, with its sound, so a high priority.
    const aliceLocal = alice.userId.slice(1, alice.userId.indexOf(':'));
    assert.deepEqual(
      { ...n, devices: undefined },
      {
        event_id: eventId,
        room_id: room,
        type: 'm.room.message',
        sender: alice.userId,
        sender_display_name: aliceLocal,
        room_name: 'Mission Control',
        prio: 'high',
        content: { msgtype: 'm.text', body: 'floating in a most peculiar way' },
        counts: { unread: 1 },
        devices: undefined,
      },
    );
    assert.equal(n.devices.length, 1);
    const device = n.devices[0];
    assert.equal(device?.app_id, pusher.app_id);
    assert.equal(device?.pushkey, pusher.pushkey);
    assert.deepEqual(device?.data, { custom: 'kept' }, 'data without url, custom keys kept');
    assert.deepEqual(device?.tweaks, { sound: 'default' });
    assert.ok(Number.isInteger(device?.pushkey_ts));
    assert.ok(Math.abs((device?.pushkey_ts ?? 0) - Math.floor(before / 1000)) <= 60);
    // A second unread message: the badge counts both.
    const second = await send(room, 'again');
    const [n2] = await deliveredFor([second], pusher.pushkey);
    assert.deepEqual(n2?.counts, { unread: 2 });
    await setPusher(bob, { kind: null, app_id: pusher.app_id, pushkey: pusher.pushkey });
  });

  it('event_id_only: the IDs, counts, priority and device; a group message is low priority', async () => {
    const room = await createRoom([bob, carol]);
    const pusher = pusherBody({ data: { url: gateway.url, format: 'event_id_only' } });
    await setPusher(bob, pusher);
    const eventId = await send(room, 'to the group');
    const [n] = await deliveredFor([eventId], pusher.pushkey);
    assert.ok(n);
    assert.deepEqual(gateway.invalid, []);
    assert.deepEqual(Object.keys(n).sort(), ['counts', 'devices', 'event_id', 'prio', 'room_id']);
    assert.equal(n.event_id, eventId);
    assert.equal(n.room_id, room);
    assert.equal(n.prio, 'low');
    assert.deepEqual(n.devices[0]?.data, { format: 'event_id_only' });
    assert.deepEqual(n.devices[0]?.tweaks, {});
    // A mention highlights: high priority with the highlight and sound tweaks.
    const bobLocal = bob.userId.slice(1, bob.userId.indexOf(':'));
    const mention = await send(room, `hey ${bobLocal}, look`);
    const [m] = await deliveredFor([mention], pusher.pushkey);
    assert.equal(m?.prio, 'high');
    assert.deepEqual(m?.devices[0]?.tweaks, { sound: 'default', highlight: true });
    await setPusher(bob, { kind: null, app_id: pusher.app_id, pushkey: pusher.pushkey });
  });

  it('retries a failing gateway with backoff until it answers, without losing anything', async () => {
    const room = await createRoom([bob]);
    const pusher = pusherBody();
    await setPusher(bob, pusher);
    gateway.failWith = 500;
    gateway.failures = 2;
    const ids = [await send(room, 'one'), await send(room, 'two')];
    const got = await deliveredFor(ids, pusher.pushkey);
    assert.equal(gateway.failures, 0, 'the gateway failed twice first');
    // In order, each once.
    assert.deepEqual(
      got.map((n) => n.event_id),
      ids,
    );
    const attempts = gateway.received.filter((n) => n.event_id === ids[0]).length;
    assert.equal(attempts, 3, 'the first notification was tried three times');
    await queueDrained();
    await setPusher(bob, { kind: null, app_id: pusher.app_id, pushkey: pusher.pushkey });
  });

  it('a 4xx from the gateway drops that notification only', async () => {
    const room = await createRoom([bob]);
    const pusher = pusherBody();
    await setPusher(bob, pusher);
    gateway.failWith = 400;
    gateway.failures = 1;
    const dropped = await send(room, 'refused');
    const kept = await send(room, 'accepted');
    await deliveredFor([kept], pusher.pushkey);
    assert.ok(!gateway.delivered.some((n) => n.event_id === dropped));
    await queueDrained();
    await setPusher(bob, { kind: null, app_id: pusher.app_id, pushkey: pusher.pushkey });
  });

  it('a pushkey the gateway rejects loses its pusher', async () => {
    const room = await createRoom([bob]);
    const pusher = pusherBody();
    await setPusher(bob, pusher);
    gateway.rejecting.add(pusher.pushkey);
    const eventId = await send(room, 'to a dead token');
    await deliveredFor([eventId], pusher.pushkey);
    const left = await eventually(
      () => pushersOf(bob),
      (list) => list.length === 0,
      WAIT_MS,
    );
    assert.deepEqual(left, []);
    await send(room, 'nobody is told');
    await queueDrained();
    gateway.rejecting.clear();
  });

  it('a pusher goes with its device: logout, password change, deactivation', async () => {
    const user = await registerUser(server);
    const other = await loginUser(server, user.userId, user.password);
    const third = await loginUser(server, user.userId, user.password);
    const fourth = await loginUser(server, user.userId, user.password);
    const set = async (token: string) => {
      const body = pusherBody();
      const res = await server.request('POST', `${C}/pushers/set`, { token, body });
      assert.equal(res.status, 200);
      return body.pushkey;
    };
    const keep = await set(user.accessToken);
    const loggedOut = await set(other.accessToken);
    const changed = await set(third.accessToken);
    const keys = async () => (await pushersOf(user)).map((p) => p.pushkey).sort();
    assert.deepEqual(await keys(), [keep, loggedOut, changed].sort());
    assert.equal(
      (await server.request('POST', `${C}/logout`, { token: other.accessToken })).status,
      200,
    );
    assert.deepEqual(await keys(), [keep, changed].sort());
    // A password change that logs the other devices out takes their pushers; the
    // requester's own stays.
    await set(fourth.accessToken);
    const first = await server.request<{ session: string }>('POST', `${C}/account/password`, {
      token: user.accessToken,
      body: { new_password: 'a new horse', logout_devices: true },
    });
    const changedPassword = await server.request('POST', `${C}/account/password`, {
      token: user.accessToken,
      body: {
        new_password: 'a new horse',
        logout_devices: true,
        auth: passwordAuth(user.userId, user.password, first.body.session),
      },
    });
    assert.equal(changedPassword.status, 200, JSON.stringify(changedPassword.body));
    assert.deepEqual(await keys(), [keep]);
    void changed;
    const deactivate = await server.request('POST', `${C}/account/deactivate`, {
      token: user.accessToken,
      body: { auth: passwordAuth(user.userId, 'a new horse') },
    });
    assert.equal(deactivate.status, 200, JSON.stringify(deactivate.body));
    const stored = await server.running.storage.stores.pushers.selectPushersOfUser(user.userId);
    assert.deepEqual(stored, []);
  });

  it('resumes after a restart with notifications queued, in order, each once', async () => {
    const room = await createRoom([bob]);
    const pusher = pusherBody();
    await setPusher(bob, pusher);
    await gateway.stop();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await send(room, `while the gateway is down ${i}`));
    assert.ok((await server.running.storage.stores.pushers.countQueued()) >= 5);
    await server.close();
    await gateway.start();
    server = await startServerOn(database, dataDir, env);
    const got = await deliveredFor(ids, pusher.pushkey);
    assert.deepEqual(
      got.map((n) => n.event_id),
      ids,
    );
    await queueDrained();
    await setPusher(bob, { kind: null, app_id: pusher.app_id, pushkey: pusher.pushkey });
  });

  it(
    'with two processes on one PostgreSQL database, one sends: each notification once',
    { skip: dialect !== 'postgres' && 'several processes need PostgreSQL' },
    async () => {
      const second = await startServerOn(database, dataDir, env);
      try {
        const room = await createRoom([bob]);
        const pusher = pusherBody();
        await setPusher(bob, pusher);
        const ids: string[] = [];
        for (let i = 0; i < 10; i++)
          ids.push(await send(room, `two ${i}`, i % 2 === 0 ? server : second));
        await deliveredFor(ids, pusher.pushkey);
        await queueDrained();
        const got = gateway.delivered.filter((n) => n.devices[0]?.pushkey === pusher.pushkey);
        assert.deepEqual(
          got.map((n) => n.event_id),
          ids,
          'each once, in order',
        );
      } finally {
        await second.close();
      }
    },
  );

  it(
    'with two processes evaluating after the event, one evaluates: each notification and count once',
    { skip: dialect !== 'postgres' && 'several processes need PostgreSQL' },
    async () => {
      // Both processes evaluate every room after the event's transaction (limit 0). The
      // `push-evaluation` lease gives the work to one of them, and a push action is unique per
      // (user, room, event), so even a page evaluated twice adds no notification or count.
      const afterEnv: ConfigEnv = { ...env, COMMONS_PUSH_INLINE_EVALUATION_MAX_MEMBERS: '0' };
      const one = await startServerOn(database, dataDir, afterEnv);
      const two = await startServerOn(database, dataDir, afterEnv);
      try {
        const room = await createRoom([bob]);
        const pusher = pusherBody();
        await setPusher(bob, pusher);
        const ids: string[] = [];
        for (let i = 0; i < 10; i++)
          ids.push(await send(room, `evaluated after ${i}`, i % 2 === 0 ? one : two));
        await deliveredFor(ids, pusher.pushkey);
        await queueDrained();
        const got = gateway.delivered.filter((n) => n.devices[0]?.pushkey === pusher.pushkey);
        assert.deepEqual(
          got.map((n) => n.event_id),
          ids,
          'each once, in order',
        );
        const sync = await one.request<{
          rooms: {
            join: Record<string, { unread_notifications?: { notification_count?: number } }>;
          };
        }>('GET', `${C}/sync`, { token: bob.accessToken });
        assert.equal(sync.status, 200);
        assert.equal(
          sync.body.rooms.join[room]?.unread_notifications?.notification_count,
          10,
          'one push action per event for bob, not one per process',
        );
      } finally {
        await one.close();
        await two.close();
      }
    },
  );
});
