/**
 * The reads that answer for many rooms in one statement (select-each.ts: a UNION ALL of
 * per-room reads, each with its own order and limit), checked against one-room reads on a
 * user in more rooms than one statement takes (SELECT_EACH_BATCH), and an initial /sync of
 * all of them checked against /messages and /joined_members.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { VALUES_BATCH } from '../../src/storage/values-table.js';
import type { EventRow, Stores } from '../../src/storage/index.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const C = '/_matrix/client/v3';
const ROOMS = 112;
const ids = (rows: readonly EventRow[] | undefined) => (rows ?? []).map((r) => r.eventId);

forEachDatabase('reads of many rooms at once', (dialect) => {
  let server: TestServer;
  let stores: Stores;
  let alice: TestUser;
  let bob: TestUser;
  const rooms: string[] = [];
  /** Rooms whose topic was set twice: the stream position of the second topic. */
  const secondTopic = new Map<string, { position: number; first: string }>();

  const post = async (user: TestUser, path: string, body: unknown = {}) => {
    const res = await server.request<Record<string, string>>('POST', path, {
      token: user.accessToken,
      body,
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body;
  };
  const put = async (user: TestUser, path: string, body: unknown) => {
    const res = await server.request<{ event_id: string }>('PUT', path, {
      token: user.accessToken,
      body,
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body.event_id;
  };
  const positionOf = async (eventId: string) =>
    (await stores.rooms.selectEvent(eventId))?.streamOrdering ?? -1;

  before(async () => {
    server = await startTestServer(dialect);
    stores = server.running.storage.stores;
    alice = await registerUser(server);
    bob = await registerUser(server);
    for (let i = 0; i < ROOMS; i++) {
      const { room_id: roomId } = await post(alice, `${C}/createRoom`, { preset: 'public_chat' });
      if (!roomId) throw new Error('no room ID');
      rooms.push(roomId);
      const room = encodeURIComponent(roomId);
      for (let m = 0; m < i % 5; m++)
        await put(alice, `${C}/rooms/${room}/send/m.room.message/t${i}-${m}`, {
          msgtype: 'm.text',
          body: `message ${m}`,
        });
      if (i % 3 === 0) await post(alice, `${C}/rooms/${room}/invite`, { user_id: bob.userId });
      if (i % 4 === 0) await post(bob, `${C}/join/${room}`);
      if (i % 6 === 0) {
        const first = await put(alice, `${C}/rooms/${room}/state/m.room.topic/`, { topic: 'a' });
        const second = await put(alice, `${C}/rooms/${room}/state/m.room.topic/`, { topic: 'b' });
        secondTopic.set(roomId, { position: await positionOf(second), first });
      }
    }
  });

  after(async () => {
    await server?.close();
  });

  it('latest events: each room its own span and the limit, newest first', async () => {
    const upTo = await stores.rooms.selectCurrentStreamPosition();
    for (const limit of [1, 3, 20]) {
      const requests = rooms.map((roomId, i) => ({ roomId, after: i % 3, upTo: upTo - (i % 2) }));
      const batched = await stores.rooms.selectLatestEventsOfRooms(requests, limit);
      for (const { roomId, after: from, upTo: to } of requests) {
        const expected = await stores.rooms.selectRoomEvents(roomId, {
          after: from,
          upTo: to,
          direction: 'backward',
          limit,
        });
        assert.ok(expected.length > 0);
        assert.deepEqual(ids(batched.get(roomId)), ids(expected), `${roomId} limit ${limit}`);
      }
    }
    // A span after the room's last event, and a room that has nothing.
    const [first] = rooms;
    assert.ok(first);
    const [last] = await stores.rooms.selectRoomEvents(first, {
      after: 0,
      upTo,
      direction: 'backward',
      limit: 1,
    });
    assert.ok(last);
    const none = await stores.rooms.selectLatestEventsOfRooms(
      [
        { roomId: first, after: last.streamOrdering, upTo },
        { roomId: '!nowhere:test', after: 0, upTo: upTo },
      ],
      5,
    );
    assert.equal(none.size, 0);
  });

  it('state keys past one statement: more keys than VALUES_BATCH', async () => {
    const requests = rooms.map((roomId) => ({
      roomId,
      keys: [
        ...Array.from({ length: 6 }, (_, n) => ['m.room.member', `@nobody${n}:test`] as const),
        ['m.room.create', ''] as const,
      ],
    }));
    assert.ok(requests.length * 7 > VALUES_BATCH);
    const [first] = rooms;
    assert.ok(first);
    // A room listed twice, and a key twice: each event once.
    requests.push({ roomId: first, keys: [['m.room.create', '']] });
    const found = await stores.rooms.selectStateEventsOfRooms(requests);
    assert.equal(found.size, ROOMS);
    for (const roomId of rooms) {
      const [create, ...rest] = found.get(roomId) ?? [];
      assert.equal(create?.pdu.type, 'm.room.create');
      assert.equal(rest.length, 0);
    }
  });

  it('member samples: per room, by user ID, the excluded user left out', async () => {
    const samples = await stores.sync.selectMembersSamples(rooms, 'join', alice.userId, 5);
    const invites = await stores.sync.selectMembersSamples(rooms, 'invite', alice.userId, 5);
    rooms.forEach((roomId, i) => {
      assert.deepEqual(samples.get(roomId) ?? [], i % 4 === 0 ? [bob.userId] : [], roomId);
      const invited = i % 3 === 0 && i % 4 !== 0;
      assert.deepEqual(invites.get(roomId) ?? [], invited ? [bob.userId] : [], roomId);
    });
  });

  it('state: entries asked for per room, state before a position, changes in a span', async () => {
    const wanted = await stores.rooms.selectStateEventsOfRooms(
      rooms.map((roomId) => ({
        roomId,
        keys: [
          ['m.room.create', ''],
          ['m.room.member', bob.userId],
        ],
      })),
    );
    for (const roomId of rooms) {
      const all = await stores.rooms.selectAllStateEvents(roomId);
      const expected = all.filter(
        (r) =>
          r.pdu.type === 'm.room.create' ||
          (r.pdu.type === 'm.room.member' && r.pdu.state_key === bob.userId),
      );
      assert.deepEqual(ids(wanted.get(roomId)).sort(), ids(expected).sort(), roomId);
    }

    const topicRooms = [...secondTopic];
    assert.ok(topicRooms.length > 10);
    const earlier = await stores.sync.selectStateBefore(
      topicRooms.map(([roomId, { position }]) => ({
        roomId,
        keys: [['m.room.topic', '']],
        position,
      })),
    );
    const changes = await stores.sync.selectStateChanges(
      topicRooms.map(([roomId, { position }]) => ({ roomId, after: 0, before: position + 1 })),
    );
    for (const [roomId, { first, position }] of topicRooms) {
      assert.deepEqual(ids(earlier.get(roomId)), [first], roomId);
      const changed = changes.get(roomId) ?? [];
      const topic = changed.filter((r) => r.pdu.type === 'm.room.topic');
      assert.equal(topic.length, 1, 'the latest event of each key');
      assert.equal(topic[0]?.streamOrdering, position);
      const positions = changed.map((r) => r.streamOrdering);
      assert.deepEqual(
        positions,
        [...positions].sort((a, b) => a - b),
        'by stream order',
      );
    }
  });

  it('an initial lazy /sync of all the rooms matches /messages and /joined_members', async () => {
    const filter = JSON.stringify({
      room: { state: { lazy_load_members: true }, timeline: { limit: 3 } },
    });
    const res = await server.request<{
      rooms: {
        join: Record<
          string,
          {
            timeline: { events: { event_id: string; type: string; state_key?: string }[] };
            state: { events: { type: string; state_key: string }[] };
            summary: Record<string, unknown>;
          }
        >;
      };
    }>('GET', `${C}/sync?filter=${encodeURIComponent(filter)}`, { token: bob.accessToken });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const joined = rooms.filter((_, i) => i % 4 === 0);
    assert.deepEqual(Object.keys(res.body.rooms.join).sort(), [...joined].sort());
    for (const roomId of joined) {
      const section = res.body.rooms.join[roomId];
      assert.ok(section);
      const room = encodeURIComponent(roomId);
      const messages = await server.request<{ chunk: { event_id: string }[] }>(
        'GET',
        `${C}/rooms/${room}/messages?dir=b&limit=3`,
        { token: bob.accessToken },
      );
      assert.deepEqual(
        section.timeline.events.map((e) => e.event_id),
        messages.body.chunk.map((e) => e.event_id).reverse(),
        roomId,
      );
      const members = await server.request<{ joined: Record<string, unknown> }>(
        'GET',
        `${C}/rooms/${room}/joined_members`,
        { token: bob.accessToken },
      );
      assert.equal(
        section.summary['m.joined_member_count'],
        Object.keys(members.body.joined).length,
      );
      assert.deepEqual(section.summary['m.heroes'], [alice.userId]);
      const memberKeys = [...section.state.events, ...section.timeline.events]
        .filter((e) => e.type === 'm.room.member')
        .map((e) => e.state_key);
      assert.ok(memberKeys.includes(bob.userId), 'the syncing user is sent, in state or timeline');
      assert.ok(
        section.state.events.some((e) => e.type === 'm.room.create'),
        'the room state is sent',
      );
    }
  });
});
