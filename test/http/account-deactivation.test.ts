/**
 * POST /account/deactivate, Synapse's admin deactivation, and GET /account/3pid: every
 * answer through a listening server, on both databases; a deactivation interrupted after its
 * first step is finished at the next start; other processes refuse the user's tokens.
 */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createTestDatabase, forEachDatabase, type TestDialect } from '../helpers/databases.js';
import { startServerOn, startTestServer, type TestServer } from '../helpers/server.js';
import { loginUser, passwordAuth, registerUser, type TestUser } from '../helpers/client.js';
import { assertMatchesSpec } from '../helpers/spec-contract.js';
import { expectError, uniqueName } from '../helpers/assertions.js';
import { eventually } from '../helpers/eventually.js';
import { servicesOf } from '../helpers/services.js';

const V3 = '/_matrix/client/v3';
const DEACTIVATE = `${V3}/account/deactivate`;
const WHOAMI = `${V3}/account/whoami`;
const ADMIN_DEACTIVATE = '/_synapse/admin/v1/deactivate';
const SECRET = 'a shared secret of some length';

interface Challenge {
  flows: { stages: string[] }[];
  session: string;
  errcode?: string;
}

/** Client calls against one server, for the helpers below. */
function clientOf(server: TestServer) {
  const post = (token: string | undefined, urlPath: string, body: unknown = {}) =>
    server.request<Record<string, unknown>>('POST', urlPath, {
      ...(token !== undefined ? { token } : {}),
      body,
    });

  return {
    post,
    async createRoom(user: TestUser, body: Record<string, unknown> = {}): Promise<string> {
      const res = await post(user.accessToken, `${V3}/createRoom`, body);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body.room_id as string;
    },
    async membership(viewer: TestUser, roomId: string, userId: string): Promise<string> {
      const res = await server.request<{ membership?: string }>(
        'GET',
        `${V3}/rooms/${encodeURIComponent(roomId)}/state/m.room.member/${encodeURIComponent(userId)}`,
        { token: viewer.accessToken },
      );
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body.membership ?? '';
    },
    async loginStatus(
      user: string,
      password: string,
    ): Promise<{ status: number; errcode?: string }> {
      const res = await server.request<{ errcode?: string }>('POST', `${V3}/login`, {
        body: { type: 'm.login.password', identifier: { type: 'm.id.user', user }, password },
      });
      return { status: res.status, ...(res.body.errcode ? { errcode: res.body.errcode } : {}) };
    },
    async registerAdmin(): Promise<TestUser> {
      const registerPath = '/_synapse/admin/v1/register';
      const nonce = await server.request<{ nonce: string }>('GET', registerPath);
      const username = uniqueName('admin');
      const password = 'admin password';
      const macText = [nonce.body.nonce, username, password, 'admin'].join('\x00');
      const mac = createHmac('sha1', SECRET).update(macText, 'utf8').digest('hex');
      const res = await server.request<{
        user_id: string;
        access_token: string;
        device_id: string;
      }>('POST', registerPath, {
        body: { nonce: nonce.body.nonce, username, password, admin: true, mac },
      });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return {
        userId: res.body.user_id,
        accessToken: res.body.access_token,
        deviceId: res.body.device_id,
        password,
      };
    },
  };
}

async function assertTokenRefused(server: TestServer, token: string): Promise<void> {
  expectError(await server.request('GET', WHOAMI, { token }), 401, 'M_UNKNOWN_TOKEN');
}

async function assertTokenWorks(server: TestServer, token: string): Promise<void> {
  // Twice: the first use caches the session, so the second is answered from the cache.
  for (let i = 0; i < 2; i++) {
    const res = await server.request('GET', WHOAMI, { token });
    assert.equal(res.status, 200, JSON.stringify(res.body));
  }
}

forEachDatabase('POST /account/deactivate', (dialect) => {
  let server: TestServer;
  let client: ReturnType<typeof clientOf>;
  let owner: TestUser;
  before(async () => {
    server = await startTestServer(dialect);
    client = clientOf(server);
    owner = await registerUser(server);
  });
  after(async () => server.close());

  it('answers 401 with the m.login.password flow and a session when auth is missing', async () => {
    const user = await registerUser(server);
    const res = await server.request<Challenge>('POST', DEACTIVATE, {
      token: user.accessToken,
      body: {},
    });
    assert.equal(res.status, 401, JSON.stringify(res.body));
    assertMatchesSpec('account_deactivation.yaml', 'post', '/account/deactivate', 401, res.body);
    assert.deepEqual(res.body.flows, [{ stages: ['m.login.password'] }]);
    assert.equal(typeof res.body.session, 'string');
    await assertTokenWorks(server, user.accessToken);
  });

  it('refuses a wrong password, or re-authentication as another user, with 401 M_FORBIDDEN', async () => {
    const user = await registerUser(server);
    const other = await registerUser(server);
    for (const auth of [
      passwordAuth(user.userId, 'wrong'),
      passwordAuth(other.userId, other.password),
    ]) {
      const res = await server.request<Challenge>('POST', DEACTIVATE, {
        token: user.accessToken,
        body: { auth },
      });
      assert.equal(res.status, 401, JSON.stringify(res.body));
      assert.equal(res.body.errcode, 'M_FORBIDDEN');
    }
    await assertTokenWorks(server, user.accessToken);
    assert.equal((await client.loginStatus(user.userId, user.password)).status, 200);
  });

  it('refuses a missing token (401 M_MISSING_TOKEN), a bad body (400) and a bad auth (400)', async () => {
    const user = await registerUser(server);
    expectError(
      await server.request('POST', DEACTIVATE, {
        body: { auth: passwordAuth(user.userId, user.password) },
      }),
      401,
      'M_MISSING_TOKEN',
    );
    expectError(
      await server.request('POST', DEACTIVATE, { token: user.accessToken, body: { erase: 'yes' } }),
      400,
      'M_BAD_JSON',
    );
    expectError(
      await server.request('POST', DEACTIVATE, { token: user.accessToken, rawBody: '{' }),
      400,
      'M_NOT_JSON',
    );
    expectError(
      await server.request('POST', DEACTIVATE, { token: user.accessToken, body: { auth: 'x' } }),
      400,
      'M_BAD_JSON',
    );
    expectError(
      await server.request('POST', DEACTIVATE, {
        token: user.accessToken,
        body: { auth: passwordAuth(user.userId, user.password, 'no such session') },
      }),
      400,
      'M_UNKNOWN',
    );
    await assertTokenWorks(server, user.accessToken);
  });

  it('deactivates: every session ends, every room is left, login is 403 M_USER_DEACTIVATED, the name stays taken', async () => {
    const user = await registerUser(server, uniqueName('leaver'));
    const second = await loginUser(server, user.userId, user.password);
    await assertTokenWorks(server, user.accessToken);
    await assertTokenWorks(server, second.accessToken);
    const joined = await client.createRoom(owner, { preset: 'public_chat' });
    assert.equal(
      (await client.post(user.accessToken, `${V3}/join/${encodeURIComponent(joined)}`)).status,
      200,
    );
    const invited = await client.createRoom(owner, {
      preset: 'private_chat',
      invite: [user.userId],
    });
    const own = await client.createRoom(user, { preset: 'private_chat' });
    const banned = await client.createRoom(owner, { preset: 'public_chat' });
    await client.post(user.accessToken, `${V3}/join/${encodeURIComponent(banned)}`);
    await client.post(owner.accessToken, `${V3}/rooms/${encodeURIComponent(banned)}/ban`, {
      user_id: user.userId,
    });

    const first = await server.request<Challenge>('POST', DEACTIVATE, {
      token: user.accessToken,
      body: {},
    });
    const res = await server.request('POST', DEACTIVATE, {
      token: user.accessToken,
      body: {
        auth: passwordAuth(user.userId, user.password, first.body.session),
        id_server: 'id.example.org',
      },
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assertMatchesSpec('account_deactivation.yaml', 'post', '/account/deactivate', 200, res.body);
    assert.deepEqual(res.body, { id_server_unbind_result: 'no-support' });

    await assertTokenRefused(server, user.accessToken);
    await assertTokenRefused(server, second.accessToken);
    assert.deepEqual(await client.loginStatus(user.userId, user.password), {
      status: 403,
      errcode: 'M_USER_DEACTIVATED',
    });
    assert.deepEqual(await client.loginStatus(user.userId, 'wrong'), {
      status: 403,
      errcode: 'M_FORBIDDEN',
    });
    assert.equal(await client.membership(owner, joined, user.userId), 'leave');
    assert.equal(await client.membership(owner, invited, user.userId), 'leave');
    assert.equal(await client.membership(owner, banned, user.userId), 'ban');
    // The room the user made alone, which nobody else can look into.
    const ownMembership = await server.running.storage.stores.rooms.selectMembership(
      own,
      user.userId,
    );
    assert.equal(ownMembership?.membership, 'leave');

    const localpart = user.userId.slice(1, user.userId.indexOf(':'));
    const again = await server.request('POST', `${V3}/register`, {
      body: { username: localpart, password: 'pw', auth: { type: 'm.login.dummy' } },
    });
    expectError(again, 400, 'M_USER_IN_USE');
    expectError(
      await server.request('GET', `${V3}/register/available?username=${localpart}`),
      400,
      'M_USER_IN_USE',
    );
    // Without erase, the profile stays.
    const profile = await server.request<{ displayname?: string }>(
      'GET',
      `${V3}/profile/${encodeURIComponent(user.userId)}`,
    );
    assert.equal(profile.status, 200);
    assert.equal(profile.body.displayname, localpart);
  });

  it('refuses a token issued after the deactivation (a login that was already past its password check)', async () => {
    const user = await registerUser(server);
    const res = await server.request('POST', DEACTIVATE, {
      token: user.accessToken,
      body: { auth: passwordAuth(user.userId, user.password) },
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const late = await servicesOf(server).accounts.issueLogin(user.userId, { ip: null });
    await assertTokenRefused(server, late.accessToken);
  });

  it('refuses the token on the fast read path too (mutual_rooms, answered before Fastify)', async () => {
    const user = await registerUser(server);
    const other = await registerUser(server);
    const roomId = await client.createRoom(user, { preset: 'public_chat' });
    await client.post(other.accessToken, `${V3}/join/${encodeURIComponent(roomId)}`);
    const page = `/_matrix/client/v1/user/mutual_rooms?user_id=${encodeURIComponent(other.userId)}`;
    for (let i = 0; i < 2; i++) {
      const res = await server.request<{ joined: string[] }>('GET', page, {
        token: user.accessToken,
      });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.deepEqual(res.body.joined, [roomId]);
    }
    const res = await server.request('POST', DEACTIVATE, {
      token: user.accessToken,
      body: { auth: passwordAuth(user.userId, user.password) },
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    expectError(
      await server.request('GET', page, { token: user.accessToken }),
      401,
      'M_UNKNOWN_TOKEN',
    );
    // The room-mate's view: no room shared any more.
    const theirs = await server.request<{ joined: string[] }>(
      'GET',
      `/_matrix/client/v1/user/mutual_rooms?user_id=${encodeURIComponent(user.userId)}`,
      { token: other.accessToken },
    );
    assert.equal(theirs.status, 200, JSON.stringify(theirs.body));
    assert.deepEqual(theirs.body.joined, []);
  });

  it('refuses a join or knock that was under way (403 M_USER_DEACTIVATED); createRoom too', async () => {
    const user = await registerUser(server);
    const roomId = await client.createRoom(owner, { preset: 'public_chat' });
    const res = await server.request('POST', DEACTIVATE, {
      token: user.accessToken,
      body: { auth: passwordAuth(user.userId, user.password) },
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    // The services behind a request that had authenticated before the deactivation.
    const services = servicesOf(server);
    const requester = { userId: user.userId, deviceId: user.deviceId, isAdmin: false };
    for (const attempt of [
      () => services.membership.join(requester, roomId),
      () => services.membership.knock(requester, roomId),
      () => services.rooms.createRoom(requester, {}),
    ]) {
      await assert.rejects(attempt(), (err: { status?: number; errcode?: string }) => {
        assert.equal(err.status, 403);
        assert.equal(err.errcode, 'M_USER_DEACTIVATED');
        return true;
      });
    }
    assert.equal(
      await server.running.storage.stores.rooms.selectMembership(roomId, user.userId),
      undefined,
    );
  });

  it('erase: true clears the display name and avatar, and the leave events carry neither', async () => {
    const user = await registerUser(server);
    const setAvatar = await server.request(
      'PUT',
      `${V3}/profile/${encodeURIComponent(user.userId)}/avatar_url`,
      { token: user.accessToken, body: { avatar_url: 'mxc://test.local/abc' } },
    );
    assert.equal(setAvatar.status, 200, JSON.stringify(setAvatar.body));
    const roomId = await client.createRoom(owner, { preset: 'public_chat' });
    await client.post(user.accessToken, `${V3}/join/${encodeURIComponent(roomId)}`);
    const res = await server.request('POST', DEACTIVATE, {
      token: user.accessToken,
      body: { erase: true, auth: passwordAuth(user.userId, user.password) },
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const profile = await server.request<Record<string, unknown>>(
      'GET',
      `${V3}/profile/${encodeURIComponent(user.userId)}`,
    );
    assert.equal(profile.status, 200, JSON.stringify(profile.body));
    assert.equal(profile.body.displayname, undefined);
    assert.equal(profile.body.avatar_url, undefined);
    const member = await server.request<Record<string, unknown>>(
      'GET',
      `${V3}/rooms/${encodeURIComponent(roomId)}/state/m.room.member/${encodeURIComponent(user.userId)}`,
      { token: owner.accessToken },
    );
    assert.deepEqual(member.body, { membership: 'leave' });
  });
});

forEachDatabase('GET /account/3pid', (dialect) => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer(dialect);
  });
  after(async () => server.close());

  it('answers an empty list of third-party identifiers', async () => {
    const user = await registerUser(server);
    for (const prefix of ['/_matrix/client/v3', '/_matrix/client/r0']) {
      const res = await server.request('GET', `${prefix}/account/3pid`, {
        token: user.accessToken,
      });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assertMatchesSpec('administrative_contact.yaml', 'get', '/account/3pid', 200, res.body);
      assert.deepEqual(res.body, { threepids: [] });
    }
  });

  it('needs a token: 401 M_MISSING_TOKEN, and 401 M_UNKNOWN_TOKEN for an unknown one', async () => {
    expectError(await server.request('GET', `${V3}/account/3pid`), 401, 'M_MISSING_TOKEN');
    expectError(
      await server.request('GET', `${V3}/account/3pid`, { token: 'nope' }),
      401,
      'M_UNKNOWN_TOKEN',
    );
  });
});

forEachDatabase('POST /_synapse/admin/v1/deactivate/{userId}', (dialect) => {
  let server: TestServer;
  let client: ReturnType<typeof clientOf>;
  let admin: TestUser;
  before(async () => {
    server = await startTestServer(dialect, { COMMONS_REGISTRATION_SHARED_SECRET: SECRET });
    client = clientOf(server);
    admin = await client.registerAdmin();
  });
  after(async () => server.close());

  const deactivatePath = (userId: string) => `${ADMIN_DEACTIVATE}/${encodeURIComponent(userId)}`;

  it('deactivates another user (and again, harmlessly): sessions end, rooms are left', async () => {
    const user = await registerUser(server);
    await assertTokenWorks(server, user.accessToken);
    const roomId = await client.createRoom(admin, { preset: 'public_chat' });
    await client.post(user.accessToken, `${V3}/join/${encodeURIComponent(roomId)}`);
    for (let i = 0; i < 2; i++) {
      const res = await client.post(admin.accessToken, deactivatePath(user.userId), {
        erase: true,
      });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.deepEqual(res.body, { id_server_unbind_result: 'success' });
    }
    await assertTokenRefused(server, user.accessToken);
    assert.equal(await client.membership(admin, roomId, user.userId), 'leave');
    assert.deepEqual(await client.loginStatus(user.userId, user.password), {
      status: 403,
      errcode: 'M_USER_DEACTIVATED',
    });
  });

  it('takes an empty object or no body at all (erase defaults to false)', async () => {
    for (const body of [{}, undefined]) {
      const user = await registerUser(server);
      const res = await server.request('POST', deactivatePath(user.userId), {
        token: admin.accessToken,
        ...(body ? { body } : {}),
      });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      await assertTokenRefused(server, user.accessToken);
    }
  });

  it('refuses a non-admin (403), an unknown user (404), a remote or malformed one (400), no token (401)', async () => {
    const user = await registerUser(server);
    const victim = await registerUser(server);
    expectError(
      await client.post(user.accessToken, deactivatePath(victim.userId)),
      403,
      'M_FORBIDDEN',
    );
    expectError(
      await client.post(admin.accessToken, deactivatePath('@nobody:test.local')),
      404,
      'M_NOT_FOUND',
    );
    expectError(
      await client.post(admin.accessToken, deactivatePath('@someone:elsewhere.example')),
      400,
      'M_UNKNOWN',
    );
    expectError(
      await client.post(admin.accessToken, deactivatePath('not-a-user')),
      400,
      'M_INVALID_PARAM',
    );
    expectError(
      await client.post(admin.accessToken, deactivatePath(victim.userId), { erase: 1 }),
      400,
      'M_BAD_JSON',
    );
    expectError(
      await client.post(undefined, deactivatePath(victim.userId)),
      401,
      'M_MISSING_TOKEN',
    );
    await assertTokenWorks(server, victim.accessToken);
  });
});

/** A server on a database that outlives it, for restarts and for several servers. */
async function sharedDatabase(dialect: TestDialect) {
  const database = await createTestDatabase(dialect);
  const dataDir = mkdtempSync(path.join(tmpdir(), 'commons-deactivation-'));
  return {
    database,
    dataDir,
    start: () => startServerOn(database, dataDir),
    async drop() {
      await database.drop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

forEachDatabase('deactivation interrupted after its first step', (dialect) => {
  it('is finished when the server starts again: the rooms are left', async () => {
    const shared = await sharedDatabase(dialect);
    let server = await shared.start();
    try {
      const owner = await registerUser(server);
      const user = await registerUser(server);
      const client = clientOf(server);
      const rooms = [
        await client.createRoom(owner, { preset: 'public_chat' }),
        await client.createRoom(owner, { preset: 'public_chat' }),
      ];
      for (const roomId of rooms) {
        await client.post(user.accessToken, `${V3}/join/${encodeURIComponent(roomId)}`);
      }
      // The first transaction alone, as a process stopped right after it would leave things.
      assert.equal(await servicesOf(server).deactivation.begin(user.userId, false), true);
      await assertTokenRefused(server, user.accessToken);
      for (const roomId of rooms) {
        assert.equal(await client.membership(owner, roomId, user.userId), 'join');
      }
      await server.close();

      server = await shared.start();
      const restarted = clientOf(server);
      for (const roomId of rooms) {
        const membership = await eventually(
          () => restarted.membership(owner, roomId, user.userId),
          (m) => m === 'leave',
        );
        assert.equal(membership, 'leave', roomId);
      }
      assert.deepEqual(await restarted.loginStatus(user.userId, user.password), {
        status: 403,
        errcode: 'M_USER_DEACTIVATED',
      });
      const pending = await eventually(
        () => server.running.storage.stores.accounts.selectPendingDeactivations(),
        (p) => p.length === 0,
      );
      assert.deepEqual(pending, []);
    } finally {
      await server.close();
      await shared.drop();
    }
  });
});

describe('deactivation seen by another process [postgres]', () => {
  it(
    "refuses the user's token on a server that had it cached",
    { skip: !process.env.COMMONS_TEST_DATABASE_URL && 'PostgreSQL is not configured' },
    async () => {
      const shared = await sharedDatabase('postgres');
      const first = await shared.start();
      const second = await shared.start();
      try {
        const user = await registerUser(first);
        await assertTokenWorks(second, user.accessToken);
        const res = await first.request('POST', DEACTIVATE, {
          token: user.accessToken,
          body: { auth: passwordAuth(user.userId, user.password) },
        });
        assert.equal(res.status, 200, JSON.stringify(res.body));
        const answer = await eventually(
          () => second.request('GET', WHOAMI, { token: user.accessToken }),
          (r) => r.status === 401,
        );
        expectError(answer, 401, 'M_UNKNOWN_TOKEN');
      } finally {
        await first.close();
        await second.close();
        await shared.drop();
      }
    },
  );
});
