import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { expectError, uniqueName } from '../helpers/assertions.js';

interface Registered {
  user_id: string;
  access_token: string;
  device_id: string;
  home_server: string;
}

const ADMIN_REGISTER = '/_synapse/admin/v1/register';
const SECRET = 'a shared secret of enough length';

/** Synapse's MAC, computed here independently: hex HMAC-SHA1 of nonce\0user\0password\0admin|notadmin[\0user_type]. */
function mac(
  secret: string,
  fields: { nonce: string; username: string; password: string; admin: boolean; user_type?: string },
): string {
  const parts = [
    fields.nonce,
    fields.username,
    fields.password,
    fields.admin ? 'admin' : 'notadmin',
  ];
  if (fields.user_type !== undefined) parts.push(fields.user_type);
  return createHmac('sha1', Buffer.from(secret, 'utf8'))
    .update(parts.join('\x00'), 'utf8')
    .digest('hex');
}

forEachDatabase('shared-secret registration (/_synapse/admin/v1/register)', (dialect) => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer(dialect, { COMMONS_REGISTRATION_SHARED_SECRET: SECRET });
  });
  after(async () => server.close());

  async function nonce(): Promise<string> {
    const response = await server.request<{ nonce: string }>('GET', ADMIN_REGISTER);
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assert.equal(typeof response.body.nonce, 'string');
    return response.body.nonce;
  }

  async function loginStatus(user: string, password: string): Promise<number> {
    const response = await server.request('POST', '/_matrix/client/v3/login', {
      body: { type: 'm.login.password', identifier: { type: 'm.id.user', user }, password },
    });
    return response.status;
  }

  it('GET gives a fresh nonce each time', async () => {
    const a = await nonce();
    const b = await nonce();
    assert.ok(a.length >= 16, a);
    assert.notEqual(a, b);
  });

  it('registers a user with a correct MAC; the token works and the password logs in', async () => {
    const username = uniqueName('admreg');
    const fields = { nonce: await nonce(), username, password: 'admin set pw', admin: false };
    const response = await server.request<Registered>('POST', ADMIN_REGISTER, {
      body: { ...fields, mac: mac(SECRET, fields) },
    });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assert.equal(response.body.user_id, `@${username}:test.local`);
    assert.equal(response.body.home_server, 'test.local');
    assert.equal(typeof response.body.device_id, 'string');
    assert.equal(typeof response.body.access_token, 'string');

    const whoami = await server.request('GET', '/_matrix/client/v3/account/whoami', {
      token: response.body.access_token,
    });
    assert.equal(whoami.status, 200);
    assert.deepEqual(whoami.body, {
      user_id: `@${username}:test.local`,
      device_id: response.body.device_id,
      is_guest: false,
    });
    assert.equal(await loginStatus(username, 'admin set pw'), 200);
  });

  it('registers an admin, and uses displayname', async () => {
    const username = uniqueName('admin');
    const fields = { nonce: await nonce(), username, password: 'pw', admin: true };
    const response = await server.request<Registered>('POST', ADMIN_REGISTER, {
      body: { ...fields, mac: mac(SECRET, fields), displayname: 'The Admin' },
    });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    const profile = await server.request(
      'GET',
      `/_matrix/client/v3/profile/${response.body.user_id}`,
    );
    assert.deepEqual(profile.body, { displayname: 'The Admin' });
  });

  it('includes user_type in the MAC when given', async () => {
    const username = uniqueName('bot');
    const fields = {
      nonce: await nonce(),
      username,
      password: 'pw',
      admin: false,
      user_type: 'bot',
    };
    const withoutType = mac(SECRET, { ...fields, user_type: undefined });
    const refused = await server.request('POST', ADMIN_REGISTER, {
      body: { ...fields, mac: withoutType },
    });
    expectError(refused, 403, 'M_FORBIDDEN');

    const next = { ...fields, nonce: await nonce() };
    const response = await server.request<Registered>('POST', ADMIN_REGISTER, {
      body: { ...next, mac: mac(SECRET, next) },
    });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assert.equal(response.body.user_id, `@${username}:test.local`);
  });

  it('lower-cases the username (the MAC covers it as sent)', async () => {
    const username = uniqueName('MixedCase');
    const fields = { nonce: await nonce(), username, password: 'pw', admin: false };
    const response = await server.request<Registered>('POST', ADMIN_REGISTER, {
      body: { ...fields, mac: mac(SECRET, fields) },
    });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assert.equal(response.body.user_id, `@${username.toLowerCase()}:test.local`);
  });

  const badMacs: [
    string,
    (fields: { nonce: string; username: string; password: string; admin: boolean }) => string,
  ][] = [
    ['a MAC made with another secret', (f) => mac('another secret of enough length', f)],
    ['a MAC over another password', (f) => mac(SECRET, { ...f, password: 'other' })],
    ['a MAC claiming admin', (f) => mac(SECRET, { ...f, admin: true })],
    ['an upper-case hex MAC', (f) => mac(SECRET, f).toUpperCase()],
    ['garbage', () => 'not a mac'],
  ];
  for (const [what, makeMac] of badMacs) {
    it(`refuses ${what}: 403 M_FORBIDDEN, no user made`, async () => {
      const username = uniqueName('badmac');
      const fields = { nonce: await nonce(), username, password: 'pw', admin: false };
      const response = await server.request('POST', ADMIN_REGISTER, {
        body: { ...fields, mac: makeMac(fields) },
      });
      expectError(response, 403, 'M_FORBIDDEN');
      assert.equal(await loginStatus(username, 'pw'), 403);
    });
  }

  it('refuses a reused nonce: 400 M_UNKNOWN', async () => {
    const first = {
      nonce: await nonce(),
      username: uniqueName('once'),
      password: 'pw',
      admin: false,
    };
    const ok = await server.request('POST', ADMIN_REGISTER, {
      body: { ...first, mac: mac(SECRET, first) },
    });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));

    const second = { ...first, username: uniqueName('twice') };
    const response = await server.request('POST', ADMIN_REGISTER, {
      body: { ...second, mac: mac(SECRET, second) },
    });
    expectError(response, 400, 'M_UNKNOWN');
    assert.equal(await loginStatus(second.username, 'pw'), 403, 'no user made');
  });

  it('refuses a nonce it never gave: 400 M_UNKNOWN', async () => {
    const fields = {
      nonce: 'made-up-nonce',
      username: uniqueName('made'),
      password: 'pw',
      admin: false,
    };
    const response = await server.request('POST', ADMIN_REGISTER, {
      body: { ...fields, mac: mac(SECRET, fields) },
    });
    expectError(response, 400, 'M_UNKNOWN');
  });

  it('a nonce is spent by a refused attempt too', async () => {
    const fields = {
      nonce: await nonce(),
      username: uniqueName('spent'),
      password: 'pw',
      admin: false,
    };
    const bad = await server.request('POST', ADMIN_REGISTER, { body: { ...fields, mac: 'nope' } });
    expectError(bad, 403, 'M_FORBIDDEN');
    const retry = await server.request('POST', ADMIN_REGISTER, {
      body: { ...fields, mac: mac(SECRET, fields) },
    });
    expectError(retry, 400, 'M_UNKNOWN');
  });

  it('refuses a taken username: 400 M_USER_IN_USE', async () => {
    const username = uniqueName('taken');
    const first = { nonce: await nonce(), username, password: 'pw', admin: false };
    assert.equal(
      (
        await server.request('POST', ADMIN_REGISTER, {
          body: { ...first, mac: mac(SECRET, first) },
        })
      ).status,
      200,
    );
    const second = { nonce: await nonce(), username, password: 'other', admin: false };
    const response = await server.request('POST', ADMIN_REGISTER, {
      body: { ...second, mac: mac(SECRET, second) },
    });
    expectError(response, 400, 'M_USER_IN_USE');
    assert.equal(await loginStatus(username, 'pw'), 200, 'the first password still works');
  });

  it('refuses an invalid username: 400 M_INVALID_USERNAME', async () => {
    const fields = { nonce: await nonce(), username: 'bad name!', password: 'pw', admin: false };
    const response = await server.request('POST', ADMIN_REGISTER, {
      body: { ...fields, mac: mac(SECRET, fields) },
    });
    expectError(response, 400, 'M_INVALID_USERNAME');
  });

  const malformed: [string, Record<string, unknown>][] = [
    ['no mac', { username: 'x', password: 'pw', nonce: 'n' }],
    ['no nonce', { username: 'x', password: 'pw', mac: 'm' }],
    ['no username', { password: 'pw', nonce: 'n', mac: 'm' }],
    ['no password', { username: 'x', nonce: 'n', mac: 'm' }],
    [
      'admin that is not a boolean',
      { username: 'x', password: 'pw', nonce: 'n', mac: 'm', admin: 'yes' },
    ],
  ];
  for (const [what, body] of malformed) {
    it(`refuses a body with ${what}: 400 M_BAD_JSON`, async () => {
      const response = await server.request('POST', ADMIN_REGISTER, { body });
      expectError(response, 400, 'M_BAD_JSON');
    });
  }
});

forEachDatabase('shared-secret registration without a shared secret', (dialect) => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer(dialect);
  });
  after(async () => server.close());

  it('GET and POST answer 400 M_UNKNOWN', async () => {
    expectError(await server.request('GET', ADMIN_REGISTER), 400, 'M_UNKNOWN');
    const fields = { nonce: 'whatever', username: 'nosecret', password: 'pw', admin: false };
    const response = await server.request('POST', ADMIN_REGISTER, {
      body: { ...fields, mac: mac(SECRET, fields) },
    });
    expectError(response, 400, 'M_UNKNOWN');
    const login = await server.request('POST', '/_matrix/client/v3/login', {
      body: { type: 'm.login.password', user: 'nosecret', password: 'pw' },
    });
    assert.equal(login.status, 403, 'no user made');
  });
});
