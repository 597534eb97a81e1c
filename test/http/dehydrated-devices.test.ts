import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { expectError, uniqueName } from '../helpers/assertions.js';

const PATH = '/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device';
const V3 = '/_matrix/client/v3';

interface EventsAnswer {
  events: { type: string; sender: string; content: Record<string, unknown> }[];
  next_batch: string;
}

forEachDatabase('dehydrated devices (MSC3814)', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  before(async () => {
    server = await startTestServer(dialect);
    alice = await registerUser(server, uniqueName('alice'));
    bob = await registerUser(server, uniqueName('bob'));
  });
  after(async () => server.close());

  const put = (user: TestUser, deviceId: string, extra: Record<string, unknown> = {}) =>
    server.request('PUT', PATH, {
      token: user.accessToken,
      body: {
        device_id: deviceId,
        device_data: { algorithm: 'org.matrix.msc3814.v1.olm', device_pickle: `p-${deviceId}` },
        initial_device_display_name: 'Dehydrated device',
        ...extra,
      },
    });
  const events = (user: TestUser, deviceId: string, nextBatch?: string) =>
    server.request<EventsAnswer>('POST', `${PATH}/${deviceId}/events`, {
      token: user.accessToken,
      body: nextBatch === undefined ? {} : { next_batch: nextBatch },
    });
  const sendTo = (deviceId: string, txn: string, text: string) =>
    server.request('PUT', `${V3}/sendToDevice/m.room_key_test/${txn}`, {
      token: bob.accessToken,
      body: { messages: { [alice.userId]: { [deviceId]: { text } } } },
    });

  it('is advertised in unstable_features', async () => {
    const versions = await server.request<{ unstable_features: Record<string, boolean> }>(
      'GET',
      '/_matrix/client/versions',
    );
    assert.equal(versions.body.unstable_features['org.matrix.msc3814'], true);
  });

  it('GET and DELETE without a device: 404 M_NOT_FOUND', async () => {
    expectError(
      await server.request('GET', PATH, { token: alice.accessToken }),
      404,
      'M_NOT_FOUND',
    );
    expectError(
      await server.request('DELETE', PATH, { token: alice.accessToken }),
      404,
      'M_NOT_FOUND',
    );
  });

  it('PUT stores the device with its keys; GET answers its data; /keys/query lists it', async () => {
    const deviceKeys = {
      user_id: alice.userId,
      device_id: 'DEHYDRATED1',
      algorithms: ['m.olm.v1.curve25519-aes-sha2', 'm.megolm.v1.aes-sha2'],
      keys: { 'curve25519:DEHYDRATED1': 'curvekey', 'ed25519:DEHYDRATED1': 'edkey' },
      signatures: { [alice.userId]: { 'ed25519:DEHYDRATED1': 'sig' } },
      dehydrated: true,
    };
    const stored = await put(alice, 'DEHYDRATED1', {
      device_keys: deviceKeys,
      one_time_keys: { 'signed_curve25519:AAAA': { key: 'otk', signatures: {} } },
      fallback_keys: { 'signed_curve25519:BBBB': { key: 'fb', fallback: true, signatures: {} } },
    });
    assert.equal(stored.status, 200, JSON.stringify(stored.body));
    assert.deepEqual(stored.body, { device_id: 'DEHYDRATED1' });
    const got = await server.request('GET', PATH, { token: alice.accessToken });
    assert.deepEqual(got.body, {
      device_id: 'DEHYDRATED1',
      device_data: { algorithm: 'org.matrix.msc3814.v1.olm', device_pickle: 'p-DEHYDRATED1' },
    });
    const query = await server.request<{
      device_keys: Record<string, Record<string, Record<string, unknown>>>;
    }>('POST', `${V3}/keys/query`, {
      token: bob.accessToken,
      body: { device_keys: { [alice.userId]: [] } },
    });
    const listed = query.body.device_keys[alice.userId]?.DEHYDRATED1;
    assert.ok(listed, JSON.stringify(query.body));
    assert.equal(listed.dehydrated, true);
    const claimed = await server.request<{ one_time_keys: Record<string, unknown> }>(
      'POST',
      `${V3}/keys/claim`,
      {
        token: bob.accessToken,
        body: { one_time_keys: { [alice.userId]: { DEHYDRATED1: 'signed_curve25519' } } },
      },
    );
    assert.ok(
      JSON.stringify(claimed.body.one_time_keys).includes('signed_curve25519:AAAA'),
      JSON.stringify(claimed.body),
    );
  });

  it('to-device messages wait for it; events pages by next_batch and deletes what was read', async () => {
    assert.equal((await sendTo('DEHYDRATED1', 't1', 'one')).status, 200);
    assert.equal((await sendTo('DEHYDRATED1', 't2', 'two')).status, 200);
    const first = await events(alice, 'DEHYDRATED1');
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.deepEqual(
      first.body.events.map((e) => [e.type, e.sender, e.content.text]),
      [
        ['m.room_key_test', bob.userId, 'one'],
        ['m.room_key_test', bob.userId, 'two'],
      ],
    );
    assert.equal(typeof first.body.next_batch, 'string');
    const second = await events(alice, 'DEHYDRATED1', first.body.next_batch);
    assert.deepEqual(second.body.events, []);
    // Read from the start again: what was acknowledged by next_batch is gone.
    const again = await events(alice, 'DEHYDRATED1');
    assert.deepEqual(again.body.events, []);
    assert.equal((await sendTo('DEHYDRATED1', 't3', 'three')).status, 200);
    const third = await events(alice, 'DEHYDRATED1', second.body.next_batch);
    assert.deepEqual(
      third.body.events.map((e) => e.content.text),
      ['three'],
    );
  });

  it('events of another device, or of someone else’s: 403 M_FORBIDDEN; a bad next_batch: 400', async () => {
    expectError(await events(alice, alice.deviceId), 403, 'M_FORBIDDEN');
    expectError(await events(bob, 'DEHYDRATED1'), 403, 'M_FORBIDDEN');
    expectError(await events(alice, 'DEHYDRATED1', 'not-a-token'), 400, 'M_INVALID_PARAM');
  });

  it('a PUT replaces the earlier device, its keys and its messages', async () => {
    assert.equal((await sendTo('DEHYDRATED1', 't4', 'lost')).status, 200);
    const replaced = await put(alice, 'DEHYDRATED2');
    assert.equal(replaced.status, 200);
    const devices = await server.request<{ devices: { device_id: string }[] }>(
      'GET',
      `${V3}/devices`,
      { token: alice.accessToken },
    );
    const ids = devices.body.devices.map((d) => d.device_id);
    assert.ok(ids.includes('DEHYDRATED2'));
    assert.ok(!ids.includes('DEHYDRATED1'));
    expectError(await events(alice, 'DEHYDRATED1'), 403, 'M_FORBIDDEN');
    const query = await server.request<{ device_keys: Record<string, Record<string, unknown>> }>(
      'POST',
      `${V3}/keys/query`,
      { token: bob.accessToken, body: { device_keys: { [alice.userId]: ['DEHYDRATED1'] } } },
    );
    assert.equal(query.body.device_keys[alice.userId]?.DEHYDRATED1, undefined);
    assert.deepEqual((await events(alice, 'DEHYDRATED2')).body.events, []);
  });

  it('refuses an ID of an ordinary device, and bad bodies', async () => {
    expectError(await put(alice, alice.deviceId), 400, 'M_INVALID_PARAM');
    expectError(
      await server.request('PUT', PATH, { token: alice.accessToken, body: { device_id: 'X' } }),
      400,
      'M_BAD_JSON',
    );
    expectError(
      await server.request('PUT', PATH, {
        token: alice.accessToken,
        body: { device_id: 'X', device_data: 'not an object' },
      }),
      400,
      'M_BAD_JSON',
    );
    const otherUsersKeys = await put(alice, 'DEHYDRATED3', {
      device_keys: {
        user_id: bob.userId,
        device_id: 'DEHYDRATED3',
        algorithms: [],
        keys: {},
        signatures: {},
      },
    });
    expectError(otherUsersKeys, 400, 'M_INVALID_PARAM');
    // Nothing of a refused PUT is kept.
    const kept = await server.request('GET', PATH, { token: alice.accessToken });
    assert.equal((kept.body as { device_id: string }).device_id, 'DEHYDRATED2');
  });

  it('DELETE removes it', async () => {
    const current = await server.request<{ device_id: string }>('GET', PATH, {
      token: alice.accessToken,
    });
    const deleted = await server.request('DELETE', PATH, { token: alice.accessToken });
    assert.deepEqual(deleted.body, { device_id: current.body.device_id });
    expectError(
      await server.request('GET', PATH, { token: alice.accessToken }),
      404,
      'M_NOT_FOUND',
    );
    const devices = await server.request<{ devices: { device_id: string }[] }>(
      'GET',
      `${V3}/devices`,
      { token: alice.accessToken },
    );
    assert.ok(!devices.body.devices.some((d) => d.device_id === current.body.device_id));
  });

  it('needs an access token', async () => {
    expectError(await server.request('GET', PATH), 401, 'M_MISSING_TOKEN');
  });
});
