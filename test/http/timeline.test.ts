import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { assertMatchesSpec } from '../helpers/spec-contract.js';

const C = '/_matrix/client/v3';
type Ev = {
  event_id: string;
  type: string;
  sender: string;
  content: Record<string, unknown>;
  unsigned?: Record<string, unknown>;
};
type Page = { start: string; end?: string; chunk: Ev[]; state?: Ev[] };

forEachDatabase('room history: /messages, /context, /redact, history visibility', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  before(async () => {
    server = await startTestServer(dialect);
    [alice, bob, carol] = [
      await registerUser(server),
      await registerUser(server),
      await registerUser(server),
    ];
  });
  after(async () => server.close());

  const r = (roomId: string) => encodeURIComponent(roomId);
  const createRoom = async (body: Record<string, unknown>) =>
    (
      await server.request<{ room_id: string }>('POST', `${C}/createRoom`, {
        token: alice.accessToken,
        body,
      })
    ).body.room_id;
  const send = async (user: TestUser, roomId: string, text: string) => {
    const res = await server.request<{ event_id: string }>(
      'PUT',
      `${C}/rooms/${r(roomId)}/send/m.room.message/${encodeURIComponent(text)}`,
      {
        token: user.accessToken,
        body: { msgtype: 'm.text', body: text },
      },
    );
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body.event_id;
  };
  const messages = (user: TestUser, roomId: string, query: string) =>
    server.request<Page>('GET', `${C}/rooms/${r(roomId)}/messages?${query}`, {
      token: user.accessToken,
    });

  it('pages backwards and forwards through the whole timeline, each event once', async () => {
    const roomId = await createRoom({ preset: 'public_chat' });
    const sent: string[] = [];
    for (let i = 0; i < 7; i++) sent.push(await send(alice, roomId, `m${i}`));
    const seen: string[] = [];
    let from: string | undefined;
    for (;;) {
      const res = await messages(
        alice,
        roomId,
        `dir=b&limit=3&filter=${encodeURIComponent(JSON.stringify({ types: ['m.room.message'] }))}${from ? `&from=${from}` : ''}`,
      );
      assert.equal(res.status, 200);
      assertMatchesSpec(
        'message_pagination.yaml',
        'get',
        '/rooms/{roomId}/messages',
        200,
        res.body,
      );
      seen.push(...res.body.chunk.map((e) => e.event_id));
      if (!res.body.end) break;
      from = res.body.end;
    }
    assert.deepEqual(seen, [...sent].reverse());
    const forward = await messages(alice, roomId, 'dir=f&limit=100');
    const forwardMessages = forward.body.chunk
      .filter((e) => e.type === 'm.room.message')
      .map((e) => e.event_id);
    assert.deepEqual(forwardMessages, sent);
    assert.equal(forward.body.chunk[0]?.type, 'm.room.create');
  });

  it('`end` only while further events exist: both directions, filters, visibility, `to`', async () => {
    const roomId = await createRoom({ preset: 'public_chat' });
    const sent: string[] = [];
    for (let i = 0; i < 4; i++) sent.push(await send(alice, roomId, `e${i}`));
    const all = (await messages(alice, roomId, 'dir=f&limit=1000')).body;
    const total = all.chunk.length;
    assert.equal(all.end, undefined, 'one page holds the whole room going forwards');
    const only = encodeURIComponent(JSON.stringify({ types: ['m.room.message'] }));
    for (const [query, expected, hasEnd] of [
      // Backwards: a page short of the limit, exactly the limit, one short of everything.
      ['dir=b&limit=1000', total, false],
      [`dir=b&limit=${total}`, total, false],
      [`dir=b&limit=${total - 1}`, total - 1, true],
      // Forwards, the same.
      [`dir=f&limit=${total}`, total, false],
      [`dir=f&limit=${total - 1}`, total - 1, true],
      // A filter: every matching event in the page, older non-matching ones left: no `end`.
      [`dir=b&limit=4&filter=${only}`, 4, false],
      [`dir=b&limit=3&filter=${only}`, 3, true],
      [`dir=f&limit=4&filter=${only}`, 4, false],
    ] as const) {
      const page = await messages(alice, roomId, query);
      assert.equal(page.status, 200, query);
      assert.equal(page.body.chunk.length, expected, query);
      assert.equal(page.body.end !== undefined, hasEnd, query);
    }
    // The page after the last one with an `end` is the rest, and ends there.
    const first = await messages(alice, roomId, `dir=b&limit=3&filter=${only}`);
    const rest = await messages(
      alice,
      roomId,
      `dir=b&limit=3&filter=${only}&from=${encodeURIComponent(first.body.end ?? '')}`,
    );
    assert.deepEqual(
      rest.body.chunk.map((e) => e.event_id),
      [sent[0]],
    );
    assert.equal(rest.body.end, undefined);
    // Back to `to`: the events after it, then nothing further.
    for (const [limit, hasEnd] of [
      [2, true],
      [3, false],
    ] as const) {
      const bounded = await messages(
        alice,
        roomId,
        `dir=b&limit=${limit}&to=${encodeURIComponent(first.body.end ?? '')}`,
      );
      assert.deepEqual(
        bounded.body.chunk.map((e) => e.event_id),
        [sent[3], sent[2], sent[1]].slice(0, limit),
      );
      assert.equal(bounded.body.end !== undefined, hasEnd, `limit=${limit} before \`to\``);
    }

    // Events hidden from the reader (sent after they left a room whose history is for
    // members only) are not further events: the page that reaches them has no `end`.
    const joinedOnly = await createRoom({
      preset: 'public_chat',
      initial_state: [
        { type: 'm.room.history_visibility', content: { history_visibility: 'joined' } },
      ],
    });
    const joined = await server.request('POST', `${C}/join/${r(joinedOnly)}`, {
      token: carol.accessToken,
      body: {},
    });
    assert.equal(joined.status, 200);
    const seen = await send(alice, joinedOnly, 'seen');
    const leave = await server.request('POST', `${C}/rooms/${r(joinedOnly)}/leave`, {
      token: carol.accessToken,
      body: {},
    });
    assert.equal(leave.status, 200);
    for (let i = 0; i < 3; i++) await send(alice, joinedOnly, `hidden${i}`);
    const visible = (await messages(carol, joinedOnly, 'dir=f&limit=1000')).body.chunk;
    assert.equal(visible.at(-1)?.event_id, seen);
    for (const [limit, hasEnd] of [
      [visible.length, false],
      [visible.length - 1, true],
    ] as const) {
      const page = await messages(carol, joinedOnly, `dir=f&limit=${limit}`);
      assert.equal(page.body.chunk.length, limit);
      assert.equal(page.body.end !== undefined, hasEnd, `carol, limit=${limit}`);
    }
  });

  it('errors: bad token, bad dir, bad filter, non-member', async () => {
    const roomId = await createRoom({ preset: 'private_chat' });
    for (const query of [
      'dir=b&from=nonsense',
      'dir=x',
      'dir=b&filter=notjson',
      'dir=b&filter=%7B%22types%22%3A1%7D',
    ]) {
      const res = await messages(alice, roomId, query);
      assert.equal(res.status, 400, query);
      assert.ok(
        ['M_INVALID_PARAM', 'M_BAD_JSON'].includes(
          String((res.body as unknown as { errcode: string }).errcode),
        ),
        query,
      );
    }
    const missingDir = await messages(alice, roomId, '');
    assert.equal(missingDir.status, 400);
    const outsider = await messages(carol, roomId, 'dir=b');
    assert.equal(outsider.status, 403);
  });

  it('history visibility: joined hides earlier history; shared shows it; a leaver sees up to leaving', async () => {
    const joinedOnly = await createRoom({
      preset: 'public_chat',
      initial_state: [
        { type: 'm.room.history_visibility', content: { history_visibility: 'joined' } },
      ],
    });
    const early = await send(alice, joinedOnly, 'before bob');
    assert.equal(
      (
        await server.request('POST', `${C}/join/${r(joinedOnly)}`, {
          token: bob.accessToken,
          body: {},
        })
      ).status,
      200,
    );
    const late = await send(alice, joinedOnly, 'after bob');
    const bobView = (await messages(bob, joinedOnly, 'dir=b&limit=50')).body.chunk.map(
      (e) => e.event_id,
    );
    assert.ok(bobView.includes(late));
    assert.ok(!bobView.includes(early));
    const hidden = await server.request(
      'GET',
      `${C}/rooms/${r(joinedOnly)}/event/${encodeURIComponent(early)}`,
      { token: bob.accessToken },
    );
    assert.equal(hidden.status, 404);

    const shared = await createRoom({ preset: 'public_chat' });
    const sharedEarly = await send(alice, shared, 'shared early');
    assert.equal(
      (await server.request('POST', `${C}/join/${r(shared)}`, { token: bob.accessToken, body: {} }))
        .status,
      200,
    );
    assert.ok(
      (await messages(bob, shared, 'dir=b&limit=50')).body.chunk.some(
        (e) => e.event_id === sharedEarly,
      ),
    );
    assert.equal(
      (
        await server.request('POST', `${C}/rooms/${r(shared)}/leave`, {
          token: bob.accessToken,
          body: {},
        })
      ).status,
      200,
    );
    const afterLeave = await send(alice, shared, 'after bob left');
    const leaverView = (await messages(bob, shared, 'dir=b&limit=50')).body.chunk.map(
      (e) => e.event_id,
    );
    assert.ok(leaverView.includes(sharedEarly));
    assert.ok(!leaverView.includes(afterLeave));
  });

  it('/context returns the event with neighbours, state and tokens', async () => {
    const roomId = await createRoom({ preset: 'public_chat' });
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await send(alice, roomId, `c${i}`));
    const res = await server.request<{
      event: Ev;
      events_before: Ev[];
      events_after: Ev[];
      state: Ev[];
      start: string;
      end: string;
    }>('GET', `${C}/rooms/${r(roomId)}/context/${encodeURIComponent(ids[2] as string)}?limit=4`, {
      token: alice.accessToken,
    });
    assert.equal(res.status, 200);
    assertMatchesSpec(
      'event_context.yaml',
      'get',
      '/rooms/{roomId}/context/{eventId}',
      200,
      res.body,
    );
    assert.equal(res.body.event.event_id, ids[2]);
    assert.deepEqual(
      res.body.events_before.map((e) => e.event_id),
      [ids[1], ids[0]],
    );
    assert.deepEqual(
      res.body.events_after.map((e) => e.event_id),
      [ids[3], ids[4]],
    );
    assert.ok(res.body.state.some((e) => e.type === 'm.room.create'));
    // An odd limit: the extra one after the event; a limit of 1 is one event in all, 0 none.
    for (const [limit, before, after] of [
      [1, [], [ids[3]]],
      [0, [], []],
      [3, [ids[1]], [ids[3], ids[4]]],
    ] as const) {
      const around = await server.request<{ events_before: Ev[]; events_after: Ev[] }>(
        'GET',
        `${C}/rooms/${r(roomId)}/context/${encodeURIComponent(ids[2] as string)}?limit=${limit}`,
        { token: alice.accessToken },
      );
      assert.equal(around.status, 200);
      assert.deepEqual(
        [
          around.body.events_before.map((e) => e.event_id),
          around.body.events_after.map((e) => e.event_id),
        ],
        [before, after],
        `limit=${limit}`,
      );
    }
    const missing = await server.request(
      'GET',
      `${C}/rooms/${r(roomId)}/context/${encodeURIComponent('$nope')}`,
      { token: alice.accessToken },
    );
    assert.equal(missing.status, 404);
  });

  it('/redact: own events, others only with redact power; redacted content is stripped', async () => {
    const roomId = await createRoom({ preset: 'public_chat' });
    assert.equal(
      (await server.request('POST', `${C}/join/${r(roomId)}`, { token: bob.accessToken, body: {} }))
        .status,
      200,
    );
    const alicesMessage = await send(alice, roomId, 'secret');
    const refused = await server.request(
      'PUT',
      `${C}/rooms/${r(roomId)}/redact/${encodeURIComponent(alicesMessage)}/t1`,
      { token: bob.accessToken, body: {} },
    );
    assert.equal(refused.status, 403);
    assert.equal(refused.body.errcode, 'M_FORBIDDEN');
    const bobsMessage = await send(bob, roomId, 'oops');
    const own = await server.request<{ event_id: string }>(
      'PUT',
      `${C}/rooms/${r(roomId)}/redact/${encodeURIComponent(bobsMessage)}/t2`,
      {
        token: bob.accessToken,
        body: { reason: 'typo' },
      },
    );
    assert.equal(own.status, 200);
    assertMatchesSpec(
      'redaction.yaml',
      'put',
      '/rooms/{roomId}/redact/{eventId}/{txnId}',
      200,
      own.body,
    );
    const byAdmin = await server.request(
      'PUT',
      `${C}/rooms/${r(roomId)}/redact/${encodeURIComponent(alicesMessage)}/t3`,
      { token: alice.accessToken, body: {} },
    );
    assert.equal(byAdmin.status, 200);
    const fetched = await server.request<Ev>(
      'GET',
      `${C}/rooms/${r(roomId)}/event/${encodeURIComponent(bobsMessage)}`,
      { token: alice.accessToken },
    );
    assert.deepEqual(fetched.body.content, {});
    assert.equal(
      (fetched.body.unsigned?.redacted_because as Ev | undefined)?.event_id,
      own.body.event_id,
    );
    const unknown = await server.request(
      'PUT',
      `${C}/rooms/${r(roomId)}/redact/${encodeURIComponent('$missing')}/t4`,
      { token: alice.accessToken, body: {} },
    );
    assert.equal(unknown.status, 404);
  });
});
