import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { eventually } from '../helpers/eventually.js';
import { TestBridge, writeRegistrations } from '../helpers/appservice.js';

const V3 = '/_matrix/client/v3';
const r = encodeURIComponent;

interface Edu {
  type: string;
  room_id: string;
  content: Record<string, unknown>;
}

forEachDatabase('application service ephemeral events (MSC2409)', (dialect) => {
  let server: TestServer;
  const wanting = new TestBridge();
  const plain = new TestBridge();
  let human: TestUser;
  let roomId: string;

  before(async () => {
    await wanting.start();
    await plain.start();
    const service = (id: string, url: string, extra: Record<string, unknown>) => ({
      id,
      url,
      as_token: `as_${id}_0123456789`,
      hs_token: `hs_${id}_0123456789`,
      sender_localpart: `${id}bot`,
      namespaces: { users: [{ exclusive: true, regex: `@_${id}_.*:test\\.local` }] },
      ...extra,
    });
    server = await startTestServer(dialect, {
      COMMONS_APP_SERVICES_CONFIG_FILES: writeRegistrations([
        service('eph', wanting.url, { 'de.sorunome.msc2409.push_ephemeral': true }),
        service('noeph', plain.url, {}),
      ]),
      COMMONS_APP_SERVICES_RETRY_MAX_SECONDS: '1',
    });
    human = await registerUser(server);
    const created = await server.request<{ room_id: string }>('POST', `${V3}/createRoom`, {
      token: human.accessToken,
      body: { preset: 'public_chat' },
    });
    roomId = created.body.room_id;
    for (const id of ['eph', 'noeph']) {
      const token = `as_${id}_0123456789`;
      const registered = await server.request('POST', `${V3}/register`, {
        token,
        body: { type: 'm.login.application_service', username: `_${id}_v`, inhibit_login: true },
      });
      assert.equal(registered.status, 200);
      const joined = await server.request(
        'POST',
        `${V3}/rooms/${r(roomId)}/join?user_id=${r(`@_${id}_v:test.local`)}`,
        { token },
      );
      assert.equal(joined.status, 200);
    }
  });
  after(async () => {
    await server.close();
    await wanting.stop();
    await plain.stop();
  });

  const ephemeralOf = (bridge: TestBridge): Edu[] =>
    bridge.transactions.flatMap((t) => (t.body['de.sorunome.msc2409.ephemeral'] ?? []) as Edu[]);

  it('pushes typing and public receipts to a service that asked, under both names', async () => {
    const typing = await server.request(
      'PUT',
      `${V3}/rooms/${r(roomId)}/typing/${r(human.userId)}`,
      {
        token: human.accessToken,
        body: { typing: true, timeout: 30000 },
      },
    );
    assert.equal(typing.status, 200);
    const sent = await server.request<{ event_id: string }>(
      'PUT',
      `${V3}/rooms/${r(roomId)}/send/m.room.message/e1`,
      { token: human.accessToken, body: { msgtype: 'm.text', body: 'read me' } },
    );
    const privately = await server.request(
      'POST',
      `${V3}/rooms/${r(roomId)}/receipt/m.read.private/${r(sent.body.event_id)}`,
      { token: human.accessToken, body: {} },
    );
    assert.equal(privately.status, 200);
    const receipt = await server.request(
      'POST',
      `${V3}/rooms/${r(roomId)}/receipt/m.read/${r(sent.body.event_id)}`,
      { token: human.accessToken, body: {} },
    );
    assert.equal(receipt.status, 200);
    const edus = await eventually(
      async () => ephemeralOf(wanting),
      (list) => list.some((e) => e.type === 'm.receipt'),
      20_000,
    );
    const typingEdu = edus.find((e) => e.type === 'm.typing');
    assert.deepEqual(typingEdu, {
      type: 'm.typing',
      room_id: roomId,
      content: { user_ids: [human.userId] },
    });
    const receipts = edus.filter((e) => e.type === 'm.receipt');
    assert.equal(receipts.length, 1, 'the private receipt is not pushed');
    const content = receipts[0]?.content as Record<
      string,
      Record<string, Record<string, { ts: number }>>
    >;
    assert.equal(typeof content[sent.body.event_id]?.['m.read']?.[human.userId]?.ts, 'number');
    // The stable name carries the same.
    const stable = wanting.transactions.flatMap((t) => (t.body.ephemeral ?? []) as Edu[]);
    assert.deepEqual(stable, edus);
    // Typing comes before the receipt: the order they happened in.
    assert.ok(edus.indexOf(typingEdu) < edus.indexOf(receipts[0] as Edu));
  });

  it('pushes no ephemeral events to a service that did not ask', async () => {
    // Events reach it (the message), ephemeral events do not.
    await eventually(
      async () => plain.events.length,
      (n) => n > 0,
      20_000,
    );
    const marker = await server.request<{ event_id: string }>(
      'PUT',
      `${V3}/rooms/${r(roomId)}/send/m.room.message/e2`,
      { token: human.accessToken, body: { msgtype: 'm.text', body: 'marker' } },
    );
    await eventually(
      async () => plain.events.map((e) => e.event_id),
      (ids) => ids.includes(marker.body.event_id),
      20_000,
    );
    for (const txn of plain.transactions) {
      assert.equal(txn.body.ephemeral, undefined);
      assert.equal(txn.body['de.sorunome.msc2409.ephemeral'], undefined);
    }
  });
});
