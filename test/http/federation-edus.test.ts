/**
 * EDUs and end-to-end encryption between servers, on two Commons servers A and B (TLS from a
 * CA made for the test). B's user Bob is made a member of Alice's room on A as a remote join
 * would (the room import is another part of federation). Proven here:
 * - outbound: Alice's typing, read receipts, presence, device keys and to-device messages are
 *   queued for the servers of the room (a server that never answers keeps them in the outbox);
 * - inbound: `receiveEdus` applies B's EDUs so that Alice's /sync shows them, and skips those
 *   that are malformed, of unknown type, or about users of another server than the sender;
 * - `/user/devices`, `/user/keys/query`, `/user/keys/claim` served for local users (each error);
 * - Alice's `/keys/query` and `/keys/claim` for Bob are asked of B; an unreachable server is in
 *   `failures`; a device-list update with a gap makes A fetch Bob's list again.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, it } from 'node:test';
import { canonicalJson } from '../../src/core/canonical-json.js';
import { computeEventId } from '../../src/core/event-hashing.js';
import type { Pdu } from '../../src/core/pdu.js';
import { generateSigningKey } from '../../src/core/signing.js';
import { xMatrixHeader } from '../../src/core/x-matrix.js';
import type { FederationService } from '../../src/services/federation/index.js';
import type { EduReceiver } from '../../src/services/federation/edus.js';
import { forEachDatabase } from '../helpers/databases.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { eventually } from '../helpers/eventually.js';
import { httpsJson, makeTestCa, startFederatedServer, type TestCa } from '../helpers/federation.js';
import type { TestServer } from '../helpers/server.js';

type Federated = TestServer & { serverName: string; port: number };
const r = encodeURIComponent;
/** A server name nothing answers for: what is queued for it stays in the outbox. */
const DEAD = '127.0.0.1:9';

/** Stores a remote user's join in a room, as a join over federation would leave it. */
async function remoteJoin(server: TestServer, roomId: string, userId: string): Promise<void> {
  const pdu = {
    type: 'm.room.member',
    state_key: userId,
    sender: userId,
    room_id: roomId,
    content: { membership: 'join' },
    origin_server_ts: Date.now(),
    depth: 100,
    prev_events: [],
    auth_events: [],
    hashes: { sha256: 'x' },
    signatures: {},
  } as unknown as Pdu;
  const eventId = computeEventId(pdu, '10');
  await server.running.storage.tx('testRemoteJoin', async (stores) => {
    const position = await stores.rooms.nextStreamPosition();
    await stores.rooms.persistEvent(
      {
        eventId,
        roomId,
        pdu,
        json: canonicalJson(pdu),
        clientJson: JSON.stringify({ ...pdu, event_id: eventId }),
        membership: { userId, membership: 'join', displayname: null, avatarUrl: null },
      },
      position,
    );
    await stores.stream.notify({ rooms: [roomId], memberRooms: [roomId], users: [userId] });
  });
}

interface QueuedEdu {
  edu_type: string;
  content: Record<string, unknown>;
}

interface SyncBody {
  next_batch: string;
  rooms?: { join?: Record<string, { ephemeral?: { events: QueuedEdu[] } }> };
  presence?: { events: { sender: string; content: Record<string, unknown> }[] };
  to_device?: { events: { sender: string; type: string; content: Record<string, unknown> }[] };
  device_lists?: { changed?: string[] };
}

const deviceKeysOf = (user: TestUser) => ({
  user_id: user.userId,
  device_id: user.deviceId,
  algorithms: ['m.olm.v1.curve25519-aes-sha2', 'm.megolm.v1.aes-sha2'],
  keys: {
    [`curve25519:${user.deviceId}`]: 'curve-of-' + user.deviceId,
    [`ed25519:${user.deviceId}`]: 'ed-of-' + user.deviceId,
  },
  signatures: { [user.userId]: { [`ed25519:${user.deviceId}`]: 'sig' } },
});

forEachDatabase('EDUs and end-to-end keys between servers', (dialect) => {
  let ca: TestCa;
  let a: Federated;
  let b: Federated;
  let alice: TestUser;
  let bob: TestUser;
  let aFederation: FederationService;
  let bFederation: FederationService;
  let edus: EduReceiver;
  let roomId: string;
  let eventId: string;

  const sync = async (since?: string, timeout = 0) => {
    const query = since ? `?since=${r(since)}&timeout=${timeout}` : '';
    const answer = await a.request<SyncBody>('GET', `/_matrix/client/v3/sync${query}`, {
      token: alice.accessToken,
    });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    return answer.body;
  };
  /** The EDUs queued for `destination` so far. */
  const queued = async (server: Federated, destination: string) =>
    (await server.running.storage.stores.federationOutbox.selectOutbox(destination, 0, 1000)).map(
      (e) => JSON.parse(e.payload) as QueuedEdu,
    );

  before(async () => {
    ca = makeTestCa();
    a = await startFederatedServer(dialect, ca);
    b = await startFederatedServer(dialect, ca);
    assert.ok(a.running.services.federation && b.running.services.federation);
    assert.ok(a.running.services.federationEdus);
    aFederation = a.running.services.federation;
    bFederation = b.running.services.federation;
    edus = a.running.services.federationEdus;
    alice = await registerUser(a, 'alice');
    bob = await registerUser(b, 'bob');
    const created = await a.request<{ room_id: string }>('POST', '/_matrix/client/v3/createRoom', {
      token: alice.accessToken,
      body: { preset: 'public_chat' },
    });
    assert.equal(created.status, 200);
    roomId = created.body.room_id;
    await remoteJoin(a, roomId, bob.userId);
    await remoteJoin(a, roomId, `@dora:${DEAD}`);
    const sent = await a.request<{ event_id: string }>(
      'PUT',
      `/_matrix/client/v3/rooms/${r(roomId)}/send/m.room.message/t1`,
      { token: alice.accessToken, body: { msgtype: 'm.text', body: 'hello' } },
    );
    assert.equal(sent.status, 200);
    eventId = sent.body.event_id;
  });
  after(async () => {
    await a?.close();
    await b?.close();
    rmSync(ca.dir, { recursive: true, force: true });
  });

  it('queues Alice’s typing, receipt and presence for the servers in her room', async () => {
    const typed = await a.request(
      'PUT',
      `/_matrix/client/v3/rooms/${r(roomId)}/typing/${r(alice.userId)}`,
      { token: alice.accessToken, body: { typing: true, timeout: 20000 } },
    );
    assert.equal(typed.status, 200);
    const read = await a.request(
      'POST',
      `/_matrix/client/v3/rooms/${r(roomId)}/receipt/m.read/${r(eventId)}`,
      { token: alice.accessToken, body: {} },
    );
    assert.equal(read.status, 200);
    const privately = await a.request(
      'POST',
      `/_matrix/client/v3/rooms/${r(roomId)}/receipt/m.read.private/${r(eventId)}`,
      { token: alice.accessToken, body: {} },
    );
    assert.equal(privately.status, 200);
    const present = await a.request(
      'PUT',
      `/_matrix/client/v3/presence/${r(alice.userId)}/status`,
      { token: alice.accessToken, body: { presence: 'unavailable', status_msg: 'away' } },
    );
    assert.equal(present.status, 200);
    const out = await queued(a, DEAD);
    assert.deepEqual(out.find((e) => e.edu_type === 'm.typing')?.content, {
      room_id: roomId,
      user_id: alice.userId,
      typing: true,
    });
    const receipts = out.filter((e) => e.edu_type === 'm.receipt');
    assert.equal(receipts.length, 1, 'private receipts stay on this server');
    const entry = (
      receipts[0]?.content[roomId] as Record<string, Record<string, { event_ids: string[] }>>
    )['m.read']?.[alice.userId];
    assert.deepEqual(entry?.event_ids, [eventId]);
    const presence = out.find((e) => e.edu_type === 'm.presence')?.content.push as {
      user_id: string;
      presence: string;
      status_msg: string;
    }[];
    assert.equal(presence[0]?.user_id, alice.userId);
    assert.equal(presence[0]?.presence, 'unavailable');
    assert.equal(presence[0]?.status_msg, 'away');
  });

  it('queues to-device messages for remote users to their server only', async () => {
    const sent = await a.request('PUT', '/_matrix/client/v3/sendToDevice/m.test/td1', {
      token: alice.accessToken,
      body: {
        messages: {
          [`@erin:${DEAD}`]: { ERINDEV: { hello: 'erin' } },
          [alice.userId]: { [alice.deviceId]: { hello: 'self' } },
        },
      },
    });
    assert.equal(sent.status, 200);
    const edu = (await queued(a, DEAD)).find((e) => e.edu_type === 'm.direct_to_device');
    assert.ok(edu);
    assert.equal(edu.content.sender, alice.userId);
    assert.equal(edu.content.type, 'm.test');
    assert.equal(typeof edu.content.message_id, 'string');
    assert.deepEqual(edu.content.messages, { [`@erin:${DEAD}`]: { ERINDEV: { hello: 'erin' } } });
  });

  it('queues a device-list update (stream_id, prev_id) when Alice’s device keys change', async () => {
    const uploaded = await a.request('POST', '/_matrix/client/v3/keys/upload', {
      token: alice.accessToken,
      body: { device_keys: deviceKeysOf(alice) },
    });
    assert.equal(uploaded.status, 200, JSON.stringify(uploaded.body));
    const updates = (await queued(a, DEAD)).filter((e) => e.edu_type === 'm.device_list_update');
    assert.equal(updates.length, 1);
    const update = updates[0]?.content;
    assert.equal(update?.user_id, alice.userId);
    assert.equal(update?.device_id, alice.deviceId);
    assert.equal(typeof update?.stream_id, 'number');
    assert.deepEqual(update?.prev_id, []);
    assert.deepEqual(update?.keys, deviceKeysOf(alice));
  });

  it('applies B’s typing, receipt, presence and to-device EDUs for Alice’s /sync', async () => {
    const first = await sync();
    const outcomes = await edus.receiveEdus(b.serverName, [
      { edu_type: 'm.typing', content: { room_id: roomId, user_id: bob.userId, typing: true } },
      {
        edu_type: 'm.receipt',
        content: {
          [roomId]: { 'm.read': { [bob.userId]: { event_ids: [eventId], data: { ts: 1 } } } },
        },
      },
      {
        edu_type: 'm.presence',
        content: {
          push: [{ user_id: bob.userId, presence: 'online', last_active_ago: 5000 }],
        },
      },
      {
        edu_type: 'm.direct_to_device',
        content: {
          sender: bob.userId,
          type: 'm.room_key_request',
          message_id: 'm1',
          messages: { [alice.userId]: { '*': { from: 'bob' } } },
        },
      },
      // The same message again (a retried transaction) is delivered once.
      {
        edu_type: 'm.direct_to_device',
        content: {
          sender: bob.userId,
          type: 'm.room_key_request',
          message_id: 'm1',
          messages: { [alice.userId]: { '*': { from: 'bob' } } },
        },
      },
    ]);
    assert.deepEqual(outcomes, ['applied', 'applied', 'applied', 'applied', 'applied']);
    const next = await sync(first.next_batch);
    const ephemeral = next.rooms?.join?.[roomId]?.ephemeral?.events ?? [];
    const typing = ephemeral.find((e) => (e as { type?: string }).type === 'm.typing') as
      { content: { user_ids: string[] } } | undefined;
    assert.ok(typing?.content.user_ids.includes(bob.userId), JSON.stringify(ephemeral));
    const receipt = ephemeral.find((e) => (e as { type?: string }).type === 'm.receipt') as
      { content: Record<string, Record<string, Record<string, unknown>>> } | undefined;
    assert.ok(receipt?.content[eventId]?.['m.read']?.[bob.userId], JSON.stringify(ephemeral));
    const bobPresence = next.presence?.events.find((e) => e.sender === bob.userId);
    assert.equal(bobPresence?.content.presence, 'online');
    const toDevice = next.to_device?.events.filter((e) => e.sender === bob.userId) ?? [];
    assert.equal(toDevice.length, 1);
    assert.deepEqual(toDevice[0]?.content, { from: 'bob' });

    const stop = await edus.receiveEdus(b.serverName, [
      { edu_type: 'm.typing', content: { room_id: roomId, user_id: bob.userId, typing: false } },
    ]);
    assert.deepEqual(stop, ['applied']);
    const later = await sync(next.next_batch);
    const stopped = (later.rooms?.join?.[roomId]?.ephemeral?.events ?? []).find(
      (e) => (e as { type?: string }).type === 'm.typing',
    ) as { content: { user_ids: string[] } } | undefined;
    assert.ok(stopped, 'the stop is announced');
    assert.ok(!stopped.content.user_ids.includes(bob.userId));
  });

  it('skips EDUs that are malformed, of unknown type, or about another server’s users', async () => {
    const before = await sync();
    const outcomes = await edus.receiveEdus(b.serverName, [
      'not an object',
      { edu_type: 'm.typing' },
      { edu_type: 'org.example.unknown', content: {} },
      // B may not speak for A's users nor for a third server's.
      { edu_type: 'm.typing', content: { room_id: roomId, user_id: alice.userId, typing: true } },
      {
        edu_type: 'm.typing',
        content: { room_id: roomId, user_id: `@dora:${DEAD}`, typing: true },
      },
      { edu_type: 'm.typing', content: { room_id: 'nonsense', user_id: bob.userId, typing: true } },
      { edu_type: 'm.presence', content: { push: 'nope' } },
      {
        edu_type: 'm.direct_to_device',
        content: { sender: alice.userId, type: 'x', message_id: 'm2', messages: {} },
      },
      { edu_type: 'm.device_list_update', content: { user_id: bob.userId, device_id: 'X' } },
    ]);
    assert.deepEqual(outcomes, [
      'invalid',
      'invalid',
      'ignored',
      'invalid',
      'invalid',
      'invalid',
      'invalid',
      'invalid',
      'invalid',
    ]);
    // Typing in a room Bob is not in, and a receipt on an unknown event, change nothing.
    const other = await a.request<{ room_id: string }>('POST', '/_matrix/client/v3/createRoom', {
      token: alice.accessToken,
      body: {},
    });
    const ignored = await edus.receiveEdus(b.serverName, [
      {
        edu_type: 'm.typing',
        content: { room_id: other.body.room_id, user_id: bob.userId, typing: true },
      },
      {
        edu_type: 'm.receipt',
        content: {
          [roomId]: { 'm.read': { [bob.userId]: { event_ids: ['$unknown'], data: {} } } },
        },
      },
    ]);
    assert.deepEqual(ignored, ['applied', 'ignored']);
    const after = await sync(before.next_batch);
    const typing = Object.values(after.rooms?.join ?? {})
      .flatMap((room) => room.ephemeral?.events ?? [])
      .filter((e) => (e as { type?: string }).type === 'm.typing');
    assert.deepEqual(typing, []);
  });

  it('serves /user/devices, /user/keys/query and /user/keys/claim for local users', async () => {
    const uploaded = await b.request('POST', '/_matrix/client/v3/keys/upload', {
      token: bob.accessToken,
      body: {
        device_keys: deviceKeysOf(bob),
        one_time_keys: { 'signed_curve25519:AAAA': { key: 'otk-a', signatures: {} } },
      },
    });
    assert.equal(uploaded.status, 200, JSON.stringify(uploaded.body));
    const devices = await aFederation.client.request(
      b.serverName,
      'GET',
      `/_matrix/federation/v1/user/devices/${r(bob.userId)}`,
    );
    assert.equal(devices.status, 200, JSON.stringify(devices.body));
    const body = devices.body as {
      user_id: string;
      stream_id: number;
      devices: { device_id: string; keys?: unknown }[];
    };
    assert.equal(body.user_id, bob.userId);
    assert.ok(body.stream_id > 0);
    assert.deepEqual(body.devices, [{ device_id: bob.deviceId, keys: deviceKeysOf(bob) }]);

    const query = await aFederation.client.request(
      b.serverName,
      'POST',
      '/_matrix/federation/v1/user/keys/query',
      { body: { device_keys: { [bob.userId]: [] } } },
    );
    assert.equal(query.status, 200, JSON.stringify(query.body));
    const keys = query.body as { device_keys: Record<string, Record<string, unknown>> };
    assert.deepEqual(keys.device_keys[bob.userId]?.[bob.deviceId], {
      ...deviceKeysOf(bob),
      unsigned: {},
    });

    const claim = await aFederation.client.request(
      b.serverName,
      'POST',
      '/_matrix/federation/v1/user/keys/claim',
      { body: { one_time_keys: { [bob.userId]: { [bob.deviceId]: 'signed_curve25519' } } } },
    );
    assert.equal(claim.status, 200, JSON.stringify(claim.body));
    assert.deepEqual(claim.body, {
      one_time_keys: {
        [bob.userId]: {
          [bob.deviceId]: { 'signed_curve25519:AAAA': { key: 'otk-a', signatures: {} } },
        },
      },
    });
  });

  it('refuses each bad request to those endpoints', async () => {
    const ask = (method: string, path: string, body?: unknown) =>
      aFederation.client.request(b.serverName, method, path, body ? { body } : {});
    const errcode = (answer: { body: unknown }) => (answer.body as { errcode?: string }).errcode;
    const foreign = await ask('GET', `/_matrix/federation/v1/user/devices/${r(alice.userId)}`);
    assert.equal(foreign.status, 400);
    assert.equal(errcode(foreign), 'M_INVALID_PARAM');
    const notAUser = await ask('GET', '/_matrix/federation/v1/user/devices/bob');
    assert.equal(notAUser.status, 400);
    const badQuery = await ask('POST', '/_matrix/federation/v1/user/keys/query', {
      device_keys: { [bob.userId]: 'all' },
    });
    assert.equal(badQuery.status, 400);
    assert.equal(errcode(badQuery), 'M_BAD_JSON');
    const foreignQuery = await ask('POST', '/_matrix/federation/v1/user/keys/query', {
      device_keys: { [alice.userId]: [] },
    });
    assert.equal(foreignQuery.status, 400);
    const badClaim = await ask('POST', '/_matrix/federation/v1/user/keys/claim', {
      one_time_keys: [],
    });
    assert.equal(badClaim.status, 400);
    // Unsigned, or signed by a key the origin does not have: 401.
    const path = `/_matrix/federation/v1/user/devices/${r(bob.userId)}`;
    const unsigned = await httpsJson(ca, `https://127.0.0.1:${b.port}${path}`);
    assert.equal(unsigned.status, 401);
    const forged = await httpsJson(ca, `https://127.0.0.1:${b.port}${path}`, {
      headers: {
        Authorization: xMatrixHeader(
          { method: 'GET', uri: path, origin: a.serverName, destination: b.serverName },
          generateSigningKey(),
        ),
      },
    });
    assert.equal(forged.status, 401);
    assert.equal((forged.body as { errcode: string }).errcode, 'M_UNAUTHORIZED');
  });

  it('Alice’s /keys/query and /keys/claim for Bob are answered by B; a dead server is a failure', async () => {
    const query = await a.request<{
      device_keys: Record<string, Record<string, unknown>>;
      failures: Record<string, unknown>;
    }>('POST', '/_matrix/client/v3/keys/query', {
      token: alice.accessToken,
      body: { device_keys: { [bob.userId]: [], [`@dora:${DEAD}`]: [] }, timeout: 5000 },
    });
    assert.equal(query.status, 200, JSON.stringify(query.body));
    assert.deepEqual(
      (query.body.device_keys[bob.userId]?.[bob.deviceId] as { keys: unknown }).keys,
      deviceKeysOf(bob).keys,
    );
    assert.ok(query.body.failures[DEAD], JSON.stringify(query.body.failures));
    assert.equal(query.body.failures[b.serverName], undefined);

    const upload = await b.request('POST', '/_matrix/client/v3/keys/upload', {
      token: bob.accessToken,
      body: { one_time_keys: { 'signed_curve25519:BBBB': { key: 'otk-b', signatures: {} } } },
    });
    assert.equal(upload.status, 200);
    const claim = await a.request<{
      one_time_keys: Record<string, Record<string, Record<string, unknown>>>;
      failures: Record<string, unknown>;
    }>('POST', '/_matrix/client/v3/keys/claim', {
      token: alice.accessToken,
      body: { one_time_keys: { [bob.userId]: { [bob.deviceId]: 'signed_curve25519' } } },
    });
    assert.equal(claim.status, 200, JSON.stringify(claim.body));
    assert.deepEqual(claim.body.one_time_keys[bob.userId]?.[bob.deviceId], {
      'signed_curve25519:BBBB': { key: 'otk-b', signatures: {} },
    });
    assert.deepEqual(claim.body.failures, {});
  });

  it('a device-list update reaches Alice’s device_lists.changed; a gap makes A fetch the list again', async () => {
    const first = await sync();
    const bobDevices = await b.request<{ devices: { device_id: string }[] }>(
      'GET',
      '/_matrix/client/v3/devices',
      { token: bob.accessToken },
    );
    assert.equal(bobDevices.status, 200);
    // A has no cached list for Bob: the update is a gap, so A fetches /user/devices from B.
    const outcomes = await edus.receiveEdus(b.serverName, [
      {
        edu_type: 'm.device_list_update',
        content: {
          user_id: bob.userId,
          device_id: bob.deviceId,
          stream_id: 1_000_000,
          prev_id: [999_999],
          keys: deviceKeysOf(bob),
        },
      },
    ]);
    assert.deepEqual(outcomes, ['applied']);
    const next = await sync(first.next_batch);
    assert.ok(next.device_lists?.changed?.includes(bob.userId), JSON.stringify(next));
    const cached = await eventually(
      () => a.running.storage.stores.remoteDevices.selectRemoteDeviceLists([bob.userId]),
      (rows) => rows.length === 1,
      10_000,
    );
    const list = JSON.parse(cached[0]?.listJson ?? '{}') as { devices: Record<string, unknown> };
    assert.deepEqual(Object.keys(list.devices), [bob.deviceId]);

    // An update that follows on is applied to the cache: a new device of Bob's.
    const streamId = cached[0]?.streamId ?? 0;
    const newDevice = { ...deviceKeysOf(bob), device_id: 'NEWDEV' };
    const applied = await edus.receiveEdus(b.serverName, [
      {
        edu_type: 'm.device_list_update',
        content: {
          user_id: bob.userId,
          device_id: 'NEWDEV',
          stream_id: streamId + 1,
          prev_id: [streamId],
          keys: newDevice,
        },
      },
    ]);
    assert.deepEqual(applied, ['applied']);
    const query = await a.request<{ device_keys: Record<string, Record<string, unknown>> }>(
      'POST',
      '/_matrix/client/v3/keys/query',
      { token: alice.accessToken, body: { device_keys: { [bob.userId]: [] } } },
    );
    assert.equal(query.status, 200);
    assert.deepEqual(
      Object.keys(query.body.device_keys[bob.userId] ?? {}).sort(),
      ['NEWDEV', bob.deviceId].sort(),
    );
    void bFederation;
  });
});
