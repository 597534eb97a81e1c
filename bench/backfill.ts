/**
 * `node --import tsx bench/backfill.ts [messages]`: history fetched from another server.
 *
 * Two Commons (test/helpers/federation.ts): B's user sends `messages` messages to a room, A's
 * user joins it and pages back with `/messages?limit=100` past the join — each page past what
 * A holds backfilled from B (`/backfill`, each event checked against the state before it,
 * `/state_ids` once per answer, the history derivers run). Beside it, in the same run: the same
 * pages read again, now held at A (events per second each).
 *
 * SQLite by default; `COMMONS_TEST_DATABASE_URL=postgres://…` for PostgreSQL.
 */
import { performance } from 'node:perf_hooks';
import { rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { registerUser, type TestUser } from '../test/helpers/client.js';
import { testDialects } from '../test/helpers/databases.js';
import { makeTestCa, startFederatedServer } from '../test/helpers/federation.js';
import type { TestServer } from '../test/helpers/server.js';

const messages = Number(process.argv[2] ?? 1_000);
const enc = encodeURIComponent;

async function main(): Promise<void> {
  const dialect = testDialects().includes('postgres') ? 'postgres' : 'sqlite';
  const ca = makeTestCa();
  const a = await startFederatedServer(dialect, ca);
  const b = await startFederatedServer(dialect, ca);
  try {
    const alice = await registerUser(a, 'alice');
    const bob = await registerUser(b, 'bob');
    const as = (server: TestServer, user: TestUser) =>
      async function <T = Record<string, unknown>>(method: string, path: string, body?: unknown) {
        const res = await server.request<T>(method, `/_matrix/client/v3${path}`, {
          token: user.accessToken,
          ...(body !== undefined ? { body } : {}),
        });
        if (res.status !== 200)
          throw new Error(`${path}: ${res.status} ${JSON.stringify(res.body)}`);
        return res.body;
      };
    const created = await as(b, bob)<{ room_id: string }>('POST', '/createRoom', {
      preset: 'public_chat',
      room_version: '11',
    });
    const roomId = created.room_id;
    for (let i = 0; i < messages; i++)
      await as(b, bob)('PUT', `/rooms/${enc(roomId)}/send/m.room.message/m${i}`, {
        msgtype: 'm.text',
        body: `message ${i}`,
      });
    await as(a, alice)('POST', `/join/${enc(roomId)}?via=${enc(b.serverName)}`, {});

    /** Pages back to the start; the messages read. */
    async function pageAll(): Promise<number> {
      let read = 0;
      let from: string | undefined;
      for (;;) {
        const page = await as(a, alice)<{ chunk: { type: string }[]; end?: string }>(
          'GET',
          `/rooms/${enc(roomId)}/messages?dir=b&limit=100${from ? `&from=${enc(from)}` : ''}`,
        );
        read += page.chunk.filter((e) => e.type === 'm.room.message').length;
        if (!page.end) return read;
        from = page.end;
      }
    }
    const t0 = performance.now();
    const fetched = await pageAll();
    const t1 = performance.now();
    const held = await pageAll();
    const t2 = performance.now();
    if (fetched !== messages || held !== messages)
      throw new Error(`read ${fetched} then ${held} of ${messages}`);
    const rate = (n: number, ms: number) => Math.round((n / ms) * 1000);
    console.log(
      JSON.stringify(
        {
          dialect,
          messages,
          backfilled: { ms: Math.round(t1 - t0), eventsPerSecond: rate(messages, t1 - t0) },
          heldLocally: { ms: Math.round(t2 - t1), eventsPerSecond: rate(messages, t2 - t1) },
          loadavg: loadavg().map((x) => Math.round(x * 10) / 10),
        },
        null,
        2,
      ),
    );
  } finally {
    await a.close();
    await b.close();
    rmSync(ca.dir, { recursive: true, force: true });
  }
}

await main();
