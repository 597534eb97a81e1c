import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { registerUser } from '../helpers/client.js';
import { assertMatchesSpec } from '../helpers/spec-contract.js';

forEachDatabase('the done-when walk of the foundation issue', (dialect) => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer(dialect);
  });
  after(async () => server.close());

  it('serves /versions, registers, logs in, whoami, sets a display name, logs out', async () => {
    const versions = await server.request('GET', '/_matrix/client/versions');
    assert.equal(versions.status, 200);
    assertMatchesSpec('versions.yaml', 'get', '/versions', 200, versions.body);

    const alice = await registerUser(server, 'alice');
    assert.equal(alice.userId, '@alice:test.local');

    const login = await server.request<{ access_token: string }>(
      'POST',
      '/_matrix/client/v3/login',
      {
        body: {
          type: 'm.login.password',
          identifier: { type: 'm.id.user', user: 'alice' },
          password: alice.password,
        },
      },
    );
    assert.equal(login.status, 200);
    assertMatchesSpec('login.yaml', 'post', '/login', 200, login.body);
    const token = login.body.access_token;

    const whoami = await server.request('GET', '/_matrix/client/v3/account/whoami', { token });
    assert.equal(whoami.status, 200);
    assert.equal(whoami.body.user_id, '@alice:test.local');
    assertMatchesSpec('whoami.yaml', 'get', '/account/whoami', 200, whoami.body);

    const put = await server.request(
      'PUT',
      '/_matrix/client/v3/profile/@alice:test.local/displayname',
      {
        token,
        body: { displayname: 'Alice' },
      },
    );
    assert.equal(put.status, 200);
    const profile = await server.request('GET', '/_matrix/client/v3/profile/@alice:test.local');
    assert.deepEqual(profile.body, { displayname: 'Alice' });

    const logout = await server.request('POST', '/_matrix/client/v3/logout', { token });
    assert.equal(logout.status, 200);
    const after = await server.request('GET', '/_matrix/client/v3/account/whoami', { token });
    assert.equal(after.status, 401);
    assert.deepEqual(after.body, {
      errcode: 'M_UNKNOWN_TOKEN',
      error: 'Unrecognised access token',
      soft_logout: false,
    });
  });
});

forEachDatabase('/.well-known/matrix/client', (dialect) => {
  let derived: TestServer;
  let configured: TestServer;
  before(async () => {
    derived = await startTestServer(dialect);
    configured = await startTestServer(dialect, {
      COMMONS_PUBLIC_BASEURL: 'https://matrix.example.org/',
    });
  });
  after(async () => {
    await derived.close();
    await configured.close();
  });

  it('without public_baseurl, names the address the client used (never port 0)', async () => {
    const response = await derived.request<{ 'm.homeserver': { base_url: string } }>(
      'GET',
      '/.well-known/matrix/client',
    );
    assert.equal(response.status, 200);
    assertMatchesSpec('wellknown.yaml', 'get', '/matrix/client', 200, response.body);
    assert.equal(response.body['m.homeserver'].base_url, `${derived.url}/`);
  });

  it('with public_baseurl, names it', async () => {
    const response = await configured.request<{ 'm.homeserver': { base_url: string } }>(
      'GET',
      '/.well-known/matrix/client',
    );
    assert.equal(response.body['m.homeserver'].base_url, 'https://matrix.example.org/');
  });
});
