import assert from 'node:assert/strict';
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
const RECEIPT = '/rooms/{roomId}/receipt/{receiptType}/{eventId}';

interface Receipt {
  ts: number;
  thread_id?: string;
}
type ReceiptContent = Record<string, Record<string, Record<string, Receipt>>>;

forEachDatabase('receipts and read markers', (dialect) => {
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
    const joined = await server.request('POST', `${V3}/join/${r(created.body.room_id)}`, {
      token: bob.accessToken,
      body: {},
    });
    assert.equal(joined.status, 200, JSON.stringify(joined.body));
    return created.body.room_id;
  }

  let txn = 0;
  async function send(user: TestUser, roomId: string): Promise<string> {
    const response = await server.request<{ event_id: string }>(
      'PUT',
      `${V3}/rooms/${r(roomId)}/send/m.room.message/t${++txn}`,
      { token: user.accessToken, body: { msgtype: 'm.text', body: 'hello' } },
    );
    assert.equal(response.status, 200, JSON.stringify(response.body));
    return response.body.event_id;
  }

  const receipt = (
    user: TestUser,
    roomId: string,
    type: string,
    eventId: string,
    body: unknown = {},
  ) =>
    server.request('POST', `${V3}/rooms/${r(roomId)}/receipt/${r(type)}/${r(eventId)}`, {
      token: user.accessToken,
      body,
    });

  const readMarkers = (user: TestUser, roomId: string, body: unknown) =>
    server.request('POST', `${V3}/rooms/${r(roomId)}/read_markers`, {
      token: user.accessToken,
      body,
    });

  async function receiptsFor(user: TestUser, roomIds: string[], since: number) {
    const events = await services.receipts.ephemeralSince(
      user.userId,
      roomIds,
      since,
      await position(),
    );
    return new Map(
      [...events].map(([roomId, e]) => [roomId, e.content as unknown as ReceiptContent]),
    );
  }

  async function fullyRead(user: TestUser, roomId: string) {
    return server.request<{ event_id?: string }>(
      'GET',
      `${V3}/user/${r(user.userId)}/rooms/${r(roomId)}/account_data/m.fully_read`,
      { token: user.accessToken },
    );
  }

  it('POST /receipt m.read records the receipt that /sync’s source hands out', async () => {
    const roomId = await sharedRoom();
    const quiet = await sharedRoom();
    const eventId = await send(alice, roomId);
    const before = Date.now();
    const changes = watchChanges(server);
    const response = await receipt(bob, roomId, 'm.read', eventId);
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assertMatchesSpec('receipts.yaml', 'post', RECEIPT, 200, response.body);
    assert.deepEqual(response.body, {});

    const content = (await receiptsFor(alice, [roomId, quiet], 0)).get(roomId);
    const ts = content?.[eventId]?.['m.read']?.[bob.userId]?.ts;
    assert.ok(typeof ts === 'number' && ts >= before && ts <= Date.now(), JSON.stringify(content));
    assert.deepEqual(content, { [eventId]: { 'm.read': { [bob.userId]: { ts } } } });
    assert.equal((await receiptsFor(alice, [quiet], 0)).size, 0, 'no receipts, no event');
    await changes.waitFor((c) => c.rooms?.includes(roomId) ?? false);
    changes.stop();
  });

  it('m.read.private receipts reach only their own user', async () => {
    const roomId = await sharedRoom();
    const eventId = await send(alice, roomId);
    assert.equal((await receipt(bob, roomId, 'm.read.private', eventId)).status, 200);
    assert.equal((await receiptsFor(alice, [roomId], 0)).size, 0, 'alice sees nothing');
    const mine = (await receiptsFor(bob, [roomId], 0)).get(roomId);
    assert.equal(typeof mine?.[eventId]?.['m.read.private']?.[bob.userId]?.ts, 'number');
  });

  it('threaded receipts carry thread_id and sit beside the unthreaded one', async () => {
    const roomId = await sharedRoom();
    const first = await send(alice, roomId);
    const second = await send(alice, roomId);
    assert.equal((await receipt(bob, roomId, 'm.read', first, { thread_id: 'main' })).status, 200);
    assert.equal((await receipt(bob, roomId, 'm.read', second)).status, 200);
    const content = (await receiptsFor(alice, [roomId], 0)).get(roomId);
    assert.equal(content?.[first]?.['m.read']?.[bob.userId]?.thread_id, 'main');
    assert.ok(content?.[second]?.['m.read']?.[bob.userId]);
    assert.equal(content?.[second]?.['m.read']?.[bob.userId]?.thread_id, undefined);
  });

  it('an incremental read has only the receipts that moved, and a receipt never moves back', async () => {
    const roomId = await sharedRoom();
    const other = await sharedRoom();
    const first = await send(alice, roomId);
    const second = await send(alice, roomId);
    assert.equal((await receipt(alice, roomId, 'm.read', first)).status, 200);
    const since = await position();
    assert.equal((await receipt(bob, roomId, 'm.read', second)).status, 200);

    const changes = await receiptsFor(alice, [roomId, other], since);
    assert.deepEqual([...changes.keys()], [roomId]);
    assert.deepEqual(
      Object.keys(changes.get(roomId) ?? {}),
      [second],
      'alice’s older receipt is not resent',
    );
    assert.deepEqual(Object.keys(changes.get(roomId)?.[second]?.['m.read'] ?? {}), [bob.userId]);

    const moved = await position();
    const back = await receipt(bob, roomId, 'm.read', first);
    assert.equal(back.status, 200, JSON.stringify(back.body));
    assert.equal(await position(), moved, 'moving back is ignored');
    const all = (await receiptsFor(alice, [roomId], 0)).get(roomId);
    assert.ok(all?.[second]?.['m.read']?.[bob.userId], 'bob’s receipt stays on the later event');
    assert.equal(all?.[first]?.['m.read']?.[bob.userId], undefined);
  });

  it('m.fully_read through /receipt sets the m.fully_read room account data', async () => {
    const roomId = await sharedRoom();
    const eventId = await send(alice, roomId);
    const response = await receipt(bob, roomId, 'm.fully_read', eventId);
    assert.equal(response.status, 200, JSON.stringify(response.body));
    const marker = await fullyRead(bob, roomId);
    assert.equal(marker.status, 200, JSON.stringify(marker.body));
    assert.deepEqual(marker.body, { event_id: eventId });
    assert.equal((await receiptsFor(bob, [roomId], 0)).size, 0, 'not a receipt');
  });

  it('POST /read_markers sets the marker and both receipts', async () => {
    const roomId = await sharedRoom();
    const first = await send(alice, roomId);
    const second = await send(alice, roomId);
    const response = await readMarkers(bob, roomId, {
      'm.fully_read': first,
      'm.read': second,
      'm.read.private': second,
    });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assertMatchesSpec(
      'read_markers.yaml',
      'post',
      '/rooms/{roomId}/read_markers',
      200,
      response.body,
    );
    assert.deepEqual((await fullyRead(bob, roomId)).body, { event_id: first });
    const content = (await receiptsFor(bob, [roomId], 0)).get(roomId);
    assert.deepEqual(Object.keys(content?.[second] ?? {}).sort(), ['m.read', 'm.read.private']);

    const only = await readMarkers(alice, roomId, { 'm.read': first });
    assert.equal(only.status, 200);
    assert.equal((await fullyRead(alice, roomId)).status, 404, 'no marker was asked for');
  });

  it('403 M_FORBIDDEN for a room the user is not in', async () => {
    const roomId = await sharedRoom();
    const eventId = await send(alice, roomId);
    for (const type of ['m.read', 'm.read.private', 'm.fully_read']) {
      expectError(await receipt(carol, roomId, type, eventId), 403, 'M_FORBIDDEN');
    }
    expectError(await readMarkers(carol, roomId, { 'm.read': eventId }), 403, 'M_FORBIDDEN');
    expectError(await receipt(carol, '!nosuch:test.local', 'm.read', eventId), 403, 'M_FORBIDDEN');
    assert.equal((await receiptsFor(alice, [roomId], 0)).size, 0);
  });

  it('404 M_NOT_FOUND for an event that is not in the room; nothing is written', async () => {
    const roomId = await sharedRoom();
    const elsewhere = await send(alice, await sharedRoom());
    const here = await send(alice, roomId);
    for (const eventId of ['$nosuchevent', elsewhere]) {
      expectError(await receipt(bob, roomId, 'm.read', eventId), 404, 'M_NOT_FOUND');
      expectError(await receipt(bob, roomId, 'm.fully_read', eventId), 404, 'M_NOT_FOUND');
      expectError(
        await readMarkers(bob, roomId, { 'm.read': here, 'm.fully_read': eventId }),
        404,
        'M_NOT_FOUND',
      );
    }
    assert.equal((await receiptsFor(bob, [roomId], 0)).size, 0, 'the valid m.read was not kept');
    assert.equal((await fullyRead(bob, roomId)).status, 404);
  });

  it('400 M_INVALID_PARAM for a bad thread_id, receipt type, event or room ID', async () => {
    const roomId = await sharedRoom();
    const eventId = await send(alice, roomId);
    for (const thread_id of ['', 42, null, 'not-an-event']) {
      const response = await receipt(bob, roomId, 'm.read', eventId, { thread_id });
      expectError(response, 400, 'M_INVALID_PARAM', {
        file: 'receipts.yaml',
        method: 'post',
        path: RECEIPT,
      });
    }
    expectError(
      await receipt(bob, roomId, 'm.fully_read', eventId, { thread_id: 'main' }),
      400,
      'M_INVALID_PARAM',
    );
    expectError(await receipt(bob, roomId, 'm.unknown', eventId), 400, 'M_INVALID_PARAM');
    expectError(await receipt(bob, roomId, 'm.read', 'not-an-event'), 400, 'M_INVALID_PARAM');
    expectError(await receipt(bob, 'not-a-room', 'm.read', eventId), 400, 'M_INVALID_PARAM');
    expectError(await readMarkers(bob, roomId, { 'm.read': 'nope' }), 400, 'M_INVALID_PARAM');
  });

  it('400 M_BAD_JSON for wrong types, M_NOT_JSON for a body that is not JSON', async () => {
    const roomId = await sharedRoom();
    const eventId = await send(alice, roomId);
    expectError(await readMarkers(bob, roomId, { 'm.read': 5 }), 400, 'M_BAD_JSON');
    expectError(await readMarkers(bob, roomId, { 'm.fully_read': ['x'] }), 400, 'M_BAD_JSON');
    expectError(await receipt(bob, roomId, 'm.read', eventId, [1]), 400, 'M_BAD_JSON');
    const notJson = await server.request('POST', `${V3}/rooms/${r(roomId)}/read_markers`, {
      token: bob.accessToken,
      rawBody: 'nope',
      headers: { 'Content-Type': 'application/json' },
    });
    expectError(notJson, 400, 'M_NOT_JSON');
  });

  it('401 M_MISSING_TOKEN without a token', async () => {
    const room = r('!a:test.local');
    expectError(
      await server.request('POST', `${V3}/rooms/${room}/receipt/m.read/${r('$e')}`, { body: {} }),
      401,
      'M_MISSING_TOKEN',
    );
    expectError(
      await server.request('POST', `${V3}/rooms/${room}/read_markers`, { body: {} }),
      401,
      'M_MISSING_TOKEN',
    );
  });
});
