import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { assertMatchesSpec } from '../helpers/spec-contract.js';

const C = '/_matrix/client/v3';
const r = encodeURIComponent;
type Ev = {
  event_id: string;
  type: string;
  sender: string;
  room_id: string;
  content: Record<string, unknown>;
};
type Result = {
  rank: number;
  result: Ev;
  context?: {
    events_before: Ev[];
    events_after: Ev[];
    start?: string;
    end?: string;
    profile_info?: Record<string, { displayname?: string }>;
  };
};
type RoomEvents = {
  count?: number;
  highlights?: string[];
  results?: Result[];
  next_batch?: string;
  state?: Record<string, Ev[]>;
  groups?: Record<
    string,
    Record<string, { results: string[]; order: number; next_batch?: string }>
  >;
};
type Answer = { search_categories: { room_events?: RoomEvents } };

forEachDatabase('POST /search (room events)', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  let txn = 0;
  before(async () => {
    server = await startTestServer(dialect);
    [alice, bob, carol] = [
      await registerUser(server),
      await registerUser(server),
      await registerUser(server),
    ];
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
  async function say(user: TestUser, room: string, body: string) {
    const res = await server.request<{ event_id: string }>(
      'PUT',
      `${C}/rooms/${r(room)}/send/m.room.message/s${++txn}`,
      { token: user.accessToken, body: { msgtype: 'm.text', body } },
    );
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body.event_id;
  }
  async function search(user: TestUser, roomEvents: Record<string, unknown>, nextBatch?: string) {
    const res = await server.request<Answer>(
      'POST',
      `${C}/search${nextBatch ? `?next_batch=${r(nextBatch)}` : ''}`,
      { token: user.accessToken, body: { search_categories: { room_events: roomEvents } } },
    );
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assertMatchesSpec('search.yaml', 'post', '/search', 200, res.body);
    return res.body.search_categories.room_events as RoomEvents;
  }
  const ids = (events: RoomEvents) => (events.results ?? []).map((x) => x.result.event_id);

  it('finds messages by every word, case-insensitively, only in the searcher’s rooms', async () => {
    const room = await createRoom(alice, { preset: 'public_chat' });
    await join(bob, room);
    const hit = await say(alice, room, 'The Quick brown FOX jumps');
    const other = await say(bob, room, 'a quick lunch');
    await say(alice, room, 'nothing to see');
    const elsewhere = await createRoom(carol, {});
    await say(carol, elsewhere, 'quick fox in a private room');

    const both = await search(bob, { search_term: 'quick fox' });
    assert.deepEqual(ids(both), [hit]);
    assert.equal(both.count, 1);
    assert.deepEqual(both.highlights, ['quick', 'fox']);
    assert.equal(both.results?.[0]?.result.content.body, 'The Quick brown FOX jumps');
    assert.equal(typeof both.results?.[0]?.rank, 'number');
    const quick = await search(bob, { search_term: 'QUICK', order_by: 'recent' });
    assert.deepEqual(ids(quick), [other, hit]);
    const none = await search(bob, { search_term: '!!!' });
    assert.deepEqual(none.results, []);
    assert.equal(none.count, 0);
    const injected = await search(bob, { search_term: 'quick" OR "x AND NEAR(' });
    assert.deepEqual(ids(injected), []);
  });

  it('searches room names and topics by key, and honours the filter', async () => {
    const room = await createRoom(alice, {
      preset: 'public_chat',
      name: 'Gardening club',
      topic: 'Tomatoes and gardening tips',
    });
    await join(bob, room);
    const msg = await say(bob, room, 'gardening today?');
    const names = await search(alice, { search_term: 'gardening', keys: ['content.name'] });
    assert.deepEqual(
      names.results?.map((x) => x.result.type),
      ['m.room.name'],
    );
    const topics = await search(alice, { search_term: 'tomatoes', keys: ['content.topic'] });
    assert.deepEqual(
      topics.results?.map((x) => x.result.type),
      ['m.room.topic'],
    );
    const all = await search(alice, { search_term: 'gardening', order_by: 'recent' });
    assert.equal(all.results?.length, 3);
    assert.equal(ids(all)[0], msg);
    const bobs = await search(alice, {
      search_term: 'gardening',
      filter: { senders: [bob.userId] },
    });
    assert.deepEqual(ids(bobs), [msg]);
    const typed = await search(alice, {
      search_term: 'gardening',
      filter: { types: ['m.room.message'] },
    });
    assert.deepEqual(ids(typed), [msg]);
    const notHere = await search(alice, {
      search_term: 'gardening',
      filter: { not_rooms: [room] },
    });
    assert.deepEqual(ids(notHere), []);
  });

  it('leaves out what history visibility hides and what was redacted', async () => {
    const room = await createRoom(alice, {
      preset: 'public_chat',
      initial_state: [
        {
          type: 'm.room.history_visibility',
          state_key: '',
          content: { history_visibility: 'joined' },
        },
      ],
    });
    const early = await say(alice, room, 'zebra before carol');
    await join(carol, room);
    const later = await say(alice, room, 'zebra after carol joined');
    const gone = await say(alice, room, 'zebra soon redacted');
    const redact = await server.request('PUT', `${C}/rooms/${r(room)}/redact/${r(gone)}/x1`, {
      token: alice.accessToken,
      body: {},
    });
    assert.equal(redact.status, 200);
    assert.deepEqual(ids(await search(carol, { search_term: 'zebra', order_by: 'recent' })), [
      later,
    ]);
    assert.deepEqual(ids(await search(alice, { search_term: 'zebra', order_by: 'recent' })), [
      later,
      early,
    ]);
  });

  it('pages with next_batch, each result once, and groups by room and sender', async () => {
    const room = await createRoom(alice, { preset: 'public_chat' });
    await join(bob, room);
    const sent: string[] = [];
    for (let i = 0; i < 7; i++)
      sent.push(await say(i % 2 ? bob : alice, room, `pagination word ${i}`));
    const seen: string[] = [];
    let next: string | undefined;
    for (let pages = 0; pages < 10; pages++) {
      const page = await search(
        alice,
        {
          search_term: 'pagination',
          order_by: 'recent',
          filter: { limit: 3 },
          groupings: { group_by: [{ key: 'room_id' }, { key: 'sender' }] },
        },
        next,
      );
      assert.ok((page.results?.length ?? 0) <= 3);
      seen.push(...ids(page));
      const byRoom = page.groups?.room_id?.[room];
      assert.deepEqual(byRoom?.results, ids(page));
      const bySender = page.groups?.sender ?? {};
      assert.deepEqual(
        Object.values(bySender)
          .flatMap((g) => g.results)
          .sort(),
        ids(page).sort(),
      );
      if (!page.next_batch) break;
      next = page.next_batch;
    }
    assert.deepEqual(seen, [...sent].reverse());
  });

  it('counts the matches on the first page only; next_batch carries the count', async () => {
    const room = await createRoom(alice, { preset: 'public_chat' });
    for (let i = 0; i < 7; i++) await say(alice, room, `tallied word ${i}`);
    const criteria = { search_term: 'tallied', order_by: 'recent', filter: { limit: 3 } };
    const counts: number[] = [];
    const tokens: string[] = [];
    let seen = 0;
    let next: string | undefined;
    for (let pages = 0; pages < 10; pages++) {
      const page = await search(alice, criteria, next);
      counts.push(page.count ?? -1);
      seen += page.results?.length ?? 0;
      if (!page.next_batch) break;
      tokens.push(page.next_batch);
      next = page.next_batch;
    }
    assert.equal(seen, 7);
    assert.deepEqual(counts, [7, 7, 7]);
    assert.deepEqual(
      tokens.map((t) => /c(\d+)$/.exec(t)?.[1]),
      ['7', '7'],
    );
    // A token of the earlier form (no count) is counted anew; the count is the token's when
    // it carries one (it is the first page's, not counted again).
    const offset = /^o(\d+)/.exec(tokens[0] ?? '')?.[1] ?? '';
    assert.equal((await search(alice, criteria, `o${offset}`)).count, 7);
    assert.equal((await search(alice, criteria, `o${offset}c1234`)).count, 1234);
    for (const bad of [`o${offset}c`, `o${offset}cx`, `c7`]) {
      const res = await server.request<{ errcode?: string }>(
        'POST',
        `${C}/search?next_batch=${r(bad)}`,
        { token: alice.accessToken, body: { search_categories: { room_events: criteria } } },
      );
      assert.equal(res.status, 400, bad);
      assert.equal(res.body.errcode, 'M_INVALID_PARAM');
    }
  });

  it('gives context with profiles, and the rooms’ state', async () => {
    const room = await createRoom(alice, { preset: 'public_chat', name: 'Context room' });
    await join(bob, room);
    const profile = await server.request('PUT', `${C}/profile/${r(bob.userId)}/displayname`, {
      token: bob.accessToken,
      body: { displayname: 'Bobby' },
    });
    assert.equal(profile.status, 200);
    const b1 = await say(alice, room, 'before one');
    const b2 = await say(bob, room, 'before two');
    await say(bob, room, 'the needle');
    const a1 = await say(alice, room, 'after one');
    const found = await search(alice, {
      search_term: 'needle',
      event_context: { before_limit: 2, after_limit: 1, include_profile: true },
      include_state: true,
    });
    const context = found.results?.[0]?.context;
    assert.deepEqual(
      context?.events_before.map((e) => e.event_id),
      [b2, b1],
    );
    assert.deepEqual(
      context?.events_after.map((e) => e.event_id),
      [a1],
    );
    assert.equal(context?.profile_info?.[bob.userId]?.displayname, 'Bobby');
    assert.ok(context?.start && context.end);
    const state = found.state?.[room] ?? [];
    assert.ok(state.some((e) => e.type === 'm.room.name' && e.content.name === 'Context room'));
  });

  it('refuses bad requests with the spec’s errors', async () => {
    const cases: [unknown, string | undefined, number][] = [
      [{ search_categories: { room_events: {} } }, undefined, 400],
      [
        { search_categories: { room_events: { search_term: 'x', keys: ['content.foo'] } } },
        undefined,
        400,
      ],
      [
        { search_categories: { room_events: { search_term: 'x', order_by: 'best' } } },
        undefined,
        400,
      ],
      [
        { search_categories: { room_events: { search_term: 'x', filter: { limit: 'x' } } } },
        undefined,
        400,
      ],
      [
        {
          search_categories: {
            room_events: { search_term: 'x', groupings: { group_by: [{ key: 'type' }] } },
          },
        },
        undefined,
        400,
      ],
      [{ search_categories: { room_events: { search_term: 'x' } } }, 'garbage', 400],
      [{}, undefined, 400],
      [[], undefined, 400],
    ];
    for (const [body, nextBatch, status] of cases) {
      const res = await server.request<{ errcode?: string }>(
        'POST',
        `${C}/search${nextBatch ? `?next_batch=${nextBatch}` : ''}`,
        { token: alice.accessToken, body },
      );
      assert.equal(res.status, status, JSON.stringify(body));
      assert.match(res.body.errcode ?? '', /^M_/);
    }
    const noToken = await server.request('POST', `${C}/search`, {
      body: { search_categories: { room_events: { search_term: 'x' } } },
    });
    assert.equal(noToken.status, 401);
    const otherCategory = await server.request<Answer>('POST', `${C}/search`, {
      token: alice.accessToken,
      body: { search_categories: {} },
    });
    assert.equal(otherCategory.status, 200);
    assert.deepEqual(otherCategory.body, { search_categories: {} });
  });
});
