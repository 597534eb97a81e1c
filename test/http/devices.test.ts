import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { loginUser, passwordAuth, registerUser } from '../helpers/client.js';
import { assertMatchesSpec } from '../helpers/spec-contract.js';
import { expectError, uniqueName } from '../helpers/assertions.js';

interface Device {
  device_id: string;
  display_name?: string;
  last_seen_ip?: string;
  last_seen_ts?: number;
}

interface Challenge {
  flows: { stages: string[] }[];
  params: Record<string, unknown>;
  session: string;
  completed?: string[];
  errcode?: string;
  error?: string;
}

const V3 = '/_matrix/client/v3';
const WHOAMI = `${V3}/account/whoami`;

forEachDatabase('device management', (dialect) => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer(dialect);
  });
  after(async () => server.close());

  async function deviceIds(token: string): Promise<string[]> {
    const response = await server.request<{ devices: Device[] }>('GET', `${V3}/devices`, { token });
    assert.equal(response.status, 200);
    return response.body.devices.map((d) => d.device_id).sort();
  }

  async function whoamiStatus(token: string): Promise<number> {
    return (await server.request('GET', WHOAMI, { token })).status;
  }

  it('GET /devices lists every device of the user with its details', async () => {
    const user = await registerUser(server, uniqueName('list'));
    const other = await loginUser(server, user.userId, user.password, {
      device_id: 'TABLET',
      initial_device_display_name: 'Tablet',
    });
    const stranger = await registerUser(server, uniqueName('stranger'));
    const response = await server.request<{ devices: Device[] }>('GET', `${V3}/devices`, {
      token: user.accessToken,
    });
    assert.equal(response.status, 200);
    assertMatchesSpec('device_management.yaml', 'get', '/devices', 200, response.body);
    const ids = response.body.devices.map((d) => d.device_id).sort();
    assert.deepEqual(ids, [user.deviceId, other.deviceId].sort());
    assert.ok(!ids.includes(stranger.deviceId), "another user's device is not listed");
    const tablet = response.body.devices.find((d) => d.device_id === 'TABLET');
    assert.equal(tablet?.display_name, 'Tablet');
    assert.equal(typeof tablet?.last_seen_ts, 'number');
    assert.equal(typeof tablet?.last_seen_ip, 'string');
  });

  it('GET /devices needs a token: 401 M_MISSING_TOKEN', async () => {
    expectError(await server.request('GET', `${V3}/devices`), 401, 'M_MISSING_TOKEN');
  });

  it('GET /devices/{deviceId} returns one device', async () => {
    const user = await registerUser(server, uniqueName('one'));
    await loginUser(server, user.userId, user.password, {
      device_id: 'PHONE',
      initial_device_display_name: 'Phone',
    });
    const response = await server.request<Device>('GET', `${V3}/devices/PHONE`, {
      token: user.accessToken,
    });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assertMatchesSpec('device_management.yaml', 'get', '/devices/{deviceId}', 200, response.body);
    assert.equal(response.body.device_id, 'PHONE');
    assert.equal(response.body.display_name, 'Phone');
  });

  it('GET /devices/{deviceId}: 404 M_NOT_FOUND for an unknown device or another user’s', async () => {
    const user = await registerUser(server, uniqueName('nf'));
    const stranger = await registerUser(server, uniqueName('nfs'));
    for (const deviceId of ['NOSUCHDEVICE', stranger.deviceId]) {
      const response = await server.request('GET', `${V3}/devices/${deviceId}`, {
        token: user.accessToken,
      });
      expectError(response, 404, 'M_NOT_FOUND');
    }
  });

  it('PUT /devices/{deviceId} renames a device', async () => {
    const user = await registerUser(server, uniqueName('rename'));
    const response = await server.request('PUT', `${V3}/devices/${user.deviceId}`, {
      token: user.accessToken,
      body: { display_name: 'Work laptop' },
    });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assertMatchesSpec('device_management.yaml', 'put', '/devices/{deviceId}', 200, response.body);
    assert.deepEqual(response.body, {});
    const device = await server.request<Device>('GET', `${V3}/devices/${user.deviceId}`, {
      token: user.accessToken,
    });
    assert.equal(device.body.display_name, 'Work laptop');
  });

  it('PUT /devices/{deviceId} without display_name changes nothing', async () => {
    const user = await registerUser(server, uniqueName('noname'));
    await server.request('PUT', `${V3}/devices/${user.deviceId}`, {
      token: user.accessToken,
      body: { display_name: 'Kept' },
    });
    const response = await server.request('PUT', `${V3}/devices/${user.deviceId}`, {
      token: user.accessToken,
      body: {},
    });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    const device = await server.request<Device>('GET', `${V3}/devices/${user.deviceId}`, {
      token: user.accessToken,
    });
    assert.equal(device.body.display_name, 'Kept');
  });

  it('PUT /devices/{deviceId}: 404 M_NOT_FOUND for an unknown device or another user’s', async () => {
    const user = await registerUser(server, uniqueName('putnf'));
    const stranger = await registerUser(server, uniqueName('putnfs'));
    for (const body of [{ display_name: 'x' }, {}]) {
      for (const deviceId of ['NOSUCHDEVICE', stranger.deviceId]) {
        const response = await server.request('PUT', `${V3}/devices/${deviceId}`, {
          token: user.accessToken,
          body,
        });
        expectError(response, 404, 'M_NOT_FOUND');
      }
    }
    const strangerDevice = await server.request<Device>(
      'GET',
      `${V3}/devices/${stranger.deviceId}`,
      {
        token: stranger.accessToken,
      },
    );
    assert.equal(
      strangerDevice.body.display_name,
      undefined,
      "the other user's device is untouched",
    );
  });

  it('PUT /devices/{deviceId}: 400 M_BAD_JSON when display_name is not a string', async () => {
    const user = await registerUser(server, uniqueName('putbad'));
    const response = await server.request('PUT', `${V3}/devices/${user.deviceId}`, {
      token: user.accessToken,
      body: { display_name: 42 },
    });
    expectError(response, 400, 'M_BAD_JSON');
  });

  it('DELETE /devices/{deviceId}: 404 M_NOT_FOUND for an unknown device', async () => {
    const user = await registerUser(server, uniqueName('delnf'));
    const response = await server.request('DELETE', `${V3}/devices/NOSUCHDEVICE`, {
      token: user.accessToken,
    });
    expectError(response, 404, 'M_NOT_FOUND');
  });

  it('DELETE /devices/{deviceId}: 401 challenge, wrong password, then right password', async () => {
    const user = await registerUser(server, uniqueName('del'));
    const doomed = await loginUser(server, user.userId, user.password);
    const path = `${V3}/devices/${doomed.deviceId}`;

    const first = await server.request<Challenge>('DELETE', path, { token: user.accessToken });
    assert.equal(first.status, 401, JSON.stringify(first.body));
    assertMatchesSpec('device_management.yaml', 'delete', '/devices/{deviceId}', 401, first.body);
    assert.deepEqual(first.body.flows, [{ stages: ['m.login.password'] }]);
    assert.equal(typeof first.body.session, 'string');
    assert.equal(first.body.errcode, undefined);
    const session = first.body.session;

    const wrong = await server.request<Challenge>('DELETE', path, {
      token: user.accessToken,
      body: { auth: passwordAuth(user.userId, 'not the password', session) },
    });
    assert.equal(wrong.status, 401, JSON.stringify(wrong.body));
    assertMatchesSpec('device_management.yaml', 'delete', '/devices/{deviceId}', 401, wrong.body);
    assert.equal(wrong.body.errcode, 'M_FORBIDDEN');
    assert.equal(typeof wrong.body.error, 'string');
    assert.equal(wrong.body.session, session);
    assert.deepEqual(wrong.body.flows, [{ stages: ['m.login.password'] }]);
    assert.equal(await whoamiStatus(doomed.accessToken), 200, 'not deleted yet');

    const right = await server.request('DELETE', path, {
      token: user.accessToken,
      body: { auth: passwordAuth(user.userId, user.password, session) },
    });
    assert.equal(right.status, 200, JSON.stringify(right.body));
    assertMatchesSpec('device_management.yaml', 'delete', '/devices/{deviceId}', 200, right.body);
    assert.deepEqual(right.body, {});

    const dead = await server.request('GET', WHOAMI, { token: doomed.accessToken });
    expectError(dead, 401, 'M_UNKNOWN_TOKEN');
    assert.deepEqual(await deviceIds(user.accessToken), [user.deviceId]);
    expectError(await server.request('GET', path, { token: user.accessToken }), 404, 'M_NOT_FOUND');
  });

  it('DELETE /devices/{deviceId}: the password stage must name the requester', async () => {
    const user = await registerUser(server, uniqueName('self'));
    const other = await registerUser(server, uniqueName('selfo'));
    const doomed = await loginUser(server, user.userId, user.password);
    const response = await server.request<Challenge>('DELETE', `${V3}/devices/${doomed.deviceId}`, {
      token: user.accessToken,
      body: { auth: passwordAuth(other.userId, other.password) },
    });
    assert.equal(response.status, 401, JSON.stringify(response.body));
    assert.equal(response.body.errcode, 'M_FORBIDDEN');
    assert.equal(await whoamiStatus(doomed.accessToken), 200);
  });

  it('DELETE /devices/{deviceId}: a session started for another request is refused', async () => {
    const user = await registerUser(server, uniqueName('purpose'));
    const a = await loginUser(server, user.userId, user.password);
    const b = await loginUser(server, user.userId, user.password);
    const first = await server.request<Challenge>('DELETE', `${V3}/devices/${a.deviceId}`, {
      token: user.accessToken,
    });
    assert.equal(first.status, 401);
    const response = await server.request('DELETE', `${V3}/devices/${b.deviceId}`, {
      token: user.accessToken,
      body: { auth: passwordAuth(user.userId, user.password, first.body.session) },
    });
    expectError(response, 400, 'M_UNKNOWN');
    assert.equal(await whoamiStatus(b.accessToken), 200);
  });

  it('DELETE /devices/{deviceId}: can delete the requesting device itself', async () => {
    const user = await registerUser(server, uniqueName('selfdel'));
    const response = await server.request('DELETE', `${V3}/devices/${user.deviceId}`, {
      token: user.accessToken,
      body: { auth: passwordAuth(user.userId, user.password) },
    });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    expectError(
      await server.request('GET', WHOAMI, { token: user.accessToken }),
      401,
      'M_UNKNOWN_TOKEN',
    );
  });

  it('DELETE /devices/{deviceId} needs a token: 401 M_MISSING_TOKEN', async () => {
    expectError(await server.request('DELETE', `${V3}/devices/ANY`), 401, 'M_MISSING_TOKEN');
  });

  it('POST /delete_devices: 401 challenge, wrong password, then deletes every listed device', async () => {
    const user = await registerUser(server, uniqueName('bulk'));
    const a = await loginUser(server, user.userId, user.password);
    const b = await loginUser(server, user.userId, user.password);
    const keep = await loginUser(server, user.userId, user.password);
    const devices = [a.deviceId, b.deviceId, 'NOSUCHDEVICE'];

    const first = await server.request<Challenge>('POST', `${V3}/delete_devices`, {
      token: user.accessToken,
      body: { devices },
    });
    assert.equal(first.status, 401, JSON.stringify(first.body));
    assertMatchesSpec('device_management.yaml', 'post', '/delete_devices', 401, first.body);
    assert.deepEqual(first.body.flows, [{ stages: ['m.login.password'] }]);

    const wrong = await server.request<Challenge>('POST', `${V3}/delete_devices`, {
      token: user.accessToken,
      body: { devices, auth: passwordAuth(user.userId, 'nope', first.body.session) },
    });
    assert.equal(wrong.status, 401);
    assertMatchesSpec('device_management.yaml', 'post', '/delete_devices', 401, wrong.body);
    assert.equal(wrong.body.errcode, 'M_FORBIDDEN');

    const right = await server.request('POST', `${V3}/delete_devices`, {
      token: user.accessToken,
      body: { devices, auth: passwordAuth(user.userId, user.password, first.body.session) },
    });
    assert.equal(right.status, 200, JSON.stringify(right.body));
    assertMatchesSpec('device_management.yaml', 'post', '/delete_devices', 200, right.body);
    assert.deepEqual(right.body, {});

    for (const token of [a.accessToken, b.accessToken]) {
      expectError(await server.request('GET', WHOAMI, { token }), 401, 'M_UNKNOWN_TOKEN');
    }
    assert.equal(await whoamiStatus(keep.accessToken), 200);
    assert.deepEqual(await deviceIds(user.accessToken), [user.deviceId, keep.deviceId].sort());
  });

  it('POST /delete_devices leaves other users’ devices alone', async () => {
    const user = await registerUser(server, uniqueName('bulkself'));
    const stranger = await registerUser(server, uniqueName('bulkother'));
    const response = await server.request('POST', `${V3}/delete_devices`, {
      token: user.accessToken,
      body: { devices: [stranger.deviceId], auth: passwordAuth(user.userId, user.password) },
    });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assert.equal(await whoamiStatus(stranger.accessToken), 200);
  });

  it('POST /delete_devices: 400 M_BAD_JSON without devices or with the wrong types', async () => {
    const user = await registerUser(server, uniqueName('bulkbad'));
    for (const body of [{}, { devices: 'ABC' }, { devices: [1, 2] }]) {
      const response = await server.request('POST', `${V3}/delete_devices`, {
        token: user.accessToken,
        body,
      });
      expectError(response, 400, 'M_BAD_JSON');
    }
  });

  it('POST /delete_devices needs a token: 401 M_MISSING_TOKEN', async () => {
    const response = await server.request('POST', `${V3}/delete_devices`, {
      body: { devices: [] },
    });
    expectError(response, 401, 'M_MISSING_TOKEN');
  });
});
