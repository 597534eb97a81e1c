/**
 * Sign-up controls: registration tokens as the m.login.registration_token stage (and the
 * spec's validity endpoint), registration only with a token, and the password policy, on
 * both databases.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { passwordAuth, registerUser, type TestUser } from '../helpers/client.js';
import { expectError, uniqueName } from '../helpers/assertions.js';
import { ADMIN_SECRET, registerAdmin } from '../helpers/admin.js';

const C = '/_matrix/client/v3';
const REGISTER = `${C}/register`;
const VALIDITY = '/_matrix/client/v1/register/m.login.registration_token/validity';
const TOKENS = '/_synapse/admin/v1/registration_tokens';
const STRONG = 'Strong pass 1';

interface Challenge {
  session: string;
  flows: Array<{ stages: string[] }>;
}

forEachDatabase('sign-up controls', (dialect) => {
  describe('registration only with a token, and a password policy', () => {
    let server: TestServer;
    let admin: TestUser;
    before(async () => {
      server = await startTestServer(dialect, {
        COMMONS_REGISTRATION_SHARED_SECRET: ADMIN_SECRET,
        COMMONS_REGISTRATION_REQUIRES_TOKEN: 'true',
        COMMONS_PASSWORD_POLICY_MINIMUM_LENGTH: '10',
        COMMONS_PASSWORD_POLICY_REQUIRE_DIGIT: 'true',
        COMMONS_PASSWORD_POLICY_REQUIRE_UPPERCASE: 'true',
      });
      admin = await registerAdmin(server);
    });
    after(async () => server.close());

    const start = async (username: string, password = STRONG) => {
      const res = await server.request<Challenge>('POST', REGISTER, {
        body: { username, password },
      });
      assert.equal(res.status, 401, JSON.stringify(res.body));
      return res.body;
    };
    const withAuth = (username: string, auth: Record<string, unknown>, password = STRONG) =>
      server.request<{ user_id: string; access_token: string }>('POST', REGISTER, {
        body: { username, password, auth },
      });
    const newToken = async (body: Record<string, unknown>) => {
      const res = await server.request<{ token: string }>('POST', `${TOKENS}/new`, {
        token: admin.accessToken,
        body,
      });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body.token;
    };

    it('offers only the registration token stage, and refuses others and bad tokens', async () => {
      const username = uniqueName('tok');
      const challenge = await start(username);
      assert.deepEqual(challenge.flows, [{ stages: ['m.login.registration_token'] }]);
      expectError(
        await withAuth(username, { type: 'm.login.dummy', session: challenge.session }),
        401,
        'M_UNRECOGNIZED',
      );
      expectError(
        await withAuth(username, {
          type: 'm.login.registration_token',
          token: 'nope',
          session: challenge.session,
        }),
        401,
        'M_FORBIDDEN',
      );
    });

    it('registers with a token, counts the use, and refuses the token once used up', async () => {
      const token = await newToken({ uses_allowed: 1 });
      assert.deepEqual((await server.request('GET', `${VALIDITY}?token=${token}`)).body, {
        valid: true,
      });
      const username = uniqueName('tok');
      const challenge = await start(username);
      const done = await withAuth(username, {
        type: 'm.login.registration_token',
        token,
        session: challenge.session,
      });
      assert.equal(done.status, 200, JSON.stringify(done.body));
      const whoami = await server.request('GET', `${C}/account/whoami`, {
        token: done.body.access_token,
      });
      assert.equal(whoami.status, 200);

      const row = await server.request<{ completed: number }>('GET', `${TOKENS}/${token}`, {
        token: admin.accessToken,
      });
      assert.equal(row.body.completed, 1);
      assert.deepEqual((await server.request('GET', `${VALIDITY}?token=${token}`)).body, {
        valid: false,
      });
      const other = uniqueName('tok');
      const second = await start(other);
      expectError(
        await withAuth(other, {
          type: 'm.login.registration_token',
          token,
          session: second.session,
        }),
        401,
        'M_FORBIDDEN',
      );
      assert.deepEqual((await server.request('GET', `${VALIDITY}?token=unknown`)).body, {
        valid: false,
      });
      expectError(await server.request('GET', VALIDITY), 400, 'M_MISSING_PARAM');
    });

    it('refuses weak passwords at registration, password change and in the admin API', async () => {
      for (const weak of ['Short1', 'no digits HERE', 'no uppercase 123']) {
        expectError(
          await server.request('POST', REGISTER, {
            body: { username: uniqueName('weak'), password: weak },
          }),
          400,
          'M_WEAK_PASSWORD',
        );
        expectError(
          await server.request(
            'PUT',
            `/_synapse/admin/v2/users/${encodeURIComponent(`@${uniqueName('weak')}:test.local`)}`,
            {
              token: admin.accessToken,
              body: { password: weak },
            },
          ),
          400,
          'M_WEAK_PASSWORD',
        );
      }
      const token = await newToken({});
      const username = uniqueName('pw');
      const challenge = await start(username);
      const user = await withAuth(username, {
        type: 'm.login.registration_token',
        token,
        session: challenge.session,
      });
      assert.equal(user.status, 200);
      expectError(
        await server.request('POST', `${C}/account/password`, {
          token: user.body.access_token,
          body: { new_password: 'weak', auth: passwordAuth(user.body.user_id, STRONG) },
        }),
        400,
        'M_WEAK_PASSWORD',
      );
      const strong = await server.request('POST', `${C}/account/password`, {
        token: user.body.access_token,
        body: { new_password: 'Another strong 2', auth: passwordAuth(user.body.user_id, STRONG) },
      });
      assert.equal(strong.status, 200, JSON.stringify(strong.body));
    });
  });

  describe('open registration and closed registration', () => {
    let open: TestServer;
    let closed: TestServer;
    before(async () => {
      open = await startTestServer(dialect);
      closed = await startTestServer(dialect, { COMMONS_REGISTRATION_ENABLED: 'false' });
    });
    after(async () => {
      await open.close();
      await closed.close();
    });

    it('open registration offers the dummy stage and takes any password', async () => {
      const res = await open.request<Challenge>('POST', REGISTER, {
        body: { username: uniqueName('o'), password: 'x' },
      });
      assert.deepEqual(res.body.flows, [{ stages: ['m.login.dummy'] }]);
      await registerUser(open, uniqueName('o'), 'x');
    });

    it('the validity endpoint answers 403 where registration is closed', async () => {
      expectError(await closed.request('GET', `${VALIDITY}?token=abc`), 403, 'M_FORBIDDEN');
    });
  });
});
