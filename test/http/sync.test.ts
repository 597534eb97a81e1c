import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { assertMatchesSpec } from '../helpers/spec-contract.js';
import { expectError } from '../helpers/assertions.js';

const V3 = '/_matrix/client/v3';

interface SyncEvent {
  type: string;
  sender: string;
  state_key?: string;
  event_id?: string;
  content: Record<string, unknown>;
  unsigned?: Record<string, unknown>;
}
interface JoinedRoom {
  summary: Record<string, unknown>;
  state: { events: SyncEvent[] };
  timeline: { events: SyncEvent[]; limited: boolean; prev_batch: string };
}
interface SyncBody {
  next_batch: string;
  rooms: {
    join: Record<string, JoinedRoom>;
    invite: Record<string, { invite_state: { events: SyncEvent[] } }>;
    leave: Record<string, { timeline: { events: SyncEvent[] } }>;
  };
}

forEachDatabase('/sync', (dialect) => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer(dialect);
  });
  after(async () => server.close());

  async function sync(
    user: TestUser,
    query: Record<string, string> = {},
    checkSpec = true,
  ): Promise<SyncBody> {
    const qs = new URLSearchParams(query).toString();
    const response = await server.request<SyncBody>('GET', `${V3}/sync${qs ? `?${qs}` : ''}`, {
      token: user.accessToken,
    });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    if (checkSpec) assertMatchesSpec('sync.yaml', 'get', '/sync', 200, response.body);
    return response.body;
  }

  async function createRoom(user: TestUser, body: Record<string, unknown> = {}): Promise<string> {
    const response = await server.request<{ room_id: string }>('POST', `${V3}/createRoom`, {
      token: user.accessToken,
      body,
    });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    return response.body.room_id;
  }

  let txn = 0;
  async function send(user: TestUser, roomId: string, body: string): Promise<string> {
    const response = await server.request<{ event_id: string }>(
      'PUT',
      `${V3}/rooms/${encodeURIComponent(roomId)}/send/m.room.message/t${++txn}`,
      { token: user.accessToken, body: { msgtype: 'm.text', body } },
    );
    assert.equal(response.status, 200, JSON.stringify(response.body));
    return response.body.event_id;
  }

  async function act(user: TestUser, roomId: string, action: string, body: object = {}) {
    const response = await server.request(
      'POST',
      `${V3}/rooms/${encodeURIComponent(roomId)}/${action}`,
      { token: user.accessToken, body },
    );
    assert.equal(response.status, 200, JSON.stringify(response.body));
  }

  const bodies = (room: JoinedRoom | undefined) =>
    (room?.timeline.events ?? [])
      .filter((e) => e.type === 'm.room.message')
      .map((e) => e.content.body);

  it('an initial sync has the joined room with its state, timeline and summary', async () => {
    const alice = await registerUser(server);
    const roomId = await createRoom(alice, { name: 'Initial' });
    await send(alice, roomId, 'hello');
    const body = await sync(alice);
    assert.match(body.next_batch, /^s\d+$/);
    const room = body.rooms.join[roomId];
    assert.ok(room, 'the room is in rooms.join');
    assert.deepEqual(bodies(room), ['hello']);
    const types = new Set([...room.state.events, ...room.timeline.events].map((e) => e.type));
    for (const type of ['m.room.create', 'm.room.member', 'm.room.power_levels', 'm.room.name'])
      assert.ok(types.has(type), `${type} is in state or timeline`);
    assert.equal(room.summary['m.joined_member_count'], 1);
    assert.equal(room.summary['m.invited_member_count'], 0);
    assert.equal(
      room.timeline.events.some((e) => 'room_id' in e),
      false,
      'events in /sync leave out room_id',
    );
  });

  it('an incremental sync has only what happened since, with the sender device transaction ID', async () => {
    const alice = await registerUser(server);
    const roomId = await createRoom(alice);
    const first = await sync(alice);
    await send(alice, roomId, 'after');
    const second = await sync(alice, { since: first.next_batch });
    const room = second.rooms.join[roomId];
    assert.deepEqual(bodies(room), ['after']);
    assert.equal(room?.state.events.length, 0);
    const message = room?.timeline.events.find((e) => e.type === 'm.room.message');
    assert.equal(message?.unsigned?.transaction_id, `t${txn}`);
    const third = await sync(alice, { since: second.next_batch });
    assert.equal(third.rooms.join[roomId], undefined, 'nothing new: the room is left out');
  });

  it('a long-poll is woken by the event that concerns it', async () => {
    const alice = await registerUser(server);
    const bob = await registerUser(server);
    const roomId = await createRoom(alice, { invite: [bob.userId] });
    await act(bob, roomId, 'join');
    const start = await sync(bob);
    const waiting = sync(bob, { since: start.next_batch, timeout: '60000' });
    // Until the message commits the request must still be waiting.
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(server.running.app.server.listening, true);
    await send(alice, roomId, 'wake up');
    const woken = await waiting;
    assert.deepEqual(bodies(woken.rooms.join[roomId]), ['wake up']);
  });

  it('invites, joins and leaves move the room between sections', async () => {
    const alice = await registerUser(server);
    const bob = await registerUser(server);
    const roomId = await createRoom(alice, { name: 'Moves' });
    const start = await sync(bob);
    await act(alice, roomId, 'invite', { user_id: bob.userId });
    const invited = await sync(bob, { since: start.next_batch });
    const invite = invited.rooms.invite[roomId];
    assert.ok(invite, 'the room is in rooms.invite');
    const stripped = invite.invite_state.events;
    assert.ok(stripped.some((e) => e.type === 'm.room.name' && e.content.name === 'Moves'));
    assert.ok(
      stripped.some(
        (e) =>
          e.type === 'm.room.member' &&
          e.state_key === bob.userId &&
          e.content.membership === 'invite',
      ),
    );
    assert.ok(
      stripped.some(
        (e) =>
          e.type === 'm.room.member' &&
          e.state_key === alice.userId &&
          e.content.membership === 'join',
      ),
      "the inviter's member event is in the stripped state",
    );
    await act(bob, roomId, 'join');
    const joined = await sync(bob, { since: invited.next_batch });
    assert.ok(joined.rooms.join[roomId], 'the room is in rooms.join once joined');
    assert.equal(joined.rooms.invite[roomId], undefined);
    await act(alice, roomId, 'kick', { user_id: bob.userId, reason: 'bye' });
    const left = await sync(bob, { since: joined.next_batch });
    const leave = left.rooms.leave[roomId];
    assert.ok(leave, 'the room is in rooms.leave after a kick');
    const last = leave.timeline.events.at(-1);
    assert.equal(last?.type, 'm.room.member');
    assert.equal(last?.content.membership, 'leave');
    assert.equal(left.rooms.join[roomId], undefined);
  });

  it('a limited timeline has a prev_batch for /messages, and next_batch works as `at` for /members', async () => {
    const alice = await registerUser(server);
    const bob = await registerUser(server);
    const roomId = await createRoom(alice, { invite: [bob.userId] });
    await act(bob, roomId, 'join');
    const start = await sync(alice);
    for (let i = 0; i < 5; i++) await send(alice, roomId, `m${i}`);
    const filter = JSON.stringify({ room: { timeline: { limit: 2 } } });
    const body = await sync(alice, { since: start.next_batch, filter });
    const room = body.rooms.join[roomId];
    assert.equal(room?.timeline.limited, true);
    assert.deepEqual(bodies(room), ['m3', 'm4']);
    const older = await server.request<{ chunk: SyncEvent[] }>(
      'GET',
      `${V3}/rooms/${encodeURIComponent(roomId)}/messages?dir=b&limit=3&from=${room?.timeline.prev_batch}`,
      { token: alice.accessToken },
    );
    assert.equal(older.status, 200);
    assert.deepEqual(
      older.body.chunk.map((e) => e.content.body),
      ['m2', 'm1', 'm0'],
    );
    await act(bob, roomId, 'leave');
    const members = await server.request<{ chunk: SyncEvent[] }>(
      'GET',
      `${V3}/rooms/${encodeURIComponent(roomId)}/members?at=${body.next_batch}&membership=join`,
      { token: alice.accessToken },
    );
    assert.equal(members.status, 200);
    assert.deepEqual(
      members.body.chunk.map((e) => e.state_key).sort(),
      [alice.userId, bob.userId].sort(),
    );
  });

  it('lazy loading sends members only for senders, once, unless redundant members are asked for', async () => {
    const alice = await registerUser(server);
    const bob = await registerUser(server);
    const carol = await registerUser(server);
    const roomId = await createRoom(alice, { invite: [bob.userId, carol.userId] });
    await act(bob, roomId, 'join');
    await act(carol, roomId, 'join');
    await send(bob, roomId, 'from bob');
    const lazy = JSON.stringify({
      room: { state: { lazy_load_members: true }, timeline: { limit: 1 } },
    });
    const first = await sync(alice, { filter: lazy });
    const members = (room: JoinedRoom | undefined) =>
      [...(room?.state.events ?? [])]
        .filter((e) => e.type === 'm.room.member')
        .map((e) => e.state_key)
        .sort();
    assert.deepEqual(members(first.rooms.join[roomId]), [alice.userId, bob.userId].sort());
    assert.equal(first.rooms.join[roomId]?.summary['m.joined_member_count'], 3);
    await send(bob, roomId, 'again');
    const second = await sync(alice, { filter: lazy, since: first.next_batch });
    assert.deepEqual(members(second.rooms.join[roomId]), [], 'bob was already sent');
    await send(carol, roomId, 'from carol');
    const third = await sync(alice, { filter: lazy, since: second.next_batch });
    assert.deepEqual(members(third.rooms.join[roomId]), [carol.userId]);
    const redundant = JSON.stringify({
      room: {
        state: { lazy_load_members: true, include_redundant_members: true },
        timeline: { limit: 1 },
      },
    });
    await send(bob, roomId, 'once more');
    const fourth = await sync(alice, { filter: redundant, since: third.next_batch });
    assert.deepEqual(members(fourth.rooms.join[roomId]), [alice.userId, bob.userId].sort());
  });

  it('an incremental sync sends the summary only when membership changed since the token', async () => {
    const alice = await registerUser(server);
    const bob = await registerUser(server);
    const carol = await registerUser(server);
    const roomId = await createRoom(alice, { invite: [bob.userId, carol.userId] });
    await act(bob, roomId, 'join');
    // A gap (timeline limit 1) hides carol's join behind a message: the count must still come.
    const lazy = JSON.stringify({
      room: { state: { lazy_load_members: true }, timeline: { limit: 1 } },
    });
    const first = await sync(alice, { filter: lazy });
    assert.equal(first.rooms.join[roomId]?.summary['m.joined_member_count'], 2);
    assert.equal(first.rooms.join[roomId]?.summary['m.invited_member_count'], 1);
    await send(bob, roomId, 'no membership change');
    const second = await sync(alice, { filter: lazy, since: first.next_batch });
    assert.ok(second.rooms.join[roomId], 'the room has news');
    assert.deepEqual(second.rooms.join[roomId]?.summary, {}, 'unchanged, so left out');
    await act(carol, roomId, 'join');
    await send(bob, roomId, 'after carol joined');
    const third = await sync(alice, { filter: lazy, since: second.next_batch });
    const summary = third.rooms.join[roomId]?.summary;
    assert.equal(third.rooms.join[roomId]?.timeline.limited, true);
    assert.equal(summary?.['m.joined_member_count'], 3);
    assert.equal(summary?.['m.invited_member_count'], 0);
    assert.deepEqual(
      [...((summary?.['m.heroes'] as string[] | undefined) ?? [])].sort(),
      [bob.userId, carol.userId].sort(),
    );
  });

  it('filters: stored and inline, rooms, types and event_fields', async () => {
    const alice = await registerUser(server);
    const keep = await createRoom(alice);
    const drop = await createRoom(alice);
    await send(alice, keep, 'kept');
    const upload = await server.request<{ filter_id: string }>(
      'POST',
      `${V3}/user/${encodeURIComponent(alice.userId)}/filter`,
      {
        token: alice.accessToken,
        body: {
          room: { not_rooms: [drop], timeline: { types: ['m.room.message'] } },
          event_fields: ['type', 'content.body', 'sender'],
        },
      },
    );
    assert.equal(upload.status, 200, JSON.stringify(upload.body));
    assertMatchesSpec('filter.yaml', 'post', '/user/{userId}/filter', 200, upload.body);
    const stored = await server.request<Record<string, unknown>>(
      'GET',
      `${V3}/user/${encodeURIComponent(alice.userId)}/filter/${upload.body.filter_id}`,
      { token: alice.accessToken },
    );
    assert.equal(stored.status, 200);
    assert.deepEqual(stored.body.event_fields, ['type', 'content.body', 'sender']);
    // event_fields leaves out fields the spec's schema requires: the one unchecked response.
    const body = await sync(alice, { filter: upload.body.filter_id }, false);
    assert.equal(body.rooms.join[drop], undefined);
    const events = body.rooms.join[keep]?.timeline.events ?? [];
    assert.deepEqual(events, [
      { type: 'm.room.message', content: { body: 'kept' }, sender: alice.userId },
    ]);
  });

  it('refuses bad input with Matrix errors', async () => {
    const alice = await registerUser(server);
    const bob = await registerUser(server);
    const get = (query: string, token: string | null = alice.accessToken) =>
      server.request('GET', `${V3}/sync?${query}`, token === null ? {} : { token });
    expectError(await get('', null), 401, 'M_MISSING_TOKEN');
    expectError(await get('since=nonsense'), 400, 'M_INVALID_PARAM');
    expectError(await get('since=s999999999999'), 400, 'M_INVALID_PARAM');
    expectError(await get('timeout=soon'), 400, 'M_INVALID_PARAM');
    expectError(await get('full_state=yes'), 400, 'M_INVALID_PARAM');
    expectError(await get('set_presence=busy'), 400, 'M_INVALID_PARAM');
    expectError(await get('filter=%7Bnot-json'), 400, 'M_INVALID_PARAM');
    expectError(await get('filter=9999'), 400, 'M_INVALID_PARAM');
    expectError(
      await get(
        `filter=${encodeURIComponent(JSON.stringify({ room: { timeline: { limit: 'x' } } }))}`,
      ),
      400,
      'M_INVALID_PARAM',
    );
    const filterPath = (user: TestUser) => `${V3}/user/${encodeURIComponent(user.userId)}/filter`;
    expectError(
      await server.request('POST', filterPath(bob), { token: alice.accessToken, body: {} }),
      403,
      'M_FORBIDDEN',
    );
    expectError(
      await server.request('POST', filterPath(alice), {
        token: alice.accessToken,
        body: { room: { rooms: 'not a list' } },
      }),
      400,
      'M_BAD_JSON',
    );
    expectError(
      await server.request('GET', `${filterPath(alice)}/12345`, { token: alice.accessToken }),
      404,
      'M_NOT_FOUND',
    );
    expectError(
      await server.request('GET', `${filterPath(bob)}/0`, { token: alice.accessToken }),
      403,
      'M_FORBIDDEN',
    );
  });
});
