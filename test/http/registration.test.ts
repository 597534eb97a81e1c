import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { assertMatchesSpec } from '../helpers/spec-contract.js';
import { expectError, uniqueName, type ErrorBody } from '../helpers/assertions.js';

interface Challenge {
  flows: { stages: string[] }[];
  params: Record<string, unknown>;
  session: string;
  completed?: string[];
  errcode?: string;
}

interface Registered {
  user_id: string;
  access_token?: string;
  device_id?: string;
  home_server?: string;
}

const REGISTER = '/_matrix/client/v3/register';
const AVAILABLE = '/_matrix/client/v3/register/available';

forEachDatabase('POST /register and GET /register/available', (dialect) => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer(dialect);
  });
  after(async () => server.close());

  /** First call of the dummy flow: the 401 challenge. */
  async function challenge(body: Record<string, unknown>, path = REGISTER): Promise<Challenge> {
    const first = await server.request<Challenge>('POST', path, { body });
    assert.equal(first.status, 401, JSON.stringify(first.body));
    assertMatchesSpec('registration.yaml', 'post', '/register', 401, first.body);
    return first.body;
  }

  /** The whole dummy flow; returns the final response. */
  async function register(body: Record<string, unknown>, path = REGISTER) {
    const { session } = await challenge(body, path);
    return server.request<Registered>('POST', path, {
      body: { ...body, auth: { type: 'm.login.dummy', session } },
    });
  }

  const registerSpec = { file: 'registration.yaml', method: 'post', path: '/register' };
  const availableSpec = { file: 'registration.yaml', method: 'get', path: '/register/available' };

  it('answers the first call with 401, the m.login.dummy flow and a session', async () => {
    const body = await challenge({ username: uniqueName('chal'), password: 'pw' });
    assert.deepEqual(body.flows, [{ stages: ['m.login.dummy'] }]);
    assert.deepEqual(body.params, {});
    assert.equal(typeof body.session, 'string');
    assert.ok(body.session.length >= 16, body.session);
    assert.equal(body.completed, undefined);
    assert.equal(body.errcode, undefined, 'a bare challenge carries no errcode');
  });

  it('completes the dummy flow with 200, a token and a device', async () => {
    const username = uniqueName('reg');
    const done = await register({ username, password: 'secret pw' });
    assert.equal(done.status, 200, JSON.stringify(done.body));
    assertMatchesSpec('registration.yaml', 'post', '/register', 200, done.body);
    assert.equal(done.body.user_id, `@${username}:test.local`);
    assert.equal(done.body.home_server, 'test.local');
    assert.equal(typeof done.body.access_token, 'string');
    assert.equal(typeof done.body.device_id, 'string');

    const whoami = await server.request('GET', '/_matrix/client/v3/account/whoami', {
      token: done.body.access_token,
    });
    assert.equal(whoami.status, 200);
    assert.deepEqual(whoami.body, {
      user_id: `@${username}:test.local`,
      device_id: done.body.device_id,
      is_guest: false,
    });

    const login = await server.request('POST', '/_matrix/client/v3/login', {
      body: {
        type: 'm.login.password',
        identifier: { type: 'm.id.user', user: username },
        password: 'secret pw',
      },
    });
    assert.equal(login.status, 200, 'the registered password logs in');
  });

  it('accepts the dummy stage without a session (one call)', async () => {
    const username = uniqueName('nosess');
    const done = await server.request<Registered>('POST', REGISTER, {
      body: { username, password: 'pw', auth: { type: 'm.login.dummy' } },
    });
    assert.equal(done.status, 200, JSON.stringify(done.body));
    assertMatchesSpec('registration.yaml', 'post', '/register', 200, done.body);
    assert.equal(done.body.user_id, `@${username}:test.local`);
  });

  it('refuses an unknown session with 400 M_UNKNOWN', async () => {
    const response = await server.request('POST', REGISTER, {
      body: {
        username: uniqueName('badsess'),
        password: 'pw',
        auth: { type: 'm.login.dummy', session: 'no-such-session' },
      },
    });
    expectError(response, 400, 'M_UNKNOWN', registerSpec);
  });

  it('does not let a completed session be used again', async () => {
    const first = { username: uniqueName('once'), password: 'pw' };
    const { session } = await challenge(first);
    const done = await server.request('POST', REGISTER, {
      body: { ...first, auth: { type: 'm.login.dummy', session } },
    });
    assert.equal(done.status, 200);
    const again = await server.request('POST', REGISTER, {
      body: {
        username: uniqueName('twice'),
        password: 'pw',
        auth: { type: 'm.login.dummy', session },
      },
    });
    expectError(again, 400, 'M_UNKNOWN', registerSpec);
  });

  it('answers a stage it does not offer with 401 M_UNRECOGNIZED and the flows', async () => {
    const body = { username: uniqueName('stage'), password: 'pw' };
    const { session } = await challenge(body);
    const response = await server.request<Challenge>('POST', REGISTER, {
      body: { ...body, auth: { type: 'm.login.password', session, password: 'pw' } },
    });
    assert.equal(response.status, 401, JSON.stringify(response.body));
    assertMatchesSpec('registration.yaml', 'post', '/register', 401, response.body);
    assert.equal(response.body.errcode, 'M_UNRECOGNIZED');
    assert.equal(response.body.session, session);
    assert.deepEqual(response.body.flows, [{ stages: ['m.login.dummy'] }]);
  });

  it('inhibit_login: 200 with user_id and no access token or device', async () => {
    const username = uniqueName('inhibit');
    const done = await register({ username, password: 'pw', inhibit_login: true });
    assert.equal(done.status, 200, JSON.stringify(done.body));
    assertMatchesSpec('registration.yaml', 'post', '/register', 200, done.body);
    assert.equal(done.body.user_id, `@${username}:test.local`);
    assert.equal(done.body.access_token, undefined);
    assert.equal(done.body.device_id, undefined);

    const login = await server.request<Registered>('POST', '/_matrix/client/v3/login', {
      body: {
        type: 'm.login.password',
        identifier: { type: 'm.id.user', user: username },
        password: 'pw',
      },
    });
    assert.equal(login.status, 200, 'the account exists and can log in');
    const devices = await server.request<{ devices: { device_id: string }[] }>(
      'GET',
      '/_matrix/client/v3/devices',
      {
        token: login.body.access_token,
      },
    );
    assert.deepEqual(
      devices.body.devices.map((d) => d.device_id),
      [login.body.device_id],
      'registration made no device',
    );
  });

  it('uses the given device_id and initial_device_display_name', async () => {
    const username = uniqueName('dev');
    const done = await register({
      username,
      password: 'pw',
      device_id: 'MYPHONE',
      initial_device_display_name: 'My phone',
    });
    assert.equal(done.status, 200, JSON.stringify(done.body));
    assert.equal(done.body.device_id, 'MYPHONE');
    const devices = await server.request<{
      devices: { device_id: string; display_name?: string }[];
    }>('GET', '/_matrix/client/v3/devices', { token: done.body.access_token });
    assert.equal(devices.status, 200);
    assertMatchesSpec('device_management.yaml', 'get', '/devices', 200, devices.body);
    assert.equal(devices.body.devices.length, 1);
    assert.equal(devices.body.devices[0]?.device_id, 'MYPHONE');
    assert.equal(devices.body.devices[0]?.display_name, 'My phone');
  });

  it('generates a username when none is given', async () => {
    const done = await register({ password: 'pw' });
    assert.equal(done.status, 200, JSON.stringify(done.body));
    assertMatchesSpec('registration.yaml', 'post', '/register', 200, done.body);
    assert.match(done.body.user_id, /^@[a-z0-9._=\-/+]+:test\.local$/);
    const second = await register({ password: 'pw' });
    assert.equal(second.status, 200);
    assert.notEqual(second.body.user_id, done.body.user_id);
  });

  const invalidUsernames: [string, string][] = [
    ['upper-case letters', 'Alice'],
    ['a space', 'al ice'],
    ['a colon', 'al:ice'],
    ['an at sign', 'al@ice'],
    ['non-ASCII', 'alicé'],
    ['the empty string', ''],
    ['a user ID over 255 bytes', 'a'.repeat(250)],
    ['a localpart over 255 bytes', 'a'.repeat(300)],
  ];
  for (const [what, username] of invalidUsernames) {
    it(`refuses a username with ${what}: 400 M_INVALID_USERNAME`, async () => {
      const response = await server.request('POST', REGISTER, {
        body: { username, password: 'pw' },
      });
      expectError(response, 400, 'M_INVALID_USERNAME', registerSpec);
    });
  }

  it('accepts every character of the localpart grammar', async () => {
    const username = `${uniqueName('ok')}._=-/+9`;
    const done = await register({ username, password: 'pw' });
    assert.equal(done.status, 200, JSON.stringify(done.body));
    assert.equal(done.body.user_id, `@${username}:test.local`);
  });

  it('refuses a taken username with 400 M_USER_IN_USE, before and after the auth stage', async () => {
    const username = uniqueName('taken');
    assert.equal((await register({ username, password: 'pw' })).status, 200);
    const first = await server.request('POST', REGISTER, { body: { username, password: 'other' } });
    expectError(first, 400, 'M_USER_IN_USE', registerSpec);
    const withAuth = await server.request('POST', REGISTER, {
      body: { username, password: 'other', auth: { type: 'm.login.dummy' } },
    });
    expectError(withAuth, 400, 'M_USER_IN_USE', registerSpec);
  });

  it('refuses kind=guest with 403 M_GUEST_ACCESS_FORBIDDEN', async () => {
    const response = await server.request('POST', `${REGISTER}?kind=guest`, { body: {} });
    expectError(response, 403, 'M_GUEST_ACCESS_FORBIDDEN', registerSpec);
  });

  it('accepts kind=user and refuses an unknown kind with 400 M_INVALID_PARAM', async () => {
    const user = await register(
      { username: uniqueName('kind'), password: 'pw' },
      `${REGISTER}?kind=user`,
    );
    assert.equal(user.status, 200, JSON.stringify(user.body));
    const response = await server.request('POST', `${REGISTER}?kind=robot`, { body: {} });
    expectError(response, 400, 'M_INVALID_PARAM', registerSpec);
  });

  const wrongTypes: [string, Record<string, unknown>][] = [
    ['username is a number', { username: 42, password: 'pw' }],
    ['password is a boolean', { username: 'typed1', password: true }],
    ['inhibit_login is a string', { username: 'typed2', password: 'pw', inhibit_login: 'yes' }],
    ['device_id is an object', { username: 'typed3', password: 'pw', device_id: {} }],
    [
      'initial_device_display_name is a number',
      { username: 'typed4', password: 'pw', initial_device_display_name: 1 },
    ],
    ['auth is a string', { username: 'typed5', password: 'pw', auth: 'dummy' }],
    [
      'auth.session is a number',
      { username: 'typed6', password: 'pw', auth: { type: 'm.login.dummy', session: 7 } },
    ],
  ];
  for (const [what, body] of wrongTypes) {
    it(`refuses a body where ${what}: 400 M_BAD_JSON`, async () => {
      const response = await server.request('POST', REGISTER, { body });
      expectError(response, 400, 'M_BAD_JSON', registerSpec);
    });
  }

  it('refuses a body that is not an object: 400 M_BAD_JSON', async () => {
    const response = await server.request('POST', REGISTER, { body: ['alice'] });
    expectError(response, 400, 'M_BAD_JSON', registerSpec);
  });

  it('serves the same flow under the r0 alias', async () => {
    const username = uniqueName('rzero');
    const done = await register({ username, password: 'pw' }, '/_matrix/client/r0/register');
    assert.equal(done.status, 200, JSON.stringify(done.body));
    assertMatchesSpec('registration.yaml', 'post', '/register', 200, done.body);
    assert.equal(done.body.user_id, `@${username}:test.local`);
    const available = await server.request(
      'GET',
      `/_matrix/client/r0/register/available?username=${username}`,
    );
    expectError(available, 400, 'M_USER_IN_USE', availableSpec);
  });

  it('GET /register/available: 200 {available: true} for a free name', async () => {
    const response = await server.request('GET', `${AVAILABLE}?username=${uniqueName('free')}`);
    assert.equal(response.status, 200);
    assertMatchesSpec('registration.yaml', 'get', '/register/available', 200, response.body);
    assert.deepEqual(response.body, { available: true });
  });

  it('GET /register/available: 400 M_USER_IN_USE for a taken name', async () => {
    const username = uniqueName('used');
    assert.equal((await register({ username, password: 'pw' })).status, 200);
    const response = await server.request('GET', `${AVAILABLE}?username=${username}`);
    expectError(response, 400, 'M_USER_IN_USE', availableSpec);
  });

  for (const [what, username] of invalidUsernames.filter(([, name]) => name !== '')) {
    it(`GET /register/available: 400 M_INVALID_USERNAME for ${what}`, async () => {
      const response = await server.request(
        'GET',
        `${AVAILABLE}?username=${encodeURIComponent(username)}`,
      );
      expectError(response, 400, 'M_INVALID_USERNAME', availableSpec);
    });
  }

  it('GET /register/available: 400 M_MISSING_PARAM without username', async () => {
    const response = await server.request('GET', AVAILABLE);
    expectError(response, 400, 'M_MISSING_PARAM', availableSpec);
  });
});

forEachDatabase('POST /register with registration disabled', (dialect) => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer(dialect, { COMMONS_REGISTRATION_ENABLED: 'false' });
  });
  after(async () => server.close());

  it('answers 403 M_FORBIDDEN, with or without auth', async () => {
    for (const body of [
      { username: 'closed', password: 'pw' },
      { username: 'closed', password: 'pw', auth: { type: 'm.login.dummy' } },
    ]) {
      const response = await server.request<ErrorBody>('POST', REGISTER, { body });
      assert.equal(response.status, 403, JSON.stringify(response.body));
      assert.equal(response.body.errcode, 'M_FORBIDDEN');
      assertMatchesSpec('registration.yaml', 'post', '/register', 403, response.body);
    }
  });
});
