import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { assertMatchesSpec } from '../helpers/spec-contract.js';
import { expectError, uniqueName } from '../helpers/assertions.js';

interface Profile {
  displayname?: string;
  avatar_url?: string;
}

const PROFILE = '/_matrix/client/v3/profile';

forEachDatabase('profiles', (dialect) => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer(dialect);
  });
  after(async () => server.close());

  const localpartOf = (user: TestUser): string => user.userId.slice(1, user.userId.indexOf(':'));

  async function profileOf(userId: string): Promise<Profile> {
    const response = await server.request<Profile>('GET', `${PROFILE}/${userId}`);
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assertMatchesSpec('profile.yaml', 'get', '/profile/{userId}', 200, response.body);
    return response.body;
  }

  it('GET /profile/{userId}: a new user has its localpart as display name and no avatar', async () => {
    const user = await registerUser(server, uniqueName('fresh'));
    assert.deepEqual(await profileOf(user.userId), { displayname: localpartOf(user) });
  });

  it('GET /profile/{userId}/displayname and /avatar_url answer the one field', async () => {
    const user = await registerUser(server, uniqueName('field'));
    const name = await server.request<Profile>('GET', `${PROFILE}/${user.userId}/displayname`);
    assert.equal(name.status, 200);
    assertMatchesSpec('profile.yaml', 'get', '/profile/{userId}/{keyName}', 200, name.body);
    assert.deepEqual(name.body, { displayname: localpartOf(user) });

    // An unset avatar is answered as an empty object (as Synapse does).
    const avatar = await server.request<Profile>('GET', `${PROFILE}/${user.userId}/avatar_url`);
    assert.equal(avatar.status, 200);
    assertMatchesSpec('profile.yaml', 'get', '/profile/{userId}/{keyName}', 200, avatar.body);
    assert.deepEqual(avatar.body, {});
  });

  it('accepts a percent-encoded user ID in the path', async () => {
    const user = await registerUser(server, uniqueName('enc'));
    const response = await server.request<Profile>(
      'GET',
      `${PROFILE}/${encodeURIComponent(user.userId)}`,
    );
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assert.equal(response.body.displayname, localpartOf(user));
  });

  it('PUT own displayname: 200 {}, then every GET shows it', async () => {
    const user = await registerUser(server, uniqueName('name'));
    const response = await server.request('PUT', `${PROFILE}/${user.userId}/displayname`, {
      token: user.accessToken,
      body: { displayname: 'Zoë 🌱' },
    });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assertMatchesSpec('profile.yaml', 'put', '/profile/{userId}/{keyName}', 200, response.body);
    assert.deepEqual(response.body, {});
    assert.deepEqual(await profileOf(user.userId), { displayname: 'Zoë 🌱' });
    const field = await server.request('GET', `${PROFILE}/${user.userId}/displayname`);
    assert.deepEqual(field.body, { displayname: 'Zoë 🌱' });
  });

  it('PUT own displayname with null or "" clears it', async () => {
    const user = await registerUser(server, uniqueName('clear'));
    for (const displayname of [null, '']) {
      await server.request('PUT', `${PROFILE}/${user.userId}/displayname`, {
        token: user.accessToken,
        body: { displayname: 'Set' },
      });
      const response = await server.request('PUT', `${PROFILE}/${user.userId}/displayname`, {
        token: user.accessToken,
        body: { displayname },
      });
      assert.equal(response.status, 200, JSON.stringify(response.body));
      assert.deepEqual(await profileOf(user.userId), {});
      const field = await server.request('GET', `${PROFILE}/${user.userId}/displayname`);
      assert.equal(field.status, 200);
      assert.deepEqual(field.body, {});
    }
  });

  it('PUT own avatar_url with an mxc URI: 200 {}, then every GET shows it', async () => {
    const user = await registerUser(server, uniqueName('avatar'));
    const avatar = 'mxc://test.local/AbCdEf_123-x';
    const response = await server.request('PUT', `${PROFILE}/${user.userId}/avatar_url`, {
      token: user.accessToken,
      body: { avatar_url: avatar },
    });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assertMatchesSpec('profile.yaml', 'put', '/profile/{userId}/{keyName}', 200, response.body);
    assert.deepEqual(await profileOf(user.userId), {
      displayname: localpartOf(user),
      avatar_url: avatar,
    });
    const field = await server.request('GET', `${PROFILE}/${user.userId}/avatar_url`);
    assertMatchesSpec('profile.yaml', 'get', '/profile/{userId}/{keyName}', 200, field.body);
    assert.deepEqual(field.body, { avatar_url: avatar });

    const remote = 'mxc://media.example.org:8448/xyz';
    await server.request('PUT', `${PROFILE}/${user.userId}/avatar_url`, {
      token: user.accessToken,
      body: { avatar_url: remote },
    });
    assert.equal((await profileOf(user.userId)).avatar_url, remote);
  });

  it('PUT own avatar_url with null or "" clears it', async () => {
    const user = await registerUser(server, uniqueName('noavatar'));
    for (const avatarUrl of [null, '']) {
      await server.request('PUT', `${PROFILE}/${user.userId}/avatar_url`, {
        token: user.accessToken,
        body: { avatar_url: 'mxc://test.local/abc' },
      });
      const response = await server.request('PUT', `${PROFILE}/${user.userId}/avatar_url`, {
        token: user.accessToken,
        body: { avatar_url: avatarUrl },
      });
      assert.equal(response.status, 200, JSON.stringify(response.body));
      assert.equal((await profileOf(user.userId)).avatar_url, undefined);
    }
  });

  it("PUT someone else's displayname or avatar_url: 403 M_FORBIDDEN, nothing changes", async () => {
    const user = await registerUser(server, uniqueName('me'));
    const victim = await registerUser(server, uniqueName('victim'));
    for (const [field, body] of [
      ['displayname', { displayname: 'pwned' }],
      ['avatar_url', { avatar_url: 'mxc://test.local/pwned' }],
    ] as const) {
      const response = await server.request('PUT', `${PROFILE}/${victim.userId}/${field}`, {
        token: user.accessToken,
        body,
      });
      expectError(response, 403, 'M_FORBIDDEN');
      assertMatchesSpec('profile.yaml', 'put', '/profile/{userId}/{keyName}', 403, response.body);
    }
    const unknown = await server.request(
      'PUT',
      `${PROFILE}/@${uniqueName('ghost')}:test.local/displayname`,
      {
        token: user.accessToken,
        body: { displayname: 'ghost' },
      },
    );
    expectError(unknown, 403, 'M_FORBIDDEN');
    assert.deepEqual(await profileOf(victim.userId), { displayname: localpartOf(victim) });
  });

  const invalidUserIds = [
    'alice',
    '@alice',
    '@:test.local',
    '@al ice:test.local',
    '@alice:bad_server!',
  ];
  for (const userId of invalidUserIds) {
    it(`an invalid user ID (${JSON.stringify(userId)}): 400 M_INVALID_PARAM on GET and PUT`, async () => {
      const user = await registerUser(server, uniqueName('inv'));
      const encoded = encodeURIComponent(userId);
      for (const suffix of ['', '/displayname', '/avatar_url']) {
        const response = await server.request('GET', `${PROFILE}/${encoded}${suffix}`);
        expectError(response, 400, 'M_INVALID_PARAM');
      }
      const put = await server.request('PUT', `${PROFILE}/${encoded}/displayname`, {
        token: user.accessToken,
        body: { displayname: 'x' },
      });
      expectError(put, 400, 'M_INVALID_PARAM');
      assertMatchesSpec('profile.yaml', 'put', '/profile/{userId}/{keyName}', 400, put.body);
    });
  }

  it('an unknown user: 404 M_NOT_FOUND on every GET', async () => {
    for (const userId of [`@${uniqueName('nobody')}:test.local`, '@someone:remote.example']) {
      const whole = await server.request('GET', `${PROFILE}/${userId}`);
      expectError(whole, 404, 'M_NOT_FOUND');
      assertMatchesSpec('profile.yaml', 'get', '/profile/{userId}', 404, whole.body);
      for (const field of ['displayname', 'avatar_url']) {
        expectError(
          await server.request('GET', `${PROFILE}/${userId}/${field}`),
          404,
          'M_NOT_FOUND',
        );
      }
    }
  });

  const badAvatars: [string, unknown][] = [
    ['an http URL', 'https://example.org/cat.png'],
    ['mxc without a media ID', 'mxc://test.local'],
    ['mxc with an empty media ID', 'mxc://test.local/'],
    ['mxc with a path', 'mxc://test.local/a/b'],
    ['a number', 42],
    ['an object', { url: 'mxc://test.local/abc' }],
  ];
  for (const [what, avatarUrl] of badAvatars) {
    it(`PUT avatar_url with ${what}: 400 M_BAD_JSON`, async () => {
      const user = await registerUser(server, uniqueName('badav'));
      const response = await server.request('PUT', `${PROFILE}/${user.userId}/avatar_url`, {
        token: user.accessToken,
        body: { avatar_url: avatarUrl },
      });
      expectError(response, 400, 'M_BAD_JSON');
      assertMatchesSpec('profile.yaml', 'put', '/profile/{userId}/{keyName}', 400, response.body);
      assert.equal((await profileOf(user.userId)).avatar_url, undefined);
    });
  }

  const badDisplaynames: [string, unknown][] = [
    ['no displayname key', undefined],
    ['a number', 7],
    ['an array', ['a']],
    ['over 256 characters', 'x'.repeat(257)],
  ];
  for (const [what, displayname] of badDisplaynames) {
    it(`PUT displayname with ${what}: 400 M_BAD_JSON`, async () => {
      const user = await registerUser(server, uniqueName('badname'));
      const response = await server.request('PUT', `${PROFILE}/${user.userId}/displayname`, {
        token: user.accessToken,
        body: displayname === undefined ? {} : { displayname },
      });
      expectError(response, 400, 'M_BAD_JSON');
      assert.equal((await profileOf(user.userId)).displayname, localpartOf(user));
    });
  }

  it('PUT without a token: 401 M_MISSING_TOKEN; with a bad one: 401 M_UNKNOWN_TOKEN', async () => {
    const user = await registerUser(server, uniqueName('notoken'));
    for (const [field, body] of [
      ['displayname', { displayname: 'x' }],
      ['avatar_url', { avatar_url: 'mxc://test.local/x' }],
    ] as const) {
      const path = `${PROFILE}/${user.userId}/${field}`;
      expectError(await server.request('PUT', path, { body }), 401, 'M_MISSING_TOKEN');
      expectError(
        await server.request('PUT', path, { body, token: 'mct_bogus' }),
        401,
        'M_UNKNOWN_TOKEN',
      );
    }
    assert.deepEqual(await profileOf(user.userId), { displayname: localpartOf(user) });
  });
});
