/**
 * `npm run bench:appservice -- [--rooms 10000] [--virtual 50000] [--messages 2000]
 * [--db sqlite|postgres] [--docs]`: the bridge-shaped workload of issue #22. A bridge bot in N
 * rooms and V virtual users (V / N per room), built through Commons' services (in batched
 * transactions, without the bridge registered) into a SQLite file cached under
 * bench/.cache/appservice/ so reruns start at once; PostgreSQL runs load that file into a
 * template database (`commons port-db`'s copying, bench/copy-dataset.ts) and clone it per run.
 * Each run works on a copy. Commons starts on it with the bridge's registration (the start
 * rebuilds the record of the bridge's users' rooms, timed) and a bridge — a local HTTP server
 * that answers every transaction at once — listening. Over HTTP with the bridge's as_token:
 *
 * - `/joined_rooms` of the bot (median of 5), beside a bare node:http server answering the
 *   same bytes (the ceiling);
 * - `/joined_members` of every room, as a bridge does at start-up, beside `/members?membership=join`
 *   (the member events, what a bridge would read without it), interleaved room by room with the
 *   order alternating; then both at 10 concurrent requests over all rooms (rooms per second);
 * - the push rate: M messages sent by virtual users (10 at a time), the rate the sends were
 *   acknowledged beside the rate their events reached the bridge; then M more while the bridge
 *   answers 503, and the rate the queue drains once it answers again (batched transactions).
 *
 * PostgreSQL: COMMONS_BENCH_POSTGRES_URL (default postgres://postgres:commons-ci@127.0.0.1:5432/postgres),
 * whose user may create databases. Prints Markdown; `--docs` writes it into docs/benchmarks.md
 * (section `appservice`, the dialect's run in `appservice-sqlite` / `appservice-postgres`).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import pino from 'pino';
import * as prettier from 'prettier';
import { stringify } from 'yaml';
import { loadConfig } from '../src/config/load.js';
import { loadServerSecrets } from '../src/config/server-secrets.js';
import { startServer, type RunningServer } from '../src/main.js';
import type { Requester } from '../src/services/index.js';
import { copySqliteToPostgres } from './copy-dataset.js';
import { sectionOf, withSection } from './doc-sections.js';
import { batchingServices, SERVER_NAME } from './generate.js';

function option(name: string, fallback: string): string {
  const index = process.argv.indexOf(`--${name}`);
  return index > 0 ? (process.argv[index + 1] ?? fallback) : fallback;
}

const ROOMS = Number(option('rooms', '10000'));
const VIRTUAL = Number(option('virtual', '50000'));
const MESSAGES = Number(option('messages', '2000'));
const DIALECT = option('db', 'sqlite').startsWith('postgres') ? 'postgres' : 'sqlite';
const POSTGRES_URL =
  process.env.COMMONS_BENCH_POSTGRES_URL ??
  'postgres://postgres:commons-ci@127.0.0.1:5432/postgres';
const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const CACHE = path.join(ROOT, 'bench/.cache/appservice');
/** Bump when what the builder writes changes. */
const FORMAT = 1;
const CONCURRENCY = 10;
const AS_TOKEN = 'as_bench_bridge_0123456789';
const HS_TOKEN = 'hs_bench_bridge_0123456789';
const workDir = mkdtempSync(path.join(tmpdir(), 'commons-as-bench-'));
const uid = (localpart: string) => `@${localpart}:${SERVER_NAME}`;
const BOT = uid('bridgebot');
const ghost = (i: number) => uid(`_b_${i}`);
const requester = (userId: string): Requester => ({ userId, deviceId: 'BENCH', isAdmin: false });
const log = (message: string) =>
  console.error(`[appservice bench ${new Date().toISOString().slice(11, 19)}] ${message}`);
const withDatabase = (url: string, database: string) => {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
};

// The bridge: answers every transaction at once (or 503 while `down`), counting events.
let down = false;
let delivered = 0;
let transactions = 0;
let lastDelivery = 0;
let firstDelivery = 0;
let firstBatch = 0;
const bridge = createServer((request, response) => {
  let body = '';
  request.setEncoding('utf8');
  request.on('data', (chunk: string) => (body += chunk));
  request.on('end', () => {
    if (down) {
      response.writeHead(503).end('{}');
      return;
    }
    if (request.method === 'PUT' && request.url?.startsWith('/_matrix/app/v1/transactions/')) {
      const events = (JSON.parse(body) as { events: { type: string }[] }).events;
      const messages = events.filter((e) => e.type === 'm.room.message').length;
      delivered += messages;
      transactions++;
      lastDelivery = performance.now();
      if (firstDelivery === 0) [firstDelivery, firstBatch] = [lastDelivery, messages];
    }
    response.writeHead(200, { 'Content-Type': 'application/json' }).end('{}');
  });
});
await new Promise<void>((resolve) => bridge.listen(0, '127.0.0.1', resolve));
const bridgeUrl = `http://127.0.0.1:${(bridge.address() as AddressInfo).port}`;
const registrationFile = path.join(workDir, 'bridge.yaml');
writeFileSync(
  registrationFile,
  stringify({
    id: 'bench',
    url: bridgeUrl,
    as_token: AS_TOKEN,
    hs_token: HS_TOKEN,
    sender_localpart: 'bridgebot',
    rate_limited: false,
    namespaces: {
      users: [{ exclusive: true, regex: `@_b_.*:${SERVER_NAME.replace('.', '\\.')}` }],
    },
  }),
);

const configOf = (url: string, dataDir: string, withBridge: boolean) =>
  loadConfig({
    env: {
      COMMONS_DATA_DIR: dataDir,
      COMMONS_DATABASE_URL: url,
      COMMONS_LISTEN_HOST: '127.0.0.1',
      COMMONS_LISTEN_PORT: '0',
      COMMONS_SERVER_NAME: SERVER_NAME,
      COMMONS_RATE_LIMITS_ENABLED: 'false',
      COMMONS_LOG_LEVEL: 'error',
      COMMONS_APP_SERVICES_RETRY_MAX_SECONDS: '1',
      ...(withBridge ? { COMMONS_APP_SERVICES_CONFIG_FILES: registrationFile } : {}),
    },
  });

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
};
const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] as number;
};
const fmt = (n: number, digits = 1) =>
  n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const int = (n: number) => Math.round(n).toLocaleString('en-US');

/** Builds the dataset into a fresh SQLite file (and data_dir): the bot's rooms, in order. */
async function build(url: string, dataDir: string): Promise<string[]> {
  const running = await startServer(configOf(url, dataDir, false), {
    logger: pino({ level: 'error' }),
  });
  try {
    const { services, batch } = batchingServices(
      running.storage,
      loadServerSecrets(dataDir).signingKey,
      async () => undefined,
    );
    const started = performance.now();
    for (let start = -1; start < VIRTUAL; start += 2000) {
      await batch('asBenchUsers', async (stores) => {
        for (let i = start; i < Math.min(VIRTUAL, start + 2000); i++) {
          const userId = i < 0 ? BOT : ghost(i);
          await stores.accounts.insertUser({
            userId,
            localpart: userId.slice(1, userId.indexOf(':')),
            passwordHash: null,
            isAdmin: false,
            displayname: i < 0 ? 'bridge bot' : `ghost ${i}`,
            createdTs: Date.now(),
          });
        }
      });
    }
    const roomIds: string[] = [];
    const ROOMS_PER_BATCH = 100;
    for (let start = 0; start < ROOMS; start += ROOMS_PER_BATCH) {
      await batch('asBenchRooms', async () => {
        for (let r = start; r < Math.min(ROOMS, start + ROOMS_PER_BATCH); r++) {
          const { roomId } = await services.rooms.createRoom(requester(BOT), {
            preset: 'public_chat',
            name: `bridged ${r}`,
          });
          for (let i = r; i < VIRTUAL; i += ROOMS)
            await services.membership.join(requester(ghost(i)), roomId);
          roomIds.push(roomId);
        }
      });
      if ((start + ROOMS_PER_BATCH) % 500 === 0)
        log(
          `built ${start + ROOMS_PER_BATCH} rooms (${int((performance.now() - started) / 1000)} s)`,
        );
    }
    log(
      `built ${int(ROOMS)} rooms, ${int(VIRTUAL)} virtual users in ${int((performance.now() - started) / 1000)} s`,
    );
    return roomIds;
  } finally {
    await running.close();
  }
}

interface Prepared {
  url: string;
  dataDir: string;
  roomIds: string[];
  /** Seconds the build took when it was made (cached with it). */
  buildSeconds: number;
  fromCache: boolean;
  cleanup(): Promise<void>;
}

/**
 * The dataset for this shape, built once into bench/.cache/appservice/ (SQLite) and copied for
 * the run; on PostgreSQL, loaded from that file into a template database cloned for the run.
 */
async function prepare(): Promise<Prepared> {
  const name = `r${ROOMS}-v${VIRTUAL}-f${FORMAT}`;
  const dir = path.join(CACHE, name);
  const manifest = path.join(dir, 'manifest.json');
  let fromCache = true;
  if (!existsSync(manifest)) {
    fromCache = false;
    const building = `${dir}.building-${process.pid}`;
    rmSync(building, { recursive: true, force: true });
    mkdirSync(path.join(building, 'data'), { recursive: true });
    const started = performance.now();
    const roomIds = await build(
      `sqlite:${path.join(building, 'commons.db')}`,
      path.join(building, 'data'),
    );
    const buildSeconds = (performance.now() - started) / 1000;
    writeFileSync(path.join(building, 'manifest.json'), JSON.stringify({ buildSeconds, roomIds }));
    rmSync(dir, { recursive: true, force: true });
    renameSync(building, dir);
  }
  const { buildSeconds, roomIds } = JSON.parse(readFileSync(manifest, 'utf8')) as {
    buildSeconds: number;
    roomIds: string[];
  };
  const dataDir = path.join(workDir, 'data');
  cpSync(path.join(dir, 'data'), dataDir, { recursive: true });
  const file = path.join(dir, 'commons.db');
  if (DIALECT === 'sqlite') {
    copyFileSync(file, path.join(workDir, 'commons.db'));
    const url = `sqlite:${path.join(workDir, 'commons.db')}`;
    return { url, dataDir, roomIds, buildSeconds, fromCache, cleanup: async () => undefined };
  }
  const template = `commons_bench_as_${name.replace(/-/g, '_')}`;
  const runName = `commons_bench_as_run_${process.pid}`;
  const admin = new pg.Client({ connectionString: POSTGRES_URL });
  await admin.connect();
  try {
    const exists = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [template]);
    if (exists.rowCount === 0) {
      fromCache = false;
      const loading = `${template}_loading`;
      await admin.query(`DROP DATABASE IF EXISTS "${loading}"`);
      await admin.query(`CREATE DATABASE "${loading}"`);
      const started = performance.now();
      await copySqliteToPostgres(file, withDatabase(POSTGRES_URL, loading), () => undefined);
      await admin.query(`ALTER DATABASE "${loading}" RENAME TO "${template}"`);
      log(`loaded into PostgreSQL in ${int((performance.now() - started) / 1000)} s`);
    }
    await admin.query(`DROP DATABASE IF EXISTS "${runName}"`);
    await admin.query(`CREATE DATABASE "${runName}" TEMPLATE "${template}"`);
  } finally {
    await admin.end();
  }
  return {
    url: withDatabase(POSTGRES_URL, runName),
    dataDir,
    roomIds,
    buildSeconds,
    fromCache,
    async cleanup() {
      const c = new pg.Client({ connectionString: POSTGRES_URL });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS "${runName}"`);
      await c.end();
    },
  };
}

async function call(running: RunningServer, urlPath: string, init: RequestInit = {}) {
  const t0 = performance.now();
  const response = await fetch(running.url + urlPath, {
    ...init,
    headers: { authorization: `Bearer ${AS_TOKEN}`, 'content-type': 'application/json' },
  });
  const text = await response.text();
  const ms = performance.now() - t0;
  if (response.status !== 200) throw new Error(`${urlPath}: ${response.status} ${text}`);
  return { ms, bytes: Buffer.byteLength(text) };
}

/** Calls `once(i)` for i in [0, count) with `CONCURRENCY` at a time; answers the seconds. */
async function concurrently(count: number, once: (i: number) => Promise<unknown>) {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < count) await once(next++);
    }),
  );
  return (performance.now() - t0) / 1000;
}

async function waitFor(check: () => boolean, timeoutMs = 600_000) {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out waiting for the bridge');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const prepared = await prepare();
const loadAtStart = loadavg()
  .map((l) => l.toFixed(1))
  .join(' / ');
const { roomIds } = prepared;
log(`dataset ${prepared.fromCache ? 'from the cache' : 'built'}; starting with the bridge`);
const restartT0 = performance.now();
const running = await startServer(configOf(prepared.url, prepared.dataDir, true), {
  logger: pino({ level: 'error' }),
});
const restartSeconds = (performance.now() - restartT0) / 1000;
const lines: string[] = [];
try {
  const e = encodeURIComponent;
  // /joined_rooms, alternating with a bare node:http server answering the same bytes.
  const first = await fetch(`${running.url}/_matrix/client/v3/joined_rooms`, {
    headers: { authorization: `Bearer ${AS_TOKEN}` },
  });
  const joinedRoomsBody = Buffer.from(await first.arrayBuffer());
  const joined = (JSON.parse(joinedRoomsBody.toString()) as { joined_rooms: string[] })
    .joined_rooms;
  if (joined.length !== ROOMS) throw new Error(`the bot is in ${joined.length} rooms`);
  const ceiling = createServer((_request, response) => {
    response
      .writeHead(200, {
        'Content-Type': 'application/json',
        'Content-Length': String(joinedRoomsBody.length),
      })
      .end(joinedRoomsBody);
  });
  await new Promise<void>((resolve) => ceiling.listen(0, '127.0.0.1', resolve));
  const ceilingUrl = `http://127.0.0.1:${(ceiling.address() as AddressInfo).port}`;
  const joinedRooms: number[] = [];
  const ceilingTimes: number[] = [];
  for (let i = 0; i < 9; i++) {
    joinedRooms.push((await call(running, '/_matrix/client/v3/joined_rooms')).ms);
    const t0 = performance.now();
    await (await fetch(`${ceilingUrl}/_matrix/client/v3/joined_rooms`)).arrayBuffer();
    ceilingTimes.push(performance.now() - t0);
  }
  ceiling.close();
  const joinedRoomsBytes = joinedRoomsBody.length;
  log('/joined_rooms measured');
  const joinedMembers: number[] = [];
  const members: number[] = [];
  let jmBytes = 0;
  let mBytes = 0;
  const jm = (roomId: string) =>
    call(running, `/_matrix/client/v3/rooms/${e(roomId)}/joined_members`);
  const m = (roomId: string) =>
    call(running, `/_matrix/client/v3/rooms/${e(roomId)}/members?membership=join`);
  for (const [index, roomId] of roomIds.entries()) {
    const pair = index % 2 === 0 ? [jm, m] : [m, jm];
    for (const fn of pair) {
      const result = await fn(roomId);
      (fn === jm ? joinedMembers : members).push(result.ms);
      if (fn === jm) jmBytes += result.bytes;
      else mBytes += result.bytes;
    }
  }
  log('/joined_members, one at a time, measured');
  // Three rounds each, alternating; the median round.
  const jmRounds: number[] = [];
  const mRounds: number[] = [];
  for (let round = 0; round < 3; round++) {
    jmRounds.push(await concurrently(roomIds.length, (i) => jm(roomIds[i] as string)));
    mRounds.push(await concurrently(roomIds.length, (i) => m(roomIds[i] as string)));
  }
  const jmSeconds = median(jmRounds);
  const mSeconds = median(mRounds);
  log('membership queries measured');

  // The push rate: sends acknowledged beside events delivered.
  const send = (i: number, tag: string) =>
    call(
      running,
      `/_matrix/client/v3/rooms/${e(roomIds[i % roomIds.length] as string)}/send/m.room.message/${tag}${i}?user_id=${e(ghost(i % VIRTUAL))}`,
      { method: 'PUT', body: JSON.stringify({ msgtype: 'm.text', body: `${tag} ${i}` }) },
    );
  await waitFor(() => true);
  const before = delivered;
  const txnsBefore = transactions;
  const pushT0 = performance.now();
  const sendSeconds = await concurrently(MESSAGES, (i) => send(i, 'live'));
  await waitFor(() => delivered - before >= MESSAGES);
  const pushSeconds = (lastDelivery - pushT0) / 1000;
  const liveTxns = transactions - txnsBefore;
  log('push rate measured');

  // Catch-up: the bridge down while M more are sent, then up.
  down = true;
  await concurrently(MESSAGES, (i) => send(i, 'queued'));
  const queuedFrom = delivered;
  const txnsQueued = transactions;
  firstDelivery = 0;
  down = false;
  await waitFor(() => delivered - queuedFrom >= MESSAGES);
  // After the first transaction the bridge accepts (the sender's retry wait not counted): the
  // events of the later transactions over the time they took.
  const drainRate = (MESSAGES - firstBatch) / ((lastDelivery - firstDelivery) / 1000);
  const drainTxns = transactions - txnsQueued;
  log('catch-up measured');

  const per = VIRTUAL / ROOMS;
  lines.push(
    `Run ${new Date().toISOString().slice(0, 16)}Z, ${running.storage.dialect}, ${cpus().length} cores, load average ${loadAtStart} at the start and ${loadavg()
      .map((l) => l.toFixed(1))
      .join(
        ' / ',
      )} at the end (1 / 5 / 15 min): a bot in ${int(ROOMS)} rooms, ${int(VIRTUAL)} virtual users (${fmt(per)} per room, each room also has the bot), ${int(MESSAGES)} messages per push figure; the dataset ${prepared.fromCache ? 'came from the cache' : 'was built for this run'} (its SQLite build took ${int(prepared.buildSeconds)} s${DIALECT === 'postgres' ? ', loaded into PostgreSQL from it' : ''}). Command: \`npm run bench:appservice -- --rooms ${ROOMS} --virtual ${VIRTUAL} --messages ${MESSAGES} --db ${DIALECT}\`.`,
    '',
    '| what | figure | beside |',
    '| --- | --- | --- |',
    `| start with the bridge newly registered (rebuilds its users' rooms) | ${fmt(restartSeconds, 2)} s | |`,
    `| \`/joined_rooms\` of the bot (${int(ROOMS)} rooms) | ${fmt(median(joinedRooms))} ms median of 9, ${int(joinedRoomsBytes)} bytes | the same bytes from a bare node:http server (the ceiling): ${fmt(median(ceilingTimes))} ms |`,
    `| \`/joined_members\`, each room in turn | p50 ${fmt(median(joinedMembers), 2)} ms, p95 ${fmt(percentile(joinedMembers, 0.95), 2)} ms; all rooms ${fmt(joinedMembers.reduce((a, b) => a + b, 0) / 1000, 2)} s; ${int(jmBytes / ROOMS)} bytes a room | \`/members?membership=join\`: p50 ${fmt(median(members), 2)} ms, p95 ${fmt(percentile(members, 0.95), 2)} ms; all rooms ${fmt(members.reduce((a, b) => a + b, 0) / 1000, 2)} s; ${int(mBytes / ROOMS)} bytes a room |`,
    `| \`/joined_members\`, ${CONCURRENCY} at a time | ${int(ROOMS / jmSeconds)} rooms/s | \`/members?membership=join\`: ${int(ROOMS / mSeconds)} rooms/s |`,
    `| push: events delivered to a bridge answering at once | ${int(MESSAGES / pushSeconds)} events/s (${liveTxns} transactions) | sends acknowledged (${CONCURRENCY} at a time): ${int(MESSAGES / sendSeconds)} events/s |`,
    `| catch-up: ${int(MESSAGES)} events queued while the bridge was down, delivered once it answers (from its first accepted transaction) | ${int(drainRate)} events/s (${drainTxns} transactions) | |`,
  );
  console.log(lines.join('\n'));
} finally {
  await running.close();
  bridge.close();
  await prepared.cleanup();
  rmSync(workDir, { recursive: true, force: true });
}

if (process.argv.includes('--docs')) {
  const doc = 'docs/benchmarks.md';
  const intro = [
    '## A bridge on Commons (issue #22)',
    '',
    "`npm run bench:appservice` (not part of `npm run bench`; `bench/appservice.ts`): a bridge bot in N rooms and V virtual users (V / N in each room, with the bot), built through Commons' own services (room creation and joins, each event authorised, signed and stored as a client's would be; in batched transactions, and without the bridge registered) into a SQLite file cached under `bench/.cache/appservice/`, so a rerun starts at once; a PostgreSQL run loads that file into a template database (`commons port-db`'s row-for-row copy, `bench/copy-dataset.ts`) and clones it, since building through the services on PostgreSQL takes several times longer. Every run works on a copy. Commons then starts with the bridge's registration (the start rebuilds the record of which rooms the bridge's users are in: timed) and a bridge — a local HTTP server answering every transaction at once — listening. Over HTTP with the as_token: the bot's `/joined_rooms`, beside a bare `node:http` server answering the same bytes (the ceiling); `/joined_members` of every room as a bridge does at start-up, interleaved room by room (order alternating) with `/members?membership=join`, what it would read without it; both at 10 concurrent requests; the rate messages sent by virtual users (10 at a time) reach the bridge beside the rate their sends were acknowledged; and the rate a queue built while the bridge was down drains. The issue's shape is `--rooms 10000 --virtual 50000` (the defaults); `--db postgres` runs on PostgreSQL (`COMMONS_BENCH_POSTGRES_URL`, a user that may create databases); `--docs` writes the run here.",
    '',
    "**The runs below are at the issue's full shape** (10,000 rooms, 50,000 virtual users), on this shared two-core machine with other jobs running (the load average at the start and end of each run is stated), so the times are noisy and the figures beside them, measured in the same run, mean more. How to read them: where the push rate equals the send rate, the bridge kept up — events left in small transactions (the count is given) soon after they were committed, and what limits the rate is the sending; the catch-up rate is what the sender delivers when events are waiting (up to 100 per transaction). `/joined_members` answers about a sixth of the bytes of `/members?membership=join` for the same room.",
  ].join('\n');
  const dialect = DIALECT;
  const text = readFileSync(doc, 'utf8');
  const runs = (['sqlite', 'postgres'] as const).map((d) =>
    d === dialect
      ? `<!-- appservice-${d}:begin -->\n${lines.join('\n')}\n<!-- appservice-${d}:end -->`
      : (sectionOf(text, `appservice-${d}`) ?? ''),
  );
  const body = [intro, ...runs.filter((run) => run !== '')].join('\n\n');
  const options = (await prettier.resolveConfig(doc)) ?? {};
  writeFileSync(
    doc,
    await prettier.format(withSection(text, 'appservice', body), { ...options, filepath: doc }),
  );
  log(`wrote ${doc}`);
}
