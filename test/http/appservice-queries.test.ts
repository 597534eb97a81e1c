import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { expectError } from '../helpers/assertions.js';
import { TestBridge, writeRegistrations } from '../helpers/appservice.js';

const V1 = '/_matrix/client/v1';
const V3 = '/_matrix/client/v3';
const r = encodeURIComponent;
const AS_TOKEN = 'as_token_query_0123456789';
const HS_TOKEN = 'hs_token_query_0123456789';
const IDLE_TOKEN = 'as_token_idle_0123456789';

forEachDatabase('application service queries, ping and third-party lookups', (dialect) => {
  let server: TestServer;
  let bridge: TestBridge;
  let human: TestUser;

  before(async () => {
    bridge = new TestBridge();
    await bridge.start();
    server = await startTestServer(dialect, {
      COMMONS_APP_SERVICES_CONFIG_FILES: writeRegistrations([
        {
          id: 'query',
          url: bridge.url,
          as_token: AS_TOKEN,
          hs_token: HS_TOKEN,
          sender_localpart: 'querybot',
          namespaces: {
            users: [{ exclusive: true, regex: '@_qq_.*:test\\.local' }],
            aliases: [{ exclusive: true, regex: '#_qq_.*:test\\.local' }],
          },
          protocols: ['gitter'],
        },
        {
          id: 'idle',
          url: null,
          as_token: IDLE_TOKEN,
          hs_token: 'hs_token_idle_0123456789',
          sender_localpart: 'idlebot',
          namespaces: {},
        },
      ]),
    });
    human = await registerUser(server);
  });
  after(async () => {
    await server.close();
    await bridge.stop();
  });

  it('asks the bridge about an unknown user of its namespace (GET /users/{userId})', async () => {
    const wanted = '@_qq_created:test.local';
    bridge.answer = async (request) => {
      if (request.url === `/_matrix/app/v1/users/${r(wanted)}`) {
        // The bridge creates the user, then says it exists.
        const made = await server.request('POST', `${V3}/register`, {
          token: AS_TOKEN,
          body: {
            type: 'm.login.application_service',
            username: '_qq_created',
            inhibit_login: true,
          },
        });
        assert.equal(made.status, 200);
        return { status: 200, body: {} };
      }
      return undefined;
    };
    const profile = await server.request('GET', `${V3}/profile/${r(wanted)}`, {
      token: human.accessToken,
    });
    assert.equal(profile.status, 200, JSON.stringify(profile.body));
    const asked = bridge.requests.find((q) => q.url.startsWith('/_matrix/app/v1/users/'));
    assert.equal(asked?.authorization, `Bearer ${HS_TOKEN}`);
    // A user the bridge does not know stays unknown; one outside namespaces is never asked about.
    expectError(
      await server.request('GET', `${V3}/profile/${r('@_qq_nobody:test.local')}`, {
        token: human.accessToken,
      }),
      404,
      'M_NOT_FOUND',
    );
    const before = bridge.requests.length;
    expectError(
      await server.request('GET', `${V3}/profile/${r('@plain:test.local')}`, {
        token: human.accessToken,
      }),
      404,
      'M_NOT_FOUND',
    );
    assert.equal(bridge.requests.length, before);
  });

  it('asks the bridge about an unknown user of its namespace who is invited', async () => {
    const wanted = '@_qq_invited:test.local';
    bridge.answer = async (request) => {
      if (request.url !== `/_matrix/app/v1/users/${r(wanted)}`) return undefined;
      const made = await server.request('POST', `${V3}/register`, {
        token: AS_TOKEN,
        body: { type: 'm.login.application_service', username: '_qq_invited', inhibit_login: true },
      });
      assert.equal(made.status, 200);
      return { status: 200, body: {} };
    };
    const room = await server.request<{ room_id: string }>('POST', `${V3}/createRoom`, {
      token: human.accessToken,
      body: {},
    });
    const invited = await server.request('POST', `${V3}/rooms/${r(room.body.room_id)}/invite`, {
      token: human.accessToken,
      body: { user_id: wanted },
    });
    assert.equal(invited.status, 200, JSON.stringify(invited.body));
    assert.ok(bridge.requests.some((q) => q.url === `/_matrix/app/v1/users/${r(wanted)}`));
    // Asked once: the user exists now, so a second invite (after a leave) asks nothing.
    const asked = bridge.requests.length;
    const kicked = await server.request('POST', `${V3}/rooms/${r(room.body.room_id)}/kick`, {
      token: human.accessToken,
      body: { user_id: wanted },
    });
    assert.equal(kicked.status, 200);
    const again = await server.request('POST', `${V3}/rooms/${r(room.body.room_id)}/invite`, {
      token: human.accessToken,
      body: { user_id: wanted },
    });
    assert.equal(again.status, 200);
    assert.equal(bridge.requests.length, asked);
  });

  it('asks the bridge about an unknown alias of its namespace (GET /rooms/{alias})', async () => {
    const alias = '#_qq_channel:test.local';
    bridge.answer = async (request) => {
      if (request.url !== `/_matrix/app/v1/rooms/${r(alias)}`) return undefined;
      const room = await server.request<{ room_id: string }>('POST', `${V3}/createRoom`, {
        token: AS_TOKEN,
        body: { preset: 'public_chat' },
      });
      const put = await server.request('PUT', `${V3}/directory/room/${r(alias)}`, {
        token: AS_TOKEN,
        body: { room_id: room.body.room_id },
      });
      assert.equal(put.status, 200);
      return { status: 200, body: {} };
    };
    const resolved = await server.request<{ room_id: string }>(
      'GET',
      `${V3}/directory/room/${r(alias)}`,
      { token: human.accessToken },
    );
    assert.equal(resolved.status, 200, JSON.stringify(resolved.body));
    const joined = await server.request('POST', `${V3}/join/${r(alias)}`, {
      token: human.accessToken,
    });
    assert.equal(joined.status, 200, JSON.stringify(joined.body));
    bridge.answer = () => ({ status: 404, body: { errcode: 'M_NOT_FOUND', error: 'no' } });
    expectError(
      await server.request('GET', `${V3}/directory/room/${r('#_qq_none:test.local')}`, {
        token: human.accessToken,
      }),
      404,
      'M_NOT_FOUND',
    );
  });

  it('POST /appservice/{id}/ping: the round trip, and each error', async () => {
    const ping = (id: string, token: string, body: unknown = { transaction_id: 'p1' }) =>
      server.request<{ duration_ms: number }>('POST', `${V1}/appservice/${r(id)}/ping`, {
        token,
        body,
      });
    bridge.answer = (request) =>
      request.url === '/_matrix/app/v1/ping' ? { status: 200, body: {} } : undefined;
    const ok = await ping('query', AS_TOKEN);
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(typeof ok.body.duration_ms, 'number');
    const asked = bridge.requests.filter((q) => q.url === '/_matrix/app/v1/ping').at(-1);
    assert.deepEqual(asked?.body, { transaction_id: 'p1' });
    assert.equal(asked?.authorization, `Bearer ${HS_TOKEN}`);
    expectError(await ping('query', IDLE_TOKEN), 403, 'M_FORBIDDEN');
    expectError(await ping('query', human.accessToken), 403, 'M_FORBIDDEN');
    expectError(await ping('idle', IDLE_TOKEN), 400, 'M_URL_NOT_SET');
    expectError(await ping('query', HS_TOKEN), 401, 'M_UNKNOWN_TOKEN');
    bridge.answer = () => ({ status: 401, body: { errcode: 'M_UNKNOWN_TOKEN', error: 'bad' } });
    const bad = expectError(await ping('query', AS_TOKEN), 502, 'M_BAD_STATUS') as unknown as {
      status: number;
      body: string;
    };
    assert.equal(bad.status, 401);
    assert.match(bad.body, /M_UNKNOWN_TOKEN/);
    await bridge.stop();
    try {
      expectError(await ping('query', AS_TOKEN), 502, 'M_CONNECTION_FAILED');
    } finally {
      await bridge.start();
    }
  });

  it('passes third-party lookups through to the bridge of the protocol', async () => {
    bridge.answer = (request) => {
      if (request.url === '/_matrix/app/v1/thirdparty/protocol/gitter')
        return {
          status: 200,
          body: {
            user_fields: ['username'],
            location_fields: ['room'],
            icon: 'mxc://x/y',
            field_types: {},
            instances: [],
          },
        };
      if (request.url.startsWith('/_matrix/app/v1/thirdparty/user/gitter?'))
        return {
          status: 200,
          body: [
            { userid: '@_qq_git:test.local', protocol: 'gitter', fields: { username: 'git' } },
          ],
        };
      if (request.url.startsWith('/_matrix/app/v1/thirdparty/location?alias='))
        return {
          status: 200,
          body: [{ alias: '#_qq_x:test.local', protocol: 'gitter', fields: { room: 'x' } }],
        };
      return undefined;
    };
    const auth = { token: human.accessToken };
    const protocols = await server.request<Record<string, { user_fields: string[] }>>(
      'GET',
      `${V3}/thirdparty/protocols`,
      auth,
    );
    assert.equal(protocols.status, 200);
    assert.deepEqual(protocols.body.gitter?.user_fields, ['username']);
    const one = await server.request('GET', `${V3}/thirdparty/protocol/gitter`, auth);
    assert.equal(one.status, 200);
    const users = await server.request<{ userid: string }[]>(
      'GET',
      `${V3}/thirdparty/user/gitter?username=git`,
      auth,
    );
    assert.deepEqual(
      users.body.map((u) => u.userid),
      ['@_qq_git:test.local'],
    );
    const asked = bridge.requests.find((q) =>
      q.url.startsWith('/_matrix/app/v1/thirdparty/user/gitter'),
    );
    assert.equal(asked?.url, '/_matrix/app/v1/thirdparty/user/gitter?username=git');
    const locations = await server.request<unknown[]>(
      'GET',
      `${V3}/thirdparty/location?alias=${r('#_qq_x:test.local')}`,
      auth,
    );
    assert.equal(locations.body.length, 1);
    expectError(
      await server.request('GET', `${V3}/thirdparty/protocol/irc`, auth),
      404,
      'M_NOT_FOUND',
    );
    expectError(await server.request('GET', `${V3}/thirdparty/user`, auth), 400, 'M_MISSING_PARAM');
    expectError(await server.request('GET', `${V3}/thirdparty/protocols`), 401, 'M_MISSING_TOKEN');
  });

  it('network room directories: PUT /directory/list/appservice, /publicRooms by network', async () => {
    const make = async (token: string) =>
      (
        await server.request<{ room_id: string }>('POST', `${V3}/createRoom`, {
          token,
          body: { preset: 'public_chat' },
        })
      ).body.room_id;
    const bridged = await make(AS_TOKEN);
    const local = await make(human.accessToken);
    const publishLocal = await server.request('PUT', `${V3}/directory/list/room/${r(local)}`, {
      token: human.accessToken,
      body: { visibility: 'public' },
    });
    assert.equal(publishLocal.status, 200);
    const put = (room: string, token: string, visibility: string, network = 'gitter') =>
      server.request('PUT', `${V3}/directory/list/appservice/${r(network)}/${r(room)}`, {
        token,
        body: { visibility },
      });
    assert.equal((await put(bridged, AS_TOKEN, 'public')).status, 200);
    const list = async (body: Record<string, unknown>) => {
      const answer = await server.request<{ chunk: { room_id: string }[] }>(
        'POST',
        `${V3}/publicRooms`,
        { token: human.accessToken, body },
      );
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      return answer.body.chunk.map((room) => room.room_id);
    };
    const own = await list({});
    assert.ok(own.includes(local));
    assert.ok(!own.includes(bridged), 'a network room is not in the server’s own directory');
    assert.deepEqual(await list({ third_party_instance_id: 'query|gitter' }), [bridged]);
    assert.deepEqual(await list({ third_party_instance_id: 'query|other' }), []);
    const all = await list({ include_all_networks: true });
    assert.ok(all.includes(bridged) && all.includes(local));
    expectError(
      await server.request('POST', `${V3}/publicRooms`, {
        token: human.accessToken,
        body: { include_all_networks: true, third_party_instance_id: 'query|gitter' },
      }),
      400,
      'M_INVALID_PARAM',
    );
    expectError(
      await server.request('POST', `${V3}/publicRooms`, {
        token: human.accessToken,
        body: { third_party_instance_id: 'gitter' },
      }),
      400,
      'M_INVALID_PARAM',
    );
    // Only services publish; unknown rooms and bad bodies are refused.
    expectError(await put(bridged, human.accessToken, 'public'), 403, 'M_FORBIDDEN');
    expectError(await put('!unknown:test.local', AS_TOKEN, 'public'), 404, 'M_NOT_FOUND');
    expectError(await put(bridged, AS_TOKEN, 'hidden'), 400, 'M_BAD_JSON');
    expectError(await put(bridged, HS_TOKEN, 'public'), 401, 'M_UNKNOWN_TOKEN');
    // Private takes it out again.
    assert.equal((await put(bridged, AS_TOKEN, 'private')).status, 200);
    assert.deepEqual(await list({ third_party_instance_id: 'query|gitter' }), []);
  });
});
