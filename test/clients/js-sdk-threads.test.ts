/**
 * matrix-js-sdk with thread support on, as Element runs it: A starts a thread and replies in
 * it, B replies too and sees the thread live through /sync (its reply count, its latest reply,
 * that B took part); C joins afterwards and finds the thread through `/v1/rooms/{roomId}/threads`
 * with the server's `m.thread` aggregation; reactions from three users aggregate by key in the
 * SDK and come back from `/relations`; A's edit replaces the root's content in C's client and
 * is the server's `m.replace` aggregation of the root.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import type { MatrixClient, MsgType, Room } from 'matrix-js-sdk';
import { registerUser, type TestUser } from '../helpers/client.js';
import { forEachDatabase } from '../helpers/databases.js';
import { createSdkClient, loadMatrixJsSdk } from '../helpers/matrix-js-sdk.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const C = '/_matrix/client/v3';
const DEADLINE_MS = 15_000;

/** A text message's content, as the SDK types it. */
const text = (body: string) => ({ msgtype: 'm.text' as MsgType.Text, body });

/** Asks until `check` gives a truthy value; fails naming `what` after the deadline. */
async function until<T>(what: string, check: () => T | undefined | null | false): Promise<T> {
  const deadline = Date.now() + DEADLINE_MS;
  for (;;) {
    const value = check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

forEachDatabase('matrix-js-sdk: threads, reactions and edits', (dialect) => {
  let server: TestServer;
  let users: TestUser[];
  let alice: MatrixClient;
  let bob: MatrixClient;
  let carol: MatrixClient | undefined;
  let roomId: string;
  let rootId: string;
  const replies: string[] = [];

  const join = async (user: TestUser) => {
    const res = await server.request('POST', `${C}/join/${encodeURIComponent(roomId)}`, {
      token: user.accessToken,
      body: {},
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
  };
  const roomOf = (client: MatrixClient, what: string): Promise<Room> =>
    until(`${what} to see the room`, () => client.getRoom(roomId));

  before(async () => {
    server = await startTestServer(dialect);
    users = [await registerUser(server), await registerUser(server), await registerUser(server)];
    const created = await server.request<{ room_id: string }>('POST', `${C}/createRoom`, {
      token: users[0]?.accessToken,
      body: { preset: 'public_chat', name: 'Threads' },
    });
    assert.equal(created.status, 200);
    roomId = created.body.room_id;
    await join(users[1] as TestUser);
    alice = await createSdkClient(server, users[0] as TestUser);
    bob = await createSdkClient(server, users[1] as TestUser);
    await Promise.all([
      alice.startClient({ threadSupport: true, lazyLoadMembers: true }),
      bob.startClient({ threadSupport: true, lazyLoadMembers: true }),
    ]);
  });

  after(async () => {
    alice?.stopClient();
    bob?.stopClient();
    carol?.stopClient();
    await server?.close();
  });

  it('the SDK finds stable thread support in /versions', async () => {
    const { Thread, FeatureSupport } = await loadMatrixJsSdk();
    await roomOf(alice, 'alice');
    assert.equal(Thread.hasServerSideSupport, FeatureSupport.Stable);
    assert.equal(Thread.hasServerSideListSupport, FeatureSupport.Stable);
    assert.ok(alice.supportsThreads());
  });

  it('A starts a thread, A and B reply; B sees it live with its count and latest reply', async () => {
    await roomOf(bob, 'bob');
    rootId = (await alice.sendMessage(roomId, text('the root'))).event_id;
    replies.push((await alice.sendMessage(roomId, rootId, text('first reply'))).event_id);
    const bobRoom = await roomOf(bob, 'bob');
    const seen = await until('bob to see the thread', () => bobRoom.getThread(rootId));
    replies.push((await bob.sendMessage(roomId, rootId, text('second reply'))).event_id);
    const aliceRoom = await roomOf(alice, 'alice');
    for (const [who, room] of [
      ['bob', bobRoom],
      ['alice', aliceRoom],
    ] as const) {
      // The SDK's own count of a live thread can run ahead of the replies (SDK 43 may count a
      // reply both from /sync and from the root's bundled count): the thread is judged by the
      // replies it holds, and the server's count is checked through /relations below.
      const thread = await until(`${who}'s thread to hold both replies`, () => {
        const t = room.getThread(rootId);
        const held = new Set(t?.timeline.map((e) => e.getId()) ?? []);
        return t && replies.every((id) => held.has(id)) && t.replyToEvent?.getId() === replies[1]
          ? t
          : undefined;
      });
      assert.equal(thread.rootEvent?.getContent().body, 'the root');
      // The SDK latches "took part" when its user's reply arrives, but sets it again from the
      // root's bundled aggregation whenever it re-reads the root, which may be a bundle it got
      // before the reply: it is waited for. The server's own answer is checked just below.
      await until(`${who}'s thread to show that ${who} took part`, () =>
        room.getThread(rootId)?.hasCurrentUserParticipated ? true : undefined,
      );
    }
    // The root as each participant reads it now: the server's bundled aggregation says they
    // took part, with both replies counted and the latest being Bob's.
    for (const user of [users[0], users[1]] as TestUser[]) {
      const root = await server.request<{
        unsigned?: {
          'm.relations'?: {
            'm.thread'?: {
              count: number;
              current_user_participated: boolean;
              latest_event: { event_id: string };
            };
          };
        };
      }>('GET', `${C}/rooms/${encodeURIComponent(roomId)}/event/${encodeURIComponent(rootId)}`, {
        token: user.accessToken,
      });
      assert.equal(root.status, 200);
      const bundle = root.body.unsigned?.['m.relations']?.['m.thread'];
      assert.equal(bundle?.count, 2);
      assert.equal(bundle?.current_user_participated, true, `${user.userId} took part`);
      assert.equal(bundle?.latest_event.event_id, replies[1]);
    }
    assert.equal(seen.id, rootId);
    const relations = await server.request<{ chunk: { event_id: string }[] }>(
      'GET',
      `/_matrix/client/v1/rooms/${encodeURIComponent(roomId)}/relations/${encodeURIComponent(rootId)}/m.thread`,
      { token: users[1]?.accessToken },
    );
    assert.equal(relations.status, 200);
    assert.deepEqual(relations.body.chunk.map((e) => e.event_id).sort(), [...replies].sort());
    // The replies are in the thread, not in the main timeline.
    const main = bobRoom
      .getLiveTimeline()
      .getEvents()
      .map((e) => e.getId());
    assert.ok(main.includes(rootId));
    for (const reply of replies)
      assert.ok(!main.includes(reply), `${reply} is not in the main timeline`);
  });

  it('C joins later and finds the thread and its reply count through /threads', async () => {
    const carolUser = users[2] as TestUser;
    await join(carolUser);
    carol = await createSdkClient(server, carolUser);
    // A room with history: her first /sync holds only the latest event (her join), so the
    // thread reaches her through /threads, as it does in a room with more history than a sync
    // page. (With the replies also in her first /sync, SDK 43 counted them on top of the
    // root's bundled count: 4, the same replies twice; see the report of issue #24.)
    await carol.startClient({ threadSupport: true, lazyLoadMembers: true, initialSyncLimit: 1 });
    const room = await roomOf(carol, 'carol');
    // As Element's thread panel does: the thread list's timeline sets, then the list.
    await room.createThreadsTimelineSets();
    await room.fetchRoomThreads();
    const thread = await until('carol to list the thread', () => room.getThread(rootId));
    assert.equal(thread.length, 2, 'the reply count from the server aggregation');
    assert.equal(thread.replyToEvent?.getId(), replies[1]);
    assert.equal(thread.hasCurrentUserParticipated, false, 'carol has not taken part');
    // The SDK's own request for the list, as Element's thread panel makes it.
    const { Direction, ThreadFilterType } = await loadMatrixJsSdk();
    const list = await carol.createThreadListMessagesRequest(
      roomId,
      null,
      10,
      Direction.Backward,
      ThreadFilterType.All,
    );
    assert.deepEqual(
      list.chunk.map((e) => e.event_id),
      [rootId],
    );
    const aggregation = list.chunk[0]?.unsigned?.['m.relations']?.['m.thread'] as
      { count: number; latest_event: { event_id: string } } | undefined;
    assert.equal(aggregation?.count, 2);
    assert.equal(aggregation?.latest_event.event_id, replies[1]);
  });

  it('reactions of three users aggregate by key', async () => {
    const react = (client: MatrixClient, key: string) =>
      client.sendEvent(
        roomId,
        'm.reaction' as never,
        {
          'm.relates_to': { rel_type: 'm.annotation', event_id: rootId, key },
        } as never,
      );
    await react(bob, '👍');
    await react(carol as MatrixClient, '👍');
    await react(alice, '🎉');
    const room = await roomOf(alice, 'alice');
    const sorted = await until('alice to see three reactions', () => {
      const relations = room.relations.getChildEventsForEvent(rootId, 'm.annotation', 'm.reaction');
      const byKey = relations?.getSortedAnnotationsByKey();
      const total = byKey?.reduce((n, [, events]) => n + events.size, 0) ?? 0;
      return total === 3 ? byKey : undefined;
    });
    assert.deepEqual(
      sorted.map(([key, events]) => [key, events.size]),
      [
        ['👍', 2],
        ['🎉', 1],
      ],
    );
    // The same through the server's /relations, as the SDK asks for them.
    const fetched = await (carol as MatrixClient).relations(
      roomId,
      rootId,
      'm.annotation',
      'm.reaction',
    );
    assert.deepEqual(
      fetched.events.map((e) => e.getContent()['m.relates_to']?.key).sort(),
      ['🎉', '👍', '👍'].sort(),
    );
  });

  it("A's edit replaces the root's content for C, and is the server's m.replace aggregation", async () => {
    const edit = await alice.sendMessage(roomId, {
      msgtype: 'm.text',
      body: '* the root, edited',
      'm.new_content': text('the root, edited'),
      'm.relates_to': { rel_type: 'm.replace', event_id: rootId },
    } as never);
    const room = await roomOf(carol as MatrixClient, 'carol');
    await until('carol to see the edit applied', () => {
      const root = room.findEventById(rootId) ?? room.getThread(rootId)?.rootEvent;
      return root?.getContent().body === 'the root, edited';
    });
    const fetched = await (carol as MatrixClient).fetchRoomEvent(roomId, rootId);
    const relations = fetched.unsigned?.['m.relations'] as Record<string, unknown> | undefined;
    assert.equal((relations?.['m.replace'] as { event_id?: string })?.event_id, edit.event_id);
    assert.equal((relations?.['m.thread'] as { count?: number })?.count, 2);
  });
});
