/**
 * Two Commons processes on one PostgreSQL database: a /sync long-polling on one is woken by
 * a message written through the other (LISTEN/NOTIFY), not by polling or its timeout.
 * SQLite has one writing process by design, so this runs on PostgreSQL only; CI requires it.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { createTestDatabase, testDialects, type TestDatabase } from '../helpers/databases.js';
import { startServerOn, type TestServer } from '../helpers/server.js';
import { registerUser } from '../helpers/client.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const V3 = '/_matrix/client/v3';

/** Starts `src/cli.ts` as its own process and resolves with the URL it logs. */
function startWorker(env: Record<string, string>): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli.ts')], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('worker did not start in 30 s')), 30_000);
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('exit', (code) => reject(new Error(`worker exited with ${code}: ${stderr}`)));
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      try {
        const entry = JSON.parse(line) as { msg?: string; url?: string };
        if (entry.msg === 'Commons is listening' && entry.url) {
          clearTimeout(timer);
          resolve({ child, url: entry.url });
        }
      } catch {
        // not a log line
      }
    });
  });
}

describe(
  '/sync across worker processes [postgres]',
  { skip: !testDialects().includes('postgres') && 'PostgreSQL is not configured' },
  () => {
    let database: TestDatabase;
    let dataDir: string;
    let writer: TestServer;
    let worker: { child: ChildProcess; url: string };
    before(async () => {
      database = await createTestDatabase('postgres');
      dataDir = mkdtempSync(path.join(tmpdir(), 'commons-workers-'));
      writer = await startServerOn(database, dataDir);
      worker = await startWorker({
        COMMONS_DATA_DIR: dataDir,
        COMMONS_DATABASE_URL: database.url,
        COMMONS_LISTEN_HOST: '127.0.0.1',
        COMMONS_LISTEN_PORT: '0',
        COMMONS_SERVER_NAME: 'test.local',
        COMMONS_RATE_LIMITS_ENABLED: 'false',
        COMMONS_LOG_LEVEL: 'info',
      });
    });
    after(async () => {
      worker?.child.kill('SIGTERM');
      await writer?.close();
      await database?.drop();
      rmSync(dataDir, { recursive: true, force: true });
    });

    it("a long-poll on one process is woken by the other process's write", async () => {
      const alice = await registerUser(writer);
      const bob = await registerUser(writer);
      const created = await writer.request<{ room_id: string }>('POST', `${V3}/createRoom`, {
        token: alice.accessToken,
        body: { invite: [bob.userId] },
      });
      const roomId = created.body.room_id;
      const joined = await writer.request('POST', `${V3}/rooms/${roomId}/join`, {
        token: bob.accessToken,
        body: {},
      });
      assert.equal(joined.status, 200);
      const syncOnWorker = (query: string) =>
        fetch(`${worker.url}${V3}/sync?${query}`, {
          headers: { Authorization: `Bearer ${bob.accessToken}` },
        }).then(async (r) => ({ status: r.status, body: (await r.json()) as unknown }));
      const first = await syncOnWorker('timeout=0');
      assert.equal(first.status, 200);
      const since = (first.body as { next_batch: string }).next_batch;
      // A long timeout: only the notification can end this request in time for the test.
      const waiting = syncOnWorker(`since=${since}&timeout=100000`);
      await new Promise((resolve) => setTimeout(resolve, 300));
      const sent = await writer.request<{ event_id: string }>(
        'PUT',
        `${V3}/rooms/${roomId}/send/m.room.message/cross1`,
        { token: alice.accessToken, body: { msgtype: 'm.text', body: 'across processes' } },
      );
      assert.equal(sent.status, 200);
      const woken = await waiting;
      assert.equal(woken.status, 200);
      const events = (
        woken.body as {
          rooms: { join: Record<string, { timeline: { events: { event_id: string }[] } }> };
        }
      ).rooms.join[roomId]?.timeline.events;
      assert.deepEqual(
        events?.map((e) => e.event_id),
        [sent.body.event_id],
      );
    });
  },
);
