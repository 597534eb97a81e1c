/**
 * Moderation through the admin API (docs/admin.md), on both databases: shadow-banning,
 * rate-limit overrides honoured by the rate limiter, server notices (their room, its tag,
 * the user unable to write in it, 400 when not configured), and a room's events read by an
 * admin who is not in it. Every endpoint refuses non-admins.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { expectError, uniqueName } from '../helpers/assertions.js';
import { ADMIN_SECRET, registerAdmin } from '../helpers/admin.js';

const A1 = '/_synapse/admin/v1';
const C = '/_matrix/client/v3';
const e = encodeURIComponent;

interface Page {
  chunk: Array<{ event_id: string; type: string; sender: string; content: { body?: string } }>;
  start: string;
  end?: string;
}

forEachDatabase('admin moderation', (dialect) => {
  let server: TestServer;
  let admin: TestUser;
  let alice: TestUser;
  let bob: TestUser;
  let roomId: string;
  before(async () => {
    server = await startTestServer(dialect, {
      COMMONS_REGISTRATION_SHARED_SECRET: ADMIN_SECRET,
      COMMONS_SERVER_NOTICES_SYSTEM_MXID_LOCALPART: 'notices',
      COMMONS_SERVER_NOTICES_SYSTEM_MXID_DISPLAY_NAME: 'Server',
      COMMONS_SERVER_NOTICES_ROOM_NAME: 'From the server',
    });
    admin = await registerAdmin(server);
    alice = await registerUser(server, uniqueName('alice'));
    bob = await registerUser(server, uniqueName('bob'));
    const created = await as(alice).send<{ room_id: string }>('POST', `${C}/createRoom`, {
      preset: 'public_chat',
    });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    roomId = created.body.room_id;
    assert.equal((await as(bob).send('POST', `${C}/join/${e(roomId)}`, {})).status, 200);
  });
  after(async () => server.close());

  const as = (user: TestUser) => ({
    get: <T = Record<string, unknown>>(path: string) =>
      server.request<T>('GET', path, { token: user.accessToken }),
    send: <T = Record<string, unknown>>(method: string, path: string, body?: unknown) =>
      server.request<T>(method, path, { token: user.accessToken, body }),
  });
  const say = (user: TestUser, room: string, body: string) =>
    as(user).send<{ event_id: string }>(
      'PUT',
      `${C}/rooms/${e(room)}/send/m.room.message/${uniqueName('t')}`,
      { msgtype: 'm.text', body },
    );
  const bodiesSeenBy = async (user: TestUser, room: string) =>
    (await as(user).get<Page>(`${C}/rooms/${e(room)}/messages?dir=b&limit=50`)).body.chunk
      .filter((ev) => ev.type === 'm.room.message')
      .map((ev) => ev.content.body);

  describe('refusals', () => {
    const endpoints: Array<[string, () => string, unknown?]> = [
      ['POST', () => `${A1}/users/${e(alice.userId)}/shadow_ban`],
      ['DELETE', () => `${A1}/users/${e(alice.userId)}/shadow_ban`],
      ['GET', () => `${A1}/users/${e(alice.userId)}/override_ratelimit`],
      ['POST', () => `${A1}/users/${e(alice.userId)}/override_ratelimit`, {}],
      ['DELETE', () => `${A1}/users/${e(alice.userId)}/override_ratelimit`],
      ['POST', () => `${A1}/send_server_notice`, { user_id: '@someone:test.local', content: {} }],
      ['PUT', () => `${A1}/send_server_notice/t1`, { user_id: '@someone:test.local', content: {} }],
      ['GET', () => `${A1}/rooms/${e(roomId)}/messages`],
    ];
    for (const [method, path, body] of endpoints) {
      it(`${method} ${path.toString().replace(/^\(\)\s*=>\s*/, '')}: 403 for a non-admin, 401 without a token`, async () => {
        expectError(await as(bob).send(method, path(), body), 403, 'M_FORBIDDEN');
        expectError(await server.request(method, path(), { body }), 401, 'M_MISSING_TOKEN');
      });
    }
  });

  it('shadow-banning: events answered as sent but stored nowhere, invites dropped, until lifted', async () => {
    const carol = await registerUser(server, uniqueName('carol'));
    assert.equal((await as(carol).send('POST', `${C}/join/${e(roomId)}`, {})).status, 200);
    const ban = await as(admin).send('POST', `${A1}/users/${e(carol.userId)}/shadow_ban`);
    assert.equal(ban.status, 200, JSON.stringify(ban.body));
    assert.deepEqual(ban.body, {});
    const listed = await as(admin).get<{ shadow_banned: boolean }>(
      `/_synapse/admin/v2/users/${e(carol.userId)}`,
    );
    assert.equal(listed.body.shadow_banned, true);

    const sent = await say(carol, roomId, 'spam');
    assert.equal(sent.status, 200);
    assert.match(sent.body.event_id, /^\$[A-Za-z0-9_-]{43}$/);
    assert.ok(!(await bodiesSeenBy(bob, roomId)).includes('spam'), 'bob never sees it');
    expectError(
      await as(bob).get(`${C}/rooms/${e(roomId)}/event/${e(sent.body.event_id)}`),
      404,
      'M_NOT_FOUND',
    );
    // State, redactions, typing: answered, nothing happens.
    const topic = await as(carol).send<{ event_id: string }>(
      'PUT',
      `${C}/rooms/${e(roomId)}/state/m.room.topic`,
      { topic: 'spam topic' },
    );
    assert.equal(topic.status, 200);
    const state = await as(bob).get<{ topic?: string }>(
      `${C}/rooms/${e(roomId)}/state/m.room.topic`,
    );
    assert.notEqual(state.body.topic, 'spam topic');
    const typing = await as(carol).send(
      'PUT',
      `${C}/rooms/${e(roomId)}/typing/${e(carol.userId)}`,
      {
        typing: true,
        timeout: 10_000,
      },
    );
    assert.equal(typing.status, 200);

    // An invite is answered and not made; a room created with invites has none.
    const dave = await registerUser(server, uniqueName('dave'));
    const own = await as(carol).send<{ room_id: string }>('POST', `${C}/createRoom`, {
      invite: [dave.userId],
    });
    assert.equal(own.status, 200);
    const invite = await as(carol).send('POST', `${C}/rooms/${e(own.body.room_id)}/invite`, {
      user_id: bob.userId,
    });
    assert.equal(invite.status, 200);
    const members = await as(admin).get<{ members: string[] }>(
      `${A1}/rooms/${e(own.body.room_id)}/members`,
    );
    assert.deepEqual(members.body.members, [carol.userId]);
    const daveSync = await as(dave).get<{ rooms: { invite?: Record<string, unknown> } }>(
      `${C}/sync?timeout=0`,
    );
    assert.equal(daveSync.body.rooms.invite?.[own.body.room_id], undefined);

    // Lifted: carol's messages arrive again.
    const lift = await as(admin).send('DELETE', `${A1}/users/${e(carol.userId)}/shadow_ban`);
    assert.equal(lift.status, 200);
    assert.equal((await say(carol, roomId, 'hello again')).status, 200);
    assert.ok((await bodiesSeenBy(bob, roomId)).includes('hello again'));
  });

  it('shadow_ban and override_ratelimit: 400 for another server, 404 for an unknown user', async () => {
    for (const path of ['shadow_ban', 'override_ratelimit']) {
      expectError(
        await as(admin).send('POST', `${A1}/users/${e('@x:elsewhere.example')}/${path}`, {}),
        400,
        'M_INVALID_PARAM',
      );
      expectError(
        await as(admin).send('POST', `${A1}/users/${e('@nobody-here:test.local')}/${path}`, {}),
        404,
        'M_NOT_FOUND',
      );
    }
    expectError(
      await as(admin).send('POST', `${A1}/users/${e(alice.userId)}/override_ratelimit`, {
        messages_per_second: -1,
      }),
      400,
      'M_BAD_JSON',
    );
  });

  it('server notices: a room of their own, tagged, reused, in which the user cannot write', async () => {
    const frank = await registerUser(server, uniqueName('frank'));
    const notice = (body: unknown, txn?: string) =>
      as(admin).send<{ event_id: string }>(
        txn === undefined ? 'POST' : 'PUT',
        txn === undefined ? `${A1}/send_server_notice` : `${A1}/send_server_notice/${txn}`,
        body,
      );
    const first = await notice({
      user_id: frank.userId,
      content: { msgtype: 'm.text', body: 'Maintenance tonight' },
    });
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.match(first.body.event_id, /^\$/);

    const sync = await as(frank).get<{
      rooms: {
        invite?: Record<
          string,
          { invite_state: { events: Array<{ type: string; content: Record<string, unknown> }> } }
        >;
      };
    }>(`${C}/sync?timeout=0`);
    const invites = Object.entries(sync.body.rooms.invite ?? {});
    assert.equal(invites.length, 1);
    const [noticeRoom, invited] = invites[0] as [string, (typeof invites)[0][1]];
    const name = invited.invite_state.events.find((ev) => ev.type === 'm.room.name');
    assert.equal(name?.content.name, 'From the server');
    assert.equal((await as(frank).send('POST', `${C}/join/${e(noticeRoom)}`, {})).status, 200);

    const tags = await as(frank).get<{ tags: Record<string, unknown> }>(
      `${C}/user/${e(frank.userId)}/rooms/${e(noticeRoom)}/account_data/m.tag`,
    );
    assert.deepEqual(tags.body, { tags: { 'm.server_notice': {} } });

    // Reused; the PUT form is idempotent by transaction ID.
    const second = await notice(
      { user_id: frank.userId, content: { msgtype: 'm.text', body: 'Done' } },
      'txn-1',
    );
    const again = await notice(
      { user_id: frank.userId, content: { msgtype: 'm.text', body: 'Done' } },
      'txn-1',
    );
    assert.equal(second.status, 200);
    assert.equal(again.body.event_id, second.body.event_id);
    const page = await as(frank).get<Page>(`${C}/rooms/${e(noticeRoom)}/messages?dir=b&limit=20`);
    const messages = page.body.chunk.filter((ev) => ev.type === 'm.room.message');
    assert.deepEqual(
      messages.map((ev) => ev.content.body),
      ['Done', 'Maintenance tonight'],
    );
    assert.equal(messages[0]?.sender, '@notices:test.local');
    const profile = await as(frank).get<{ displayname: string }>(
      `${C}/profile/${e('@notices:test.local')}`,
    );
    assert.equal(profile.body.displayname, 'Server');

    // The user cannot write in it.
    expectError(await say(frank, noticeRoom, 'reply'), 403, 'M_FORBIDDEN');

    // Left: the next notice invites them back into the same room.
    assert.equal(
      (await as(frank).send('POST', `${C}/rooms/${e(noticeRoom)}/leave`, {})).status,
      200,
    );
    assert.equal(
      (await notice({ user_id: frank.userId, content: { msgtype: 'm.text', body: 'Back' } }))
        .status,
      200,
    );
    const resync = await as(frank).get<{ rooms: { invite?: Record<string, unknown> } }>(
      `${C}/sync?timeout=0`,
    );
    assert.deepEqual(Object.keys(resync.body.rooms.invite ?? {}), [noticeRoom]);
  });

  it('server notices: 400 for another server, 404 for an unknown user, 400 for a bad body', async () => {
    const notice = (body: unknown) => as(admin).send('POST', `${A1}/send_server_notice`, body);
    expectError(await notice({ user_id: '@x:elsewhere.example', content: {} }), 400, 'M_UNKNOWN');
    expectError(
      await notice({ user_id: '@nobody-here:test.local', content: {} }),
      404,
      'M_NOT_FOUND',
    );
    expectError(await notice({ user_id: 'not an id', content: {} }), 400, 'M_INVALID_PARAM');
    expectError(await notice({ user_id: alice.userId }), 400, 'M_BAD_JSON');
  });

  it('GET /v1/rooms/{roomId}/messages: an admin who is not in the room pages its events', async () => {
    for (let i = 0; i < 5; i++) assert.equal((await say(alice, roomId, `page ${i}`)).status, 200);
    const first = await as(admin).get<Page>(`${A1}/rooms/${e(roomId)}/messages?limit=3`);
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.deepEqual(
      first.body.chunk.map((ev) => ev.content.body),
      ['page 4', 'page 3', 'page 2'],
    );
    assert.ok(first.body.end);
    const next = await as(admin).get<Page>(
      `${A1}/rooms/${e(roomId)}/messages?limit=2&from=${e(first.body.end ?? '')}`,
    );
    assert.deepEqual(
      next.body.chunk.map((ev) => ev.content.body),
      ['page 1', 'page 0'],
    );
    const forward = await as(admin).get<Page>(
      `${A1}/rooms/${e(roomId)}/messages?dir=f&limit=1&filter=${e(JSON.stringify({ types: ['m.room.create'] }))}`,
    );
    assert.deepEqual(
      forward.body.chunk.map((ev) => ev.type),
      ['m.room.create'],
    );

    expectError(
      await as(admin).get(`${A1}/rooms/${e('!nope:test.local')}/messages`),
      404,
      'M_NOT_FOUND',
    );
    expectError(
      await as(admin).get(`${A1}/rooms/${e(roomId)}/messages?from=garbage`),
      400,
      'M_INVALID_PARAM',
    );
    const badDir = await as(admin).get(`${A1}/rooms/${e(roomId)}/messages?dir=x`);
    assert.equal(badDir.status, 400);
    const badFilter = await as(admin).get(`${A1}/rooms/${e(roomId)}/messages?filter=%7B`);
    assert.equal(badFilter.status, 400);
  });
});

forEachDatabase('admin rate-limit overrides', (dialect) => {
  let server: TestServer;
  let admin: TestUser;
  before(async () => {
    server = await startTestServer(dialect, {
      COMMONS_REGISTRATION_SHARED_SECRET: ADMIN_SECRET,
      COMMONS_RATE_LIMITS_ENABLED: 'true',
      COMMONS_RATE_LIMITS_CLASSES_MESSAGE_PER_SECOND: '0.01',
      COMMONS_RATE_LIMITS_CLASSES_MESSAGE_BURST: '3',
      COMMONS_RATE_LIMITS_CLASSES_REGISTRATION_BURST: '100',
    });
    admin = await registerAdmin(server);
  });
  after(async () => server.close());
  const as = (user: TestUser) => ({
    get: <T = Record<string, unknown>>(path: string) =>
      server.request<T>('GET', path, { token: user.accessToken }),
    send: <T = Record<string, unknown>>(method: string, path: string, body?: unknown) =>
      server.request<T>(method, path, { token: user.accessToken, body }),
  });
  const say = (user: TestUser, room: string, body: string) =>
    as(user).send<{ event_id: string }>(
      'PUT',
      `${C}/rooms/${e(room)}/send/m.room.message/${uniqueName('t')}`,
      { msgtype: 'm.text', body },
    );

  it('a rate-limit override is honoured: 0/0 lifts the limits, others replace them, DELETE restores', async () => {
    const erin = await registerUser(server, uniqueName('erin'));
    const room = await as(erin).send<{ room_id: string }>('POST', `${C}/createRoom`, {});
    const statuses = async (n: number) => {
      const out: number[] = [];
      for (let i = 0; i < n; i++) out.push((await say(erin, room.body.room_id, `m${i}`)).status);
      return out;
    };
    // The class allows a burst of 3 (a token per 100 s after).
    assert.deepEqual(await statuses(4), [200, 200, 200, 429]);

    const none = await as(admin).get(`${A1}/users/${e(erin.userId)}/override_ratelimit`);
    assert.deepEqual(none.body, {});
    const set = await as(admin).send(
      'POST',
      `${A1}/users/${e(erin.userId)}/override_ratelimit`,
      {},
    );
    assert.equal(set.status, 200);
    assert.deepEqual(set.body, { messages_per_second: 0, burst_count: 0 });
    assert.deepEqual(
      (await as(admin).get(`${A1}/users/${e(erin.userId)}/override_ratelimit`)).body,
      { messages_per_second: 0, burst_count: 0 },
    );
    assert.deepEqual(await statuses(6), [200, 200, 200, 200, 200, 200]);

    await as(admin).send('POST', `${A1}/users/${e(erin.userId)}/override_ratelimit`, {
      messages_per_second: 1,
      burst_count: 100,
    });
    assert.deepEqual(await statuses(5), [200, 200, 200, 200, 200]);

    assert.equal(
      (await as(admin).send('DELETE', `${A1}/users/${e(erin.userId)}/override_ratelimit`)).status,
      200,
    );
    assert.deepEqual(
      (await as(admin).get(`${A1}/users/${e(erin.userId)}/override_ratelimit`)).body,
      {},
    );
    assert.deepEqual(await statuses(1), [429]);
  });
});

forEachDatabase('server notices not configured', (dialect) => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer(dialect, { COMMONS_REGISTRATION_SHARED_SECRET: ADMIN_SECRET });
  });
  after(async () => server.close());

  it('send_server_notice answers 400', async () => {
    const admin = await registerAdmin(server);
    const res = await server.request('POST', `${A1}/send_server_notice`, {
      token: admin.accessToken,
      body: { user_id: admin.userId, content: { msgtype: 'm.text', body: 'x' } },
    });
    expectError(res, 400, 'M_UNKNOWN');
  });
});
