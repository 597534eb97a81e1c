import assert from 'node:assert/strict';
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { after, before, it } from 'node:test';
import { canonicalJson } from '../../src/core/canonical-json.js';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { expectError } from '../helpers/assertions.js';
import { assertMatchesSpec } from '../helpers/spec-contract.js';

const V3 = '/_matrix/client/v3';
const r = encodeURIComponent;

interface Ed25519 {
  publicKey: string;
  privateKey: KeyObject;
}

function newKey(): Ed25519 {
  const pair = generateKeyPairSync('ed25519');
  const raw = pair.publicKey.export({ format: 'der', type: 'spki' }).subarray(12);
  return { publicKey: raw.toString('base64').replace(/=+$/, ''), privateKey: pair.privateKey };
}

/** Signs as a client does: canonical JSON without `signatures` and `unsigned`. */
function signed<T extends Record<string, unknown>>(
  value: T,
  userId: string,
  keyId: string,
  key: Ed25519,
): T {
  const bytes = Buffer.from(
    canonicalJson({ ...value, signatures: undefined, unsigned: undefined }),
  );
  const signature = sign(null, bytes, key.privateKey).toString('base64').replace(/=+$/, '');
  const signatures = { ...(value.signatures as Record<string, Record<string, string>>) };
  signatures[userId] = { ...signatures[userId], [keyId]: signature };
  return { ...value, signatures };
}

function crossSigningKey(userId: string, usage: string, key: Ed25519) {
  return { user_id: userId, usage: [usage], keys: { [`ed25519:${key.publicKey}`]: key.publicKey } };
}

interface QueryAnswer {
  device_keys: Record<
    string,
    Record<string, { signatures: Record<string, Record<string, string>> }>
  >;
  master_keys?: Record<string, { signatures?: Record<string, Record<string, string>> }>;
  self_signing_keys?: Record<string, unknown>;
  user_signing_keys?: Record<string, unknown>;
}

forEachDatabase('cross-signing', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  const deviceKey = newKey();
  const master = newKey();
  const selfSigning = newKey();
  const userSigning = newKey();
  let aliceDevice: Record<string, unknown>;
  let roomId: string;

  const post = <T = Record<string, unknown>>(user: TestUser, path: string, body: unknown) =>
    server.request<T>('POST', `${V3}${path}`, { token: user.accessToken, body });
  const query = (user: TestUser, userIds: string[]) =>
    post<QueryAnswer>(user, '/keys/query', {
      device_keys: Object.fromEntries(userIds.map((id) => [id, []])),
    });
  const syncToken = async (user: TestUser) =>
    (
      await server.request<{ next_batch: string }>('GET', `${V3}/sync?timeout=0`, {
        token: user.accessToken,
      })
    ).body.next_batch;

  before(async () => {
    server = await startTestServer(dialect);
    [alice, bob, carol] = [
      await registerUser(server),
      await registerUser(server),
      await registerUser(server),
    ];
    aliceDevice = signed(
      {
        user_id: alice.userId,
        device_id: alice.deviceId,
        algorithms: ['m.olm.v1.curve25519-aes-sha2', 'm.megolm.v1.aes-sha2'],
        keys: {
          [`ed25519:${alice.deviceId}`]: deviceKey.publicKey,
          [`curve25519:${alice.deviceId}`]: 'curvekey',
        },
      },
      alice.userId,
      `ed25519:${alice.deviceId}`,
      deviceKey,
    );
    assert.equal((await post(alice, '/keys/upload', { device_keys: aliceDevice })).status, 200);
    roomId = (await post<{ room_id: string }>(alice, '/createRoom', { preset: 'public_chat' })).body
      .room_id;
    assert.equal((await post(bob, `/join/${r(roomId)}`, {})).status, 200);
  });
  after(async () => server.close());

  it('device_signing/upload: the first upload needs no password; keys appear in /keys/query and in device lists', async () => {
    const since = await syncToken(bob);
    const body = {
      master_key: crossSigningKey(alice.userId, 'master', master),
      self_signing_key: signed(
        crossSigningKey(alice.userId, 'self_signing', selfSigning),
        alice.userId,
        `ed25519:${master.publicKey}`,
        master,
      ),
      user_signing_key: signed(
        crossSigningKey(alice.userId, 'user_signing', userSigning),
        alice.userId,
        `ed25519:${master.publicKey}`,
        master,
      ),
    };
    const uploaded = await post(alice, '/keys/device_signing/upload', body);
    assert.equal(uploaded.status, 200, JSON.stringify(uploaded.body));
    assert.deepEqual(uploaded.body, {});

    const own = await query(alice, [alice.userId]);
    assertMatchesSpec('keys.yaml', 'post', '/keys/query', 200, own.body);
    assert.deepEqual(own.body.master_keys?.[alice.userId], body.master_key);
    assert.deepEqual(own.body.self_signing_keys?.[alice.userId], body.self_signing_key);
    assert.deepEqual(own.body.user_signing_keys?.[alice.userId], body.user_signing_key);
    const seen = await query(bob, [alice.userId]);
    assert.ok(seen.body.master_keys?.[alice.userId]);
    assert.ok(seen.body.self_signing_keys?.[alice.userId]);
    assert.deepEqual(seen.body.user_signing_keys, {}, 'only the owner sees the user-signing key');

    const changes = await server.request<{ changed: string[] }>(
      'GET',
      `${V3}/keys/changes?from=${r(since)}&to=${r(await syncToken(bob))}`,
      { token: bob.accessToken },
    );
    assert.ok(changes.body.changed.includes(alice.userId), JSON.stringify(changes.body));
    const sync = await server.request<{ device_lists?: { changed?: string[] } }>(
      'GET',
      `${V3}/sync?timeout=0&since=${r(since)}`,
      { token: bob.accessToken },
    );
    assert.ok(
      sync.body.device_lists?.changed?.includes(alice.userId),
      JSON.stringify(sync.body.device_lists),
    );

    // The same keys again: nothing to authorise.
    assert.equal((await post(alice, '/keys/device_signing/upload', body)).status, 200);
  });

  it('device_signing/upload: replacing keys needs the password (UIA)', async () => {
    const replacement = newKey();
    const body = { master_key: crossSigningKey(alice.userId, 'master', replacement) };
    const challenge = await post<{ flows: { stages: string[] }[]; session: string }>(
      alice,
      '/keys/device_signing/upload',
      body,
    );
    assert.equal(challenge.status, 401);
    assert.deepEqual(challenge.body.flows, [{ stages: ['m.login.password'] }]);
    const wrong = await post(alice, '/keys/device_signing/upload', {
      ...body,
      auth: {
        type: 'm.login.password',
        session: challenge.body.session,
        identifier: { type: 'm.id.user', user: alice.userId },
        password: 'wrong',
      },
    });
    assert.equal(wrong.status, 401);
    // Put the original back afterwards is not needed: the test uses the replaced key no further.
    const done = await post(carol, '/keys/device_signing/upload', {
      master_key: crossSigningKey(carol.userId, 'master', newKey()),
    });
    assert.equal(done.status, 200);
    const again = await post<{ session: string }>(carol, '/keys/device_signing/upload', {
      master_key: crossSigningKey(carol.userId, 'master', newKey()),
    });
    assert.equal(again.status, 401);
    const authorised = await post(carol, '/keys/device_signing/upload', {
      master_key: crossSigningKey(carol.userId, 'master', newKey()),
      auth: {
        type: 'm.login.password',
        session: again.body.session,
        identifier: { type: 'm.id.user', user: carol.userId },
        password: carol.password,
      },
    });
    assert.equal(authorised.status, 200, JSON.stringify(authorised.body));
  });

  it("device_signing/upload refuses keys that are not the user's, unsigned, or without a master key", async () => {
    const fresh = await registerUser(server);
    const other = newKey();
    const cases: [unknown, number, string][] = [
      [
        { self_signing_key: crossSigningKey(fresh.userId, 'self_signing', other) },
        400,
        'M_MISSING_PARAM',
      ],
      [{ master_key: crossSigningKey(alice.userId, 'master', other) }, 400, 'M_INVALID_PARAM'],
      [
        { master_key: { ...crossSigningKey(fresh.userId, 'master', other), usage: ['other'] } },
        400,
        'M_INVALID_PARAM',
      ],
      [
        { master_key: { user_id: fresh.userId, usage: ['master'], keys: { 'ed25519:a': 'b' } } },
        400,
        'M_INVALID_PARAM',
      ],
      [
        {
          master_key: crossSigningKey(fresh.userId, 'master', other),
          self_signing_key: crossSigningKey(fresh.userId, 'self_signing', newKey()),
        },
        400,
        'M_INVALID_SIGNATURE',
      ],
      [{ master_key: 'nope' }, 400, 'M_BAD_JSON'],
    ];
    for (const [body, status, errcode] of cases) {
      expectError(await post(fresh, '/keys/device_signing/upload', body), status, errcode);
    }
    expectError(
      await server.request('POST', `${V3}/keys/device_signing/upload`, { body: {} }),
      401,
      'M_MISSING_TOKEN',
    );
  });

  it('signatures/upload: the self-signing key over a device; a user-signing key over another master key', async () => {
    // Alice's keys were replaced only by a failed (unauthorised) attempt: still `master`.
    const deviceSigned = signed(
      aliceDevice,
      alice.userId,
      `ed25519:${selfSigning.publicKey}`,
      selfSigning,
    );
    const forged = signed(aliceDevice, alice.userId, `ed25519:${selfSigning.publicKey}`, newKey());
    const good = await post<{ failures: Record<string, unknown> }>(
      alice,
      '/keys/signatures/upload',
      {
        [alice.userId]: { [alice.deviceId]: deviceSigned },
      },
    );
    assert.equal(good.status, 200);
    assertMatchesSpec('cross_signing.yaml', 'post', '/keys/signatures/upload', 200, good.body);
    assert.deepEqual(good.body.failures, {});
    const seen = await query(bob, [alice.userId]);
    const signatures =
      seen.body.device_keys[alice.userId]?.[alice.deviceId]?.signatures[alice.userId];
    assert.ok(signatures?.[`ed25519:${selfSigning.publicKey}`]);
    assert.ok(signatures?.[`ed25519:${alice.deviceId}`]);

    const bad = await post<{ failures: Record<string, Record<string, { errcode: string }>> }>(
      alice,
      '/keys/signatures/upload',
      {
        [alice.userId]: {
          [alice.deviceId]: forged,
          NOSUCHDEVICE: { ...deviceSigned, device_id: 'NOSUCHDEVICE' },
        },
      },
    );
    assert.equal(bad.status, 200);
    assert.equal(bad.body.failures[alice.userId]?.[alice.deviceId]?.errcode, 'M_INVALID_SIGNATURE');
    assert.equal(bad.body.failures[alice.userId]?.NOSUCHDEVICE?.errcode, 'M_INVALID_PARAM');

    // Bob cross-signs and signs Alice's master key with his user-signing key.
    const bobMaster = newKey();
    const bobUserSigning = newKey();
    const setUp = await post(bob, '/keys/device_signing/upload', {
      master_key: crossSigningKey(bob.userId, 'master', bobMaster),
      user_signing_key: signed(
        crossSigningKey(bob.userId, 'user_signing', bobUserSigning),
        bob.userId,
        `ed25519:${bobMaster.publicKey}`,
        bobMaster,
      ),
    });
    assert.equal(setUp.status, 200, JSON.stringify(setUp.body));
    const aliceMaster = (await query(bob, [alice.userId])).body.master_keys?.[alice.userId] ?? {};
    const vouched = await post<{ failures: Record<string, unknown> }>(
      bob,
      '/keys/signatures/upload',
      {
        [alice.userId]: {
          [master.publicKey]: signed(
            aliceMaster as Record<string, unknown>,
            bob.userId,
            `ed25519:${bobUserSigning.publicKey}`,
            bobUserSigning,
          ),
        },
      },
    );
    assert.deepEqual(vouched.body.failures, {});
    const bobSees = await query(bob, [alice.userId]);
    assert.ok(bobSees.body.master_keys?.[alice.userId]?.signatures?.[bob.userId]);
    const carolSees = await query(carol, [alice.userId]);
    assert.equal(carolSees.body.master_keys?.[alice.userId]?.signatures?.[bob.userId], undefined);
  });
});
