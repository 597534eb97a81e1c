import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, it } from 'node:test';
import { createTestDatabase, forEachDatabase, type TestDatabase } from '../helpers/databases.js';
import { startServerOn, type ConfigEnv, type TestServer } from '../helpers/server.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { eventually } from '../helpers/eventually.js';
import { TestBridge, writeRegistrations } from '../helpers/appservice.js';

const V3 = '/_matrix/client/v3';
const r = encodeURIComponent;
const AS_TOKEN = 'as_token_queue_0123456789';
const HS_TOKEN = 'hs_token_queue_0123456789';
const WAIT_MS = 20_000;

forEachDatabase('application service transactions (the durable queue)', (dialect) => {
  let database: TestDatabase;
  let dataDir: string;
  let env: ConfigEnv;
  let server: TestServer;
  let bridge: TestBridge;
  /** A service whose `rooms` namespace holds every room, and which has no users in any. */
  let roomsBridge: TestBridge;
  let human: TestUser;
  let roomId: string;

  before(async () => {
    bridge = new TestBridge();
    await bridge.start();
    roomsBridge = new TestBridge();
    await roomsBridge.start();
    env = {
      COMMONS_APP_SERVICES_CONFIG_FILES: writeRegistrations([
        {
          id: 'queue',
          url: bridge.url,
          as_token: AS_TOKEN,
          hs_token: HS_TOKEN,
          sender_localpart: 'queuebot',
          namespaces: {
            users: [{ exclusive: true, regex: '@_q_.*:test\\.local' }],
            aliases: [{ exclusive: true, regex: '#_q_.*:test\\.local' }],
            rooms: [{ exclusive: false, regex: '!never-matches:test\\.local' }],
          },
          rate_limited: false,
        },
        {
          id: 'rooms',
          url: roomsBridge.url,
          as_token: 'as_token_rooms_0123456789',
          hs_token: 'hs_token_rooms_0123456789',
          sender_localpart: 'roomsbot',
          namespaces: {
            users: [{ exclusive: true, regex: '@_rns_.*:test\\.local' }],
            rooms: [{ exclusive: false, regex: '!.*:test\\.local' }],
          },
        },
      ]),
      COMMONS_APP_SERVICES_RETRY_MAX_SECONDS: '1',
    };
    database = await createTestDatabase(dialect);
    dataDir = mkdtempSync(path.join(tmpdir(), 'commons-data-'));
    server = await startServerOn(database, dataDir, env);
    human = await registerUser(server);
    const created = await server.request<{ room_id: string }>('POST', `${V3}/createRoom`, {
      token: human.accessToken,
      body: { preset: 'public_chat' },
    });
    roomId = created.body.room_id;
    const registered = await server.request('POST', `${V3}/register`, {
      token: AS_TOKEN,
      body: { type: 'm.login.application_service', username: '_q_virtual', inhibit_login: true },
    });
    assert.equal(registered.status, 200);
    const joined = await server.request(
      'POST',
      `${V3}/rooms/${r(roomId)}/join?user_id=${r('@_q_virtual:test.local')}`,
      { token: AS_TOKEN },
    );
    assert.equal(joined.status, 200, JSON.stringify(joined.body));
  });
  after(async () => {
    await server.close();
    await bridge.stop();
    await roomsBridge.stop();
    await database.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const send = async (body: string, room = roomId, token = human.accessToken) => {
    const sent = await server.request<{ event_id: string }>(
      'PUT',
      `${V3}/rooms/${r(room)}/send/m.room.message/${r(body)}`,
      { token, body: { msgtype: 'm.text', body } },
    );
    assert.equal(sent.status, 200, JSON.stringify(sent.body));
    return sent.body.event_id;
  };
  const received = (eventIds: string[]) =>
    eventually(
      async () => bridge.events.map((e) => e.event_id),
      (ids) => eventIds.every((id) => ids.includes(id)),
      WAIT_MS,
    );
  /** Each event once (a transaction retried under its ID counts once), in stream order. */
  const assertOnceInOrder = (eventIds: string[]) => {
    const ids = bridge.events.map((e) => e.event_id);
    for (const id of eventIds) assert.equal(ids.filter((x) => x === id).length, 1, id);
    const positions = eventIds.map((id) => ids.indexOf(id));
    assert.deepEqual(
      positions,
      [...positions].sort((a, b) => a - b),
    );
  };

  it('pushes events of rooms where a namespaced user is joined, with the hs_token', async () => {
    const ids = [await send('one'), await send('two')];
    await received(ids);
    assertOnceInOrder(ids);
    const join = bridge.events.find(
      (e) => e.type === 'm.room.member' && e.content.membership === 'join',
    );
    assert.ok(join, 'the virtual user’s own join is pushed');
    for (const txn of bridge.transactions) {
      assert.equal(txn.authorization, `Bearer ${HS_TOKEN}`);
      assert.match(txn.txnId, /^\d+$/);
    }
    const event = bridge.events.find((e) => e.event_id === ids[0]);
    assert.equal(event?.room_id, roomId);
    assert.equal(event?.sender, human.userId);
  });

  it('pushes nothing of rooms it has no interest in; an alias in a namespace makes interest', async () => {
    const other = await server.request<{ room_id: string }>('POST', `${V3}/createRoom`, {
      token: human.accessToken,
      body: {},
    });
    const quiet = await send('not for the bridge', other.body.room_id);
    const aliased = await server.request<{ room_id: string }>('POST', `${V3}/createRoom`, {
      token: human.accessToken,
      body: {},
    });
    // An alias in the exclusive namespace is the service's to create.
    const alias = await server.request('PUT', `${V3}/directory/room/${r('#_q_lobby:test.local')}`, {
      token: AS_TOKEN,
      body: { room_id: aliased.body.room_id },
    });
    assert.equal(alias.status, 200, JSON.stringify(alias.body));
    const loud = await send('for the bridge', aliased.body.room_id);
    const marker = await send('marker');
    await received([loud, marker]);
    assert.ok(!bridge.events.some((e) => e.event_id === quiet));
  });

  it('pushes the events of a room whose ID is in its rooms namespace, with none of its users there', async () => {
    const other = await server.request<{ room_id: string }>('POST', `${V3}/createRoom`, {
      token: human.accessToken,
      body: {},
    });
    const id = await send('in a namespaced room', other.body.room_id);
    await eventually(
      async () => roomsBridge.events.map((e) => e.event_id),
      (ids) => ids.includes(id),
      WAIT_MS,
    );
    // The users' bridge has no interest in that room.
    const marker = await send('marker 2');
    await received([marker]);
    assert.ok(!bridge.events.some((e) => e.event_id === id));
  });

  it('pushes the events of a room where a namespaced user is only invited', async () => {
    const other = await server.request<{ room_id: string }>('POST', `${V3}/createRoom`, {
      token: human.accessToken,
      body: {},
    });
    const room = other.body.room_id;
    const before = await send('before the invite', room);
    const invited = await server.request('POST', `${V3}/rooms/${r(room)}/invite`, {
      token: human.accessToken,
      body: { user_id: '@_q_virtual:test.local' },
    });
    assert.equal(invited.status, 200, JSON.stringify(invited.body));
    const after = await send('after the invite', room);
    await received([after]);
    const invite = bridge.events.find(
      (e) => e.room_id === room && e.type === 'm.room.member' && e.content.membership === 'invite',
    );
    assert.ok(invite, 'the invite itself is pushed');
    assert.ok(!bridge.events.some((e) => e.event_id === before));
  });

  it('a bridge that does not answer holds up no local request', async () => {
    bridge.holding = true;
    const first = await send('held 0');
    // The transaction carrying it reached the bridge, which does not answer.
    await eventually(
      async () => bridge.heldCount,
      (n) => n > 0,
      WAIT_MS,
    );
    const ids = [first];
    for (let i = 1; i < 6; i++) ids.push(await send(`held ${i}`));
    // Every send was answered while the bridge still held its transaction unanswered.
    assert.ok(bridge.heldCount > 0);
    bridge.release();
    await received(ids);
    assertOnceInOrder(ids);
  });

  it('retries a failing bridge with the same transaction; every event arrives once, in order', async () => {
    bridge.failWith = 500;
    const failures0 = bridge.failures;
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await send(`while failing ${i}`));
    // Sending did not wait for the bridge; it was tried, refused, and tried again.
    await eventually(
      async () => bridge.failures,
      (count) => count >= failures0 + 2,
      WAIT_MS,
    );
    bridge.failWith = null;
    await received(ids);
    assertOnceInOrder(ids);
  });

  it('a bridge stopped then started again receives every event once, in order, batched', async () => {
    await bridge.stop();
    const ids: string[] = [];
    for (let i = 0; i < 150; i++) ids.push(await send(`while stopped ${i}`));
    const before = bridge.transactions.length;
    await bridge.start();
    await received(ids);
    assertOnceInOrder(ids);
    // Fallen behind: the backlog goes in transactions of up to 100 events, not one by one.
    assert.ok(bridge.transactions.length - before <= 3, `${bridge.transactions.length - before}`);
  });

  it('resumes after a restart of Commons with events queued', async () => {
    await bridge.stop();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await send(`before restart ${i}`));
    await server.close();
    await bridge.start();
    server = await startServerOn(database, dataDir, env);
    await received(ids);
    assertOnceInOrder(ids);
    const after = await send('after restart');
    await received([after]);
    assertOnceInOrder([...ids, after]);
  });

  it(
    'with two processes on one PostgreSQL database, one sends: each event once, in order',
    {
      skip: dialect !== 'postgres' && 'several processes need PostgreSQL',
    },
    async () => {
      const second = await startServerOn(database, dataDir, env);
      try {
        const ids: string[] = [];
        for (let i = 0; i < 20; i++) {
          // Alternate the processes the events are written through.
          const through = i % 2 === 0 ? server : second;
          const sent = await through.request<{ event_id: string }>(
            'PUT',
            `${V3}/rooms/${r(roomId)}/send/m.room.message/two-${i}`,
            { token: human.accessToken, body: { msgtype: 'm.text', body: `two ${i}` } },
          );
          assert.equal(sent.status, 200);
          ids.push(sent.body.event_id);
        }
        await received(ids);
        assertOnceInOrder(ids);
        // No transaction ID was used for two different sets of events.
        const byId = new Map<string, string>();
        for (const txn of bridge.transactions) {
          const events = txn.events.map((e) => e.event_id).join(',');
          assert.equal(byId.get(txn.txnId) ?? events, events, txn.txnId);
          byId.set(txn.txnId, events);
        }
      } finally {
        await second.close();
      }
    },
  );
});
