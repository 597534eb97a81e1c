/**
 * Two Commons servers in one room; B is stopped, A's users go on talking (their messages are
 * queued for B in their own transactions, and sending is not held up), B starts again on the
 * same database, signing key and port, and every message queued reaches it — each once, in
 * order — once B contacts A. Then the other way round: B's messages while A is down.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { eventually } from '../helpers/eventually.js';
import { makeTestCa, restartable, type Restartable, type TestCa } from '../helpers/federation.js';

const r = encodeURIComponent;
const COUNT = 30;

forEachDatabase('a destination stopped and restarted loses nothing', (dialect) => {
  let ca: TestCa;
  let a: Restartable;
  let b: Restartable;
  let alice: TestUser;
  let bob: TestUser;
  let roomId: string;

  const as =
    (node: Restartable, user: TestUser) =>
    <T = Record<string, unknown>>(method: string, urlPath: string, body?: unknown) =>
      node.server.request<T>(method, `/_matrix/client/v3${urlPath}`, {
        token: user.accessToken,
        ...(body !== undefined ? { body } : {}),
      });
  /** The bodies of the room's messages a user sees, oldest first. */
  const bodiesSeen = async (node: Restartable, user: TestUser) => {
    const page = await as(node, user)<{ chunk: { type: string; content: { body?: string } }[] }>(
      'GET',
      `/rooms/${r(roomId)}/messages?dir=b&limit=200`,
    );
    return page.body.chunk
      .filter((e) => e.type === 'm.room.message')
      .map((e) => e.content.body ?? '')
      .reverse();
  };
  const send = (node: Restartable, user: TestUser, body: string) =>
    as(node, user)('PUT', `/rooms/${r(roomId)}/send/m.room.message/${r(body)}`, {
      msgtype: 'm.text',
      body,
    });

  before(async () => {
    ca = makeTestCa();
    a = await restartable(dialect, ca);
    b = await restartable(dialect, ca);
    alice = await registerUser(a.server, 'alice');
    bob = await registerUser(b.server, 'bob');
    const created = await as(b, bob)<{ room_id: string }>('POST', '/createRoom', {
      preset: 'public_chat',
      room_version: '11',
    });
    assert.equal(created.status, 200);
    roomId = created.body.room_id;
    const joined = await as(a, alice)('POST', `/join/${r(roomId)}?via=${r(b.serverName)}`, {});
    assert.equal(joined.status, 200, JSON.stringify(joined.body));
  });
  after(async () => {
    await a?.destroy();
    await b?.destroy();
    if (ca) rmSync(ca.dir, { recursive: true, force: true });
  });

  it('A’s messages sent while B is down all reach B after its restart, once each, in order', async () => {
    await b.stop();
    const sent: string[] = [];
    for (let i = 0; i < COUNT; i++) {
      const body = `from A while B is down ${i}`;
      const answer = await send(a, alice, body);
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      sent.push(body);
    }
    await b.start();
    // B contacts A (Bob says something), which ends A's backoff for B.
    assert.equal((await send(b, bob, 'B is back')).status, 200);
    const seen = await eventually(
      () => bodiesSeen(b, bob),
      (bodies) => sent.every((body) => bodies.includes(body)),
      60_000,
    );
    assert.deepEqual(
      seen.filter((body) => body.startsWith('from A while')),
      sent,
    );
  });

  it('and the other way round: B’s messages while A is down reach A', async () => {
    await a.stop();
    const sent: string[] = [];
    for (let i = 0; i < COUNT; i++) {
      const body = `from B while A is down ${i}`;
      assert.equal((await send(b, bob, body)).status, 200);
      sent.push(body);
    }
    await a.start();
    assert.equal((await send(a, alice, 'A is back')).status, 200);
    const seen = await eventually(
      () => bodiesSeen(a, alice),
      (bodies) => sent.every((body) => bodies.includes(body)),
      60_000,
    );
    assert.deepEqual(
      seen.filter((body) => body.startsWith('from B while')),
      sent,
    );
    // Nothing was lost the first time round either, on A's side.
    assert.ok(seen.includes('B is back'));
  });
});
