/**
 * What clients see when a partial-state room (MSC3706) completes, after syncing during the
 * gap. A user of A joins C's encrypted room of `MEMBERS` members, named (so no hero's member
 * event comes with the join); C goes away at once, so the room stays partial, and the test
 * holds the room's fetch lease while it syncs, receives a message from a member whose join A
 * does not hold yet, and takes tokens. Then the lease is given back and the fetch completes.
 * After that:
 * - a lazy-loading client's incremental /sync from a token of the gap has the member events of
 *   the gap's senders it lacked, and the room summary's counts and heroes as /joined_members;
 * - a client that does not lazy-load never sees the room during the gap, and sees it after as
 *   a newly joined room with its full state;
 * - `device_lists.changed` names the remote members learnt, and `/keys/query` of one answers
 *   its devices from the list A now tracks;
 * - sliding sync holds the room back from a list of every member, and sends it in full once
 *   complete;
 * - `/members?at=<token of the gap>` is the full list at that point.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, it } from 'node:test';
import { createEventWriter } from '../../src/services/event-writer.js';
import { loginUser, registerUser, type TestUser } from '../helpers/client.js';
import { createTestDatabase, forEachDatabase, type TestDatabase } from '../helpers/databases.js';
import { eventually } from '../helpers/eventually.js';
import {
  federationEnv,
  freePort,
  makeTestCa,
  startFederatedServer,
  type TestCa,
} from '../helpers/federation.js';
import { startServerOn, type TestServer } from '../helpers/server.js';
import { serviceContextOf } from '../helpers/services.js';

type Federated = TestServer & { serverName: string; port: number };
type Session = Pick<TestUser, 'userId' | 'accessToken' | 'deviceId'>;
const r = encodeURIComponent;
const MEMBERS = 300;
/** Who holds the room's fetch lease while the test looks at the gap. */
const HOLDER = 'test-holds-the-gap';

const LAZY = JSON.stringify({ room: { state: { lazy_load_members: true } } });

interface SyncEvent {
  type: string;
  state_key?: string;
  sender: string;
  content: Record<string, unknown>;
}
interface JoinedRoom {
  summary: Record<string, unknown>;
  state: { events: SyncEvent[] };
  timeline: { events: SyncEvent[]; limited: boolean };
}
interface Sync {
  next_batch: string;
  rooms: { join: Record<string, JoinedRoom> };
  device_lists: { changed: string[] };
}

const deviceKeysOf = (user: Session) => ({
  user_id: user.userId,
  device_id: user.deviceId,
  algorithms: ['m.olm.v1.curve25519-aes-sha2', 'm.megolm.v1.aes-sha2'],
  keys: {
    [`curve25519:${user.deviceId}`]: `curve-of-${user.deviceId}`,
    [`ed25519:${user.deviceId}`]: `ed-of-${user.deviceId}`,
  },
  signatures: { [user.userId]: { [`ed25519:${user.deviceId}`]: 'sig' } },
});

const as =
  (server: TestServer, user: Session) =>
  <T = Record<string, unknown>>(method: string, p: string, body?: unknown) =>
    server.request<T>(method, `/_matrix/client/v3${p}`, {
      token: user.accessToken,
      ...(body !== undefined ? { body } : {}),
    });

/** `count` members joined to the room, straight through the event writer. */
async function addMembers(server: Federated, roomId: string, prefix: string, count: number) {
  const ctx = serviceContextOf(server);
  const writer = createEventWriter(ctx);
  await ctx.storage.tx('test-members', async (stores) => {
    await stores.rooms.lockRoom(roomId);
    for (let j = 0; j < count; j++) {
      const user = `@${prefix}${String(j).padStart(5, '0')}:${server.serverName}`;
      await writer.append(stores, roomId, {
        type: 'm.room.member',
        stateKey: user,
        sender: user,
        content: { membership: 'join', displayname: `Member ${j}` },
      });
    }
  });
}

/** A message from `sender` (a member without an account) made on its server, sent on. */
async function sendAs(server: Federated, roomId: string, sender: string, body: string) {
  const ctx = serviceContextOf(server);
  const writer = createEventWriter(ctx);
  const federation = server.running.services.federation;
  assert.ok(federation);
  writer.addDeriver(federation.deriver);
  await ctx.storage.tx('test-message', async (stores) => {
    await stores.rooms.lockRoom(roomId);
    await writer.append(stores, roomId, {
      type: 'm.room.message',
      sender,
      content: { msgtype: 'm.text', body },
    });
  });
}

/** A request asked again after a 429's `retry_after_ms` (as clients do), 5 times at most. */
async function retried<T extends { status: number; body: unknown }>(
  ask: () => Promise<T>,
): Promise<T> {
  for (let i = 0; ; i++) {
    const answer = await ask();
    if (answer.status !== 429 || i === 5) return answer;
    const wait = (answer.body as { retry_after_ms?: number }).retry_after_ms;
    await new Promise((resolve) => setTimeout(resolve, wait ?? 1000));
  }
}

forEachDatabase('a partial-state room completing under syncing clients', (dialect) => {
  let ca: TestCa;
  let a: Federated;
  let c: Federated;
  let cDatabase: TestDatabase;
  let cDir: string;
  let cPort: number;
  let alice: TestUser;
  /** Alice's second device, whose client does not lazy-load members. */
  let eager: Session;
  let carol: TestUser;
  let dave: TestUser;
  let roomId = '';
  const startC = async () => {
    c = Object.assign(await startServerOn(cDatabase, cDir, federationEnv(ca, cPort)), {
      serverName: `127.0.0.1:${cPort}`,
      port: cPort,
    });
  };
  const sync = (user: Session, since: string | undefined, filter?: string) =>
    as(a, user)<Sync>(
      'GET',
      `/sync?timeout=0${since !== undefined ? `&since=${r(since)}` : ''}${
        filter !== undefined ? `&filter=${r(filter)}` : ''
      }`,
    );
  const stores = () => serviceContextOf(a).storage.stores;

  before(async () => {
    ca = makeTestCa();
    a = await startFederatedServer(dialect, ca);
    cDatabase = await createTestDatabase(dialect);
    cDir = mkdtempSync(path.join(tmpdir(), 'commons-data-'));
    cPort = await freePort();
    await startC();
    alice = await registerUser(a, 'alice');
    eager = await loginUser(a, 'alice', alice.password);
    carol = await registerUser(c, 'carol');
    dave = await registerUser(c, 'dave');
  });
  after(async () => {
    await a?.close();
    await c?.close();
    await cDatabase?.drop();
    rmSync(cDir, { recursive: true, force: true });
    rmSync(ca.dir, { recursive: true, force: true });
  });

  // Tokens of the gap: lazy-loading device, the other device, a sliding sync connection.
  let gapLazy = '';
  let gapEager = '';
  let slidingPos = '';
  /** Sliding sync of every member of alice's rooms (or lazily), on the connection from `pos`. */
  const slide = async (pos: string | undefined, members: '*' | '$LAZY' = '*') => {
    const res = await a.request<{
      pos: string;
      rooms: Record<
        string,
        { initial?: boolean; required_state?: SyncEvent[]; joined_count?: number }
      >;
    }>(
      'POST',
      `/_matrix/client/unstable/org.matrix.simplified_msc3575/sync?timeout=0${
        pos !== undefined ? `&pos=${r(pos)}` : ''
      }`,
      {
        token: eager.accessToken,
        body: {
          lists: {
            all: {
              ranges: [[0, 9]],
              timeline_limit: 1,
              required_state: [['m.room.member', members]],
            },
          },
        },
      },
    );
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body;
  };
  const gapSender = () => `@g00007:${c.serverName}`;

  it('joins with partial state and syncs during the gap', async () => {
    const created = await as(c, carol)<{ room_id: string }>('POST', '/createRoom', {
      preset: 'public_chat',
      room_version: '11',
      name: 'The gap',
      initial_state: [
        {
          type: 'm.room.encryption',
          state_key: '',
          content: { algorithm: 'm.megolm.v1.aes-sha2' },
        },
      ],
    });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    roomId = created.body.room_id;
    const uploaded = await as(c, dave)('POST', '/keys/upload', { device_keys: deviceKeysOf(dave) });
    assert.equal(uploaded.status, 200, JSON.stringify(uploaded.body));
    assert.equal((await as(c, dave)('POST', `/join/${r(roomId)}`, {})).status, 200);
    await addMembers(c, roomId, 'g', MEMBERS);

    const lazy0 = await sync(alice, undefined, LAZY);
    const eager0 = await sync(eager, undefined);
    const joined = await as(a, alice)('POST', `/join/${r(roomId)}?via=${r(c.serverName)}`, {});
    assert.equal(joined.status, 200, JSON.stringify(joined.body));
    await c.close();
    assert.ok(await stores().partialState.selectPartialRoom(roomId), 'partial when /join answers');
    // The first fetch fails (C is down) and gives its lease back; the test takes it, so that
    // no retry completes the room while the test looks at the gap.
    const held = await eventually(
      () => stores().partialState.updateLease(roomId, HOLDER, Date.now(), Date.now() + 3_600_000),
      (ok) => ok,
      30_000,
    );
    assert.ok(held, 'the test holds the fetch lease');
    await startC();

    // The lazy-loading client has the room at once; the other one not until it is complete.
    const lazy1 = await sync(alice, lazy0.body.next_batch, LAZY);
    assert.ok(lazy1.body.rooms.join[roomId], 'a lazy-loading client has the partial room');
    const eager1 = await sync(eager, eager0.body.next_batch);
    assert.equal(eager1.status, 200);
    assert.equal(eager1.body.rooms.join[roomId], undefined, 'held back while partial');

    // A member whose join A does not hold yet writes; A accepts the message.
    await sendAs(c, roomId, gapSender(), 'during the gap');
    const lazy2 = await eventually(
      () => sync(alice, lazy1.body.next_batch, LAZY),
      (res) =>
        res.body.rooms.join[roomId]?.timeline.events.some((e) => e.sender === gapSender()) === true,
      30_000,
    );
    const room = lazy2.body.rooms.join[roomId];
    assert.ok(room, JSON.stringify(lazy2.body));
    assert.ok(
      !room.state.events.some((e) => e.state_key === gapSender()),
      "the sender's member event is not known yet",
    );
    // Sliding sync: a list of lazy members has the partial room; one of every member holds it
    // back (its member list is not all known), as Synapse does.
    const lazySlid = await slide(undefined, '$LAZY');
    assert.ok(lazySlid.rooms[roomId], 'a lazy sliding sync list has the partial room');
    const slid = await slide(undefined);
    assert.equal(slid.rooms[roomId], undefined, 'held back from a list of every member');
    const slidAgain = await slide(slid.pos);
    assert.equal(slidAgain.rooms[roomId], undefined, 'still held back');
    slidingPos = slidAgain.pos;
    for (const res of [lazy1, lazy2])
      assert.ok(!res.body.device_lists.changed.includes(dave.userId), 'dave is not known yet');
    gapLazy = lazy2.body.next_batch;
    const eager2 = await sync(eager, eager1.body.next_batch);
    assert.equal(eager2.body.rooms.join[roomId], undefined, 'still held back');
    gapEager = eager2.body.next_batch;
    assert.ok(await stores().partialState.selectPartialRoom(roomId), 'still partial');
  });

  let expected: string[] = [];
  it('completes once the fetch may run', async () => {
    await stores().partialState.releaseLease(roomId, HOLDER);
    const members = await retried(() =>
      as(a, alice)<{ joined: Record<string, unknown> }>(
        'GET',
        `/rooms/${r(roomId)}/joined_members`,
      ),
    );
    assert.equal(members.status, 200, JSON.stringify(members.body));
    expected = Object.keys(members.body.joined).sort();
    assert.equal(expected.length, MEMBERS + 3, 'carol, dave, the members, alice');
    assert.equal(await stores().partialState.selectPartialRoom(roomId), undefined);
  });

  it("a lazy-loading client's incremental sync has the gap senders' members and a right summary", async () => {
    const res = await sync(alice, gapLazy, LAZY);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const room = res.body.rooms.join[roomId];
    assert.ok(room, `the room is in the sync after completion: ${JSON.stringify(res.body)}`);
    const member = room.state.events.find(
      (e) => e.type === 'm.room.member' && e.state_key === gapSender(),
    );
    assert.equal(member?.content.membership, 'join', 'the gap sender member event');
    // Not every member: only those it needs.
    assert.ok(
      room.state.events.filter((e) => e.type === 'm.room.member').length < 10,
      'lazy loading: not the whole member list',
    );
    assert.equal(room.summary['m.joined_member_count'], expected.length);
    const heroes = room.summary['m.heroes'] as string[];
    assert.deepEqual(heroes, expected.filter((u) => u !== alice.userId).slice(0, 5));
  });

  it('a client that does not lazy-load gets the room as newly joined, with its full state', async () => {
    const res = await sync(eager, gapEager);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const room = res.body.rooms.join[roomId];
    assert.ok(room, `the room is in the sync after completion: ${JSON.stringify(res.body)}`);
    const stateMembers = room.state.events
      .filter((e) => e.type === 'm.room.member' && e.content.membership === 'join')
      .map((e) => e.state_key);
    const inTimeline = room.timeline.events
      .filter((e) => e.type === 'm.room.member' && e.content.membership === 'join')
      .map((e) => e.state_key);
    assert.deepEqual([...new Set([...stateMembers, ...inTimeline])].sort(), expected);
    assert.ok(room.state.events.some((e) => e.type === 'm.room.encryption'));
    assert.equal(room.summary['m.joined_member_count'], expected.length);
  });

  it('the remote members learnt are in device_lists.changed, and /keys/query answers for them', async () => {
    const res = await sync(alice, gapLazy, LAZY);
    assert.ok(res.body.device_lists.changed.includes(dave.userId), JSON.stringify(res.body));
    assert.ok(res.body.device_lists.changed.includes(carol.userId));
    const query = await as(a, alice)<{ device_keys: Record<string, Record<string, unknown>> }>(
      'POST',
      '/keys/query',
      { device_keys: { [dave.userId]: [] } },
    );
    assert.equal(query.status, 200, JSON.stringify(query.body));
    assert.ok(query.body.device_keys[dave.userId]?.[dave.deviceId], JSON.stringify(query.body));
    // Tracked from now on: the list is kept, and kept up to date by C's updates.
    const [cached] = await stores().remoteDevices.selectRemoteDeviceLists([dave.userId]);
    assert.ok(cached, "dave's device list is tracked");
    const since = res.body.next_batch;
    const daveAgain = await loginUser(c, 'dave', dave.password);
    const uploaded = await as(c, daveAgain)('POST', '/keys/upload', {
      device_keys: deviceKeysOf(daveAgain),
    });
    assert.equal(uploaded.status, 200, JSON.stringify(uploaded.body));
    const told = await eventually(
      () => sync(alice, since, LAZY),
      (next) => next.body.device_lists.changed.includes(dave.userId),
      30_000,
    );
    assert.ok(told.body.device_lists.changed.includes(dave.userId), "dave's new device told");
    const requery = await eventually(
      () =>
        as(a, alice)<{ device_keys: Record<string, Record<string, unknown>> }>(
          'POST',
          '/keys/query',
          { device_keys: { [dave.userId]: [] } },
        ),
      (answer) => answer.body.device_keys[dave.userId]?.[daveAgain.deviceId] !== undefined,
      30_000,
    );
    assert.ok(requery.body.device_keys[dave.userId]?.[daveAgain.deviceId], 'the new device');
  });

  it('sliding sync sends the room in full once it is complete', async () => {
    const res = await slide(slidingPos);
    const room = res.rooms[roomId];
    assert.ok(room, `the completed room is updated: ${JSON.stringify(res)}`);
    assert.equal(room.initial, true);
    assert.deepEqual(
      (room.required_state ?? [])
        .filter((e) => e.type === 'm.room.member' && e.content.membership === 'join')
        .map((e) => e.state_key)
        .sort(),
      expected,
    );
    assert.equal(room.joined_count, expected.length);
    // Once: the next answer has nothing more of it.
    const next = await slide(res.pos);
    assert.equal(next.rooms[roomId], undefined);
  });

  it('/members?at=<token of the gap> is the full list at that point', async () => {
    const res = await as(a, alice)<{
      chunk: { state_key: string; content: { membership: string } }[];
    }>('GET', `/rooms/${r(roomId)}/members?at=${r(gapLazy)}`);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(
      res.body.chunk
        .filter((e) => e.content.membership === 'join')
        .map((e) => e.state_key)
        .sort(),
      expected,
    );
    // And at a token after completion that is not the present (a message follows it).
    const later = (await sync(alice, undefined, LAZY)).body.next_batch;
    const sent = await as(a, alice)('PUT', `/rooms/${r(roomId)}/send/m.room.message/t1`, {
      msgtype: 'm.text',
      body: 'after the gap',
    });
    assert.equal(sent.status, 200, JSON.stringify(sent.body));
    const then = await as(a, alice)<{ chunk: { state_key: string }[] }>(
      'GET',
      `/rooms/${r(roomId)}/members?at=${r(later)}`,
    );
    assert.deepEqual(then.body.chunk.map((e) => e.state_key).sort(), expected);
  });
});
