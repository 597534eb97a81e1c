import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { loginUser, registerUser, type TestUser } from '../helpers/client.js';
import { assertMatchesSpec } from '../helpers/spec-contract.js';
import { expectError, uniqueName } from '../helpers/assertions.js';

interface LoginBody {
  user_id: string;
  access_token: string;
  device_id: string;
  home_server?: string;
}

interface DevicesBody {
  devices: { device_id: string; display_name?: string }[];
}

const LOGIN = '/_matrix/client/v3/login';
const WHOAMI = '/_matrix/client/v3/account/whoami';

forEachDatabase('login, logout and whoami', (dialect) => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer(dialect);
  });
  after(async () => server.close());

  const localpartOf = (user: TestUser): string => user.userId.slice(1, user.userId.indexOf(':'));

  async function whoamiStatus(token: string): Promise<number> {
    return (await server.request('GET', WHOAMI, { token })).status;
  }

  it('GET /login lists the m.login.password flow', async () => {
    const response = await server.request<{ flows: { type: string }[] }>('GET', LOGIN);
    assert.equal(response.status, 200);
    assertMatchesSpec('login.yaml', 'get', '/login', 200, response.body);
    assert.deepEqual(response.body.flows, [{ type: 'm.login.password' }]);
  });

  it('logs in with identifier m.id.user and a localpart', async () => {
    const user = await registerUser(server, uniqueName('local'));
    const response = await server.request<LoginBody>('POST', LOGIN, {
      body: {
        type: 'm.login.password',
        identifier: { type: 'm.id.user', user: localpartOf(user) },
        password: user.password,
      },
    });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assertMatchesSpec('login.yaml', 'post', '/login', 200, response.body);
    assert.equal(response.body.user_id, user.userId);
    assert.equal(response.body.home_server, 'test.local');
    assert.notEqual(response.body.device_id, user.deviceId, 'a new device');
    assert.notEqual(response.body.access_token, user.accessToken, 'a new token');
    const whoami = await server.request('GET', WHOAMI, { token: response.body.access_token });
    assert.deepEqual(whoami.body, {
      user_id: user.userId,
      device_id: response.body.device_id,
      is_guest: false,
    });
  });

  it('logs in with identifier m.id.user and a full user ID', async () => {
    const user = await registerUser(server, uniqueName('full'));
    const response = await server.request<LoginBody>('POST', LOGIN, {
      body: {
        type: 'm.login.password',
        identifier: { type: 'm.id.user', user: user.userId },
        password: user.password,
      },
    });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assertMatchesSpec('login.yaml', 'post', '/login', 200, response.body);
    assert.equal(response.body.user_id, user.userId);
  });

  it('logs in with a localpart in another case (localparts are lower-cased)', async () => {
    const user = await registerUser(server, uniqueName('case'));
    const response = await server.request<LoginBody>('POST', LOGIN, {
      body: {
        type: 'm.login.password',
        identifier: { type: 'm.id.user', user: localpartOf(user).toUpperCase() },
        password: user.password,
      },
    });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assert.equal(response.body.user_id, user.userId);
  });

  it('logs in with the legacy top-level user field', async () => {
    const user = await registerUser(server, uniqueName('legacy'));
    for (const name of [localpartOf(user), user.userId]) {
      const response = await server.request<LoginBody>('POST', LOGIN, {
        body: { type: 'm.login.password', user: name, password: user.password },
      });
      assert.equal(response.status, 200, JSON.stringify(response.body));
      assertMatchesSpec('login.yaml', 'post', '/login', 200, response.body);
      assert.equal(response.body.user_id, user.userId);
    }
  });

  it('refuses a wrong password with 403 M_FORBIDDEN', async () => {
    const user = await registerUser(server, uniqueName('wrongpw'));
    const response = await server.request('POST', LOGIN, {
      body: {
        type: 'm.login.password',
        identifier: { type: 'm.id.user', user: user.userId },
        password: 'not it',
      },
    });
    expectError(response, 403, 'M_FORBIDDEN');
    assertMatchesSpec('login.yaml', 'post', '/login', 403, response.body);
  });

  it('refuses an unknown user with the same 403 M_FORBIDDEN as a wrong password', async () => {
    const user = await registerUser(server, uniqueName('same'));
    const wrong = await server.request('POST', LOGIN, {
      body: {
        type: 'm.login.password',
        identifier: { type: 'm.id.user', user: user.userId },
        password: 'not it',
      },
    });
    for (const name of [
      uniqueName('nobody'),
      `@${uniqueName('nobody')}:test.local`,
      '@someone:other.example',
    ]) {
      const response = await server.request('POST', LOGIN, {
        body: {
          type: 'm.login.password',
          identifier: { type: 'm.id.user', user: name },
          password: 'whatever',
        },
      });
      expectError(response, 403, 'M_FORBIDDEN');
      assertMatchesSpec('login.yaml', 'post', '/login', 403, response.body);
      assert.deepEqual(response.body, wrong.body, 'no hint whether the user exists');
    }
  });

  it('refuses an unknown login type with 400 M_UNKNOWN', async () => {
    const response = await server.request('POST', LOGIN, {
      body: { type: 'm.login.token', token: 'abc' },
    });
    expectError(response, 400, 'M_UNKNOWN');
    assertMatchesSpec('login.yaml', 'post', '/login', 400, response.body);
  });

  it('refuses an unsupported identifier type with 400 M_UNKNOWN', async () => {
    const response = await server.request('POST', LOGIN, {
      body: {
        type: 'm.login.password',
        identifier: { type: 'm.id.thirdparty', medium: 'email', address: 'a@example.org' },
        password: 'pw',
      },
    });
    expectError(response, 400, 'M_UNKNOWN');
    assertMatchesSpec('login.yaml', 'post', '/login', 400, response.body);
  });

  const malformed: [string, unknown][] = [
    ['no type', { identifier: { type: 'm.id.user', user: 'alice' }, password: 'pw' }],
    [
      'a type that is not a string',
      { type: 1, identifier: { type: 'm.id.user', user: 'alice' }, password: 'pw' },
    ],
    ['no password', { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'alice' } }],
    [
      'a password that is not a string',
      { type: 'm.login.password', user: 'alice', password: 1234 },
    ],
    ['no user at all', { type: 'm.login.password', password: 'pw' }],
    [
      'an identifier without user',
      { type: 'm.login.password', identifier: { type: 'm.id.user' }, password: 'pw' },
    ],
    [
      'an identifier that is a string',
      { type: 'm.login.password', identifier: 'alice', password: 'pw' },
    ],
    ['an empty user', { type: 'm.login.password', user: '', password: 'pw' }],
    [
      'a device_id with a space',
      { type: 'm.login.password', user: 'alice', password: 'pw', device_id: 'A B' },
    ],
    ['a body that is an array', [{ type: 'm.login.password' }]],
  ];
  for (const [what, body] of malformed) {
    it(`refuses a body with ${what}: 400 M_BAD_JSON`, async () => {
      const response = await server.request('POST', LOGIN, { body });
      expectError(response, 400, 'M_BAD_JSON');
      assertMatchesSpec('login.yaml', 'post', '/login', 400, response.body);
    });
  }

  it('refuses an empty body: 400 M_NOT_JSON', async () => {
    const response = await server.request('POST', LOGIN, { rawBody: '' });
    expectError(response, 400, 'M_NOT_JSON');
  });

  it('reuses a device when device_id names an existing one', async () => {
    const user = await registerUser(server, uniqueName('reuse'));
    const first = await loginUser(server, user.userId, user.password, {
      device_id: 'LAPTOP',
      initial_device_display_name: 'Laptop',
    });
    assert.equal(first.deviceId, 'LAPTOP');
    const second = await loginUser(server, user.userId, user.password, {
      device_id: 'LAPTOP',
      initial_device_display_name: 'Renamed?',
    });
    assert.equal(second.deviceId, 'LAPTOP');
    assert.notEqual(second.accessToken, first.accessToken);

    const whoami = await server.request('GET', WHOAMI, { token: second.accessToken });
    assert.deepEqual(whoami.body, { user_id: user.userId, device_id: 'LAPTOP', is_guest: false });
    const devices = await server.request<DevicesBody>('GET', '/_matrix/client/v3/devices', {
      token: second.accessToken,
    });
    const laptops = devices.body.devices.filter((d) => d.device_id === 'LAPTOP');
    assert.equal(laptops.length, 1, 'one device, not two');
    assert.equal(laptops[0]?.display_name, 'Laptop', 'the existing device keeps its name');
    assert.deepEqual(
      devices.body.devices.map((d) => d.device_id).sort(),
      [user.deviceId, 'LAPTOP'].sort(),
    );
  });

  it('POST /logout kills the token and deletes its device, and only those', async () => {
    const user = await registerUser(server, uniqueName('logout'));
    const other = await loginUser(server, user.userId, user.password);
    const response = await server.request('POST', '/_matrix/client/v3/logout', {
      token: other.accessToken,
      body: {},
    });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assertMatchesSpec('logout.yaml', 'post', '/logout', 200, response.body);
    assert.deepEqual(response.body, {});

    const dead = await server.request('GET', WHOAMI, { token: other.accessToken });
    assert.deepEqual(dead.body, {
      errcode: 'M_UNKNOWN_TOKEN',
      error: 'Unrecognised access token',
      soft_logout: false,
    });
    assert.equal(dead.status, 401);
    assert.equal(await whoamiStatus(user.accessToken), 200, 'the other session lives on');
    const devices = await server.request<DevicesBody>('GET', '/_matrix/client/v3/devices', {
      token: user.accessToken,
    });
    assert.deepEqual(
      devices.body.devices.map((d) => d.device_id),
      [user.deviceId],
    );

    const again = await server.request('POST', '/_matrix/client/v3/logout', {
      token: other.accessToken,
    });
    expectError(again, 401, 'M_UNKNOWN_TOKEN');
  });

  it('POST /logout without a body works too', async () => {
    const user = await registerUser(server, uniqueName('nobody'));
    const response = await server.request('POST', '/_matrix/client/v3/logout', {
      token: user.accessToken,
    });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assert.equal(await whoamiStatus(user.accessToken), 401);
  });

  it('POST /logout/all kills every token of the account and no one else’s', async () => {
    const user = await registerUser(server, uniqueName('all'));
    const bystander = await registerUser(server, uniqueName('bystander'));
    const second = await loginUser(server, user.userId, user.password);
    const third = await loginUser(server, user.userId, user.password);
    const response = await server.request('POST', '/_matrix/client/v3/logout/all', {
      token: second.accessToken,
      body: {},
    });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assertMatchesSpec('logout.yaml', 'post', '/logout/all', 200, response.body);
    for (const token of [user.accessToken, second.accessToken, third.accessToken]) {
      const dead = await server.request('GET', WHOAMI, { token });
      expectError(dead, 401, 'M_UNKNOWN_TOKEN');
    }
    assert.equal(await whoamiStatus(bystander.accessToken), 200);

    const fresh = await loginUser(server, user.userId, user.password);
    const devices = await server.request<DevicesBody>('GET', '/_matrix/client/v3/devices', {
      token: fresh.accessToken,
    });
    assert.deepEqual(
      devices.body.devices.map((d) => d.device_id),
      [fresh.deviceId],
      'every old device is gone',
    );
  });

  it('POST /logout and /logout/all need a token: 401 M_MISSING_TOKEN', async () => {
    for (const path of ['/_matrix/client/v3/logout', '/_matrix/client/v3/logout/all']) {
      const response = await server.request('POST', path, { body: {} });
      expectError(response, 401, 'M_MISSING_TOKEN');
    }
  });

  it('GET /account/whoami answers user_id, device_id and is_guest', async () => {
    const user = await registerUser(server, uniqueName('who'));
    const response = await server.request('GET', WHOAMI, { token: user.accessToken });
    assert.equal(response.status, 200);
    assertMatchesSpec('whoami.yaml', 'get', '/account/whoami', 200, response.body);
    assert.deepEqual(response.body, {
      user_id: user.userId,
      device_id: user.deviceId,
      is_guest: false,
    });
  });

  it('GET /account/whoami without a token: 401 M_MISSING_TOKEN', async () => {
    const response = await server.request('GET', WHOAMI);
    expectError(response, 401, 'M_MISSING_TOKEN');
    assertMatchesSpec('whoami.yaml', 'get', '/account/whoami', 401, response.body);
  });

  it('GET /account/whoami with an unknown token: 401 M_UNKNOWN_TOKEN, soft_logout false', async () => {
    const response = await server.request('GET', WHOAMI, { token: 'mct_not-a-real-token' });
    const body = expectError(response, 401, 'M_UNKNOWN_TOKEN');
    assert.equal(body.soft_logout, false);
    assertMatchesSpec('whoami.yaml', 'get', '/account/whoami', 401, response.body);
  });

  const badHeaders: [string, string][] = [
    ['a Basic scheme', 'Basic dXNlcjpwYXNz'],
    ['Bearer without a token', 'Bearer'],
    ['Bearer and spaces only', 'Bearer    '],
    ['a token with a space in it', 'Bearer abc def'],
    ['a bare token', 'mct_abcdef'],
  ];
  for (const [what, header] of badHeaders) {
    it(`GET /account/whoami with a malformed Authorization header (${what}): 401 M_MISSING_TOKEN`, async () => {
      const response = await server.request('GET', WHOAMI, { headers: { Authorization: header } });
      expectError(response, 401, 'M_MISSING_TOKEN');
      assertMatchesSpec('whoami.yaml', 'get', '/account/whoami', 401, response.body);
    });
  }

  it('accepts the Bearer scheme in any case', async () => {
    const user = await registerUser(server, uniqueName('scheme'));
    const response = await server.request('GET', WHOAMI, {
      headers: { Authorization: `bearer ${user.accessToken}` },
    });
    assert.equal(response.status, 200, JSON.stringify(response.body));
  });

  it('serves login and whoami under the r0 alias', async () => {
    const user = await registerUser(server, uniqueName('rzero'));
    const login = await server.request<LoginBody>('POST', '/_matrix/client/r0/login', {
      body: { type: 'm.login.password', user: user.userId, password: user.password },
    });
    assert.equal(login.status, 200, JSON.stringify(login.body));
    const whoami = await server.request('GET', '/_matrix/client/r0/account/whoami', {
      token: login.body.access_token,
    });
    assert.equal(whoami.status, 200);
    assert.equal(whoami.body.user_id, user.userId);
  });
});
