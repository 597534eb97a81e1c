import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { assertMatchesSpec } from '../helpers/spec-contract.js';
import { expectError } from '../helpers/assertions.js';
import { availableRoomVersions, DEFAULT_ROOM_VERSION } from '../../src/core/room-versions.js';

const PREFIXES = ['/_matrix/client/v3', '/_matrix/client/r0'];

interface Capabilities {
  capabilities: Record<string, { enabled?: boolean } & Record<string, unknown>>;
}

forEachDatabase('capabilities, TURN servers, third-party protocols', (dialect) => {
  let server: TestServer;
  let user: TestUser;
  before(async () => {
    server = await startTestServer(dialect);
    user = await registerUser(server);
  });
  after(async () => server.close());

  it('GET /capabilities: password changes, room versions, profile changes; no 3PID or login tokens', async () => {
    for (const prefix of PREFIXES) {
      const response = await server.request<Capabilities>('GET', `${prefix}/capabilities`, {
        token: user.accessToken,
      });
      assert.equal(response.status, 200, JSON.stringify(response.body));
      assertMatchesSpec('capabilities.yaml', 'get', '/capabilities', 200, response.body);
      const caps = response.body.capabilities;
      assert.deepEqual(caps['m.change_password'], { enabled: true });
      assert.deepEqual(caps['m.room_versions'], {
        default: DEFAULT_ROOM_VERSION,
        available: availableRoomVersions(),
      });
      assert.deepEqual(caps['m.set_displayname'], { enabled: true });
      assert.deepEqual(caps['m.set_avatar_url'], { enabled: true });
      assert.deepEqual(caps['m.3pid_changes'], { enabled: false });
      // Absent means unsupported too.
      assert.notEqual(caps['m.get_login_token']?.enabled, true);
    }
  });

  it('GET /voip/turnServer: an empty object, as no TURN server is configured', async () => {
    // The spec's 200 schema describes configured credentials only, so it is not checked here.
    for (const prefix of PREFIXES) {
      const response = await server.request('GET', `${prefix}/voip/turnServer`, {
        token: user.accessToken,
      });
      assert.equal(response.status, 200, JSON.stringify(response.body));
      assert.deepEqual(response.body, {});
    }
  });

  it('GET /thirdparty/protocols: no protocols', async () => {
    // The spec's schema is a map of protocols (its definitions live in the application
    // service API, which the shared spec copy leaves out): an empty map is valid.
    for (const prefix of PREFIXES) {
      const response = await server.request('GET', `${prefix}/thirdparty/protocols`, {
        token: user.accessToken,
      });
      assert.equal(response.status, 200, JSON.stringify(response.body));
      assert.deepEqual(response.body, {});
    }
  });

  for (const path of ['/capabilities', '/voip/turnServer', '/thirdparty/protocols']) {
    it(`GET ${path} without a token: 401 M_MISSING_TOKEN; with a bad one: 401 M_UNKNOWN_TOKEN`, async () => {
      const url = `${PREFIXES[0]}${path}`;
      expectError(await server.request('GET', url), 401, 'M_MISSING_TOKEN');
      expectError(await server.request('GET', url, { token: 'mct_bogus' }), 401, 'M_UNKNOWN_TOKEN');
    });
  }
});
