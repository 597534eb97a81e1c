import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { expectError } from '../helpers/assertions.js';
import { assertMatchesSpec } from '../helpers/spec-contract.js';

const C = '/_matrix/client/v3';
const ALGORITHM = 'm.megolm_backup.v1.curve25519-aes-sha2';
const ROOM = '!room:test.local';
const R = encodeURIComponent(ROOM);

const key = (index: number, forwarded: number, verified: boolean, marker: string) => ({
  first_message_index: index,
  forwarded_count: forwarded,
  is_verified: verified,
  session_data: { ephemeral: marker, ciphertext: `c-${marker}`, mac: 'm' },
});

interface VersionInfo {
  algorithm: string;
  auth_data: Record<string, unknown>;
  count: number;
  etag: string;
  version: string;
}

forEachDatabase('key backup (/room_keys)', (dialect) => {
  let server: TestServer;
  let user: TestUser;
  let other: TestUser;
  before(async () => {
    server = await startTestServer(dialect);
    user = await registerUser(server);
    other = await registerUser(server);
  });
  after(async () => server.close());

  const call = <T = Record<string, unknown>>(
    method: string,
    path: string,
    body?: unknown,
    who = user,
  ) => server.request<T>(method, `${C}${path}`, { token: who.accessToken, body });

  it('version CRUD: create, read (current and by number), update, delete', async () => {
    expectError(await call('GET', '/room_keys/version'), 404, 'M_NOT_FOUND');
    const created = await call<{ version: string }>('POST', '/room_keys/version', {
      algorithm: ALGORITHM,
      auth_data: { public_key: 'abc', signatures: {} },
    });
    assert.equal(created.status, 200);
    assertMatchesSpec('key_backup.yaml', 'post', '/room_keys/version', 200, created.body);
    const version = created.body.version;

    const current = await call<VersionInfo>('GET', '/room_keys/version');
    assert.equal(current.status, 200);
    assertMatchesSpec('key_backup.yaml', 'get', '/room_keys/version', 200, current.body);
    assert.deepEqual(current.body, {
      algorithm: ALGORITHM,
      auth_data: { public_key: 'abc', signatures: {} },
      count: 0,
      etag: '0',
      version,
    });
    assert.deepEqual((await call('GET', `/room_keys/version/${version}`)).body, current.body);
    // Another user sees none of it.
    expectError(
      await call('GET', `/room_keys/version/${version}`, undefined, other),
      404,
      'M_NOT_FOUND',
    );

    const updated = await call('PUT', `/room_keys/version/${version}`, {
      algorithm: ALGORITHM,
      auth_data: { public_key: 'def' },
      version,
    });
    assert.equal(updated.status, 200);
    assert.deepEqual(updated.body, {});
    assert.deepEqual((await call<VersionInfo>('GET', '/room_keys/version')).body.auth_data, {
      public_key: 'def',
    });
    const errors: [unknown, string, number, string][] = [
      [{ algorithm: ALGORITHM, auth_data: {}, version: '999' }, version, 400, 'M_INVALID_PARAM'],
      [{ algorithm: 'other', auth_data: {} }, version, 400, 'M_INVALID_PARAM'],
      [{ algorithm: ALGORITHM, auth_data: {} }, '999', 404, 'M_NOT_FOUND'],
      [{ algorithm: ALGORITHM, auth_data: {} }, 'abc', 404, 'M_NOT_FOUND'],
      [{ auth_data: {} }, version, 400, 'M_BAD_JSON'],
    ];
    for (const [body, at, status, errcode] of errors) {
      expectError(await call('PUT', `/room_keys/version/${at}`, body), status, errcode);
    }

    const second = await call<{ version: string }>('POST', '/room_keys/version', {
      algorithm: ALGORITHM,
      auth_data: {},
    });
    assert.notEqual(second.body.version, version);
    assert.equal(
      (await call<VersionInfo>('GET', '/room_keys/version')).body.version,
      second.body.version,
    );
    assert.equal((await call('DELETE', `/room_keys/version/${second.body.version}`)).status, 200);
    // The older one is current again; the deleted one is gone, and its number is not reused.
    assert.equal((await call<VersionInfo>('GET', '/room_keys/version')).body.version, version);
    expectError(await call('GET', `/room_keys/version/${second.body.version}`), 404, 'M_NOT_FOUND');
    expectError(
      await call('DELETE', `/room_keys/version/${second.body.version}`),
      404,
      'M_NOT_FOUND',
    );
    const third = await call<{ version: string }>('POST', '/room_keys/version', {
      algorithm: ALGORITHM,
      auth_data: {},
    });
    assert.ok(Number(third.body.version) > Number(second.body.version));
    await call('DELETE', `/room_keys/version/${third.body.version}`);
    await call('DELETE', `/room_keys/version/${version}`);
  });

  it('keys at three levels, etag and count, the better key kept, M_WRONG_ROOM_KEYS_VERSION', async () => {
    const first = (
      await call<{ version: string }>('POST', '/room_keys/version', {
        algorithm: ALGORITHM,
        auth_data: {},
      })
    ).body.version;
    const put = await call<{ etag: string; count: number }>(
      'PUT',
      `/room_keys/keys?version=${first}`,
      {
        rooms: { [ROOM]: { sessions: { s1: key(5, 1, false, 'a'), s2: key(0, 0, false, 'b') } } },
      },
    );
    assert.equal(put.status, 200, JSON.stringify(put.body));
    assertMatchesSpec('key_backup.yaml', 'put', '/room_keys/keys', 200, put.body);
    assert.equal(put.body.count, 2);
    const etag1 = put.body.etag;

    // A worse key (higher index) is ignored: etag unchanged.
    const worse = await call<{ etag: string; count: number }>(
      'PUT',
      `/room_keys/keys/${R}/s1?version=${first}`,
      key(9, 0, false, 'worse'),
    );
    assert.deepEqual(worse.body, { etag: etag1, count: 2 });
    // Better ones replace: lower index; then verified beats unverified whatever the index.
    const better = await call<{ etag: string }>('PUT', `/room_keys/keys/${R}?version=${first}`, {
      sessions: { s1: key(2, 0, false, 'better') },
    });
    assert.notEqual(better.body.etag, etag1);
    await call('PUT', `/room_keys/keys/${R}/s1?version=${first}`, key(7, 3, true, 'verified'));
    await call('PUT', `/room_keys/keys/${R}/s1?version=${first}`, key(0, 0, false, 'unverified'));
    const session = await call('GET', `/room_keys/keys/${R}/s1?version=${first}`);
    assertMatchesSpec(
      'key_backup.yaml',
      'get',
      '/room_keys/keys/{roomId}/{sessionId}',
      200,
      session.body,
    );
    assert.deepEqual(session.body, key(7, 3, true, 'verified'));

    const room = await call<{ sessions: Record<string, unknown> }>(
      'GET',
      `/room_keys/keys/${R}?version=${first}`,
    );
    assert.deepEqual(Object.keys(room.body.sessions).sort(), ['s1', 's2']);
    const all = await call<{ rooms: Record<string, unknown> }>(
      'GET',
      `/room_keys/keys?version=${first}`,
    );
    assertMatchesSpec('key_backup.yaml', 'get', '/room_keys/keys', 200, all.body);
    assert.deepEqual(Object.keys(all.body.rooms), [ROOM]);
    assert.deepEqual(
      (
        await call(
          'GET',
          `/room_keys/keys/${encodeURIComponent('!none:test.local')}?version=${first}`,
        )
      ).body,
      { sessions: {} },
    );
    expectError(
      await call('GET', `/room_keys/keys/${R}/nope?version=${first}`),
      404,
      'M_NOT_FOUND',
    );
    expectError(await call('GET', '/room_keys/keys?version=999'), 404, 'M_NOT_FOUND');
    expectError(await call('GET', '/room_keys/keys'), 400, 'M_MISSING_PARAM');
    const info = await call<VersionInfo>('GET', `/room_keys/version/${first}`);
    assert.equal(info.body.count, 2);

    // Writing to a version that is not the current one.
    const second = (
      await call<{ version: string }>('POST', '/room_keys/version', {
        algorithm: ALGORITHM,
        auth_data: {},
      })
    ).body.version;
    const wrong = await call<{ current_version: string }>(
      'PUT',
      `/room_keys/keys/${R}/s3?version=${first}`,
      key(0, 0, false, 'x'),
    );
    expectError(wrong, 403, 'M_WRONG_ROOM_KEYS_VERSION');
    assert.equal(wrong.body.current_version, second);
    expectError(
      await call('PUT', `/room_keys/keys/${R}/s3?version=`, key(0, 0, false, 'x')),
      403,
      'M_WRONG_ROOM_KEYS_VERSION',
    );
    // The old version is still readable, and its keys deletable at each level.
    const bad = await call('PUT', `/room_keys/keys/${R}/s3?version=${second}`, {
      first_message_index: -1,
    });
    expectError(bad, 400, 'M_BAD_JSON');
    const deletedOne = await call<{ etag: string; count: number }>(
      'DELETE',
      `/room_keys/keys/${R}/s2?version=${first}`,
    );
    assert.equal(deletedOne.body.count, 1);
    const deletedRoom = await call<{ count: number }>(
      'DELETE',
      `/room_keys/keys/${R}?version=${first}`,
    );
    assert.equal(deletedRoom.body.count, 0);
    await call('PUT', `/room_keys/keys?version=${second}`, {
      rooms: { [ROOM]: { sessions: { s9: key(0, 0, false, 'z') } } },
    });
    const deletedAll = await call<{ count: number }>('DELETE', `/room_keys/keys?version=${second}`);
    assert.equal(deletedAll.body.count, 0);
    // No backup at all: keys cannot be stored.
    await call('DELETE', `/room_keys/version/${second}`);
    await call('DELETE', `/room_keys/version/${first}`);
    expectError(
      await call('PUT', `/room_keys/keys/${R}/s1?version=${second}`, key(0, 0, false, 'x')),
      404,
      'M_NOT_FOUND',
    );
    expectError(await call('GET', '/room_keys/version', undefined), 404, 'M_NOT_FOUND');
  });

  it('needs a token', async () => {
    expectError(await server.request('GET', `${C}/room_keys/version`), 401, 'M_MISSING_TOKEN');
  });
});
