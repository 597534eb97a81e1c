/**
 * Simplified sliding sync (MSC4186) through a listening server: lists, windows and filters,
 * each room field, required_state with its wildcards and lazy members, connections and
 * positions, long-polling, room subscriptions and the extensions.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { loginUser, registerUser, type TestUser } from '../helpers/client.js';
import { expectError } from '../helpers/assertions.js';

const V3 = '/_matrix/client/v3';
const SS = '/_matrix/client/unstable/org.matrix.simplified_msc3575/sync';
const r = encodeURIComponent;

interface Event {
  type: string;
  sender: string;
  state_key?: string;
  event_id: string;
  content: Record<string, unknown>;
  unsigned?: Record<string, unknown>;
}
interface Room {
  name?: string;
  initial?: boolean;
  is_dm?: boolean;
  invite_state?: Event[];
  timeline?: Event[];
  required_state?: Event[];
  prev_batch?: string;
  limited?: boolean;
  num_live?: number;
  joined_count?: number;
  invited_count?: number;
  notification_count?: number;
  highlight_count?: number;
  bump_stamp?: number;
  heroes?: { user_id: string; displayname?: string }[];
}
interface Answer {
  pos: string;
  txn_id?: string;
  lists: Record<string, { count: number }>;
  rooms: Record<string, Room>;
  extensions: Record<string, Record<string, unknown>>;
}

forEachDatabase('sliding sync (MSC4186)', (dialect) => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer(dialect);
  });
  after(async () => server.close());

  async function slide(
    user: TestUser,
    body: Record<string, unknown>,
    query: Record<string, string> = {},
  ): Promise<Answer> {
    const response = await post(user, body, query);
    assert.equal(response.status, 200, JSON.stringify(response.body));
    return response.body as Answer;
  }
  function post(user: TestUser, body: unknown, query: Record<string, string> = {}) {
    const qs = new URLSearchParams(query).toString();
    return server.request<unknown>('POST', `${SS}${qs ? `?${qs}` : ''}`, {
      token: user.accessToken,
      body,
    });
  }
  async function createRoom(user: TestUser, body: Record<string, unknown> = {}): Promise<string> {
    const response = await server.request<{ room_id: string }>('POST', `${V3}/createRoom`, {
      token: user.accessToken,
      body: { preset: 'public_chat', ...body },
    });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    return response.body.room_id;
  }
  async function join(user: TestUser, roomId: string): Promise<void> {
    const response = await server.request('POST', `${V3}/join/${r(roomId)}`, {
      token: user.accessToken,
      body: {},
    });
    assert.equal(response.status, 200, JSON.stringify(response.body));
  }
  let txn = 0;
  async function send(user: TestUser, roomId: string, body: string): Promise<string> {
    const response = await server.request<{ event_id: string }>(
      'PUT',
      `${V3}/rooms/${r(roomId)}/send/m.room.message/t${++txn}`,
      { token: user.accessToken, body: { msgtype: 'm.text', body } },
    );
    assert.equal(response.status, 200, JSON.stringify(response.body));
    return response.body.event_id;
  }
  async function putState(
    user: TestUser,
    roomId: string,
    type: string,
    key: string,
    content: unknown,
  ) {
    const response = await server.request(
      'PUT',
      `${V3}/rooms/${r(roomId)}/state/${r(type)}/${r(key)}`,
      { token: user.accessToken, body: content },
    );
    assert.equal(response.status, 200, JSON.stringify(response.body));
  }
  const list = (extra: Record<string, unknown> = {}) => ({
    ranges: [[0, 19]],
    timeline_limit: 5,
    required_state: [['m.room.create', '']],
    ...extra,
  });
  const roomOrder = (answer: Answer) =>
    Object.entries(answer.rooms)
      .sort(([, a], [, b]) => (b.bump_stamp ?? 0) - (a.bump_stamp ?? 0))
      .map(([id]) => id);

  it('/versions advertises org.matrix.simplified_msc3575 and im.nheko.summary', async () => {
    const response = await server.request<{ unstable_features: Record<string, boolean> }>(
      'GET',
      '/_matrix/client/versions',
    );
    assert.equal(response.body.unstable_features['org.matrix.simplified_msc3575'], true);
    assert.equal(response.body.unstable_features['im.nheko.summary'], true);
  });

  describe('lists and room fields', () => {
    let alice: TestUser;
    let bob: TestUser;
    let rooms: string[];
    before(async () => {
      alice = await registerUser(server);
      bob = await registerUser(server);
      rooms = [];
      for (let i = 0; i < 4; i++) {
        const roomId = await createRoom(alice, i === 0 ? {} : { name: `room ${i}` });
        rooms.push(roomId);
      }
      await join(bob, rooms[0]!);
      for (let i = 0; i < 6; i++) await send(bob, rooms[0]!, `hello ${i}`);
      // Oldest activity first: rooms[1] now the most recent.
      await send(alice, rooms[1]!, 'latest');
    });

    it('orders a window by recency, counts the list, and fills each room field', async () => {
      const answer = await slide(alice, {
        lists: { all: list({ ranges: [[0, 1]] }) },
      });
      assert.equal(answer.lists.all?.count, 4);
      assert.deepEqual(Object.keys(answer.rooms).sort(), [rooms[1]!, rooms[0]!].sort());
      assert.deepEqual(roomOrder(answer), [rooms[1], rooms[0]]);
      const named = answer.rooms[rooms[1]!]!;
      assert.equal(named.name, 'room 1');
      assert.equal(named.heroes, undefined);
      const busy = answer.rooms[rooms[0]!]!;
      assert.equal(busy.initial, true);
      assert.equal(busy.timeline?.length, 5);
      assert.equal(busy.limited, true);
      assert.deepEqual(
        busy.timeline?.map((e) => e.content.body),
        ['hello 1', 'hello 2', 'hello 3', 'hello 4', 'hello 5'],
      );
      assert.equal(busy.num_live, 0);
      assert.equal(busy.joined_count, 2);
      assert.equal(busy.invited_count, 0);
      assert.equal(busy.notification_count, 6, 'Bob’s six messages, unread by Alice');
      assert.equal(busy.highlight_count, 0);
      assert.equal(typeof busy.bump_stamp, 'number');
      assert.ok((named.bump_stamp ?? 0) > (busy.bump_stamp ?? 0));
      assert.deepEqual(
        busy.heroes?.map((h) => h.user_id),
        [bob.userId],
      );
      assert.deepEqual(
        busy.required_state?.map((e) => e.type),
        ['m.room.create'],
      );
      // prev_batch continues the timeline with /messages.
      const older = await server.request<{ chunk: Event[] }>(
        'GET',
        `${V3}/rooms/${r(rooms[0]!)}/messages?dir=b&limit=1&from=${r(busy.prev_batch ?? '')}`,
        { token: alice.accessToken },
      );
      assert.equal(older.status, 200, JSON.stringify(older.body));
      assert.equal(older.body.chunk[0]?.content.body, 'hello 0');
    });

    it('required_state: "*" wildcards, $ME, and $LAZY members sent once per connection', async () => {
      const all = await slide(alice, {
        room_subscriptions: { [rooms[0]!]: { required_state: [['*', '*']], timeline_limit: 1 } },
      });
      const types = new Set(all.rooms[rooms[0]!]?.required_state?.map((e) => e.type));
      for (const t of [
        'm.room.create',
        'm.room.power_levels',
        'm.room.join_rules',
        'm.room.member',
      ])
        assert.ok(types.has(t), t);

      const me = await slide(alice, {
        room_subscriptions: {
          [rooms[0]!]: { required_state: [['m.room.member', '$ME']], timeline_limit: 1 },
        },
      });
      assert.deepEqual(
        me.rooms[rooms[0]!]?.required_state?.map((e) => e.state_key),
        [alice.userId],
      );

      const typeWildcard = await slide(alice, {
        room_subscriptions: {
          [rooms[0]!]: { required_state: [['m.room.member', '*']], timeline_limit: 0 },
        },
      });
      assert.deepEqual(
        typeWildcard.rooms[rooms[0]!]?.required_state?.map((e) => e.state_key).sort(),
        [alice.userId, bob.userId].sort(),
      );

      const lazyBody = (pos?: string) => ({
        conn_id: 'lazy',
        room_subscriptions: {
          [rooms[0]!]: { required_state: [['m.room.member', '$LAZY']], timeline_limit: 2 },
        },
        ...(pos ? {} : {}),
      });
      const first = await slide(alice, lazyBody());
      assert.deepEqual(
        first.rooms[rooms[0]!]?.required_state?.map((e) => e.state_key),
        [bob.userId],
        'the sender of the timeline only',
      );
      await send(bob, rooms[0]!, 'again');
      const second = await slide(alice, lazyBody(), { pos: first.pos });
      const room = second.rooms[rooms[0]!]!;
      assert.equal(room.initial, undefined);
      assert.deepEqual(
        room.timeline?.map((e) => e.content.body),
        ['again'],
      );
      assert.equal(room.num_live, 1);
      assert.deepEqual(room.required_state ?? [], [], 'bob was sent already on this connection');
      await send(alice, rooms[0]!, 'mine');
      const third = await slide(alice, lazyBody(), { pos: second.pos });
      assert.deepEqual(
        third.rooms[rooms[0]!]?.required_state?.map((e) => e.state_key),
        [alice.userId],
      );
    });

    it('an incremental answer: only rooms with news, moved up the list', async () => {
      const first = await slide(alice, { conn_id: 'inc', lists: { all: list() } });
      assert.equal(Object.keys(first.rooms).length, 4);
      const newest = Math.max(...Object.values(first.rooms).map((room) => room.bump_stamp ?? 0));
      const quiet = await slide(
        alice,
        { conn_id: 'inc', lists: { all: list() } },
        { pos: first.pos },
      );
      assert.deepEqual(quiet.rooms, {});
      assert.notEqual(quiet.pos, first.pos);
      await send(alice, rooms[3]!, 'news');
      const next = await slide(
        alice,
        { conn_id: 'inc', lists: { all: list() } },
        { pos: quiet.pos },
      );
      assert.deepEqual(Object.keys(next.rooms), [rooms[3]]);
      const room = next.rooms[rooms[3]!]!;
      assert.deepEqual(
        room.timeline?.map((e) => e.content.body),
        ['news'],
      );
      assert.equal(room.limited, false);
      assert.equal(room.num_live, 1);
      assert.ok((room.bump_stamp ?? 0) > newest, 'moved to the top');
      // The window moved: the last room is new to this connection only if it was never sent.
      const narrow = await slide(
        alice,
        { conn_id: 'inc', lists: { all: list({ ranges: [[0, 0]] }) } },
        { pos: next.pos },
      );
      assert.deepEqual(narrow.rooms, {});
    });

    it('long-polls with timeout until something for the user arrives', async () => {
      const first = await slide(alice, { conn_id: 'poll', lists: { all: list() } });
      const waiting = slide(
        alice,
        { conn_id: 'poll', lists: { all: list() } },
        { pos: first.pos, timeout: '30000' },
      );
      await send(bob, rooms[0]!, 'wake up');
      const answer = await waiting;
      assert.deepEqual(
        answer.rooms[rooms[0]!]?.timeline?.map((e) => e.content.body),
        ['wake up'],
      );
    });

    it('a timeout with nothing new answers empty with a new pos', async () => {
      const first = await slide(alice, { conn_id: 'idle', lists: { all: list() } });
      const answer = await slide(
        alice,
        { conn_id: 'idle', lists: { all: list() } },
        { pos: first.pos, timeout: '50' },
      );
      assert.deepEqual(answer.rooms, {});
      assert.equal(answer.lists.all?.count, 4);
    });

    it('connections and positions: unknown positions are M_UNKNOWN_POS, a retried pos is answered again', async () => {
      expectError(await post(alice, { lists: {} }, { pos: 'nonsense' }), 400, 'M_UNKNOWN_POS');
      expectError(await post(alice, { conn_id: 'never' }, { pos: '1_1' }), 400, 'M_UNKNOWN_POS');
      const a = await slide(alice, { conn_id: 'c1', lists: { all: list() } });
      // Another connection's pos is not this one's.
      expectError(await post(alice, { conn_id: 'c2' }, { pos: a.pos }), 400, 'M_UNKNOWN_POS');
      // Another device's connection of the same name is its own.
      const alice2 = {
        ...alice,
        ...(await loginUser(server, alice.userId, alice.password)),
      };
      expectError(await post(alice2, { conn_id: 'c1' }, { pos: a.pos }), 400, 'M_UNKNOWN_POS');
      const b = await slide(alice, { conn_id: 'c1', lists: { all: list() } }, { pos: a.pos });
      // b's answer was lost: the client sends a.pos again, and gets the rooms sent in b again.
      await send(alice, rooms[2]!, 'during the retry');
      const retried = await slide(alice, { conn_id: 'c1', lists: { all: list() } }, { pos: a.pos });
      assert.ok(rooms[2]! in retried.rooms);
      // b's pos is superseded by the retry's answer.
      expectError(await post(alice, { conn_id: 'c1' }, { pos: b.pos }), 400, 'M_UNKNOWN_POS');
      const c = await slide(alice, { conn_id: 'c1', lists: { all: list() } }, { pos: retried.pos });
      assert.deepEqual(c.rooms, {});
      // A new connection (no pos) starts again from nothing.
      const fresh = await slide(alice, { conn_id: 'c1', lists: { all: list() } });
      assert.equal(Object.keys(fresh.rooms).length, 4);
      expectError(await post(alice, { conn_id: 'c1' }, { pos: c.pos }), 400, 'M_UNKNOWN_POS');
    });

    it('echoes txn_id and answers room subscriptions only for rooms the user may see', async () => {
      const stranger = await registerUser(server);
      const answer = await slide(stranger, {
        txn_id: 'abc',
        room_subscriptions: { [rooms[0]!]: { timeline_limit: 5 } },
      });
      assert.equal(answer.txn_id, 'abc');
      assert.deepEqual(answer.rooms, {});
    });
  });

  describe('filters and invites', () => {
    let alice: TestUser;
    let bob: TestUser;
    let plain: string;
    let encrypted: string;
    let space: string;
    let child: string;
    let dm: string;
    let invite: string;
    let tagged: string;
    before(async () => {
      alice = await registerUser(server);
      bob = await registerUser(server);
      plain = await createRoom(alice, { name: 'plain' });
      encrypted = await createRoom(alice, {
        initial_state: [
          {
            type: 'm.room.encryption',
            state_key: '',
            content: { algorithm: 'm.megolm.v1.aes-sha2' },
          },
        ],
      });
      space = await createRoom(alice, { creation_content: { type: 'm.space' }, name: 'space' });
      child = await createRoom(alice, { name: 'child' });
      await putState(alice, space, 'm.space.child', child, { via: ['test.local'] });
      dm = await createRoom(bob, {
        preset: 'private_chat',
        is_direct: true,
        invite: [alice.userId],
      });
      await join(alice, dm);
      const direct = await server.request(
        'PUT',
        `${V3}/user/${r(alice.userId)}/account_data/m.direct`,
        { token: alice.accessToken, body: { [bob.userId]: [dm] } },
      );
      assert.equal(direct.status, 200);
      tagged = await createRoom(alice, { name: 'tagged' });
      const tag = await server.request(
        'PUT',
        `${V3}/user/${r(alice.userId)}/rooms/${r(tagged)}/account_data/m.tag`,
        { token: alice.accessToken, body: { tags: { 'm.favourite': { order: 0.5 } } } },
      );
      assert.equal(tag.status, 200, JSON.stringify(tag.body));
      invite = await createRoom(bob, {
        preset: 'private_chat',
        name: 'the invite',
        invite: [alice.userId],
      });
    });

    const ids = async (filters: Record<string, unknown>) => {
      const answer = await slide(alice, { lists: { l: list({ filters }) } });
      return Object.keys(answer.rooms).sort();
    };

    it('is_dm, is_encrypted, is_invite, room_types, not_room_types, spaces, tags', async () => {
      assert.deepEqual(await ids({ is_dm: true }), [dm]);
      assert.ok(!(await ids({ is_dm: false })).includes(dm));
      assert.deepEqual(await ids({ is_encrypted: true }), [encrypted]);
      assert.deepEqual(await ids({ is_invite: true }), [invite]);
      assert.ok(!(await ids({ is_invite: false })).includes(invite));
      assert.deepEqual(await ids({ room_types: ['m.space'] }), [space]);
      assert.ok(!(await ids({ room_types: [null] })).includes(space));
      assert.ok((await ids({ room_types: [null] })).includes(plain));
      assert.ok(!(await ids({ not_room_types: ['m.space'] })).includes(space));
      assert.deepEqual(await ids({ spaces: [space] }), [child]);
      assert.deepEqual(await ids({ tags: ['m.favourite'] }), [tagged]);
      assert.ok(!(await ids({ not_tags: ['m.favourite'] })).includes(tagged));
    });

    it('an invite comes as stripped state with the inviter, no timeline', async () => {
      const answer = await slide(alice, { lists: { l: list({ filters: { is_invite: true } }) } });
      const room = answer.rooms[invite]!;
      assert.equal(room.initial, true);
      assert.equal(room.timeline, undefined);
      const state = room.invite_state ?? [];
      assert.ok(state.some((e) => e.type === 'm.room.name' && e.content.name === 'the invite'));
      assert.ok(
        state.some(
          (e) =>
            e.type === 'm.room.member' &&
            e.state_key === alice.userId &&
            e.content.membership === 'invite',
        ),
      );
      assert.ok(state.some((e) => e.type === 'm.room.member' && e.state_key === bob.userId));
      assert.equal(typeof room.bump_stamp, 'number');
    });

    it('a room joined after its invite was sent comes again in full', async () => {
      const first = await slide(alice, { conn_id: 'inv', lists: { l: list() } });
      assert.ok(first.rooms[invite]?.invite_state);
      await join(alice, invite);
      const next = await slide(alice, { conn_id: 'inv', lists: { l: list() } }, { pos: first.pos });
      const room = next.rooms[invite]!;
      assert.equal(room.initial, true);
      assert.equal(room.invite_state, undefined);
      assert.ok(
        room.timeline?.some((e) => e.type === 'm.room.member' && e.state_key === alice.userId),
      );
      assert.equal(room.joined_count, 2);
    });
  });

  describe('more room fields', () => {
    let alice: TestUser;
    let bob: TestUser;
    let carol: TestUser;
    before(async () => {
      alice = await registerUser(server);
      bob = await registerUser(server);
      carol = await registerUser(server);
      const named = await server.request('PUT', `${V3}/profile/${r(bob.userId)}/displayname`, {
        token: bob.accessToken,
        body: { displayname: 'Bob B' },
      });
      assert.equal(named.status, 200);
    });

    it('avatar, invited_count, is_dm on the room, heroes with their display names', async () => {
      const roomId = await createRoom(alice, { invite: [carol.userId] });
      await join(bob, roomId);
      await putState(alice, roomId, 'm.room.avatar', '', { url: 'mxc://test.local/abc' });
      const direct = await server.request(
        'PUT',
        `${V3}/user/${r(alice.userId)}/account_data/m.direct`,
        { token: alice.accessToken, body: { [bob.userId]: [roomId] } },
      );
      assert.equal(direct.status, 200);
      const answer = await slide(alice, {
        room_subscriptions: { [roomId]: { timeline_limit: 0 } },
      });
      const room = answer.rooms[roomId]!;
      assert.equal((room as { avatar?: string }).avatar, 'mxc://test.local/abc');
      assert.equal(room.joined_count, 2);
      assert.equal(room.invited_count, 1);
      assert.equal(room.is_dm, true);
      assert.deepEqual(room.timeline ?? [], [], 'timeline_limit 0: no events');
      assert.deepEqual(
        room.heroes?.map((h) => h.user_id),
        [bob.userId, carol.userId],
      );
      assert.equal(room.heroes?.[0]?.displayname, 'Bob B');
    });

    it('notification_count and highlight_count from the push rules, reset by the user’s receipt', async () => {
      const roomId = await createRoom(bob, { name: 'counted' });
      await join(alice, roomId);
      await send(bob, roomId, 'one');
      const mention = await server.request<{ event_id: string }>(
        'PUT',
        `${V3}/rooms/${r(roomId)}/send/m.room.message/t${++txn}`,
        {
          token: bob.accessToken,
          body: { msgtype: 'm.text', body: 'look', 'm.mentions': { user_ids: [alice.userId] } },
        },
      );
      assert.equal(mention.status, 200);
      const body = { conn_id: 'counts', lists: { all: list({ ranges: [[0, 0]] }) } };
      const first = await slide(alice, body);
      assert.equal(first.rooms[roomId]?.notification_count, 2);
      assert.equal(first.rooms[roomId]?.highlight_count, 1);
      // Bob's own room: his messages do not count for him.
      const bobs = await slide(bob, { room_subscriptions: { [roomId]: { timeline_limit: 1 } } });
      assert.equal(bobs.rooms[roomId]?.notification_count, 0);

      // One more message: counted on the incremental answer with it.
      const third = await send(bob, roomId, 'three');
      const second = await slide(alice, body, { pos: first.pos });
      assert.equal(second.rooms[roomId]?.notification_count, 3);
      assert.equal(second.rooms[roomId]?.highlight_count, 1);

      // Alice reads up to the mention: the room comes again, with no event, and new counts.
      const read = await server.request(
        'POST',
        `${V3}/rooms/${r(roomId)}/receipt/m.read/${r(mention.body.event_id)}`,
        { token: alice.accessToken, body: {} },
      );
      assert.equal(read.status, 200);
      const third2 = await slide(alice, body, { pos: second.pos });
      const room = third2.rooms[roomId];
      assert.ok(room, JSON.stringify(third2));
      assert.deepEqual(room.timeline ?? [], []);
      assert.equal(room.notification_count, 1);
      assert.equal(room.highlight_count, 0);
      // A private receipt on the last message: all read.
      const all = await server.request(
        'POST',
        `${V3}/rooms/${r(roomId)}/receipt/m.read.private/${r(third)}`,
        { token: alice.accessToken, body: {} },
      );
      assert.equal(all.status, 200);
      const fourth = await slide(alice, body, { pos: third2.pos });
      assert.equal(fourth.rooms[roomId]?.notification_count, 0);
      assert.equal(fourth.rooms[roomId]?.highlight_count, 0);
      // Nothing new since: the room is not sent again.
      const fifth = await slide(alice, body, { pos: fourth.pos });
      assert.equal(fifth.rooms[roomId], undefined);
    });

    it('a room left since the last answer comes with the leave, then leaves the list', async () => {
      const roomId = await createRoom(bob, { name: 'to leave' });
      await join(alice, roomId);
      const body = { conn_id: 'leave', lists: { all: list({ ranges: [[0, 50]] }) } };
      const first = await slide(alice, body);
      assert.ok(roomId in first.rooms);
      const left = await server.request('POST', `${V3}/rooms/${r(roomId)}/leave`, {
        token: alice.accessToken,
        body: {},
      });
      assert.equal(left.status, 200);
      const next = await slide(alice, body, { pos: first.pos });
      const timeline = next.rooms[roomId]?.timeline ?? [];
      assert.ok(
        timeline.some(
          (e) =>
            e.type === 'm.room.member' &&
            e.state_key === alice.userId &&
            e.content.membership === 'leave',
        ),
        JSON.stringify(next.rooms[roomId]),
      );
      const fresh = await slide(alice, { lists: { all: list({ ranges: [[0, 50]] }) } });
      assert.ok(!(roomId in fresh.rooms), 'a new connection does not list it');
    });

    it('a gap in an incremental timeline brings the required state that changed in it', async () => {
      const roomId = await createRoom(alice, { name: 'before' });
      const body = {
        conn_id: 'gap',
        room_subscriptions: {
          [roomId]: { timeline_limit: 2, required_state: [['m.room.name', '']] },
        },
      };
      const first = await slide(alice, body);
      assert.deepEqual(
        first.rooms[roomId]?.required_state?.map((e) => e.content.name),
        ['before'],
      );
      await putState(alice, roomId, 'm.room.name', '', { name: 'after' });
      for (let i = 0; i < 3; i++) await send(alice, roomId, `filler ${i}`);
      const next = await slide(alice, body, { pos: first.pos });
      const room = next.rooms[roomId]!;
      assert.equal(room.limited, true);
      assert.equal(room.name, 'after');
      assert.deepEqual(
        room.required_state?.map((e) => e.content.name),
        ['after'],
      );
      assert.equal(room.num_live, 2);
    });
  });

  describe('extensions', () => {
    let alice: TestUser;
    let bob: TestUser;
    let inList: string;
    let outside: string;
    before(async () => {
      alice = await registerUser(server);
      bob = await registerUser(server);
      outside = await createRoom(alice, { name: 'outside' });
      inList = await createRoom(alice, { name: 'in list' });
      await join(bob, inList);
      await join(bob, outside);
    });

    const ext = (extensions: Record<string, unknown>) => ({
      lists: { l: list({ ranges: [[0, 0]] }) },
      extensions,
    });

    it('to_device: messages since a token, then only new ones', async () => {
      const put = await server.request('PUT', `${V3}/sendToDevice/m.test/td1`, {
        token: bob.accessToken,
        body: { messages: { [alice.userId]: { [alice.deviceId]: { n: 1 } } } },
      });
      assert.equal(put.status, 200);
      const first = await slide(alice, ext({ to_device: { enabled: true } }));
      const toDevice = first.extensions.to_device as { next_batch: string; events: Event[] };
      assert.deepEqual(
        toDevice.events.map((e) => [e.type, e.sender, e.content]),
        [['m.test', bob.userId, { n: 1 }]],
      );
      const again = await slide(
        alice,
        ext({ to_device: { enabled: true, since: toDevice.next_batch } }),
      );
      assert.deepEqual((again.extensions.to_device as { events?: Event[] }).events ?? [], []);
      expectError(
        await post(alice, ext({ to_device: { enabled: true, since: 'bad' } })),
        400,
        'M_INVALID_PARAM',
      );
    });

    it('e2ee: one-time key counts, fallback key types, device list changes', async () => {
      const upload = await server.request('POST', `${V3}/keys/upload`, {
        token: alice.accessToken,
        body: {
          one_time_keys: { 'signed_curve25519:AAAA': { key: 'k', signatures: {} } },
          fallback_keys: { 'signed_curve25519:BBBB': { key: 'f', fallback: true, signatures: {} } },
        },
      });
      assert.equal(upload.status, 200, JSON.stringify(upload.body));
      const first = await slide(alice, { conn_id: 'e2ee', ...ext({ e2ee: { enabled: true } }) });
      const e2ee = first.extensions.e2ee as {
        device_one_time_keys_count: Record<string, number>;
        device_unused_fallback_key_types: string[];
      };
      assert.equal(e2ee.device_one_time_keys_count.signed_curve25519, 1);
      assert.deepEqual(e2ee.device_unused_fallback_key_types, ['signed_curve25519']);
      const bobKeys = await server.request('POST', `${V3}/keys/upload`, {
        token: bob.accessToken,
        body: {
          device_keys: {
            user_id: bob.userId,
            device_id: bob.deviceId,
            algorithms: ['m.megolm.v1.aes-sha2'],
            keys: { [`ed25519:${bob.deviceId}`]: 'x' },
            signatures: {},
          },
        },
      });
      assert.equal(bobKeys.status, 200, JSON.stringify(bobKeys.body));
      const next = await slide(
        alice,
        { conn_id: 'e2ee', ...ext({ e2ee: { enabled: true } }) },
        { pos: first.pos },
      );
      const lists = (next.extensions.e2ee as { device_lists: { changed: string[] } }).device_lists;
      assert.ok(lists.changed.includes(bob.userId), JSON.stringify(next.extensions));
    });

    it('account_data: global, and per room only for the rooms asked for', async () => {
      for (const roomId of [inList, outside]) {
        const put = await server.request(
          'PUT',
          `${V3}/user/${r(alice.userId)}/rooms/${r(roomId)}/account_data/m.test`,
          { token: alice.accessToken, body: { room: roomId } },
        );
        assert.equal(put.status, 200);
      }
      const put = await server.request(
        'PUT',
        `${V3}/user/${r(alice.userId)}/account_data/m.global`,
        {
          token: alice.accessToken,
          body: { yes: true },
        },
      );
      assert.equal(put.status, 200);
      const answer = await slide(alice, ext({ account_data: { enabled: true } }));
      const data = answer.extensions.account_data as {
        global: Event[];
        rooms: Record<string, Event[]>;
      };
      assert.ok(data.global.some((e) => e.type === 'm.global'));
      assert.deepEqual(Object.keys(data.rooms), [inList]);
      const both = await slide(alice, ext({ account_data: { enabled: true, rooms: [outside] } }));
      assert.deepEqual(
        Object.keys(
          (both.extensions.account_data as { rooms: Record<string, unknown> }).rooms,
        ).sort(),
        [inList, outside].sort(),
      );
    });

    it('receipts and typing for the list’s rooms only', async () => {
      for (const roomId of [inList, outside]) {
        const eventId = await send(bob, roomId, 'read me');
        const receipt = await server.request(
          'POST',
          `${V3}/rooms/${r(roomId)}/receipt/m.read/${r(eventId)}`,
          { token: bob.accessToken, body: {} },
        );
        assert.equal(receipt.status, 200, JSON.stringify(receipt.body));
        const typing = await server.request(
          'PUT',
          `${V3}/rooms/${r(roomId)}/typing/${r(bob.userId)}`,
          { token: bob.accessToken, body: { typing: true, timeout: 30000 } },
        );
        assert.equal(typing.status, 200);
      }
      // The most recent room is the last one written to: `outside` (list window [0, 0]).
      const answer = await slide(
        alice,
        ext({ receipts: { enabled: true }, typing: { enabled: true } }),
      );
      const [top] = Object.keys(answer.rooms);
      assert.equal(top, outside);
      const receipts = answer.extensions.receipts as { rooms: Record<string, { type: string }> };
      assert.deepEqual(Object.keys(receipts.rooms), [outside]);
      assert.equal(receipts.rooms[outside]?.type, 'm.receipt');
      const typing = answer.extensions.typing as {
        rooms: Record<string, { content: { user_ids: string[] } }>;
      };
      assert.deepEqual(Object.keys(typing.rooms), [outside]);
      assert.deepEqual(typing.rooms[outside]?.content.user_ids, [bob.userId]);
      const off = await slide(
        alice,
        ext({ receipts: { enabled: true, lists: [] }, typing: { enabled: false } }),
      );
      assert.deepEqual((off.extensions.receipts as { rooms?: unknown }).rooms ?? {}, {});
      assert.equal(off.extensions.typing, undefined);
    });
  });

  describe('errors', () => {
    let alice: TestUser;
    before(async () => {
      alice = await registerUser(server);
    });
    it('ignores fields and extensions it does not know (clients send older and newer ones)', async () => {
      const answer = await slide(alice, {
        unsubscribe_rooms: [],
        lists: { a: { ranges: [[0, 1]], sort: ['by_recency'], filters: { room_name_like: 'x' } } },
        extensions: { 'io.element.msc4308.thread_subscriptions': { enabled: true, limit: 10 } },
      });
      assert.deepEqual(answer.lists, { a: { count: 0 } });
    });

    it('refuses bad input with Matrix errors', async () => {
      expectError(await server.request('POST', SS, { body: {} }), 401, 'M_MISSING_TOKEN');
      expectError(
        await post(alice, { lists: { a: { ranges: [[5, 1]] } } }),
        400,
        'M_INVALID_PARAM',
      );
      expectError(await post(alice, { lists: { a: { ranges: 'x' } } }), 400, 'M_BAD_JSON');
      expectError(await post(alice, { room_subscriptions: { nope: {} } }), 400, 'M_INVALID_PARAM');
      expectError(
        await post(alice, { lists: { a: { filters: { spaces: ['x'] } } } }),
        400,
        'M_INVALID_PARAM',
      );
      expectError(await post(alice, {}, { timeout: 'soon' }), 400, 'M_INVALID_PARAM');
      expectError(await post(alice, {}, { set_presence: 'away' }), 400, 'M_INVALID_PARAM');
      const notJson = await server.request('POST', SS, {
        token: alice.accessToken,
        rawBody: '{',
        headers: { 'content-type': 'application/json' },
      });
      assert.equal(notJson.status, 400);
      assert.equal((notJson.body as { errcode: string }).errcode, 'M_NOT_JSON');
    });
  });
});
