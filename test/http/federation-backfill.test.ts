/**
 * `/messages` past the join point between two Commons servers: A's user pages back beyond
 * her join and A backfills from B (outbound /backfill, the events checked and stored before
 * the join), page by page with the `end` tokens, each message once and in order; a room whose
 * history is `joined` shows nothing from before the join; with the only resident server down,
 * `/messages` answers with what A holds.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { eventually } from '../helpers/eventually.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { makeTestCa, startFederatedServer, type TestCa } from '../helpers/federation.js';
import type { TestServer } from '../helpers/server.js';

type Federated = TestServer & { serverName: string; port: number };
const r = encodeURIComponent;

interface Event {
  event_id: string;
  type: string;
  sender: string;
  content: { body?: string; membership?: string };
  unsigned?: Record<string, unknown> & { redacted_because?: unknown };
}
interface Page {
  chunk: Event[];
  end?: string;
}

forEachDatabase('backfill past the join between two Commons servers', (dialect) => {
  let ca: TestCa;
  let a: Federated;
  let b: Federated;
  let alice: TestUser;
  let bob: TestUser;

  const as =
    (server: Federated, user: TestUser) =>
    <T = Record<string, unknown>>(method: string, path: string, body?: unknown) =>
      server.request<T>(method, `/_matrix/client/v3${path}`, {
        token: user.accessToken,
        ...(body !== undefined ? { body } : {}),
      });
  /** Every page of /messages backwards, `limit` at a time, as `user` of A; oldest first. */
  async function allEvents(roomId: string, limit: number, user = alice): Promise<Event[]> {
    const events: Event[] = [];
    let from: string | undefined;
    for (let pages = 0; pages < 50; pages++) {
      const page = await as(a, user)<Page>(
        'GET',
        `/rooms/${r(roomId)}/messages?dir=b&limit=${limit}${from ? `&from=${r(from)}` : ''}`,
      );
      assert.equal(page.status, 200, JSON.stringify(page.body));
      events.push(...page.body.chunk);
      if (!page.body.end) break;
      from = page.body.end;
    }
    return events.reverse();
  }
  /** The message bodies of `allEvents`, oldest first. */
  async function allBodies(roomId: string, limit: number, user = alice): Promise<string[]> {
    return (await allEvents(roomId, limit, user))
      .filter((e) => e.type === 'm.room.message')
      .map((e) => e.content.body ?? '');
  }
  /** A message sent by `user` of `server`; its event ID. */
  async function say(
    server: Federated,
    user: TestUser,
    roomId: string,
    body: string,
    extra: Record<string, unknown> = {},
  ): Promise<string> {
    const sent = await as(server, user)<{ event_id: string }>(
      'PUT',
      `/rooms/${r(roomId)}/send/m.room.message/${r(body)}-${Math.random()}`,
      { msgtype: 'm.text', body, ...extra },
    );
    assert.equal(sent.status, 200, JSON.stringify(sent.body));
    return sent.body.event_id;
  }
  async function redact(server: Federated, user: TestUser, roomId: string, eventId: string) {
    const res = await as(server, user)<{ event_id: string }>(
      'PUT',
      `/rooms/${r(roomId)}/redact/${r(eventId)}/t${Math.random()}`,
      {},
    );
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body.event_id;
  }
  async function roomWithHistory(
    server: Federated,
    user: TestUser,
    count: number,
    prefix: string,
    visibility?: string,
  ): Promise<string> {
    const created = await as(server, user)<{ room_id: string }>('POST', '/createRoom', {
      preset: 'public_chat',
      room_version: '11',
      ...(visibility
        ? {
            initial_state: [
              {
                type: 'm.room.history_visibility',
                state_key: '',
                content: { history_visibility: visibility },
              },
            ],
          }
        : {}),
    });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    const roomId = created.body.room_id;
    for (let i = 0; i < count; i++) {
      const sent = await as(server, user)(
        'PUT',
        `/rooms/${r(roomId)}/send/m.room.message/${prefix}-${i}`,
        { msgtype: 'm.text', body: `${prefix} ${i}` },
      );
      assert.equal(sent.status, 200);
    }
    return roomId;
  }

  before(async () => {
    ca = makeTestCa();
    a = await startFederatedServer(dialect, ca);
    b = await startFederatedServer(dialect, ca);
    alice = await registerUser(a, 'alice');
    bob = await registerUser(b, 'bob');
  });
  after(async () => {
    await a?.close();
    await b?.close();
    rmSync(ca.dir, { recursive: true, force: true });
  });

  it('pages back past the join: every earlier message, once, in order, page by page', async () => {
    const roomId = await roomWithHistory(b, bob, 40, 'old');
    const joined = await as(a, alice)('POST', `/join/${r(roomId)}?via=${r(b.serverName)}`, {});
    assert.equal(joined.status, 200, JSON.stringify(joined.body));
    const said = await as(a, alice)('PUT', `/rooms/${r(roomId)}/send/m.room.message/new`, {
      msgtype: 'm.text',
      body: 'new',
    });
    assert.equal(said.status, 200);
    const expected = [...Array.from({ length: 40 }, (_, i) => `old ${i}`), 'new'];
    assert.deepEqual(await allBodies(roomId, 7), expected);
    // Read again, in one page: the same (nothing fetched twice, nothing lost).
    assert.deepEqual(await allBodies(roomId, 100), expected);
    // One page holds it all, back to the room's first message: no `end`.
    const page = await as(a, alice)<Page>('GET', `/rooms/${r(roomId)}/messages?dir=b&limit=200`);
    assert.equal(page.body.end, undefined);
    assert.equal(
      page.body.chunk.filter((e) => e.type === 'm.room.message').at(-1)?.content.body,
      'old 0',
    );
  });

  it('a page that ends where the history held here ends keeps `end`: a backfill can find more', async () => {
    const roomId = await roomWithHistory(b, bob, 3, 'held');
    const joined = await as(a, alice)('POST', `/join/${r(roomId)}?via=${r(b.serverName)}`, {});
    assert.equal(joined.status, 200, JSON.stringify(joined.body));
    // A holds only alice's join in its timeline: a page of one is full, and asks no one.
    const page = await as(a, alice)<Page>('GET', `/rooms/${r(roomId)}/messages?dir=b&limit=1`);
    assert.deepEqual(
      page.body.chunk.map((e) => [e.type, e.sender]),
      [['m.room.member', alice.userId]],
    );
    assert.ok(page.body.end, 'older events are on B');
    const older = await as(a, alice)<Page>(
      'GET',
      `/rooms/${r(roomId)}/messages?dir=b&limit=100&from=${r(page.body.end ?? '')}`,
    );
    assert.equal(older.status, 200, JSON.stringify(older.body));
    assert.deepEqual(
      older.body.chunk.filter((e) => e.type === 'm.room.message').map((e) => e.content.body),
      ['held 2', 'held 1', 'held 0'],
    );
    assert.equal(older.body.end, undefined, 'back to the start of the room');
  });

  it('history visible to members only since they joined: nothing from before the join', async () => {
    const roomId = await roomWithHistory(b, bob, 5, 'secret', 'joined');
    const joined = await as(a, alice)('POST', `/join/${r(roomId)}?via=${r(b.serverName)}`, {});
    assert.equal(joined.status, 200, JSON.stringify(joined.body));
    const bodies = await allBodies(roomId, 10);
    assert.deepEqual(
      bodies.filter((body) => body.startsWith('secret')),
      [],
    );
  });

  it('redactions apply both ways, search and threads index backfilled events, nothing is new', async () => {
    const created = await as(b, bob)<{ room_id: string }>('POST', '/createRoom', {
      preset: 'public_chat',
      room_version: '11',
    });
    assert.equal(created.status, 200);
    const roomId = created.body.room_id;
    const early = await say(b, bob, roomId, 'alpha redacted before the join');
    await redact(b, bob, roomId, early);
    const kept = await say(b, bob, roomId, 'beta findme');
    const root = await say(b, bob, roomId, 'thread root');
    await say(b, bob, roomId, 'in the thread', {
      'm.relates_to': { rel_type: 'm.thread', event_id: root },
    });
    const late = await say(b, bob, roomId, 'gamma redacted after the join');
    const joined = await as(a, alice)('POST', `/join/${r(roomId)}?via=${r(b.serverName)}`, {});
    assert.equal(joined.status, 200, JSON.stringify(joined.body));
    // The join was made with partial state: a /sync that does not lazy-load members shows the
    // room once its members are all in (as Synapse does), a moment later.
    const sync = await eventually(
      () =>
        as(a, alice)<{
          next_batch: string;
          rooms?: { join?: Record<string, { unread_notifications?: Record<string, number> }> };
        }>('GET', '/sync?timeout=0'),
      (res) => res.status === 200 && res.body.rooms?.join?.[roomId] !== undefined,
      30_000,
    );
    assert.ok(sync.body.rooms?.join?.[roomId], JSON.stringify(sync.body).slice(0, 300));
    const unreadBefore = sync.body.rooms?.join?.[roomId]?.unread_notifications;
    // Redacted on B after A joined: A holds the redaction, not yet its target.
    const lateRedaction = await redact(b, bob, roomId, late);
    const arrived = await eventually(
      () => as(a, alice)('GET', `/rooms/${r(roomId)}/event/${r(lateRedaction)}`),
      (res) => res.status === 200,
    );
    assert.equal(arrived.status, 200, JSON.stringify(arrived.body));

    const events = await allEvents(roomId, 50);
    const byId = new Map(events.map((e) => [e.event_id, e]));
    // A backfilled redaction redacted its (backfilled) target; a held one, its late target.
    for (const id of [early, late]) {
      const event = byId.get(id);
      assert.ok(event, `${id} is served`);
      assert.deepEqual(event.content, {}, 'served redacted');
      assert.ok(event.unsigned?.redacted_because, 'with the redaction');
    }
    assert.equal(byId.get(kept)?.content.body, 'beta findme');
    const relations = byId.get(root)?.unsigned?.['m.relations'] as
      { 'm.thread'?: { count: number } } | undefined;
    assert.equal(relations?.['m.thread']?.count, 1, 'the thread is aggregated');

    // Search finds backfilled text, and not the text of redacted events.
    const search = async (term: string) => {
      const res = await as(a, alice)<{
        search_categories: { room_events: { results: { result: { event_id: string } }[] } };
      }>('POST', '/search', { search_categories: { room_events: { search_term: term } } });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body.search_categories.room_events.results.map((x) => x.result.event_id);
    };
    assert.deepEqual(await search('findme'), [kept]);
    assert.deepEqual(await search('alpha'), []);
    assert.deepEqual(await search('gamma'), []);
    const threads = await a.request<{ chunk: { event_id: string }[] }>(
      'GET',
      `/_matrix/client/v1/rooms/${r(roomId)}/threads`,
      { token: alice.accessToken },
    );
    assert.equal(threads.status, 200, JSON.stringify(threads.body));
    assert.deepEqual(
      threads.body.chunk.map((e) => e.event_id),
      [root],
    );

    // Nothing backfilled is new: no notification counted, nothing in an incremental /sync.
    const next = await as(a, alice)<{
      rooms?: {
        join?: Record<
          string,
          {
            timeline?: { events: { event_id: string }[] };
            unread_notifications?: Record<string, number>;
          }
        >;
      };
    }>('GET', `/sync?timeout=0&since=${r(sync.body.next_batch)}`);
    assert.equal(next.status, 200);
    const room = next.body.rooms?.join?.[roomId];
    const newIds = new Set((room?.timeline?.events ?? []).map((e) => e.event_id));
    for (const id of [early, kept, root, late]) assert.ok(!newIds.has(id), `${id} is not new`);
    const full = await as(a, alice)<{
      rooms: { join: Record<string, { unread_notifications?: Record<string, number> }> };
    }>('GET', '/sync?timeout=0');
    assert.deepEqual(full.body.rooms.join[roomId]?.unread_notifications, unreadBefore);
  });

  it('history visibility per user: the events an invitee of A could see, only to her', async () => {
    const carol = await registerUser(a, `carol${Math.floor(Math.random() * 1e6)}`);
    const roomId = await roomWithHistory(b, bob, 1, 'before-invite', 'invited');
    const invited = await as(b, bob)('POST', `/rooms/${r(roomId)}/invite`, {
      user_id: carol.userId,
    });
    assert.equal(invited.status, 200, JSON.stringify(invited.body));
    for (let i = 0; i < 3; i++) await say(b, bob, roomId, `while invited ${i}`);
    const carolJoined = await as(a, carol)('POST', `/join/${r(roomId)}`, {});
    assert.equal(carolJoined.status, 200, JSON.stringify(carolJoined.body));
    const aliceJoined = await as(a, alice)('POST', `/join/${r(roomId)}?via=${r(b.serverName)}`, {});
    assert.equal(aliceJoined.status, 200, JSON.stringify(aliceJoined.body));
    // Carol was invited when they were sent: she reads them, as Synapse would let her.
    const carols = await allBodies(roomId, 10, carol);
    assert.deepEqual(
      carols.filter((x) => x.startsWith('while invited')),
      ['while invited 0', 'while invited 1', 'while invited 2'],
    );
    assert.ok(!carols.some((x) => x.startsWith('before-invite')));
    // Alice was not in the room then: nothing of it, on the same server, in the same rows.
    const alices = await allBodies(roomId, 10, alice);
    assert.deepEqual(
      alices.filter((x) => x.startsWith('while invited') || x.startsWith('before-invite')),
      [],
    );
    // Nor one of those events by /event or /context.
    const theirs = (await allEvents(roomId, 10, carol)).find(
      (e) => e.content.body === 'while invited 1',
    );
    assert.ok(theirs);
    for (const path of [
      `/rooms/${r(roomId)}/event/${r(theirs.event_id)}`,
      `/rooms/${r(roomId)}/context/${r(theirs.event_id)}`,
    ]) {
      assert.equal((await as(a, alice)('GET', path)).status, 404, path);
      assert.equal((await as(a, carol)('GET', path)).status, 200, path);
    }
  });

  it('/context of an event not held, and around the join, fetches history from B', async () => {
    const created = await as(b, bob)<{ room_id: string }>('POST', '/createRoom', {
      preset: 'public_chat',
      room_version: '11',
    });
    assert.equal(created.status, 200);
    const roomId = created.body.room_id;
    const ids: string[] = [];
    for (let i = 0; i < 30; i++) ids.push(await say(b, bob, roomId, `ctx ${i}`));
    const joined = await as(a, alice)('POST', `/join/${r(roomId)}?via=${r(b.serverName)}`, {});
    assert.equal(joined.status, 200, JSON.stringify(joined.body));
    interface Context {
      event: Event;
      events_before: Event[];
      events_after: Event[];
      start: string;
      end: string;
    }
    const bodies = (events: Event[]) =>
      events.filter((e) => e.type === 'm.room.message').map((e) => e.content.body);
    // ctx 5 is not held at A: it is fetched, with the history back to it, in its place.
    const context = await as(a, alice)<Context>(
      'GET',
      `/rooms/${r(roomId)}/context/${r(ids[5] as string)}?limit=6`,
    );
    assert.equal(context.status, 200, JSON.stringify(context.body));
    assert.equal(context.body.event.content.body, 'ctx 5');
    assert.deepEqual(bodies(context.body.events_before), ['ctx 4', 'ctx 3', 'ctx 2']);
    assert.deepEqual(bodies(context.body.events_after), ['ctx 6', 'ctx 7', 'ctx 8']);
    // Its tokens page on with /messages.
    const older = await as(a, alice)<Page>(
      'GET',
      `/rooms/${r(roomId)}/messages?dir=b&limit=2&from=${r(context.body.start)}`,
    );
    assert.equal(older.status, 200, JSON.stringify(older.body));
    assert.deepEqual(bodies(older.body.chunk), ['ctx 1', 'ctx 0']);

    // Around the join, in a room whose history nothing asked for yet.
    const other = await as(b, bob)<{ room_id: string }>('POST', '/createRoom', {
      preset: 'public_chat',
      room_version: '11',
    });
    const otherId = other.body.room_id;
    for (let i = 0; i < 8; i++) await say(b, bob, otherId, `old ${i}`);
    const joinedOther = await as(a, alice)(
      'POST',
      `/join/${r(otherId)}?via=${r(b.serverName)}`,
      {},
    );
    assert.equal(joinedOther.status, 200, JSON.stringify(joinedOther.body));
    const mine = await say(a, alice, otherId, 'after the join');
    const around = await as(a, alice)<Context>(
      'GET',
      `/rooms/${r(otherId)}/context/${r(mine)}?limit=10`,
    );
    assert.equal(around.status, 200, JSON.stringify(around.body));
    assert.equal(around.body.events_before[0]?.sender, alice.userId, 'her join first');
    assert.deepEqual(bodies(around.body.events_before), ['old 7', 'old 6', 'old 5', 'old 4']);

    // An event no resident server has: 404, as for any event the requester may not see.
    const unknown = await as(a, alice)<{ errcode: string }>(
      'GET',
      `/rooms/${r(otherId)}/context/${r('$notanevent0000000000000000000000000000000000')}`,
    );
    assert.equal(unknown.status, 404, JSON.stringify(unknown.body));
    assert.equal(unknown.body.errcode, 'M_NOT_FOUND');
  });

  it('with the resident server down, /messages answers with what is held', async () => {
    const c = await startFederatedServer(dialect, ca);
    let closed = false;
    try {
      const carol = await registerUser(c, 'carol');
      const roomId = await roomWithHistory(c, carol, 3, 'far');
      const joined = await as(a, alice)('POST', `/join/${r(roomId)}?via=${r(c.serverName)}`, {});
      assert.equal(joined.status, 200, JSON.stringify(joined.body));
      await c.close();
      closed = true;
      const page = await as(a, alice)<Page>('GET', `/rooms/${r(roomId)}/messages?dir=b&limit=10`);
      assert.equal(page.status, 200, JSON.stringify(page.body));
      assert.ok(
        page.body.chunk.some((e) => e.type === 'm.room.member' && e.sender === alice.userId),
      );
      assert.ok(!page.body.chunk.some((e) => e.content.body?.startsWith('far')));
      // The backfill asked of it found nothing: no `end` (a client would page on forever).
      assert.equal(page.body.end, undefined);
      // A bad token is still refused.
      const bad = await as(a, alice)<{ errcode: string }>(
        'GET',
        `/rooms/${r(roomId)}/messages?dir=b&from=h-1`,
      );
      assert.equal(bad.status, 400);
    } finally {
      if (!closed) await c.close();
    }
  });
});
