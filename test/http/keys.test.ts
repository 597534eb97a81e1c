import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { loginUser, passwordAuth, registerUser, type TestUser } from '../helpers/client.js';
import { assertMatchesSpec } from '../helpers/spec-contract.js';
import { expectError } from '../helpers/assertions.js';
import { servicesOf, watchChanges } from '../helpers/services.js';
import type { Services } from '../../src/services/index.js';

const V3 = '/_matrix/client/v3';
const r = encodeURIComponent;

interface Session {
  userId: string;
  accessToken: string;
  deviceId: string;
}
type DeviceKeys = Record<string, unknown>;
interface QueryBody {
  device_keys: Record<string, Record<string, DeviceKeys & { unsigned?: Record<string, unknown> }>>;
  failures: Record<string, unknown>;
}
interface ClaimBody {
  one_time_keys: Record<string, Record<string, Record<string, unknown>>>;
  failures: Record<string, unknown>;
}

/** Identity keys as Hydrogen and matrix-js-sdk upload them. */
function identityKeys(session: Session, seed = 'a'): DeviceKeys {
  const d = session.deviceId;
  return {
    user_id: session.userId,
    device_id: d,
    algorithms: ['m.olm.v1.curve25519-aes-sha2', 'm.megolm.v1.aes-sha2'],
    keys: { [`curve25519:${d}`]: `curve${seed}${d}`, [`ed25519:${d}`]: `ed${seed}${d}` },
    signatures: { [session.userId]: { [`ed25519:${d}`]: `sig${seed}${d}` } },
  };
}

function signedKey(session: Session, key: string, fallback = false): Record<string, unknown> {
  return {
    key,
    ...(fallback ? { fallback: true } : {}),
    signatures: { [session.userId]: { [`ed25519:${session.deviceId}`]: `sig-${key}` } },
  };
}

forEachDatabase('device keys', (dialect) => {
  let server: TestServer;
  let services: Services;
  before(async () => {
    server = await startTestServer(dialect);
    services = servicesOf(server);
  });
  after(async () => server.close());

  const position = () => server.running.storage.stores.stream.selectCurrentPosition();
  const token = async () => `s${await position()}`;

  const upload = (session: Session, body: unknown, prefix = V3) =>
    server.request<{ one_time_key_counts: Record<string, number> }>(
      'POST',
      `${prefix}/keys/upload`,
      { token: session.accessToken, body },
    );
  const query = (session: Session, deviceKeys: unknown) =>
    server.request<QueryBody>('POST', `${V3}/keys/query`, {
      token: session.accessToken,
      body: { device_keys: deviceKeys, timeout: 10000 },
    });
  const claim = (session: Session, oneTimeKeys: unknown) =>
    server.request<ClaimBody>('POST', `${V3}/keys/claim`, {
      token: session.accessToken,
      body: { one_time_keys: oneTimeKeys },
    });
  const changes = (session: Session, from: string, to: string) =>
    server.request<{ changed: string[]; left: string[] }>(
      'GET',
      `${V3}/keys/changes?from=${r(from)}&to=${r(to)}`,
      { token: session.accessToken },
    );

  async function sharedRoom(owner: TestUser, ...members: TestUser[]): Promise<string> {
    const created = await server.request<{ room_id: string }>('POST', `${V3}/createRoom`, {
      token: owner.accessToken,
      body: { preset: 'public_chat' },
    });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    for (const member of members) {
      const joined = await server.request('POST', `${V3}/join/${r(created.body.room_id)}`, {
        token: member.accessToken,
        body: {},
      });
      assert.equal(joined.status, 200, JSON.stringify(joined.body));
    }
    return created.body.room_id;
  }

  it('POST /keys/upload stores identity and one-time keys and answers the counts', async () => {
    const alice = await registerUser(server);
    const response = await upload(alice, {
      device_keys: identityKeys(alice),
      one_time_keys: {
        'signed_curve25519:AAAAAQ': signedKey(alice, 'k1'),
        'signed_curve25519:AAAAAg': signedKey(alice, 'k2'),
        'curve25519:AAAAAw': 'plainkey',
      },
    });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assertMatchesSpec('keys.yaml', 'post', '/keys/upload', 200, response.body);
    assert.deepEqual(response.body, {
      one_time_key_counts: { signed_curve25519: 2, curve25519: 1 },
    });
    assert.deepEqual(await services.deviceKeys.oneTimeKeyCounts(alice.userId, alice.deviceId), {
      signed_curve25519: 2,
      curve25519: 1,
    });

    const empty = await upload(alice, {}, '/_matrix/client/r0');
    assert.equal(empty.status, 200, JSON.stringify(empty.body));
    assert.deepEqual(empty.body.one_time_key_counts, { signed_curve25519: 2, curve25519: 1 });
    const fresh = await registerUser(server);
    assert.deepEqual((await upload(fresh, {})).body, {
      one_time_key_counts: { signed_curve25519: 0 },
    });
  });

  it('POST /keys/upload: a one-time key ID may be sent again only with the same key', async () => {
    const alice = await registerUser(server);
    const keys = { 'signed_curve25519:AAAAAQ': signedKey(alice, 'k1') };
    assert.equal((await upload(alice, { one_time_keys: keys })).status, 200);
    const again = await upload(alice, { one_time_keys: keys });
    assert.deepEqual(again.body.one_time_key_counts, { signed_curve25519: 1 });
    const changed = await upload(alice, {
      one_time_keys: { 'signed_curve25519:AAAAAQ': signedKey(alice, 'other') },
    });
    expectError(changed, 400, 'M_INVALID_PARAM');
    expectError(await upload(alice, { one_time_keys: { nocolon: 'x' } }), 400, 'M_INVALID_PARAM');
  });

  it('POST /keys/upload: 400 M_INVALID_PARAM for another user’s or device’s keys', async () => {
    const alice = await registerUser(server);
    const bob = await registerUser(server);
    for (const keys of [
      identityKeys(bob),
      identityKeys({ ...alice, deviceId: 'OTHERDEVICE' }),
      { ...identityKeys(alice), user_id: bob.userId },
    ]) {
      expectError(await upload(alice, { device_keys: keys }), 400, 'M_INVALID_PARAM');
    }
    assert.deepEqual((await query(bob, { [alice.userId]: [] })).body.device_keys, {
      [alice.userId]: {},
    });
  });

  it('POST /keys/upload: 400 M_BAD_JSON for malformed keys, M_NOT_JSON for non-JSON', async () => {
    const alice = await registerUser(server);
    const unsigned = { ...identityKeys(alice), signatures: undefined };
    for (const body of [
      { device_keys: unsigned },
      { device_keys: { ...identityKeys(alice), keys: 'x' } },
      { one_time_keys: { 'signed_curve25519:A': 5 } },
      { fallback_keys: [] },
    ]) {
      expectError(await upload(alice, body), 400, 'M_BAD_JSON');
    }
    const notJson = await server.request('POST', `${V3}/keys/upload`, {
      token: alice.accessToken,
      rawBody: 'keys',
      headers: { 'Content-Type': 'application/json' },
    });
    expectError(notJson, 400, 'M_NOT_JSON');
  });

  it('POST /keys/query hands out identity keys with the device display name', async () => {
    const alice = await registerUser(server);
    const laptop = await loginUser(server, alice.userId, alice.password, {
      device_id: 'LAPTOP',
      initial_device_display_name: 'Laptop',
    });
    const bob = await registerUser(server);
    assert.equal((await upload(alice, { device_keys: identityKeys(alice) })).status, 200);
    assert.equal((await upload(laptop, { device_keys: identityKeys(laptop) })).status, 200);

    const response = await query(bob, {
      [alice.userId]: [],
      '@nobody:test.local': [],
      '@remote:elsewhere.example': [],
    });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assertMatchesSpec('keys.yaml', 'post', '/keys/query', 200, response.body);
    assert.deepEqual(response.body.failures, {});
    assert.deepEqual(Object.keys(response.body.device_keys).sort(), [
      '@nobody:test.local',
      alice.userId,
    ]);
    assert.deepEqual(response.body.device_keys['@nobody:test.local'], {});
    const devices = response.body.device_keys[alice.userId] ?? {};
    assert.deepEqual(Object.keys(devices).sort(), [alice.deviceId, 'LAPTOP'].sort());
    assert.deepEqual(devices.LAPTOP, {
      ...identityKeys(laptop),
      unsigned: { device_display_name: 'Laptop' },
    });

    const one = await query(bob, { [alice.userId]: ['LAPTOP', 'NOSUCHDEVICE'] });
    assert.deepEqual(Object.keys(one.body.device_keys[alice.userId] ?? {}), ['LAPTOP']);
  });

  it('POST /keys/query: 400 for a malformed user ID or body', async () => {
    const alice = await registerUser(server);
    expectError(await query(alice, { 'not-a-user': [] }), 400, 'M_INVALID_PARAM');
    expectError(await query(alice, { [alice.userId]: 'all' }), 400, 'M_BAD_JSON');
    const missing = await server.request('POST', `${V3}/keys/query`, {
      token: alice.accessToken,
      body: {},
    });
    expectError(missing, 400, 'M_BAD_JSON');
  });

  it('POST /keys/claim hands each one-time key out once, then the fallback key', async () => {
    const alice = await registerUser(server);
    const bob = await registerUser(server);
    await upload(alice, {
      one_time_keys: {
        'signed_curve25519:AAAAAQ': signedKey(alice, 'k1'),
        'signed_curve25519:AAAAAg': signedKey(alice, 'k2'),
      },
      fallback_keys: { 'signed_curve25519:AAAAFB': signedKey(alice, 'fb', true) },
    });
    assert.deepEqual(
      await services.deviceKeys.unusedFallbackKeyTypes(alice.userId, alice.deviceId),
      ['signed_curve25519'],
    );
    const request = { [alice.userId]: { [alice.deviceId]: 'signed_curve25519' } };
    const claimed: string[] = [];
    for (let i = 0; i < 2; i++) {
      const response = await claim(bob, request);
      assert.equal(response.status, 200, JSON.stringify(response.body));
      assertMatchesSpec('keys.yaml', 'post', '/keys/claim', 200, response.body);
      assert.deepEqual(response.body.failures, {});
      const keys = response.body.one_time_keys[alice.userId]?.[alice.deviceId] ?? {};
      assert.equal(Object.keys(keys).length, 1);
      claimed.push(...Object.keys(keys));
    }
    assert.deepEqual(claimed.sort(), ['signed_curve25519:AAAAAQ', 'signed_curve25519:AAAAAg']);
    assert.deepEqual(await services.deviceKeys.oneTimeKeyCounts(alice.userId, alice.deviceId), {
      signed_curve25519: 0,
    });

    for (let i = 0; i < 2; i++) {
      const fallback = await claim(bob, request);
      assert.deepEqual(fallback.body.one_time_keys, {
        [alice.userId]: {
          [alice.deviceId]: { 'signed_curve25519:AAAAFB': signedKey(alice, 'fb', true) },
        },
      });
    }
    assert.deepEqual(
      await services.deviceKeys.unusedFallbackKeyTypes(alice.userId, alice.deviceId),
      [],
    );
    // The same fallback key again stays used; a new one is unused.
    await upload(alice, {
      fallback_keys: { 'signed_curve25519:AAAAFB': signedKey(alice, 'fb', true) },
    });
    assert.deepEqual(
      await services.deviceKeys.unusedFallbackKeyTypes(alice.userId, alice.deviceId),
      [],
    );
    await upload(alice, {
      fallback_keys: { 'signed_curve25519:AAAAFC': signedKey(alice, 'fb2', true) },
    });
    assert.deepEqual(
      await services.deviceKeys.unusedFallbackKeyTypes(alice.userId, alice.deviceId),
      ['signed_curve25519'],
    );

    const unknown = await claim(bob, {
      [alice.userId]: { NOSUCHDEVICE: 'signed_curve25519', [alice.deviceId]: 'other_alg' },
      '@remote:elsewhere.example': { DEV: 'signed_curve25519' },
    });
    assert.equal(unknown.status, 200);
    assert.deepEqual(unknown.body.one_time_keys, {});
  });

  it('POST /keys/claim: concurrent claims never share a one-time key', async () => {
    const alice = await registerUser(server);
    const claimers = await Promise.all([1, 2, 3].map(() => registerUser(server)));
    const keys: Record<string, unknown> = {};
    for (let i = 0; i < 6; i++) keys[`signed_curve25519:K${i}`] = signedKey(alice, `k${i}`);
    await upload(alice, { one_time_keys: keys });
    const request = { [alice.userId]: { [alice.deviceId]: 'signed_curve25519' } };
    const responses = await Promise.all(
      Array.from({ length: 9 }, (_, i) => claim(claimers[i % 3] as TestUser, request)),
    );
    const handedOut = responses.flatMap((res) => {
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return Object.keys(res.body.one_time_keys[alice.userId]?.[alice.deviceId] ?? {});
    });
    assert.equal(handedOut.length, 6, 'no fallback key: three claims got nothing');
    assert.equal(new Set(handedOut).size, 6, 'each key once');
  });

  it('POST /keys/claim: 400 for a malformed user ID or body', async () => {
    const alice = await registerUser(server);
    expectError(
      await claim(alice, { 'not-a-user': { DEV: 'signed_curve25519' } }),
      400,
      'M_INVALID_PARAM',
    );
    expectError(await claim(alice, { [alice.userId]: { DEV: 5 } }), 400, 'M_BAD_JSON');
    expectError(await claim(alice, 'x'), 400, 'M_BAD_JSON');
  });

  it('GET /keys/changes lists users sharing a room whose keys changed, and users who left', async () => {
    const alice = await registerUser(server);
    const bob = await registerUser(server);
    const carol = await registerUser(server);
    const roomId = await sharedRoom(alice, bob);
    const from = await token();
    const watch = watchChanges(server);
    assert.equal((await upload(bob, { device_keys: identityKeys(bob) })).status, 200);
    const announced = await watch.waitFor((c) => c.users?.includes(bob.userId) ?? false);
    assert.deepEqual(announced.rooms, [roomId], 'rooms bob is in are told');
    watch.stop();
    assert.equal((await upload(carol, { device_keys: identityKeys(carol) })).status, 200);
    const before = await position();
    assert.equal((await upload(bob, { device_keys: identityKeys(bob) })).status, 200);
    assert.equal(await position(), before, 'the same keys again are no change');

    const response = await changes(alice, from, await token());
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assertMatchesSpec('keys.yaml', 'get', '/keys/changes', 200, response.body);
    assert.deepEqual(response.body, { changed: [bob.userId], left: [] });
    const own = await changes(bob, from, await token());
    assert.deepEqual(own.body.changed, [bob.userId], 'a user sees their own changes');

    const beforeLeave = await token();
    const left = await server.request('POST', `${V3}/rooms/${r(roomId)}/leave`, {
      token: bob.accessToken,
      body: {},
    });
    assert.equal(left.status, 200, JSON.stringify(left.body));
    assert.deepEqual((await changes(alice, beforeLeave, await token())).body, {
      changed: [],
      left: [bob.userId],
    });
    assert.deepEqual((await changes(bob, beforeLeave, await token())).body, {
      changed: [],
      left: [alice.userId],
    });

    const beforeJoin = await token();
    await sharedRoom(carol, alice);
    const joined = await changes(alice, beforeJoin, await token());
    assert.deepEqual(joined.body, { changed: [carol.userId], left: [] }, 'a newly shared user');
  });

  it('deviceListsSince matches /keys/changes and is empty for an initial sync', async () => {
    const alice = await registerUser(server);
    const bob = await registerUser(server);
    await sharedRoom(alice, bob);
    const from = await position();
    await upload(bob, { device_keys: identityKeys(bob) });
    const upTo = await position();
    assert.deepEqual(await services.deviceKeys.deviceListsSince(alice.userId, from, upTo), {
      changed: [bob.userId],
      left: [],
    });
    assert.deepEqual(await services.deviceKeys.deviceListsSince(alice.userId, 0, upTo), {
      changed: [],
      left: [],
    });
  });

  it('deleting a device forgets its keys and messages and is a device-list change', async () => {
    const alice = await registerUser(server);
    const bob = await registerUser(server);
    await sharedRoom(alice, bob);
    const doomed = await loginUser(server, alice.userId, alice.password, { device_id: 'DOOMED' });
    await upload(doomed, {
      device_keys: identityKeys(doomed),
      one_time_keys: { 'signed_curve25519:AAAAAQ': signedKey(doomed, 'k1') },
    });
    const sent = await server.request('PUT', `${V3}/sendToDevice/m.test/t1`, {
      token: bob.accessToken,
      body: { messages: { [alice.userId]: { DOOMED: { n: 1 } } } },
    });
    assert.equal(sent.status, 200);
    const from = await token();
    const deleted = await server.request('DELETE', `${V3}/devices/DOOMED`, {
      token: alice.accessToken,
      body: { auth: passwordAuth(alice.userId, alice.password) },
    });
    assert.equal(deleted.status, 200, JSON.stringify(deleted.body));

    assert.deepEqual((await changes(bob, from, await token())).body.changed, [alice.userId]);
    assert.deepEqual((await query(bob, { [alice.userId]: [] })).body.device_keys, {
      [alice.userId]: {},
    });
    assert.deepEqual(await services.deviceKeys.oneTimeKeyCounts(alice.userId, 'DOOMED'), {
      signed_curve25519: 0,
    });
    assert.deepEqual(
      await services.toDevice.forSync(alice.userId, 'DOOMED', 0, await position()),
      [],
    );
  });

  it('GET /keys/changes: 400 M_INVALID_PARAM for a bad token, M_MISSING_PARAM without one', async () => {
    const alice = await registerUser(server);
    expectError(await changes(alice, 'nonsense', await token()), 400, 'M_INVALID_PARAM');
    expectError(await changes(alice, await token(), 's-1'), 400, 'M_INVALID_PARAM');
    const missing = await server.request('GET', `${V3}/keys/changes?from=s1`, {
      token: alice.accessToken,
    });
    expectError(missing, 400, 'M_MISSING_PARAM');
  });

  it('401 M_MISSING_TOKEN without a token', async () => {
    for (const [method, path] of [
      ['POST', '/keys/upload'],
      ['POST', '/keys/query'],
      ['POST', '/keys/claim'],
      ['GET', '/keys/changes?from=s0&to=s1'],
    ] as const) {
      const response = await server.request(method, `${V3}${path}`, {
        ...(method === 'POST' ? { body: {} } : {}),
      });
      expectError(response, 401, 'M_MISSING_TOKEN');
    }
  });
});
