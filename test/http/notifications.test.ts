import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import fc from 'fast-check';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { assertMatchesSpec } from '../helpers/spec-contract.js';

const C = '/_matrix/client/v3';
const r = encodeURIComponent;
type Counts = { notification_count: number; highlight_count: number };
type JoinedRoom = {
  unread_notifications: Counts;
  unread_thread_notifications?: Record<string, Counts>;
};
type SyncBody = { next_batch: string; rooms: { join: Record<string, JoinedRoom> } };
type Notification = {
  actions: unknown[];
  event: { event_id: string; content: Record<string, unknown> };
  read: boolean;
  room_id: string;
  ts: number;
};

forEachDatabase('notifications: push rules, unread counts, /notifications', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let txn = 0;
  before(async () => {
    server = await startTestServer(dialect);
    [alice, bob] = [await registerUser(server), await registerUser(server)];
  });
  after(async () => server.close());

  const localpart = (user: TestUser) => user.userId.slice(1, user.userId.indexOf(':'));
  async function createRoom() {
    const res = await server.request<{ room_id: string }>('POST', `${C}/createRoom`, {
      token: alice.accessToken,
      body: { preset: 'public_chat' },
    });
    assert.equal(res.status, 200);
    const join = await server.request('POST', `${C}/join/${r(res.body.room_id)}`, {
      token: bob.accessToken,
      body: {},
    });
    assert.equal(join.status, 200);
    // A third member, so the room is not one-to-one (whose rule differs only by sound).
    return res.body.room_id;
  }
  async function send(user: TestUser, room: string, content: Record<string, unknown>) {
    const res = await server.request<{ event_id: string }>(
      'PUT',
      `${C}/rooms/${r(room)}/send/m.room.message/n${++txn}`,
      { token: user.accessToken, body: content },
    );
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body.event_id;
  }
  async function receipt(
    user: TestUser,
    room: string,
    type: string,
    eventId: string,
    body: Record<string, unknown> = {},
  ) {
    const res = await server.request(
      'POST',
      `${C}/rooms/${r(room)}/receipt/${r(type)}/${r(eventId)}`,
      { token: user.accessToken, body },
    );
    assert.equal(res.status, 200, JSON.stringify(res.body));
  }
  async function roomOf(user: TestUser, room: string, threaded = false): Promise<JoinedRoom> {
    const filter = {
      room: { rooms: [room], timeline: { limit: 1, unread_thread_notifications: threaded } },
    };
    const res = await server.request<SyncBody>(
      'GET',
      `${C}/sync?filter=${r(JSON.stringify(filter))}`,
      {
        token: user.accessToken,
      },
    );
    assert.equal(res.status, 200);
    const joined = res.body.rooms.join[room];
    assert.ok(joined, 'the room is in the answer');
    return joined;
  }
  const text = (body: string) => ({ msgtype: 'm.text', body });

  it('counts messages for the other members, highlights mentions, and receipts reset them', async () => {
    const room = await createRoom();
    const m1 = await send(alice, room, text('hello'));
    await send(alice, room, text(`hey ${localpart(bob)}, look`));
    const m3 = await send(alice, room, text('third'));
    await send(bob, room, text('bob writes'));
    assert.deepEqual((await roomOf(bob, room)).unread_notifications, {
      notification_count: 3,
      highlight_count: 1,
    });
    assert.deepEqual((await roomOf(alice, room)).unread_notifications, {
      notification_count: 1,
      highlight_count: 0,
    });
    await receipt(bob, room, 'm.read', m1);
    assert.deepEqual((await roomOf(bob, room)).unread_notifications, {
      notification_count: 2,
      highlight_count: 1,
    });
    await receipt(bob, room, 'm.read.private', m3);
    assert.deepEqual((await roomOf(bob, room)).unread_notifications, {
      notification_count: 0,
      highlight_count: 0,
    });
    // A notice does not notify (.m.rule.suppress_notices); an m.mentions mention highlights.
    await send(alice, room, { msgtype: 'm.notice', body: 'notice' });
    await send(alice, room, { ...text('hi there'), 'm.mentions': { user_ids: [bob.userId] } });
    assert.deepEqual((await roomOf(bob, room)).unread_notifications, {
      notification_count: 1,
      highlight_count: 1,
    });
  });

  it('counts threads apart when the filter asks, and threaded receipts reset one thread', async () => {
    const room = await createRoom();
    const root = await send(alice, room, text('root'));
    const inThread = (body: string) => ({
      ...text(body),
      'm.relates_to': { rel_type: 'm.thread', event_id: root },
    });
    const t1 = await send(alice, room, inThread('t1'));
    await send(alice, room, inThread('t2'));
    await send(alice, room, text('main again'));
    assert.deepEqual((await roomOf(bob, room)).unread_notifications.notification_count, 4);
    const threaded = await roomOf(bob, room, true);
    assert.deepEqual(threaded.unread_notifications, { notification_count: 2, highlight_count: 0 });
    assert.deepEqual(threaded.unread_thread_notifications, {
      [root]: { notification_count: 2, highlight_count: 0 },
    });
    await receipt(bob, room, 'm.read', t1, { thread_id: root });
    const afterThreadReceipt = await roomOf(bob, room, true);
    assert.deepEqual(afterThreadReceipt.unread_thread_notifications, {
      [root]: { notification_count: 1, highlight_count: 0 },
    });
    assert.equal(afterThreadReceipt.unread_notifications.notification_count, 2);
    assert.equal((await roomOf(bob, room)).unread_notifications.notification_count, 3);
    assert.equal((await roomOf(bob, room)).unread_thread_notifications, undefined);
  });

  it('lists notifications newest first, with read, only=highlight and paging', async () => {
    const room = await createRoom();
    const sent: string[] = [];
    for (let i = 0; i < 5; i++)
      sent.push(await send(alice, room, text(i === 2 ? `ping ${localpart(bob)}` : `n${i}`)));
    await receipt(bob, room, 'm.read', sent[1] as string);
    const list = await server.request<{ notifications: Notification[]; next_token?: string }>(
      'GET',
      `${C}/notifications?limit=3`,
      { token: bob.accessToken },
    );
    assert.equal(list.status, 200);
    assertMatchesSpec('notifications.yaml', 'get', '/notifications', 200, list.body);
    assert.deepEqual(
      list.body.notifications.map((n) => n.event.event_id),
      [sent[4], sent[3], sent[2]],
    );
    assert.ok(list.body.notifications.every((n) => !n.read && n.room_id === room));
    assert.ok(
      list.body.notifications[2]?.actions.some((a) => JSON.stringify(a).includes('highlight')),
    );
    const rest = await server.request<{ notifications: Notification[]; next_token?: string }>(
      'GET',
      `${C}/notifications?limit=3&from=${list.body.next_token ?? ''}`,
      { token: bob.accessToken },
    );
    const older = rest.body.notifications.filter((n) => n.room_id === room);
    assert.deepEqual(
      older.map((n) => [n.event.event_id, n.read]),
      [
        [sent[1], true],
        [sent[0], true],
      ],
    );
    const highlights = await server.request<{ notifications: Notification[] }>(
      'GET',
      `${C}/notifications?only=highlight`,
      { token: bob.accessToken },
    );
    assert.ok(highlights.body.notifications.some((n) => n.event.event_id === sent[2]));
    assert.ok(
      highlights.body.notifications.every((n) => JSON.stringify(n.actions).includes('highlight')),
    );
    for (const query of ['from=abc', 'limit=0', 'limit=x']) {
      const bad = await server.request<{ errcode: string }>('GET', `${C}/notifications?${query}`, {
        token: bob.accessToken,
      });
      assert.equal(bad.status, 400, query);
      assert.match(bad.body.errcode, /^M_/);
    }
    assert.equal((await server.request('GET', `${C}/notifications`)).status, 401);
  });

  it('property: unread_notifications equals the count computed from the events and receipts', async () => {
    type Op =
      | { kind: 'send'; mention: boolean; notice: boolean }
      | { kind: 'receipt'; type: 'm.read' | 'm.read.private'; pick: number };
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({
        kind: fc.constant('send' as const),
        mention: fc.boolean(),
        notice: fc.boolean(),
      }),
      fc.record({
        kind: fc.constant('receipt' as const),
        type: fc.constantFrom('m.read' as const, 'm.read.private' as const),
        pick: fc.nat(),
      }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 8 }), async (ops) => {
        const room = await createRoom();
        const events: { id: string; notifies: boolean; highlights: boolean }[] = [];
        let mark = -1;
        for (const o of ops) {
          if (o.kind === 'send') {
            const body = o.mention ? `hello ${localpart(bob)}` : 'hello';
            const id = await send(alice, room, {
              msgtype: o.notice ? 'm.notice' : 'm.text',
              body,
            });
            events.push({ id, notifies: !o.notice, highlights: !o.notice && o.mention });
          } else if (events.length > 0) {
            const index = o.pick % events.length;
            await receipt(bob, room, o.type, (events[index] as { id: string }).id);
            mark = Math.max(mark, index);
          }
        }
        const unread = events.slice(mark + 1);
        const expected = {
          notification_count: unread.filter((e) => e.notifies).length,
          highlight_count: unread.filter((e) => e.highlights).length,
        };
        assert.deepEqual((await roomOf(bob, room)).unread_notifications, expected);
      }),
      { numRuns: 15 },
    );
  });
});
