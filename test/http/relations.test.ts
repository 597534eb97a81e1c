import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { assertMatchesSpec } from '../helpers/spec-contract.js';

const C = '/_matrix/client/v3';
const V1 = '/_matrix/client/v1';
const r = encodeURIComponent;
type Ev = {
  event_id: string;
  type: string;
  sender: string;
  content: Record<string, unknown>;
  unsigned?: Record<string, unknown> & { 'm.relations'?: Record<string, unknown> };
};
type RelationsPage = {
  chunk: Ev[];
  next_batch?: string;
  prev_batch?: string;
  recursion_depth?: number;
};
type ThreadsPage = { chunk: Ev[]; next_batch?: string };
type ThreadAggregate = { latest_event: Ev; count: number; current_user_participated: boolean };

forEachDatabase('relations, threads and bundled aggregations', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  let roomId: string;
  let txn = 0;
  before(async () => {
    server = await startTestServer(dialect);
    [alice, bob, carol] = [
      await registerUser(server),
      await registerUser(server),
      await registerUser(server),
    ];
    roomId = await createRoom(alice, { preset: 'public_chat' });
    await join(bob, roomId);
  });
  after(async () => server.close());

  async function createRoom(user: TestUser, body: Record<string, unknown>) {
    const res = await server.request<{ room_id: string }>('POST', `${C}/createRoom`, {
      token: user.accessToken,
      body,
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body.room_id;
  }
  async function join(user: TestUser, room: string) {
    const res = await server.request('POST', `${C}/join/${r(room)}`, {
      token: user.accessToken,
      body: {},
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
  }
  async function send(
    user: TestUser,
    room: string,
    content: Record<string, unknown>,
    type = 'm.room.message',
  ): Promise<string> {
    const res = await server.request<{ event_id: string }>(
      'PUT',
      `${C}/rooms/${r(room)}/send/${r(type)}/t${++txn}`,
      { token: user.accessToken, body: content },
    );
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body.event_id;
  }
  const text = (body: string) => ({ msgtype: 'm.text', body });
  const inThread = (root: string, body: string) => ({
    ...text(body),
    'm.relates_to': { rel_type: 'm.thread', event_id: root },
  });
  const edit = (target: string, body: string) => ({
    ...text(`* ${body}`),
    'm.new_content': text(body),
    'm.relates_to': { rel_type: 'm.replace', event_id: target },
  });
  const react = (target: string, key: string) => ({
    'm.relates_to': { rel_type: 'm.annotation', event_id: target, key },
  });
  async function redact(user: TestUser, room: string, eventId: string) {
    const res = await server.request(
      'PUT',
      `${C}/rooms/${r(room)}/redact/${r(eventId)}/x${++txn}`,
      { token: user.accessToken, body: {} },
    );
    assert.equal(res.status, 200, JSON.stringify(res.body));
  }
  const get = <T>(user: TestUser, path: string) =>
    server.request<T>('GET', path, { token: user.accessToken });
  const relations = (user: TestUser, room: string, eventId: string, rest = '', query = '') =>
    get<RelationsPage>(user, `${V1}/rooms/${r(room)}/relations/${r(eventId)}${rest}?${query}`);
  const eventOf = async (user: TestUser, room: string, eventId: string) => {
    const res = await get<Ev>(user, `${C}/rooms/${r(room)}/event/${r(eventId)}`);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body;
  };

  it('lists an event’s children newest first, by type, in pages that meet', async () => {
    const parent = await send(alice, roomId, text('parent'));
    const children: string[] = [];
    for (let i = 0; i < 5; i++)
      children.push(await send(bob, roomId, react(parent, `k${i}`), 'm.reaction'));
    const edited = await send(alice, roomId, edit(parent, 'parent!'));
    await send(alice, roomId, text('unrelated'));

    const all = await relations(alice, roomId, parent);
    assert.equal(all.status, 200);
    assertMatchesSpec(
      'relations.yaml',
      'get',
      '/rooms/{roomId}/relations/{eventId}',
      200,
      all.body,
    );
    assert.deepEqual(
      all.body.chunk.map((e) => e.event_id),
      [edited, ...[...children].reverse()],
    );
    assert.equal(all.body.next_batch, undefined);
    assert.equal(all.body.recursion_depth, undefined);

    const annotations = await relations(alice, roomId, parent, '/m.annotation');
    assert.deepEqual(
      annotations.body.chunk.map((e) => e.event_id),
      [...children].reverse(),
    );
    const typed = await relations(alice, roomId, parent, '/m.annotation/m.reaction');
    assert.deepEqual(typed.body.chunk.length, 5);
    const otherType = await relations(alice, roomId, parent, '/m.annotation/m.room.message');
    assert.deepEqual(otherType.body.chunk, []);

    // Pages of two, backwards, then forwards: each child once, in order.
    const seen: string[] = [];
    let from: string | undefined;
    for (let pages = 0; pages < 10; pages++) {
      const page = await relations(
        alice,
        roomId,
        parent,
        '/m.annotation',
        `limit=2${from ? `&from=${from}` : ''}`,
      );
      assert.equal(page.status, 200);
      assert.ok(page.body.chunk.length <= 2);
      if (from) assert.ok(page.body.prev_batch);
      seen.push(...page.body.chunk.map((e) => e.event_id));
      if (!page.body.next_batch) break;
      from = page.body.next_batch;
    }
    assert.deepEqual(seen, [...children].reverse());
    const forward = await relations(alice, roomId, parent, '/m.annotation', 'dir=f&limit=3');
    assert.deepEqual(
      forward.body.chunk.map((e) => e.event_id),
      children.slice(0, 3),
    );
    assert.ok(forward.body.next_batch);
    const rest = await relations(
      alice,
      roomId,
      parent,
      '/m.annotation',
      `dir=f&from=${forward.body.next_batch ?? ''}`,
    );
    assert.deepEqual(
      rest.body.chunk.map((e) => e.event_id),
      children.slice(3),
    );
  });

  it('follows relations of relations with recurse, and says how deep', async () => {
    const root = await send(alice, roomId, text('root'));
    const reply = await send(bob, roomId, inThread(root, 'in thread'));
    const reaction = await send(alice, roomId, react(reply, '👍'), 'm.reaction');
    const direct = await relations(alice, roomId, root, '', 'recurse=false');
    assert.deepEqual(
      direct.body.chunk.map((e) => e.event_id),
      [reply],
    );
    assert.equal(direct.body.recursion_depth, 1);
    const deep = await relations(alice, roomId, root, '', 'recurse=true');
    assert.deepEqual(
      deep.body.chunk.map((e) => e.event_id),
      [reaction, reply],
    );
    assert.equal(deep.body.recursion_depth, 3);
    const deepAnnotations = await relations(alice, roomId, root, '/m.annotation', 'recurse=true');
    assert.deepEqual(
      deepAnnotations.body.chunk.map((e) => e.event_id),
      [reaction],
    );
  });

  it('refuses what the requester cannot see and what is malformed', async () => {
    const parent = await send(alice, roomId, text('secret?'));
    const privateRoom = await createRoom(alice, {});
    const hidden = await send(alice, privateRoom, text('hidden'));
    const cases: [TestUser, string, string, string, number, string][] = [
      [carol, privateRoom, hidden, '', 404, 'M_NOT_FOUND'],
      [alice, roomId, '$missing', '', 404, 'M_NOT_FOUND'],
      [alice, privateRoom, parent, '', 404, 'M_NOT_FOUND'],
      [alice, roomId, parent, '', 400, 'M_INVALID_PARAM'],
      [alice, 'not-a-room', parent, '', 400, 'M_INVALID_PARAM'],
    ];
    for (const [user, room, eventId, rest, status, errcode] of cases) {
      const query = status === 400 && room === roomId ? 'from=zzz' : '';
      const res = await server.request<{ errcode: string }>(
        'GET',
        `${V1}/rooms/${r(room)}/relations/${r(eventId)}${rest}?${query}`,
        { token: user.accessToken },
      );
      assert.equal(res.status, status, `${room} ${eventId}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.errcode, errcode);
    }
    for (const query of ['dir=x', 'limit=0', 'limit=abc', 'recurse=maybe']) {
      const res = await relations(alice, roomId, parent, '', query);
      assert.equal(res.status, 400, query);
      assert.match((res.body as unknown as { errcode: string }).errcode, /^M_/);
    }
    const noToken = await server.request('GET', `${V1}/rooms/${r(roomId)}/relations/${r(parent)}`);
    assert.equal(noToken.status, 401);
    const threadsNoToken = await server.request('GET', `${V1}/rooms/${r(roomId)}/threads`);
    assert.equal(threadsNoToken.status, 401);
    const threadsHidden = await get(carol, `${V1}/rooms/${r(privateRoom)}/threads`);
    assert.equal(threadsHidden.status, 403);
    for (const query of ['include=some', 'limit=0', 'from=nope']) {
      const res = await get(alice, `${V1}/rooms/${r(roomId)}/threads?${query}`);
      assert.equal(res.status, 400, query);
    }
  });

  it('bundles m.thread: latest event, count, participation; redaction updates it', async () => {
    const room = await createRoom(alice, { preset: 'public_chat' });
    await join(bob, room);
    await join(carol, room);
    const root = await send(alice, room, text('thread root'));
    const first = await send(bob, room, inThread(root, 'one'));
    const second = await send(bob, room, inThread(root, 'two'));

    const thread = (e: Ev) => e.unsigned?.['m.relations']?.['m.thread'] as ThreadAggregate;
    const asAlice = thread(await eventOf(alice, room, root));
    assert.equal(asAlice.count, 2);
    assert.equal(asAlice.latest_event.event_id, second);
    assert.equal(asAlice.latest_event.content.body, 'two');
    assert.equal(asAlice.current_user_participated, true, 'the root’s sender took part');
    assert.equal(thread(await eventOf(bob, room, root)).current_user_participated, true);
    assert.equal(thread(await eventOf(carol, room, root)).current_user_participated, false);

    // An edit of the latest reply is bundled on the latest event.
    const fix = await send(bob, room, edit(second, 'two!'));
    const withEdit = thread(await eventOf(alice, room, root));
    const latestRelations = withEdit.latest_event.unsigned?.['m.relations'] as Record<string, Ev>;
    assert.equal(latestRelations['m.replace']?.event_id, fix);

    await redact(bob, room, second);
    const afterRedaction = thread(await eventOf(alice, room, root));
    assert.equal(afterRedaction.count, 1);
    assert.equal(afterRedaction.latest_event.event_id, first);
    await redact(bob, room, first);
    const gone = await eventOf(alice, room, root);
    assert.equal(gone.unsigned?.['m.relations'], undefined);
  });

  it('bundles the latest edit by the original sender only, and references', async () => {
    const room = await createRoom(alice, { preset: 'public_chat' });
    await join(bob, room);
    const original = await send(alice, room, text('orignal'));
    const e1 = await send(alice, room, edit(original, 'original'));
    const e2 = await send(alice, room, edit(original, 'original.'));
    await send(bob, room, edit(original, 'hijacked')); // another sender: not an edit
    await send(alice, room, edit(original, 'wrong type'), 'org.example.other');
    const ref1 = await send(
      bob,
      room,
      {
        'm.relates_to': { rel_type: 'm.reference', event_id: original },
      },
      'org.example.ref',
    );
    const bundled = (await eventOf(bob, room, original)).unsigned?.['m.relations'] as Record<
      string,
      unknown
    >;
    assert.equal((bundled['m.replace'] as Ev).event_id, e2);
    assert.deepEqual((bundled['m.replace'] as Ev).content['m.new_content'], text('original.'));
    assert.deepEqual(bundled['m.reference'], { chunk: [{ event_id: ref1 }] });
    assert.equal(bundled['m.thread'], undefined);
    assert.equal(bundled['m.annotation'], undefined);
    // The original's own content is served as sent (edits are not applied by the server).
    assert.equal((await eventOf(bob, room, original)).content.body, 'orignal');

    await redact(alice, room, e2);
    const afterOne = (await eventOf(bob, room, original)).unsigned?.['m.relations'] as Record<
      string,
      Ev
    >;
    assert.equal(afterOne['m.replace']?.event_id, e1);
    // A redacted original has no edit bundled.
    await redact(alice, room, original);
    const redacted = (await eventOf(bob, room, original)).unsigned?.['m.relations'] as
      Record<string, unknown> | undefined;
    assert.equal(redacted?.['m.replace'], undefined);
  });

  it('serves aggregations in /messages, /context and /sync', async () => {
    const room = await createRoom(alice, { preset: 'public_chat' });
    await join(bob, room);
    const root = await send(alice, room, text('root'));
    const reply = await send(bob, room, inThread(root, 'reply'));
    const plain = await send(alice, room, text('plain'));
    const relationsIn = (events: Ev[], id: string) =>
      events.find((e) => e.event_id === id)?.unsigned?.['m.relations'];

    const messages = await get<{ chunk: Ev[] }>(
      alice,
      `${C}/rooms/${r(room)}/messages?dir=b&limit=20`,
    );
    assert.equal(messages.status, 200);
    const inMessages = relationsIn(messages.body.chunk, root) as Record<string, ThreadAggregate>;
    assert.equal(inMessages['m.thread']?.latest_event.event_id, reply);
    assert.equal(relationsIn(messages.body.chunk, plain), undefined);

    const context = await get<{ event: Ev; events_before: Ev[]; events_after: Ev[] }>(
      alice,
      `${C}/rooms/${r(room)}/context/${r(plain)}?limit=10`,
    );
    assert.equal(context.status, 200);
    const inContext = relationsIn(context.body.events_before, root) as Record<
      string,
      ThreadAggregate
    >;
    assert.equal(inContext['m.thread']?.count, 1);
    const atRoot = await get<{ event: Ev }>(alice, `${C}/rooms/${r(room)}/context/${r(root)}`);
    assert.ok(atRoot.body.event.unsigned?.['m.relations']);

    const sync = await get<{
      rooms: { join: Record<string, { timeline: { events: Ev[] } }> };
    }>(bob, `${C}/sync?filter=${r(JSON.stringify({ room: { timeline: { limit: 10 } } }))}`);
    assert.equal(sync.status, 200);
    const timeline = sync.body.rooms.join[room]?.timeline.events ?? [];
    const inSync = relationsIn(timeline, root) as Record<string, ThreadAggregate>;
    assert.equal(inSync['m.thread']?.latest_event.event_id, reply);
    assert.equal(inSync['m.thread']?.current_user_participated, true);
  });

  it('filters /messages by related_by_rel_types and related_by_senders', async () => {
    const room = await createRoom(alice, { preset: 'public_chat' });
    await join(bob, room);
    const threaded = await send(alice, room, text('threaded'));
    const reacted = await send(alice, room, text('reacted'));
    await send(alice, room, text('alone'));
    await send(bob, room, inThread(threaded, 'r'));
    await send(alice, room, react(reacted, 'x'), 'm.reaction');
    const ids = async (filter: Record<string, unknown>) => {
      const res = await get<{ chunk: Ev[] }>(
        alice,
        `${C}/rooms/${r(room)}/messages?dir=b&limit=50&filter=${r(JSON.stringify(filter))}`,
      );
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body.chunk.map((e) => e.event_id);
    };
    assert.deepEqual(await ids({ related_by_rel_types: ['m.thread'] }), [threaded]);
    assert.deepEqual(await ids({ related_by_rel_types: ['m.annotation', 'm.thread'] }), [
      reacted,
      threaded,
    ]);
    assert.deepEqual(await ids({ related_by_senders: [bob.userId] }), [threaded]);
    assert.deepEqual(
      await ids({ related_by_senders: [alice.userId], related_by_rel_types: ['m.thread'] }),
      [],
    );
    const bad = await get(
      alice,
      `${C}/rooms/${r(room)}/messages?dir=b&filter=${r(JSON.stringify({ related_by_senders: 'x' }))}`,
    );
    assert.equal(bad.status, 400);
  });

  it('lists threads by latest activity, participated ones, in pages', async () => {
    const room = await createRoom(alice, { preset: 'public_chat' });
    await join(bob, room);
    await join(carol, room);
    const roots: string[] = [];
    for (let i = 0; i < 5; i++) roots.push(await send(alice, room, text(`root ${i}`)));
    for (const root of roots) await send(bob, room, inThread(root, 'reply'));
    // Carol replies to root 1 last: it becomes the most recently active.
    await send(carol, room, inThread(roots[1] as string, 'carol'));
    const expected = [roots[1], roots[4], roots[3], roots[2], roots[0]];

    const all = await get<ThreadsPage>(alice, `${V1}/rooms/${r(room)}/threads`);
    assert.equal(all.status, 200);
    assertMatchesSpec('threads_list.yaml', 'get', '/rooms/{roomId}/threads', 200, all.body);
    assert.deepEqual(
      all.body.chunk.map((e) => e.event_id),
      expected,
    );
    const first = all.body.chunk[0];
    const aggregate = first?.unsigned?.['m.relations']?.['m.thread'] as ThreadAggregate;
    assert.equal(aggregate.count, 2);

    const seen: string[] = [];
    let from: string | undefined;
    for (let pages = 0; pages < 10; pages++) {
      const page = await get<ThreadsPage>(
        alice,
        `${V1}/rooms/${r(room)}/threads?limit=2${from ? `&from=${from}` : ''}`,
      );
      assert.equal(page.status, 200);
      seen.push(...page.body.chunk.map((e) => e.event_id));
      if (!page.body.next_batch) break;
      from = page.body.next_batch;
    }
    assert.deepEqual(seen, expected);

    const carols = await get<ThreadsPage>(
      carol,
      `${V1}/rooms/${r(room)}/threads?include=participated`,
    );
    assert.deepEqual(
      carols.body.chunk.map((e) => e.event_id),
      [roots[1]],
    );
    const alices = await get<ThreadsPage>(
      alice,
      `${V1}/rooms/${r(room)}/threads?include=participated`,
    );
    assert.equal(alices.body.chunk.length, 5);
  });
});
