/**
 * Two Commons servers on this machine, named `127.0.0.1:<port>` with TLS from a CA made for the
 * test: each fetches the other's keys, signed requests between them (profile and directory
 * queries), the notary answers, and every refusal of an unauthentic request.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, it } from 'node:test';
import { loadServerSecrets } from '../../src/config/server-secrets.js';
import { generateSigningKey } from '../../src/core/signing.js';
import { verifyServerKeys } from '../../src/core/server-keys.js';
import { xMatrixHeader } from '../../src/core/x-matrix.js';
import type { FederationService } from '../../src/services/federation/index.js';
import {
  createFederationClient,
  FederationRequestError,
} from '../../src/services/federation/client.js';
import { forEachDatabase } from '../helpers/databases.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { httpsJson, makeTestCa, startFederatedServer, type TestCa } from '../helpers/federation.js';
import type { TestServer } from '../helpers/server.js';

type Federated = TestServer & { serverName: string; port: number };
const r = encodeURIComponent;

forEachDatabase('federation between two Commons servers', (dialect) => {
  let ca: TestCa;
  let a: Federated;
  let b: Federated;
  let bob: TestUser;
  let aFederation: FederationService;
  let roomId: string;

  before(async () => {
    ca = makeTestCa();
    a = await startFederatedServer(dialect, ca);
    b = await startFederatedServer(dialect, ca);
    const federation = a.running.services.federation;
    assert.ok(federation);
    aFederation = federation;
    bob = await registerUser(b, 'bob');
    const named = await b.request(
      'PUT',
      `/_matrix/client/v3/profile/${r(bob.userId)}/displayname`,
      {
        token: bob.accessToken,
        body: { displayname: 'Bob of B' },
      },
    );
    assert.equal(named.status, 200);
    const created = await b.request<{ room_id: string }>('POST', '/_matrix/client/v3/createRoom', {
      token: bob.accessToken,
      body: { room_alias_name: 'lobby' },
    });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    roomId = created.body.room_id;
  });
  after(async () => {
    await a?.close();
    await b?.close();
    rmSync(ca.dir, { recursive: true, force: true });
  });

  const tls = (server: Federated) => `https://127.0.0.1:${server.port}`;

  it('serves its signing key over TLS, valid for a while and self-signed', async () => {
    const answer = await httpsJson(ca, `${tls(a)}/_matrix/key/v2/server`);
    assert.equal(answer.status, 200);
    const verified = verifyServerKeys(answer.body, a.serverName);
    assert.ok('keys' in verified, JSON.stringify(verified));
    assert.ok(verified.json.valid_until_ts > Date.now() + 3600_000);
    assert.deepEqual(verified.json.old_verify_keys, {});
  });

  it('serves the same on the client listener (behind a reverse proxy)', async () => {
    const answer = await a.request('GET', '/_matrix/key/v2/server');
    assert.equal(answer.status, 200);
    assert.ok('keys' in verifyServerKeys(answer.body, a.serverName));
  });

  it('the TLS listener serves only server-server paths', async () => {
    const answer = await httpsJson(ca, `${tls(a)}/_matrix/client/versions`);
    assert.equal(answer.status, 404);
    assert.equal((answer.body as { errcode: string }).errcode, 'M_UNRECOGNIZED');
  });

  it('answers /_matrix/federation/v1/version', async () => {
    const answer = await httpsJson(ca, `${tls(a)}/_matrix/federation/v1/version`);
    assert.equal(answer.status, 200);
    assert.equal((answer.body as { server: { name: string } }).server.name, 'Commons');
  });

  it('a signed profile query from A is answered by B (which fetches A’s key)', async () => {
    const answer = await aFederation.client.request(
      b.serverName,
      'GET',
      `/_matrix/federation/v1/query/profile?user_id=${r(bob.userId)}`,
    );
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.deepEqual(answer.body, { displayname: 'Bob of B' });
    const field = await aFederation.client.request(
      b.serverName,
      'GET',
      `/_matrix/federation/v1/query/profile?user_id=${r(bob.userId)}&field=avatar_url`,
    );
    assert.equal(field.status, 200);
    assert.deepEqual(field.body, {});
  });

  it('B now holds A’s key, and serves it as a notary with its own signature added', async () => {
    const query = await httpsJson(ca, `${tls(b)}/_matrix/key/v2/query`, {
      method: 'POST',
      body: { server_keys: { [a.serverName]: {} } },
    });
    assert.equal(query.status, 200, JSON.stringify(query.body));
    const [answer] = (query.body as { server_keys: Record<string, unknown>[] }).server_keys;
    assert.ok(answer);
    assert.ok('keys' in verifyServerKeys(answer, a.serverName));
    const signatures = answer.signatures as Record<string, unknown>;
    assert.ok(signatures[b.serverName], 'the notary signed');
    const byGet = await httpsJson(
      ca,
      `${tls(b)}/_matrix/key/v2/query/${r(a.serverName)}?minimum_valid_until_ts=${Date.now()}`,
    );
    assert.equal(byGet.status, 200);
    assert.equal((byGet.body as { server_keys: unknown[] }).server_keys.length, 1);
  });

  it('without the test CA trusted, the outbound client refuses B’s certificate', async () => {
    const untrusting = createFederationClient({
      serverName: a.serverName,
      signingKey: loadServerSecrets(a.config.data_dir).signingKey,
      extraCaPem: null,
      timeoutMs: 10_000,
    });
    try {
      await assert.rejects(
        untrusting.request(b.serverName, 'GET', '/_matrix/key/v2/server', { unsigned: true }),
        (err: Error) => err instanceof FederationRequestError && /certificate/i.test(err.message),
      );
    } finally {
      untrusting.close();
    }
  });

  it('a notary query fetches keys it has not got yet, and answers for itself', async () => {
    const query = await httpsJson(ca, `${tls(a)}/_matrix/key/v2/query`, {
      method: 'POST',
      body: { server_keys: { [b.serverName]: {}, [a.serverName]: {} } },
    });
    assert.equal(query.status, 200);
    const keys = (query.body as { server_keys: { server_name: string }[] }).server_keys;
    assert.deepEqual(keys.map((k) => k.server_name).sort(), [a.serverName, b.serverName].sort());
  });

  it('refuses key queries that are not well formed', async () => {
    for (const body of [{}, { server_keys: [] }, { server_keys: { 'bad name!': {} } }]) {
      const answer = await httpsJson(ca, `${tls(a)}/_matrix/key/v2/query`, {
        method: 'POST',
        body,
      });
      assert.equal(answer.status, 400, JSON.stringify(body));
    }
    const bad = await httpsJson(ca, `${tls(a)}/_matrix/key/v2/query/${r('bad name!')}`);
    assert.equal(bad.status, 400);
  });

  it('a directory query for B’s alias gives the room and the servers in it', async () => {
    const answer = await aFederation.client.request(
      b.serverName,
      'GET',
      `/_matrix/federation/v1/query/directory?room_alias=${r(`#lobby:${b.serverName}`)}`,
    );
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.deepEqual(answer.body, { room_id: roomId, servers: [b.serverName] });
  });

  const queryErrors: [string, string, number, string][] = [
    ['an unknown local user', '/query/profile?user_id=@nobody:SERVER', 404, 'M_NOT_FOUND'],
    [
      'a user of another server',
      `/query/profile?user_id=${r('@x:elsewhere.example')}`,
      400,
      'M_INVALID_PARAM',
    ],
    ['an unknown field', `/query/profile?user_id=@bob:SERVER&field=m.tz`, 400, 'M_INVALID_PARAM'],
    ['no user_id', '/query/profile', 400, 'M_MISSING_PARAM'],
    ['an unknown alias', `/query/directory?room_alias=${r('#none:SERVER')}`, 404, 'M_NOT_FOUND'],
    [
      'an alias of another server',
      `/query/directory?room_alias=${r('#x:elsewhere.example')}`,
      404,
      'M_NOT_FOUND',
    ],
  ];
  for (const [what, path, status, errcode] of queryErrors) {
    it(`a signed query for ${what}: ${status} ${errcode}`, async () => {
      const full = `/_matrix/federation/v1${path}`.replace(/SERVER/g, r(b.serverName));
      const answer = await aFederation.client.request(b.serverName, 'GET', full);
      assert.equal(answer.status, status, JSON.stringify(answer.body));
      assert.equal((answer.body as { errcode: string }).errcode, errcode);
    });
  }

  const profilePath = () => `/_matrix/federation/v1/query/profile?user_id=${r(bob.userId)}`;
  const signedBy = (
    key: ReturnType<typeof generateSigningKey>,
    change: { origin?: string; destination?: string; uri?: string } = {},
  ) =>
    xMatrixHeader(
      {
        method: 'GET',
        uri: change.uri ?? profilePath(),
        origin: change.origin ?? a.serverName,
        destination: change.destination ?? b.serverName,
      },
      key,
    );
  const keyOfA = () => loadServerSecrets(a.config.data_dir).signingKey;

  const refusals: [string, () => Record<string, string>][] = [
    ['no Authorization header', () => ({})],
    ['a Bearer token', () => ({ Authorization: 'Bearer abc' })],
    ['a malformed header', () => ({ Authorization: 'X-Matrix origin=' })],
    [
      'a forged signature (another key under A’s key ID)',
      () => {
        const forged = generateSigningKey();
        return { Authorization: signedBy(forged).replace(forged.keyId, keyOfA().keyId) };
      },
    ],
    ['a key A never had', () => ({ Authorization: signedBy(generateSigningKey()) })],
    [
      'another destination',
      () => ({ Authorization: signedBy(keyOfA(), { destination: 'elsewhere.example' }) }),
    ],
    [
      'an origin that does not answer for its keys',
      () => ({ Authorization: signedBy(generateSigningKey(), { origin: '127.0.0.1:1' }) }),
    ],
    [
      'a signature over another URI',
      () => ({
        Authorization: signedBy(keyOfA(), { uri: '/_matrix/federation/v1/query/directory' }),
      }),
    ],
  ];

  for (const [what, headers] of refusals) {
    it(`refuses a request with ${what}: 401 M_UNAUTHORIZED`, async () => {
      const answer = await httpsJson(ca, `${tls(b)}${profilePath()}`, { headers: headers() });
      assert.equal(answer.status, 401, JSON.stringify(answer.body));
      assert.equal((answer.body as { errcode: string }).errcode, 'M_UNAUTHORIZED');
    });
  }

  it('accepts the same request correctly signed with A’s key', async () => {
    const answer = await httpsJson(ca, `${tls(b)}${profilePath()}`, {
      headers: { Authorization: signedBy(keyOfA()) },
    });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
  });
});
