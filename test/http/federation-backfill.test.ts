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
import { registerUser, type TestUser } from '../helpers/client.js';
import { makeTestCa, startFederatedServer, type TestCa } from '../helpers/federation.js';
import type { TestServer } from '../helpers/server.js';

type Federated = TestServer & { serverName: string; port: number };
const r = encodeURIComponent;

interface Page {
  chunk: { type: string; sender: string; content: { body?: string; membership?: string } }[];
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
  /** Every page of /messages backwards, `limit` at a time; the message bodies, oldest first. */
  async function allBodies(roomId: string, limit: number): Promise<string[]> {
    const bodies: string[] = [];
    let from: string | undefined;
    for (let pages = 0; pages < 50; pages++) {
      const page = await as(a, alice)<Page>(
        'GET',
        `/rooms/${r(roomId)}/messages?dir=b&limit=${limit}${from ? `&from=${r(from)}` : ''}`,
      );
      assert.equal(page.status, 200, JSON.stringify(page.body));
      for (const e of page.body.chunk)
        if (e.type === 'm.room.message') bodies.push(e.content.body ?? '');
      if (!page.body.end) break;
      from = page.body.end;
    }
    return bodies.reverse();
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
