/**
 * `npm run bench:presence-sync -- [--users 100] [--connections 8] [--seconds 5] [--runs 3]
 * [--db postgres://…]`: what tracking presence costs a /sync. Users poll `/sync` with a
 * `since` and `timeout=0` (the cheapest request, where a per-request write would show most)
 * through HTTP against one Commons, with `set_presence=offline` (presence untouched) beside
 * `set_presence=online` (counted as syncing and active), the two interleaved run by run.
 * Prints requests per second (median and min–max of the runs) and the stream positions each
 * mode took (presence changes: none expected once everyone is online). Not part of
 * `npm run bench`; prints a Markdown table for docs/benchmarks.md.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { loadConfig } from '../src/config/load.js';
import { loadServerSecrets } from '../src/config/server-secrets.js';
import { startServer } from '../src/main.js';
import { batchingServices, SERVER_NAME } from './generate.js';

function option(name: string, fallback: string): string {
  const index = process.argv.indexOf(`--${name}`);
  return index > 0 ? (process.argv[index + 1] ?? fallback) : fallback;
}

const users = Number(option('users', '100'));
const connections = Number(option('connections', '8'));
const seconds = Number(option('seconds', '5'));
const runs = Number(option('runs', '3'));
const dataDir = mkdtempSync(path.join(tmpdir(), 'commons-presence-bench-'));
const url = option('db', `sqlite:${path.join(dataDir, 'commons.db')}`);
const config = loadConfig({
  env: {
    COMMONS_DATA_DIR: dataDir,
    COMMONS_DATABASE_URL: url,
    COMMONS_LISTEN_HOST: '127.0.0.1',
    COMMONS_LISTEN_PORT: '0',
    COMMONS_SERVER_NAME: SERVER_NAME,
    COMMONS_RATE_LIMITS_ENABLED: 'false',
    COMMONS_LOG_LEVEL: 'warn',
  },
});
const running = await startServer(config, { logger: pino({ level: 'warn' }) });
try {
  const { services, batch } = batchingServices(
    running.storage,
    loadServerSecrets(dataDir).signingKey,
    async () => undefined,
  );
  const ids = Array.from({ length: users }, (_, i) => `@presence${i}:${SERVER_NAME}`);
  await batch('presenceBenchUsers', async (stores) => {
    for (const userId of ids)
      await stores.accounts.insertUser({
        userId,
        localpart: userId.slice(1, userId.indexOf(':')),
        passwordHash: null,
        isAdmin: false,
        displayname: userId,
        createdTs: Date.now(),
      });
  });
  const polls: { token: string; since: string }[] = [];
  for (const userId of ids) {
    const login = await services.accounts.issueLogin(userId, {
      deviceId: 'BENCH',
      displayName: 'bench',
      ip: null,
    });
    polls.push({ token: login.accessToken, since: '' });
  }

  async function sync(poll: { token: string; since: string }, presence: string) {
    const query = poll.since === '' ? '' : `since=${encodeURIComponent(poll.since)}&timeout=0&`;
    const response = await fetch(
      `${running.url}/_matrix/client/v3/sync?${query}set_presence=${presence}`,
      {
        headers: { authorization: `Bearer ${poll.token}` },
      },
    );
    const body = (await response.json()) as { next_batch?: string };
    if (response.status !== 200 || !body.next_batch) throw new Error(`sync: ${response.status}`);
    poll.since = body.next_batch;
  }

  /** Requests per second of `connections` loops over the users for `seconds`. */
  async function run(presence: string): Promise<{ perSecond: number; positions: number }> {
    const before = await running.storage.stores.stream.selectCurrentPosition();
    const until = performance.now() + seconds * 1000;
    let done = 0;
    let next = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: connections }, async () => {
        while (performance.now() < until) {
          const poll = polls[next++ % polls.length] as (typeof polls)[number];
          await sync(poll, presence);
          done++;
        }
      }),
    );
    const elapsed = (performance.now() - t0) / 1000;
    const after = await running.storage.stores.stream.selectCurrentPosition();
    return { perSecond: done / elapsed, positions: after - before };
  }

  // Initial syncs, then one round of each mode (everyone online once) before measuring.
  for (const poll of polls) await sync(poll, 'offline');
  for (const poll of polls) await sync(poll, 'online');
  for (const poll of polls) await sync(poll, 'offline');
  const results: Record<string, { perSecond: number; positions: number }[]> = {
    offline: [],
    online: [],
  };
  const load = loadavg()[0]?.toFixed(1);
  for (let i = 0; i < runs; i++)
    for (const presence of ['offline', 'online']) results[presence]?.push(await run(presence));
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1] ?? 0;
  console.log(
    `${users} users, ${connections} connections, ${runs} runs of ${seconds} s per mode, ` +
      `${url.split(':')[0]}, load average ${load} at the start\n`,
  );
  console.log('| `set_presence` | /sync per second, median (min–max) | stream positions taken |');
  console.log('| --- | --- | --- |');
  for (const [presence, list] of Object.entries(results)) {
    const rates = list.map((r) => r.perSecond);
    console.log(
      `| \`${presence}\` | ${median(rates).toFixed(0)} (${Math.min(...rates).toFixed(0)}–${Math.max(...rates).toFixed(0)}) | ${list.reduce((sum, r) => sum + r.positions, 0)} |`,
    );
  }
} finally {
  await running.close();
  rmSync(dataDir, { recursive: true, force: true });
}
