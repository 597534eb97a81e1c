import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { servicesOf } from '../helpers/services.js';
import type { Services } from '../../src/services/index.js';

const V3 = '/_matrix/client/v3';
const r = encodeURIComponent;

forEachDatabase('event derivers (work that commits with each event)', (dialect) => {
  let server: TestServer;
  let services: Services;
  let alice: TestUser;
  let roomId: string;
  const seen: { eventId: string; type: string; roomVersion: string }[] = [];
  before(async () => {
    server = await startTestServer(dialect);
    services = servicesOf(server);
    services.addEventDeriver(async (_stores, event) => {
      if (event.pdu.type === 'org.example.refused') throw new Error('deriver refuses this event');
      seen.push({ eventId: event.eventId, type: event.pdu.type, roomVersion: event.roomVersion });
    });
    alice = await registerUser(server);
    const created = await server.request<{ room_id: string }>('POST', `${V3}/createRoom`, {
      token: alice.accessToken,
      body: {},
    });
    assert.equal(created.status, 200);
    roomId = created.body.room_id;
  });
  after(async () => server.close());

  const requester = () => ({ userId: alice.userId, deviceId: alice.deviceId, isAdmin: false });

  it('runs for every event the writer persists, with its room version', async () => {
    const eventId = await services.roomEvents.sendMessage(
      requester(),
      roomId,
      'm.room.message',
      'd1',
      {
        msgtype: 'm.text',
        body: 'hello',
      },
    );
    const entry = seen.find((s) => s.eventId === eventId);
    assert.deepEqual(entry, { eventId, type: 'm.room.message', roomVersion: '10' });
  });

  it('rolls the event back when a deriver throws: nothing of it is stored or served', async () => {
    await assert.rejects(
      services.roomEvents.sendMessage(requester(), roomId, 'org.example.refused', 'd2', {}),
      /deriver refuses this event/,
    );
    const messages = await server.request<{ chunk: { type: string }[] }>(
      'GET',
      `${V3}/rooms/${r(roomId)}/messages?dir=b&limit=50`,
      { token: alice.accessToken },
    );
    assert.equal(messages.status, 200);
    assert.ok(messages.body.chunk.length > 0);
    assert.ok(!messages.body.chunk.some((e) => e.type === 'org.example.refused'));
    // The transaction ID was not recorded either: the same txnId sends anew.
    const again = await server.request<{ event_id: string }>(
      'PUT',
      `${V3}/rooms/${r(roomId)}/send/org.example.other/d2`,
      { token: alice.accessToken, body: {} },
    );
    assert.equal(again.status, 200);
  });
});
