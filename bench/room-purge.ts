/**
 * Purging a room of N events (the admin API's purge_history) while clients keep asking: is the
 * event loop free throughout? Starts Commons in this process over a fresh database, writes a
 * room of N messages through the services, then, in one run, probes the server the same way
 * twice — idle, then during the purge: a client's `GET /versions` and an incremental `/sync`
 * (timeout 0) taking turns, one at a time, and the event loop's delay (perf_hooks histogram,
 * 10 ms resolution). Prints, for each phase, the probes' median, p99 and maximum latency, how
 * many took over 100 ms, and the event loop's worst delay; and the purge's own duration.
 *
 *   node --import tsx bench/room-purge.ts [events=100000] [database URL]
 *
 * Without a URL: SQLite in a temporary directory. With a PostgreSQL URL: that database, which
 * must be empty.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import pino from 'pino';
import { loadConfig } from '../src/config/load.js';
import { startServer } from '../src/main.js';

const IDLE_MS = 5000;

interface Phase {
  latencies: number[];
  loopMaxMs: number;
}

function summary(name: string, phase: Phase): string {
  const sorted = [...phase.latencies].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
  const over = sorted.filter((ms) => ms > 100).length;
  return (
    `${name}: ${sorted.length} probes, median ${at(0.5).toFixed(1)} ms, p99 ${at(0.99).toFixed(1)} ms, ` +
    `max ${(sorted[sorted.length - 1] ?? 0).toFixed(1)} ms, over 100 ms: ${over}; ` +
    `event loop max delay ${phase.loopMaxMs.toFixed(1)} ms`
  );
}

async function main(): Promise<void> {
  const events = Number(process.argv[2] ?? 100_000);
  const given = process.argv[3];
  const dir = mkdtempSync(path.join(tmpdir(), 'commons-purge-bench-'));
  const config = loadConfig({
    env: {
      COMMONS_DATA_DIR: dir,
      COMMONS_DATABASE_URL: given ?? `sqlite:${path.join(dir, 'bench.db')}`,
      COMMONS_LISTEN_PORT: '0',
      COMMONS_SERVER_NAME: 'bench.local',
      COMMONS_RATE_LIMITS_ENABLED: 'false',
      COMMONS_PASSWORD_HASHING_SCRYPT_LOG2_N: '10',
    },
  });
  const running = await startServer(config, { logger: pino({ level: 'silent' }) });
  try {
    const call = async <T>(method: string, url: string, token?: string, body?: unknown) => {
      const request = () =>
        fetch(running.url + url, {
          method,
          headers: {
            ...(token ? { Authorization: `Bearer ${token}` } : {}),
            ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
          },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
      // A kept-alive connection the server closed while idle is reset once: ask again.
      const response = await request().catch(request);
      if (response.status !== 200)
        throw new Error(`${method} ${url}: ${response.status} ${await response.text()}`);
      return (await response.json()) as T;
    };
    const registered = await call<{ access_token: string; user_id: string }>(
      'POST',
      '/_matrix/client/v3/register',
      undefined,
      { username: 'admin', password: 'bench password', auth: { type: 'm.login.dummy' } },
    );
    const token = registered.access_token;
    await running.storage.stores.admin.updateAdmin(registered.user_id, true);
    const { room_id: roomId } = await call<{ room_id: string }>(
      'POST',
      '/_matrix/client/v3/createRoom',
      token,
      {},
    );

    const requester = await running.services.sessions.authenticate(token);
    const filled = performance.now();
    // A few sends in flight at once (each its own transaction, as clients' are).
    let next = 0;
    const sender = async () => {
      for (let i = next++; i < events; i = next++) {
        await running.services.roomEvents.sendMessage(
          requester,
          roomId,
          'm.room.message',
          `f${i}`,
          {
            msgtype: 'm.text',
            body: `message ${i}`,
          },
        );
      }
    };
    await Promise.all(Array.from({ length: 8 }, sender));
    console.log(
      `${running.storage.dialect}: ${events} events written in ${((performance.now() - filled) / 1000).toFixed(1)} s`,
    );
    let since = (
      await call<{ next_batch: string }>('GET', '/_matrix/client/v3/sync?timeout=0', token)
    ).next_batch;

    /** Probes one request at a time until `done()` says stop. */
    async function probe(done: () => boolean): Promise<Phase> {
      const histogram = monitorEventLoopDelay({ resolution: 10 });
      histogram.enable();
      const latencies: number[] = [];
      for (let i = 0; !done(); i++) {
        const started = performance.now();
        if (i % 2 === 0) await call('GET', '/_matrix/client/versions');
        else {
          since = (
            await call<{ next_batch: string }>(
              'GET',
              `/_matrix/client/v3/sync?timeout=0&since=${since}`,
              token,
            )
          ).next_batch;
        }
        latencies.push(performance.now() - started);
      }
      histogram.disable();
      return { latencies, loopMaxMs: histogram.max / 1e6 };
    }

    const idleUntil = performance.now() + IDLE_MS;
    const idle = await probe(() => performance.now() >= idleUntil);

    const started = performance.now();
    const { purge_id: purgeId } = await call<{ purge_id: string }>(
      'POST',
      `/_synapse/admin/v1/purge_history/${encodeURIComponent(roomId)}`,
      token,
      { purge_up_to_ts: Date.now() + 1000, delete_local_events: true },
    );
    let finished = false;
    const purged = running.services.admin.purges.wait(purgeId).then(() => {
      finished = true;
    });
    const during = await probe(() => finished);
    await purged;
    const purgeSeconds = (performance.now() - started) / 1000;
    const status = await call<{ status: string }>(
      'GET',
      `/_synapse/admin/v1/purge_history_status/${purgeId}`,
      token,
    );

    console.log(`purge of ${events} events: ${purgeSeconds.toFixed(1)} s, status ${status.status}`);
    console.log(summary('idle       ', idle));
    console.log(summary('during purge', during));
    console.log(
      `load average: ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
    );
  } finally {
    await running.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
