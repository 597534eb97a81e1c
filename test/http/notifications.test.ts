import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import fc from 'fast-check';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { assertMatchesSpec } from '../helpers/spec-contract.js';
import { eventually } from '../helpers/eventually.js';

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

/**
 * Both ways of evaluating: in the event's transaction (rooms up to the inline limit, the
 * default for these small rooms: counts are right in the first /sync after the send), and
 * after it (a limit of 0: counts are read once a long-polling /sync, woken by the evaluation,
 * shows them; services/push/evaluation.ts).
 */
for (const deferred of [false, true])
  forEachDatabase(
    `notifications: push rules, unread counts, /notifications${deferred ? ', evaluated after the event' : ''}`,
    (dialect) => {
      let server: TestServer;
      let alice: TestUser;
      let bob: TestUser;
      let txn = 0;
      before(async () => {
        server = await startTestServer(
          dialect,
          deferred ? { COMMONS_PUSH_INLINE_EVALUATION_MAX_MEMBERS: '0' } : {},
        );
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
      /**
       * The room's section of the user's /sync. Evaluated after the event, the counts may not be
       * in yet: then `until` says what the test waits for, and the answer is taken from /sync
       * long-polls (woken when the evaluation raises the counts) until it holds or 20 s pass.
       * Evaluated with the event, the first answer is the one returned.
       */
      async function roomOf(
        user: TestUser,
        room: string,
        threaded = false,
        until: (joined: JoinedRoom) => boolean = () => true,
      ): Promise<JoinedRoom> {
        const filter = r(
          JSON.stringify({
            room: { rooms: [room], timeline: { limit: 1, unread_thread_notifications: threaded } },
          }),
        );
        const res = await server.request<SyncBody>('GET', `${C}/sync?filter=${filter}`, {
          token: user.accessToken,
        });
        assert.equal(res.status, 200);
        let joined = res.body.rooms.join[room];
        assert.ok(joined, 'the room is in the answer');
        let since = res.body.next_batch;
        const deadline = Date.now() + 20_000;
        while (deferred && !until(joined) && Date.now() < deadline) {
          const poll = await server.request<SyncBody>(
            'GET',
            `${C}/sync?filter=${filter}&since=${r(since)}&timeout=5000`,
            { token: user.accessToken },
          );
          assert.equal(poll.status, 200);
          since = poll.body.next_batch;
          joined = poll.body.rooms.join[room] ?? joined;
        }
        return joined;
      }
      const counting =
        (expected: Counts) =>
        (joined: JoinedRoom): boolean =>
          JSON.stringify(joined.unread_notifications) === JSON.stringify(expected);
      /** The room's unread counts, once they are `expected` when evaluated after the event. */
      async function countsOf(user: TestUser, room: string, expected: Counts): Promise<Counts> {
        return (await roomOf(user, room, false, counting(expected))).unread_notifications;
      }
      const text = (body: string) => ({ msgtype: 'm.text', body });
      const c = (notification_count: number, highlight_count: number): Counts => ({
        notification_count,
        highlight_count,
      });

      it('counts messages for the other members, highlights mentions, and receipts reset them', async () => {
        const room = await createRoom();
        const m1 = await send(alice, room, text('hello'));
        await send(alice, room, text(`hey ${localpart(bob)}, look`));
        const m3 = await send(alice, room, text('third'));
        await send(bob, room, text('bob writes'));
        assert.deepEqual(await countsOf(bob, room, c(3, 1)), c(3, 1));
        assert.deepEqual(await countsOf(alice, room, c(1, 0)), c(1, 0));
        await receipt(bob, room, 'm.read', m1);
        assert.deepEqual(await countsOf(bob, room, c(2, 1)), c(2, 1));
        await receipt(bob, room, 'm.read.private', m3);
        assert.deepEqual(await countsOf(bob, room, c(0, 0)), c(0, 0));
        // A notice does not notify (.m.rule.suppress_notices); an m.mentions mention highlights.
        await send(alice, room, { msgtype: 'm.notice', body: 'notice' });
        await send(alice, room, { ...text('hi there'), 'm.mentions': { user_ids: [bob.userId] } });
        assert.deepEqual(await countsOf(bob, room, c(1, 1)), c(1, 1));
      });

      it('evaluates a member event for its target only (as Synapse), whatever the room size', async () => {
        const room = await createRoom();
        const carol = await registerUser(server);
        // All three ask to be notified of every member event, above the default rules.
        for (const user of [alice, bob, carol]) {
          const rule = await server.request(
            'PUT',
            `${C}/pushrules/global/override/member-events-${deferred ? 'd' : 'i'}`,
            {
              token: user.accessToken,
              body: {
                conditions: [{ kind: 'event_match', key: 'type', pattern: 'm.room.member' }],
                actions: ['notify'],
              },
            },
          );
          assert.equal(rule.status, 200, JSON.stringify(rule.body));
        }
        const memberEventsOf = async (user: TestUser) => {
          const res = await server.request<{ notifications: Notification[] }>(
            'GET',
            `${C}/notifications?limit=100`,
            { token: user.accessToken },
          );
          assert.equal(res.status, 200);
          return res.body.notifications
            .filter((n) => n.room_id === room)
            .map((n) => n.event)
            .filter((e) => 'membership' in e.content)
            .map((e) => e.event_id);
        };
        // Carol's own join is about her: nobody is notified of it.
        const joined = await server.request('POST', `${C}/join/${r(room)}`, {
          token: carol.accessToken,
          body: {},
        });
        assert.equal(joined.status, 200);
        // Alice (the room's creator) removes Carol: Carol, its target, is evaluated.
        const kick = await server.request<{ event_id?: string }>(
          'POST',
          `${C}/rooms/${r(room)}/kick`,
          { token: alice.accessToken, body: { user_id: carol.userId, reason: 'test' } },
        );
        assert.equal(kick.status, 200, JSON.stringify(kick.body));
        // Written in the event's transaction even when evaluation is deferred: no wait.
        assert.equal((await memberEventsOf(carol)).length, 1, 'Carol is notified of the kick');
        // A message after it: once Bob has it, every event before it has been evaluated for him.
        const message = await send(alice, room, text('after the kick'));
        const bobs = await eventually(
          async () =>
            (
              await server.request<{ notifications: Notification[] }>(
                'GET',
                `${C}/notifications?limit=100`,
                { token: bob.accessToken },
              )
            ).body.notifications.map((n) => n.event.event_id),
          (ids) => ids.includes(message),
          20_000,
        );
        assert.ok(bobs.includes(message), 'Bob is notified of the message after the kick');
        assert.deepEqual(await memberEventsOf(bob), [], 'Bob is notified of no member event');
        assert.deepEqual(await memberEventsOf(alice), [], 'nor is Alice (the kick is hers)');
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
        assert.deepEqual(await countsOf(bob, room, c(4, 0)), c(4, 0));
        const threaded = await roomOf(bob, room, true);
        assert.deepEqual(threaded.unread_notifications, {
          notification_count: 2,
          highlight_count: 0,
        });
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
        // Counts kept from the syncs before are brought up to date: one more in the thread read
        // to t1, one more in the main timeline.
        await send(alice, room, inThread('t3'));
        await send(alice, room, text('main once more'));
        assert.deepEqual(await countsOf(bob, room, c(5, 0)), c(5, 0));
        const later = await roomOf(bob, room, true);
        assert.deepEqual(later.unread_notifications, { notification_count: 3, highlight_count: 0 });
        assert.deepEqual(later.unread_thread_notifications, {
          [root]: { notification_count: 2, highlight_count: 0 },
        });
      });

      it('lists notifications newest first, with read, only=highlight and paging', async () => {
        const room = await createRoom();
        const sent: string[] = [];
        for (let i = 0; i < 5; i++)
          sent.push(await send(alice, room, text(i === 2 ? `ping ${localpart(bob)}` : `n${i}`)));
        await receipt(bob, room, 'm.read', sent[1] as string);
        assert.deepEqual(await countsOf(bob, room, c(3, 1)), c(3, 1));
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
          highlights.body.notifications.every((n) =>
            JSON.stringify(n.actions).includes('highlight'),
          ),
        );
        for (const query of ['from=abc', 'limit=0', 'limit=x']) {
          const bad = await server.request<{ errcode: string }>(
            'GET',
            `${C}/notifications?${query}`,
            {
              token: bob.accessToken,
            },
          );
          assert.equal(bad.status, 400, query);
          assert.match(bad.body.errcode, /^M_/);
        }
        assert.equal((await server.request('GET', `${C}/notifications`)).status, 401);
      });

      if (deferred)
        it('counts evaluated after the event wake a waiting /sync and sliding sync, with no new event', async () => {
          const room = await createRoom();
          const worker = server.running.services.pushEvaluation;
          const filter = r(JSON.stringify({ room: { rooms: [room], timeline: { limit: 5 } } }));
          const slidingBody = {
            conn_id: 'deferred-counts',
            lists: { all: { ranges: [[0, 0]], timeline_limit: 5 } },
          };
          const ss = '/_matrix/client/unstable/org.matrix.simplified_msc3575/sync';
          const slide = (pos?: string, timeout?: number) =>
            server.request<{
              pos: string;
              rooms: Record<string, { notification_count?: number; timeline?: unknown[] }>;
            }>(
              'POST',
              `${ss}?${new URLSearchParams({ ...(pos ? { pos } : {}), ...(timeout ? { timeout: String(timeout) } : {}) }).toString()}`,
              {
                token: bob.accessToken,
                body: slidingBody,
              },
            );
          // The worker stopped: the event's evaluation stays pending, its counts 0.
          await worker.stop();
          try {
            await send(alice, room, text(`ping ${localpart(bob)}`));
            const first = await server.request<SyncBody>('GET', `${C}/sync?filter=${filter}`, {
              token: bob.accessToken,
            });
            assert.deepEqual(first.body.rooms.join[room]?.unread_notifications, c(0, 0));
            const slid = await slide();
            assert.equal(slid.status, 200);
            assert.equal(slid.body.rooms[room]?.notification_count ?? 0, 0);
            // Both wait; the evaluation (the worker started again) wakes them.
            const waiting = server.running.services.notifier.waiting;
            const polled = server.request<
              SyncBody & { rooms: { join: Record<string, { timeline: { events: unknown[] } }> } }
            >('GET', `${C}/sync?filter=${filter}&since=${r(first.body.next_batch)}&timeout=20000`, {
              token: bob.accessToken,
            });
            const slidPolled = slide(slid.body.pos, 20_000);
            await eventually(
              async () => server.running.services.notifier.waiting,
              (n) => n >= waiting + 2,
            );
            worker.start({ log: { warn: () => undefined } });
            const woken = await polled;
            assert.equal(woken.status, 200);
            const joined = woken.body.rooms.join[room];
            assert.ok(joined, 'the room comes with its new counts');
            assert.deepEqual(joined.unread_notifications, c(1, 1));
            assert.deepEqual(joined.timeline.events, [], 'no new event');
            const slidWoken = await slidPolled;
            assert.equal(slidWoken.status, 200);
            assert.equal(slidWoken.body.rooms[room]?.notification_count, 1);
            assert.deepEqual(slidWoken.body.rooms[room]?.timeline ?? [], []);
          } finally {
            worker.start({ log: { warn: () => undefined } });
          }
        });

      it('property: unread_notifications equals the count computed from the events and receipts, after every step', async () => {
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
            const expectedNow = () => {
              const unread = events.slice(mark + 1);
              return {
                notification_count: unread.filter((e) => e.notifies).length,
                highlight_count: unread.filter((e) => e.highlights).length,
              };
            };
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
              // Each step's counts: the server keeps them between syncs and adds what is new.
              const expected = expectedNow();
              assert.deepEqual(await countsOf(bob, room, expected), expected);
            }
          }),
          { numRuns: 15 },
        );
      });
    },
  );
