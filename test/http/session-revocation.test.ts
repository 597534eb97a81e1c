/**
 * Access tokens are cached in memory once used (src/services/sessions.ts). Every way a token
 * ends must refuse it on the very next request, although the token was just used and cached:
 * logout, logout/all, deleting its device (one or several), and a password change that logs
 * out the other devices.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { loginUser, passwordAuth, registerUser, type TestUser } from '../helpers/client.js';
import { expectError } from '../helpers/assertions.js';

const V3 = '/_matrix/client/v3';
const WHOAMI = `${V3}/account/whoami`;

forEachDatabase('revoked access tokens (sessions cached in memory)', (dialect) => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer(dialect);
  });
  after(async () => {
    await server.close();
  });

  /** Uses the token twice (the first use caches its session), so the next use is a hit. */
  async function useToken(token: string, userId: string): Promise<void> {
    for (let i = 0; i < 2; i++) {
      const whoami = await server.request<{ user_id: string }>('GET', WHOAMI, { token });
      assert.equal(whoami.status, 200, JSON.stringify(whoami.body));
      assert.equal(whoami.body.user_id, userId);
    }
  }

  async function assertRefused(token: string): Promise<void> {
    expectError(await server.request('GET', WHOAMI, { token }), 401, 'M_UNKNOWN_TOKEN');
  }

  async function userWithSecondSession(): Promise<{ user: TestUser; other: string }> {
    const user = await registerUser(server);
    const other = (await loginUser(server, user.userId, user.password)).accessToken;
    await useToken(user.accessToken, user.userId);
    await useToken(other, user.userId);
    return { user, other };
  }

  it('POST /logout: that token is refused at once; the other session stays', async () => {
    const { user, other } = await userWithSecondSession();
    const out = await server.request('POST', `${V3}/logout`, { token: user.accessToken, body: {} });
    assert.equal(out.status, 200, JSON.stringify(out.body));
    await assertRefused(user.accessToken);
    await useToken(other, user.userId);
  });

  it('POST /logout/all: every token of the user is refused at once', async () => {
    const { user, other } = await userWithSecondSession();
    const stranger = await registerUser(server);
    await useToken(stranger.accessToken, stranger.userId);
    const out = await server.request('POST', `${V3}/logout/all`, {
      token: user.accessToken,
      body: {},
    });
    assert.equal(out.status, 200, JSON.stringify(out.body));
    await assertRefused(user.accessToken);
    await assertRefused(other);
    await useToken(stranger.accessToken, stranger.userId);
  });

  it("DELETE /devices/{deviceId}: the device's token is refused at once", async () => {
    const { user, other } = await userWithSecondSession();
    const otherDevice = await server.request<{ device_id: string }>('GET', WHOAMI, {
      token: other,
    });
    const deleted = await server.request('DELETE', `${V3}/devices/${otherDevice.body.device_id}`, {
      token: user.accessToken,
      body: { auth: passwordAuth(user.userId, user.password) },
    });
    assert.equal(deleted.status, 200, JSON.stringify(deleted.body));
    await assertRefused(other);
    await useToken(user.accessToken, user.userId);
  });

  it('POST /delete_devices: every listed device’s token is refused at once', async () => {
    const { user, other } = await userWithSecondSession();
    const otherDevice = await server.request<{ device_id: string }>('GET', WHOAMI, {
      token: other,
    });
    const deleted = await server.request('POST', `${V3}/delete_devices`, {
      token: user.accessToken,
      body: {
        devices: [otherDevice.body.device_id, user.deviceId],
        auth: passwordAuth(user.userId, user.password),
      },
    });
    assert.equal(deleted.status, 200, JSON.stringify(deleted.body));
    await assertRefused(other);
    await assertRefused(user.accessToken);
  });

  it('POST /account/password: the other sessions are refused at once, this one stays', async () => {
    const { user, other } = await userWithSecondSession();
    const changed = await server.request('POST', `${V3}/account/password`, {
      token: user.accessToken,
      body: { new_password: 'another pw', auth: passwordAuth(user.userId, user.password) },
    });
    assert.equal(changed.status, 200, JSON.stringify(changed.body));
    await assertRefused(other);
    await useToken(user.accessToken, user.userId);
  });
});
