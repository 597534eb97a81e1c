/**
 * `npm run bench:sliding-sync -- [--sizes 100,1000,10000] [--db postgres://…] [--keep DIR]
 * [--sync-up-to N]`: N rooms (each with one other member and a message), and one user per
 * size in the first `size` of them, all in one database; then, through HTTP against one
 * Commons, for each user: simplified sliding sync's first answer for a 20-room window on a new
 * connection and its incremental answer after one new message, beside classic /sync's initial
 * answer (lazy-loading members, one timeline event per room; only for users in at most
 * `--sync-up-to` rooms, default all) and its incremental answer after one message. Medians of
 * 9 runs (5 for /sync) (min–max), the sizes interleaved run by run. `--keep DIR` keeps the
 * data directory and reuses what it holds. Not part of `npm run bench`; prints a Markdown
 * table for docs/benchmarks.md.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { loadConfig } from '../src/config/load.js';
import { loadServerSecrets } from '../src/config/server-secrets.js';
import { startServer } from '../src/main.js';
import type { Requester } from '../src/services/index.js';
import { batchingServices, SERVER_NAME } from './generate.js';

const SS = '/_matrix/client/unstable/org.matrix.simplified_msc3575/sync';
const RUNS = 5;
/** Sliding sync's answers are cheap at every size: more runs of them. */
const SLIDING_RUNS = 9;

function option(name: string, fallback: string): string {
  const index = process.argv.indexOf(`--${name}`);
  return index > 0 ? (process.argv[index + 1] ?? fallback) : fallback;
}

const sizes = option('sizes', '100,1000,10000')
  .split(',')
  .map(Number)
  .sort((a, b) => a - b);
if (sizes.some((n) => !Number.isInteger(n) || n < 20)) throw new Error('--sizes: integers ≥ 20');
const rooms = sizes.at(-1) as number;
const syncUpTo = Number(option('sync-up-to', String(rooms)));
/** `--keep DIR`: the data directory kept (and reused when it holds these sizes' data). */
const keep = option('keep', '');
const dataDir = keep === '' ? mkdtempSync(path.join(tmpdir(), 'commons-ss-bench-')) : keep;
if (keep !== '') mkdirSync(keep, { recursive: true });
const builtFile = path.join(dataDir, `rooms-${sizes.join('-')}.json`);
const url = option('db', `sqlite:${path.join(dataDir, 'commons.db')}`);
const uid = (localpart: string) => `@${localpart}:${SERVER_NAME}`;
const requester = (userId: string): Requester => ({ userId, deviceId: 'BENCH', isAdmin: false });

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
  const users = sizes.map((n) => uid(`busy${n}`));
  const other = uid('friend');
  const started = performance.now();
  const reuse = existsSync(builtFile);
  const roomIds: string[] = reuse ? (JSON.parse(readFileSync(builtFile, 'utf8')) as string[]) : [];
  if (!reuse) await build();
  const tokens = new Map<string, string>();
  for (const userId of users)
    tokens.set(
      userId,
      (
        await services.accounts.issueLogin(userId, {
          deviceId: 'BENCH',
          displayName: 'bench',
          ip: null,
        })
      ).accessToken,
    );

  async function build() {
    await batch('ssBenchUsers', async (stores) => {
      for (const userId of [...users, other])
        await stores.accounts.insertUser({
          userId,
          localpart: userId.slice(1, userId.indexOf(':')),
          passwordHash: null,
          isAdmin: false,
          displayname: userId,
          createdTs: Date.now(),
        });
    });
    for (let start = 0; start < rooms; start += 100) {
      await batch('ssBenchRooms', async () => {
        for (let i = start; i < Math.min(rooms, start + 100); i++) {
          const { roomId } = await services.rooms.createRoom(requester(other), {
            preset: 'public_chat',
            ...(i % 2 === 0 ? { name: `room ${i}` } : {}),
          });
          for (const [k, size] of sizes.entries())
            if (i < size) await services.membership.join(requester(users[k] as string), roomId);
          await services.roomEvents.sendMessage(
            requester(other),
            roomId,
            'm.room.message',
            `t${i}`,
            {
              msgtype: 'm.text',
              body: `hello ${i}`,
            },
          );
          roomIds.push(roomId);
        }
      });
      if (start % 1000 === 0) console.error(`built ${start} rooms`);
    }
    writeFileSync(builtFile, JSON.stringify(roomIds));
  }
  if (!reuse)
    console.error(`built ${rooms} rooms in ${Math.round((performance.now() - started) / 1000)} s`);

  async function call(token: string, method: string, urlPath: string, body?: unknown) {
    const t0 = performance.now();
    const response = await fetch(running.url + urlPath, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    const ms = performance.now() - t0;
    if (response.status !== 200) throw new Error(`${urlPath}: ${response.status} ${text}`);
    return { ms, bytes: text.length, json: JSON.parse(text) as Record<string, unknown> };
  }
  let n = 0;
  /** One message from the other member in one of the user's rooms (the first `size`). */
  const say = async (size: number) =>
    services.roomEvents.sendMessage(
      requester(other),
      roomIds[n % size] as string,
      'm.room.message',
      `x${Date.now()}-${++n}`,
      { msgtype: 'm.text', body: `news ${n}` },
    );
  const window = (connId: string) => ({
    conn_id: connId,
    lists: {
      all: {
        ranges: [[0, 19]],
        timeline_limit: 1,
        required_state: [
          ['m.room.create', ''],
          ['m.room.name', ''],
          ['m.room.avatar', ''],
          ['m.room.encryption', ''],
          ['m.room.member', '$LAZY'],
          ['m.room.member', '$ME'],
          ['m.room.power_levels', ''],
        ],
      },
    },
  });
  const filter = encodeURIComponent(
    JSON.stringify({ room: { timeline: { limit: 1 }, state: { lazy_load_members: true } } }),
  );
  type Row = { name: string; times: number[]; bytes: number };
  // Each kind is measured for every size in turn, run by run (sizes interleaved, so that the
  // machine's load falls on all alike), after one untimed answer per user (a warm-up, which
  // opens the connection the incremental answers continue).
  const results = new Map<number, Row[]>(sizes.map((size) => [size, []]));
  const tokenOf = (k: number) => tokens.get(users[k] as string) as string;
  const positions = new Map<number, string>();
  for (const k of sizes.keys())
    positions.set(k, String((await call(tokenOf(k), 'POST', SS, window('inc'))).json.pos));
  const interleaved = async (
    name: string,
    runCount: number,
    upTo: number,
    once: (k: number, size: number, i: number) => Promise<{ ms: number; bytes: number }>,
  ) => {
    const runs = new Map<number, Row>();
    for (let i = 0; i < runCount; i++)
      for (const [k, size] of sizes.entries()) {
        if (size > upTo) continue;
        const result = await once(k, size, i);
        const row = runs.get(size) ?? { name, times: [], bytes: 0 };
        row.times.push(result.ms);
        row.bytes = result.bytes;
        runs.set(size, row);
      }
    for (const [size, row] of runs) {
      row.times.sort((a, b) => a - b);
      results.get(size)?.push(row);
    }
    console.error(`measured ${name}`);
  };
  await interleaved(
    'sliding sync, first answer, 20-room window',
    SLIDING_RUNS,
    Infinity,
    (k, _size, i) => call(tokenOf(k), 'POST', SS, window(`first${i}`)),
  );
  await interleaved(
    'sliding sync, incremental after one message',
    SLIDING_RUNS,
    Infinity,
    async (k, size) => {
      await say(size);
      const next = await call(tokenOf(k), 'POST', `${SS}?pos=${positions.get(k)}`, window('inc'));
      positions.set(k, String(next.json.pos));
      return next;
    },
  );
  const since = new Map<number, string>();
  await interleaved(
    '/sync, initial (lazy members, 1 event per room)',
    RUNS,
    syncUpTo,
    async (k) => {
      const first = await call(tokenOf(k), 'GET', `/_matrix/client/v3/sync?filter=${filter}`);
      since.set(k, String(first.json.next_batch));
      return first;
    },
  );
  await interleaved('/sync, incremental after one message', RUNS, syncUpTo, async (k, size) => {
    await say(size);
    const next = await call(
      tokenOf(k),
      'GET',
      `/_matrix/client/v3/sync?filter=${filter}&since=${since.get(k)}`,
    );
    since.set(k, String(next.json.next_batch));
    return next;
  });
  const fmt = (ms: number) => ms.toFixed(1);
  const cell = (row: Row | undefined) => {
    if (!row) return 'not run';
    const { times } = row;
    const median = times[Math.floor(times.length / 2)] as number;
    return `${fmt(median)} (${fmt(times[0] as number)}–${fmt(times.at(-1) as number)}), ${(row.bytes / 1000).toFixed(1)} KB`;
  };
  const names = [...new Set([...results.values()].flatMap((rows) => rows.map((r) => r.name)))];
  console.log(
    `| ${running.storage.dialect}, ms median (min–max), body | ${sizes.map((size) => `user in ${size} rooms`).join(' | ')} |`,
  );
  console.log(`| --- | ${sizes.map(() => '---').join(' | ')} |`);
  for (const name of names)
    console.log(
      `| ${name} | ${sizes.map((size) => cell(results.get(size)?.find((r) => r.name === name))).join(' | ')} |`,
    );
} finally {
  await running.close();
  if (keep === '') rmSync(dataDir, { recursive: true, force: true });
}
