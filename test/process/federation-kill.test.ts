/**
 * Issue #21: the Commons process that sends federation traffic is SIGKILLed (no graceful stop)
 * with many events and an EDU queued for a destination, and with a transaction the
 * destination has taken and answered but whose answer never reached the sender. A new process
 * on the same database must deliver every event to the destination exactly once and in order,
 * and its outbox must end empty, the destination's backoff cleared.
 *
 * A (the sender) runs as its own process; B (the destination, another Commons) runs in this
 * one behind a proxy that can make it unreachable (`down`) or swallow its answers (`hold`).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, it } from 'node:test';
import { createTestDatabase, forEachDatabase, type TestDatabase } from '../helpers/databases.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { eventually } from '../helpers/eventually.js';
import { federationEnv, freePort, makeTestCa, type TestCa } from '../helpers/federation.js';
import { HoldingProxy } from '../helpers/holding-proxy.js';
import { killableCommons, openCounter } from '../helpers/kill-process.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const C = '/_matrix/client/v3';
/** More than two transactions' worth (50 PDUs each). */
const QUEUED = 120;
const WAIT_MS = 120_000;
const r = encodeURIComponent;

interface Page {
  chunk: { event_id: string; type: string; sender: string; content: { body?: string } }[];
}

forEachDatabase('the federation sender killed with events queued (issue #21)', (dialect) => {
  let ca: TestCa;
  let database: TestDatabase;
  let dataDir: string;
  let portA: number;
  let proxy: HoldingProxy;
  let b: TestServer;
  let nameB: string;
  let alice: TestUser;
  let bob: TestUser;
  let roomId: string;
  const a = killableCommons(() => ({
    COMMONS_DATA_DIR: dataDir,
    COMMONS_DATABASE_URL: database.url,
    ...federationEnv(ca, portA),
    COMMONS_FEDERATION_RETRY_MAX_SECONDS: '1',
  }));

  /** Alice's messages as `user` sees them on `server`, oldest first. */
  const messages = async (server: TestServer, user: TestUser) => {
    const page = await server.request<Page>(
      'GET',
      `${C}/rooms/${r(roomId)}/messages?dir=b&limit=1000`,
      { token: user.accessToken },
    );
    assert.equal(page.status, 200);
    return page.body.chunk
      .filter((e) => e.type === 'm.room.message' && e.sender === alice.userId)
      .reverse();
  };
  /** Entries A's outbox holds for B, read from its database beside the process. */
  const queuedForB = async () => {
    const counter = await openCounter(database);
    try {
      return await counter.count(
        'SELECT count(*) AS n FROM federation_outbox WHERE destination = $1',
        [nameB],
      );
    } finally {
      await counter.close();
    }
  };
  const failuresOfB = async () => {
    const counter = await openCounter(database);
    try {
      return await counter.count(
        'SELECT coalesce(sum(failures), 0) AS n FROM federation_destinations WHERE destination = $1',
        [nameB],
      );
    } finally {
      await counter.close();
    }
  };

  before(async () => {
    ca = makeTestCa();
    database = await createTestDatabase(dialect);
    dataDir = mkdtempSync(path.join(tmpdir(), 'commons-fed-kill-'));
    portA = await freePort();
    const proxyPort = await freePort();
    const portB = await freePort();
    proxy = new HoldingProxy(ca, proxyPort, portB);
    await proxy.start();
    // B is named by the proxy's port and listens behind it.
    b = await startTestServer(dialect, {
      ...federationEnv(ca, proxyPort),
      COMMONS_FEDERATION_LISTEN_PORT: String(portB),
      COMMONS_FEDERATION_RETRY_MAX_SECONDS: '1',
    });
    nameB = `127.0.0.1:${proxyPort}`;
    await a.start();
    alice = await registerUser(a.server, 'alice');
    bob = await registerUser(b, 'bob');
    const created = await b.request<{ room_id: string }>('POST', `${C}/createRoom`, {
      token: bob.accessToken,
      body: { preset: 'public_chat', room_version: '11' },
    });
    assert.equal(created.status, 200);
    roomId = created.body.room_id;
    const joined = await a.request('POST', `${C}/join/${r(roomId)}?via=${r(nameB)}`, {
      token: alice.accessToken,
      body: {},
    });
    assert.equal(joined.status, 200, JSON.stringify(joined.body));
  });
  after(async () => {
    await a.kill();
    await b?.close();
    await proxy?.stop();
    await database?.drop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    if (ca) rmSync(ca.dir, { recursive: true, force: true });
  });

  it('delivers every queued event once, in order, after a SIGKILL mid-transaction', async (t) => {
    // B unreachable: everything Alice says is queued for it.
    proxy.setMode('down');
    const sent: { id: string; body: string }[] = [];
    for (let i = 0; i < QUEUED; i++) {
      const body = `queued ${i}`;
      const answer = await a.request<{ event_id: string }>(
        'PUT',
        `${C}/rooms/${r(roomId)}/send/m.room.message/q${i}`,
        { token: alice.accessToken, body: { msgtype: 'm.text', body } },
      );
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      sent.push({ id: answer.body.event_id, body });
    }
    const last = sent[sent.length - 1]?.id as string;
    const receipt = await a.request('POST', `${C}/rooms/${r(roomId)}/receipt/m.read/${r(last)}`, {
      token: alice.accessToken,
      body: {},
    });
    assert.equal(receipt.status, 200);

    // B comes back but its answers are swallowed: B takes the first transaction, A waits for
    // an answer that never comes, and is killed then.
    proxy.setMode('hold');
    await eventually(
      () => messages(b, bob),
      (seen) => seen.length > 0,
      WAIT_MS,
    );
    await a.kill();
    const seenAtKill = (await messages(b, bob)).length;
    t.diagnostic(`B held ${seenAtKill} of ${QUEUED} events at the kill`);
    assert.ok(proxy.held > 0, 'a transaction was in flight');
    assert.ok(seenAtKill < QUEUED, 'the kill came before everything was sent');
    // No answer reached A: every entry is still queued.
    const queuedAtKill = await queuedForB();
    assert.ok(queuedAtKill >= QUEUED + 1, `${queuedAtKill} entries queued at the kill`);

    proxy.setMode('pass');
    await a.start();
    const seen = await eventually(
      () => messages(b, bob),
      (events) => events.length >= QUEUED,
      WAIT_MS,
    );
    // Once each, in the order they were sent, with the IDs A gave them.
    assert.deepEqual(
      seen.map((e) => [e.event_id, e.content.body]),
      sent.map((e) => [e.id, e.body]),
    );
    // The receipt queued with them arrived too.
    await eventually(
      async () => {
        const synced = await b.request<{
          rooms?: {
            join?: Record<
              string,
              { ephemeral?: { events: { type: string; content: Record<string, unknown> }[] } }
            >;
          };
        }>('GET', `${C}/sync`, { token: bob.accessToken });
        return synced.body.rooms?.join?.[roomId]?.ephemeral?.events ?? [];
      },
      (events) =>
        events.some(
          (e) =>
            e.type === 'm.receipt' &&
            (e.content[last] as { 'm.read'?: Record<string, unknown> } | undefined)?.['m.read']?.[
              alice.userId
            ] !== undefined,
        ),
      WAIT_MS,
    );
    // A's side: its outbox for B drains, and B's backoff is cleared.
    const state = await eventually(
      async () => ({ queued: await queuedForB(), failures: await failuresOfB() }),
      (now) => now.queued === 0,
      WAIT_MS,
    );
    assert.deepEqual(state, { queued: 0, failures: 0 });
    // And A's own timeline holds the same events, in the same order.
    assert.deepEqual(
      (await messages(a.server, alice)).map((e) => e.event_id),
      sent.map((e) => e.id),
    );
  });
});
