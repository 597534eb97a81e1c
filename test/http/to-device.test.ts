import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { loginUser, registerUser, type TestUser } from '../helpers/client.js';
import { assertMatchesSpec } from '../helpers/spec-contract.js';
import { expectError } from '../helpers/assertions.js';
import { servicesOf, watchChanges } from '../helpers/services.js';
import type { Services } from '../../src/services/index.js';

const V3 = '/_matrix/client/v3';
const SPEC_PATH = '/sendToDevice/{eventType}/{txnId}';

forEachDatabase('send-to-device messaging', (dialect) => {
  let server: TestServer;
  let services: Services;
  let alice: TestUser;
  let bob: TestUser;
  before(async () => {
    server = await startTestServer(dialect);
    services = servicesOf(server);
    [alice, bob] = [await registerUser(server), await registerUser(server)];
  });
  after(async () => server.close());

  const position = () => server.running.storage.stores.stream.selectCurrentPosition();
  let txn = 0;
  const nextTxn = () => `txn${++txn}`;

  const sendToDevice = (
    sender: { accessToken: string },
    messages: unknown,
    txnId = nextTxn(),
    type = 'm.test',
  ) =>
    server.request('PUT', `${V3}/sendToDevice/${encodeURIComponent(type)}/${txnId}`, {
      token: sender.accessToken,
      body: { messages },
    });

  const inbox = async (user: { userId: string; deviceId: string }, after = 0) =>
    services.toDevice.forSync(user.userId, user.deviceId, after, await position());

  it('PUT /sendToDevice queues a message for the device named', async () => {
    const changes = watchChanges(server);
    const response = await sendToDevice(alice, { [bob.userId]: { [bob.deviceId]: { n: 1 } } });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assertMatchesSpec('to_device.yaml', 'put', SPEC_PATH, 200, response.body);
    assert.deepEqual(response.body, {});
    assert.deepEqual(await inbox(bob), [
      { type: 'm.test', sender: alice.userId, content: { n: 1 } },
    ]);
    assert.deepEqual(await inbox(alice), [], 'nothing for the sender');
    await changes.waitFor((c) => c.users?.includes(bob.userId) ?? false);
    changes.stop();
  });

  it('`*` reaches every device of the user; a device named explicitly gets its own content', async () => {
    const carol = await registerUser(server);
    const phone = await loginUser(server, carol.userId, carol.password, { device_id: 'PHONE' });
    const laptop = await loginUser(server, carol.userId, carol.password, { device_id: 'LAPTOP' });
    const response = await sendToDevice(alice, {
      [carol.userId]: { '*': { to: 'all' }, PHONE: { to: 'phone' } },
    });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assert.deepEqual(
      (await inbox(phone)).map((m) => m.content),
      [{ to: 'phone' }],
    );
    assert.deepEqual(
      (await inbox(laptop)).map((m) => m.content),
      [{ to: 'all' }],
    );
    assert.deepEqual(
      (await inbox(carol)).map((m) => m.content),
      [{ to: 'all' }],
    );
  });

  it('is idempotent per sender device and transaction ID', async () => {
    const recipient = await registerUser(server);
    const txnId = nextTxn();
    const messages = { [recipient.userId]: { [recipient.deviceId]: { n: 1 } } };
    assert.equal((await sendToDevice(alice, messages, txnId)).status, 200);
    const sent = await position();
    const again = await sendToDevice(
      alice,
      { [recipient.userId]: { [recipient.deviceId]: { n: 2 } } },
      txnId,
    );
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.equal(await position(), sent, 'the repeat queued nothing');
    assert.deepEqual(
      (await inbox(recipient)).map((m) => m.content),
      [{ n: 1 }],
    );

    const otherDevice = await loginUser(server, alice.userId, alice.password);
    assert.equal((await sendToDevice(otherDevice, messages, txnId)).status, 200);
    assert.equal((await inbox(recipient)).length, 2, 'another device may use the same ID');
  });

  it('skips unknown users and devices and users of other servers', async () => {
    const recipient = await registerUser(server);
    const before = await position();
    const response = await sendToDevice(alice, {
      '@nosuchuser:test.local': { '*': { n: 1 } },
      '@someone:elsewhere.example': { DEVICE: { n: 1 } },
      [recipient.userId]: { NOSUCHDEVICE: { n: 1 } },
    });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assert.equal(await position(), before, 'nothing was queued');
    assert.deepEqual(await inbox(recipient), []);
  });

  it('forSync hands messages out oldest first, then deletes those the client had', async () => {
    const recipient = await registerUser(server);
    const target = { [recipient.userId]: { [recipient.deviceId]: { n: 1 } } };
    await sendToDevice(alice, target, nextTxn(), 'm.first');
    const middle = await position();
    await sendToDevice(
      alice,
      { [recipient.userId]: { [recipient.deviceId]: { n: 2 } } },
      nextTxn(),
      'm.second',
    );
    assert.deepEqual(
      (await inbox(recipient)).map((m) => m.type),
      ['m.first', 'm.second'],
    );
    assert.deepEqual(
      (await inbox(recipient, middle)).map((m) => m.type),
      ['m.second'],
    );
    assert.deepEqual(
      await inbox(recipient),
      [{ type: 'm.second', sender: alice.userId, content: { n: 2 } }],
      'the first is gone',
    );
    const end = await position();
    assert.deepEqual(await inbox(recipient, end), []);
    assert.deepEqual(await inbox(recipient), [], 'all gone once a sync passed them');
  });

  it('400 M_BAD_JSON without messages or with the wrong shapes; M_NOT_JSON for non-JSON', async () => {
    for (const body of [
      {},
      { messages: 'x' },
      { messages: { [bob.userId]: 'x' } },
      { messages: { [bob.userId]: { [bob.deviceId]: 'not an object' } } },
    ]) {
      const response = await server.request('PUT', `${V3}/sendToDevice/m.test/${nextTxn()}`, {
        token: alice.accessToken,
        body,
      });
      expectError(response, 400, 'M_BAD_JSON');
    }
    const notJson = await server.request('PUT', `${V3}/sendToDevice/m.test/${nextTxn()}`, {
      token: alice.accessToken,
      rawBody: '{',
      headers: { 'Content-Type': 'application/json' },
    });
    expectError(notJson, 400, 'M_NOT_JSON');
  });

  it('401 M_MISSING_TOKEN without a token', async () => {
    const response = await server.request('PUT', `${V3}/sendToDevice/m.test/${nextTxn()}`, {
      body: { messages: {} },
    });
    expectError(response, 401, 'M_MISSING_TOKEN');
  });
});
