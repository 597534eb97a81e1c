import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { registerUser } from '../helpers/client.js';
import { expectError } from '../helpers/assertions.js';
import { writeRegistrations } from '../helpers/appservice.js';

const V3 = '/_matrix/client/v3';
const r = encodeURIComponent;
const AS_TOKEN = 'as_token_bridge_abcdef';
const HS_TOKEN = 'hs_token_bridge_abcdef';
const LIMITED_TOKEN = 'as_token_limited_abcdef';

forEachDatabase('application services acting on the client API', (dialect) => {
  let server: TestServer;
  before(async () => {
    const files = writeRegistrations([
      {
        id: 'bridge',
        url: null,
        as_token: AS_TOKEN,
        hs_token: HS_TOKEN,
        sender_localpart: 'bridgebot',
        namespaces: {
          users: [{ exclusive: true, regex: '@_bridge_.*:test\\.local' }],
          aliases: [{ exclusive: true, regex: '#_bridge_.*:test\\.local' }],
        },
        rate_limited: false,
        'io.element.msc4190': true,
      },
      {
        id: 'limited',
        url: null,
        as_token: LIMITED_TOKEN,
        hs_token: 'hs_token_limited_abcdef',
        sender_localpart: 'limitedbot',
        namespaces: { users: [{ exclusive: false, regex: '@_shared_.*:test\\.local' }] },
      },
    ]);
    server = await startTestServer(dialect, {
      COMMONS_APP_SERVICES_CONFIG_FILES: files,
      COMMONS_RATE_LIMITS_ENABLED: 'true',
      COMMONS_RATE_LIMITS_CLASSES_MESSAGE_PER_SECOND: '0.01',
      COMMONS_RATE_LIMITS_CLASSES_MESSAGE_BURST: '3',
      COMMONS_RATE_LIMITS_CLASSES_REGISTRATION_PER_SECOND: '100',
      COMMONS_RATE_LIMITS_CLASSES_REGISTRATION_BURST: '100',
    });
  });
  after(async () => server.close());

  const asRegister = (username: string, token: string | null = AS_TOKEN, extra = {}) =>
    server.request<{ user_id: string; access_token?: string; device_id?: string }>(
      'POST',
      `${V3}/register`,
      {
        token: token ?? undefined,
        body: { type: 'm.login.application_service', username, ...extra },
      },
    );

  it('the as_token acts as the sender, which exists from the start', async () => {
    const whoami = await server.request('GET', `${V3}/account/whoami`, { token: AS_TOKEN });
    assert.equal(whoami.status, 200);
    assert.deepEqual(whoami.body, { user_id: '@bridgebot:test.local', is_guest: false });
  });

  it('the hs_token never authenticates a client call', async () => {
    for (const path of [`${V3}/account/whoami`, `${V3}/joined_rooms`]) {
      expectError(await server.request('GET', path, { token: HS_TOKEN }), 401, 'M_UNKNOWN_TOKEN');
    }
    expectError(await asRegister('_bridge_hs', HS_TOKEN), 401, 'M_UNKNOWN_TOKEN');
  });

  it('registers users of its namespace with m.login.application_service', async () => {
    const made = await asRegister('_bridge_alice');
    assert.equal(made.status, 200, JSON.stringify(made.body));
    assert.equal(made.body.user_id, '@_bridge_alice:test.local');
    assert.equal(typeof made.body.access_token, 'string');
    const inhibited = await asRegister('_bridge_bob', AS_TOKEN, { inhibit_login: true });
    assert.equal(inhibited.status, 200);
    assert.equal(inhibited.body.access_token, undefined);
    expectError(await asRegister('_bridge_alice'), 400, 'M_USER_IN_USE');
  });

  it('refuses registrations outside the namespace, bad names and missing tokens', async () => {
    // Outside its namespaces (the spec's M_EXCLUSIVE), in another service's exclusive one too.
    expectError(await asRegister('someone_else'), 400, 'M_EXCLUSIVE');
    expectError(await asRegister('_bridge_x', LIMITED_TOKEN), 400, 'M_EXCLUSIVE');
    expectError(await asRegister('_bridge_BAD NAME'), 400, 'M_INVALID_USERNAME');
    expectError(await asRegister('_bridge_nokey', null), 401, 'M_MISSING_TOKEN');
    expectError(await asRegister('_bridge_badkey', 'not_a_token'), 401, 'M_UNKNOWN_TOKEN');
    expectError(
      await server.request('POST', `${V3}/register`, {
        token: AS_TOKEN,
        body: { type: 'm.login.application_service' },
      }),
      400,
      'M_MISSING_PARAM',
    );
  });

  it('ordinary users cannot take names of an exclusive namespace (M_EXCLUSIVE)', async () => {
    const first = await server.request('POST', `${V3}/register`, {
      body: { username: '_bridge_squatter', password: 'pw' },
    });
    expectError(first, 400, 'M_EXCLUSIVE');
    expectError(
      await server.request('GET', `${V3}/register/available?username=_bridge_squatter`),
      400,
      'M_EXCLUSIVE',
    );
    // A non-exclusive namespace leaves names free for anyone.
    const shared = await registerUser(server, '_shared_person');
    assert.equal(shared.userId, '@_shared_person:test.local');
  });

  it('masquerades as user_id within its namespaces only', async () => {
    await asRegister('_bridge_carol', AS_TOKEN, { inhibit_login: true });
    const whoami = await server.request(
      'GET',
      `${V3}/account/whoami?user_id=${r('@_bridge_carol:test.local')}`,
      { token: AS_TOKEN },
    );
    assert.equal(whoami.status, 200);
    assert.deepEqual(whoami.body, { user_id: '@_bridge_carol:test.local', is_guest: false });
    const human = await registerUser(server);
    for (const userId of [human.userId, '@_shared_person:test.local', '@other:elsewhere']) {
      expectError(
        await server.request('GET', `${V3}/account/whoami?user_id=${r(userId)}`, {
          token: AS_TOKEN,
        }),
        403,
        'M_FORBIDDEN',
      );
    }
    // In the namespace but never registered.
    expectError(
      await server.request(
        'GET',
        `${V3}/account/whoami?user_id=${r('@_bridge_ghost:test.local')}`,
        {
          token: AS_TOKEN,
        },
      ),
      403,
      'M_FORBIDDEN',
    );
    expectError(
      await server.request('GET', `${V3}/account/whoami?user_id=not-a-user`, { token: AS_TOKEN }),
      400,
      'M_INVALID_PARAM',
    );
    // A user's own token does not masquerade: user_id means nothing to it.
    const own = await server.request(
      'GET',
      `${V3}/account/whoami?user_id=${r('@_bridge_carol:test.local')}`,
      { token: human.accessToken },
    );
    assert.equal((own.body as { user_id: string }).user_id, human.userId);
  });

  it('creates devices for its users (MSC4190) and acts as them (device_id)', async () => {
    const user = '@_bridge_dave:test.local';
    await asRegister('_bridge_dave', AS_TOKEN, { inhibit_login: true });
    expectError(
      await server.request('GET', `${V3}/account/whoami?user_id=${r(user)}&device_id=PHONE`, {
        token: AS_TOKEN,
      }),
      400,
      'M_UNKNOWN_DEVICE',
    );
    const put = await server.request('PUT', `${V3}/devices/PHONE?user_id=${r(user)}`, {
      token: AS_TOKEN,
      body: { display_name: 'Bridged phone' },
    });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    for (const param of ['device_id', 'org.matrix.msc3202.device_id']) {
      const whoami = await server.request(
        'GET',
        `${V3}/account/whoami?user_id=${r(user)}&${param}=PHONE`,
        { token: AS_TOKEN },
      );
      assert.deepEqual(whoami.body, { user_id: user, device_id: 'PHONE', is_guest: false });
    }
    const devices = await server.request<{
      devices: { device_id: string; display_name: string }[];
    }>('GET', `${V3}/devices?user_id=${r(user)}`, { token: AS_TOKEN });
    assert.deepEqual(
      devices.body.devices.map((d) => [d.device_id, d.display_name]),
      [['PHONE', 'Bridged phone']],
    );
    // Deleting without interactive auth (MSC4190).
    const deleted = await server.request('DELETE', `${V3}/devices/PHONE?user_id=${r(user)}`, {
      token: AS_TOKEN,
    });
    assert.equal(deleted.status, 200, JSON.stringify(deleted.body));
    expectError(
      await server.request('GET', `${V3}/account/whoami?user_id=${r(user)}&device_id=PHONE`, {
        token: AS_TOKEN,
      }),
      400,
      'M_UNKNOWN_DEVICE',
    );
  });

  it('logs in as its users with m.login.application_service', async () => {
    const flows = await server.request<{ flows: { type: string }[] }>('GET', `${V3}/login`);
    assert.ok(flows.body.flows.some((f) => f.type === 'm.login.application_service'));
    const login = (user: string, token: string | null = AS_TOKEN) =>
      server.request<{ user_id: string; access_token: string }>('POST', `${V3}/login`, {
        token: token ?? undefined,
        body: { type: 'm.login.application_service', identifier: { type: 'm.id.user', user } },
      });
    const ok = await login('_bridge_alice');
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(ok.body.user_id, '@_bridge_alice:test.local');
    const whoami = await server.request('GET', `${V3}/account/whoami`, {
      token: ok.body.access_token,
    });
    assert.equal((whoami.body as { user_id: string }).user_id, '@_bridge_alice:test.local');
    expectError(await login('someone'), 400, 'M_EXCLUSIVE');
    expectError(await login('_bridge_nobody'), 403, 'M_FORBIDDEN');
    expectError(await login('_bridge_alice', null), 401, 'M_MISSING_TOKEN');
    expectError(await login('_bridge_alice', HS_TOKEN), 401, 'M_UNKNOWN_TOKEN');
  });

  it('aliases: the service names rooms in its namespace; others get M_EXCLUSIVE', async () => {
    const human = await registerUser(server);
    const room = await server.request<{ room_id: string }>('POST', `${V3}/createRoom`, {
      token: human.accessToken,
      body: {},
    });
    const put = (alias: string, token: string) =>
      server.request('PUT', `${V3}/directory/room/${r(alias)}`, {
        token,
        body: { room_id: room.body.room_id },
      });
    expectError(await put('#_bridge_lobby:test.local', human.accessToken), 400, 'M_EXCLUSIVE');
    expectError(await put('#elsewhere:test.local', AS_TOKEN), 400, 'M_EXCLUSIVE');
    // The service is not in the room, and needs not be.
    assert.equal((await put('#_bridge_lobby:test.local', AS_TOKEN)).status, 200);
    assert.equal((await put('#ordinary:test.local', human.accessToken)).status, 200);
  });

  it('massages timestamps (ts) on send and state for services only', async () => {
    const room = await server.request<{ room_id: string }>('POST', `${V3}/createRoom`, {
      token: AS_TOKEN,
      body: {},
    });
    assert.equal(room.status, 200);
    const roomId = room.body.room_id;
    const sent = await server.request<{ event_id: string }>(
      'PUT',
      `${V3}/rooms/${r(roomId)}/send/m.room.message/t1?ts=1234567890`,
      { token: AS_TOKEN, body: { msgtype: 'm.text', body: 'old news' } },
    );
    assert.equal(sent.status, 200);
    const state = await server.request<{ event_id: string }>(
      'PUT',
      `${V3}/rooms/${r(roomId)}/state/m.room.topic?ts=1234567891`,
      { token: AS_TOKEN, body: { topic: 'bridged' } },
    );
    assert.equal(state.status, 200);
    for (const [eventId, ts] of [
      [sent.body.event_id, 1234567890],
      [state.body.event_id, 1234567891],
    ] as const) {
      const event = await server.request<{ origin_server_ts: number }>(
        'GET',
        `${V3}/rooms/${r(roomId)}/event/${r(eventId)}`,
        { token: AS_TOKEN },
      );
      assert.equal(event.body.origin_server_ts, ts);
    }
    // A member event through its own route takes `ts` too (a per-room name, here).
    const member = await server.request<{ event_id: string }>(
      'PUT',
      `${V3}/rooms/${r(roomId)}/state/m.room.member/${r('@bridgebot:test.local')}?ts=1234567892`,
      { token: AS_TOKEN, body: { membership: 'join', displayname: 'bridge bot' } },
    );
    assert.equal(member.status, 200, JSON.stringify(member.body));
    const memberEvent = await server.request<{ origin_server_ts: number }>(
      'GET',
      `${V3}/rooms/${r(roomId)}/event/${r(member.body.event_id)}`,
      { token: AS_TOKEN },
    );
    assert.equal(memberEvent.body.origin_server_ts, 1234567892);
    // `format=event` (v1.16; mautrix reads state so): the whole event, with its massaged ts.
    const whole = await server.request<{ event_id: string; origin_server_ts: number }>(
      'GET',
      `${V3}/rooms/${r(roomId)}/state/m.room.topic?format=event`,
      { token: AS_TOKEN },
    );
    assert.equal(whole.status, 200);
    assert.equal(whole.body.event_id, state.body.event_id);
    assert.equal(whole.body.origin_server_ts, 1234567891);
    const content = await server.request(
      'GET',
      `${V3}/rooms/${r(roomId)}/state/m.room.topic/?format=content`,
      {
        token: AS_TOKEN,
      },
    );
    assert.deepEqual(content.body, { topic: 'bridged' });
    expectError(
      await server.request('GET', `${V3}/rooms/${r(roomId)}/state/m.room.topic?format=pdu`, {
        token: AS_TOKEN,
      }),
      400,
      'M_INVALID_PARAM',
    );
    expectError(
      await server.request('PUT', `${V3}/rooms/${r(roomId)}/send/m.room.message/t2?ts=soon`, {
        token: AS_TOKEN,
        body: {},
      }),
      400,
      'M_INVALID_PARAM',
    );
    // A user's ts is ignored.
    const human = await registerUser(server);
    const own = await server.request<{ room_id: string }>('POST', `${V3}/createRoom`, {
      token: human.accessToken,
      body: {},
    });
    const mine = await server.request<{ event_id: string }>(
      'PUT',
      `${V3}/rooms/${r(own.body.room_id)}/send/m.room.message/t1?ts=5`,
      { token: human.accessToken, body: { msgtype: 'm.text', body: 'now' } },
    );
    const event = await server.request<{ origin_server_ts: number }>(
      'GET',
      `${V3}/rooms/${r(own.body.room_id)}/event/${r(mine.body.event_id)}`,
      { token: human.accessToken },
    );
    assert.ok(event.body.origin_server_ts > 1_000_000_000_000);
  });

  it('is not rate limited with rate_limited: false; a limited service is', async () => {
    const rooms: Record<string, string> = {};
    for (const token of [AS_TOKEN, LIMITED_TOKEN]) {
      const room = await server.request<{ room_id: string }>('POST', `${V3}/createRoom`, {
        token,
        body: {},
      });
      rooms[token] = room.body.room_id;
    }
    for (let i = 0; i < 10; i++) {
      const sent = await server.request(
        'PUT',
        `${V3}/rooms/${r(rooms[AS_TOKEN] as string)}/send/m.room.message/rl${i}`,
        { token: AS_TOKEN, body: { msgtype: 'm.text', body: `${i}` } },
      );
      assert.equal(sent.status, 200);
    }
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) {
      const sent = await server.request(
        'PUT',
        `${V3}/rooms/${r(rooms[LIMITED_TOKEN] as string)}/send/m.room.message/rl${i}`,
        { token: LIMITED_TOKEN, body: { msgtype: 'm.text', body: `${i}` } },
      );
      statuses.push(sent.status);
    }
    assert.ok(statuses.includes(429), statuses.join(','));
  });

  it("lists its own and its users' rooms and members, again and again (kept bodies)", async () => {
    assert.equal((await asRegister('_bridge_lister')).status, 200);
    const lister = `@_bridge_lister:test.local`;
    const created = await server.request<{ room_id: string }>('POST', `${V3}/createRoom`, {
      token: AS_TOKEN,
      body: { preset: 'public_chat' },
    });
    assert.equal(created.status, 200);
    const room = created.body.room_id;
    const joined = await server.request('POST', `${V3}/join/${r(room)}?user_id=${r(lister)}`, {
      token: AS_TOKEN,
      body: {},
    });
    assert.equal(joined.status, 200);
    for (let i = 0; i < 3; i++) {
      const members = await server.request<{ joined: Record<string, unknown> }>(
        'GET',
        `${V3}/rooms/${r(room)}/joined_members`,
        { token: AS_TOKEN },
      );
      assert.equal(members.status, 200);
      assert.deepEqual(
        Object.keys(members.body.joined).sort(),
        ['@bridgebot:test.local', lister].sort(),
      );
      const asUser = await server.request<{ joined_rooms: string[] }>(
        'GET',
        `${V3}/joined_rooms?user_id=${r(lister)}`,
        { token: AS_TOKEN },
      );
      assert.equal(asUser.status, 200);
      assert.deepEqual(asUser.body.joined_rooms, [room]);
      const asBot = await server.request<{ joined_rooms: string[] }>('GET', `${V3}/joined_rooms`, {
        token: AS_TOKEN,
      });
      assert.ok(asBot.body.joined_rooms.includes(room));
    }
  });
});
