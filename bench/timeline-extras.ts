/**
 * Issue #24's two measurements, in process (services and storage, no HTTP):
 *
 *   node --import tsx bench/timeline-extras.ts search [events=1000000[,events…]] [sqlite|postgres]
 *   node --import tsx bench/timeline-extras.ts push [members=100000] [sqlite|postgres]
 *
 * search: one room of `events` messages (bodies of 8 words drawn Zipf-wise from 5,000, and
 * the word `needle` in one event of 100,000), built through Commons' own services in batched
 * transactions (over BULK_ABOVE events: two through the writer, the rest bulk-loaded in their
 * image, search-bulk.ts) and cached under bench/.cache/timeline-extras/ (PostgreSQL: a
 * template database loaded from the SQLite build, as the main bench does). The search counts
 * are checked against counts over the stored bodies; then `POST /search`'s service call for a
 * rare, a common and a two-word term, by rank and by recent: median and p95 of 15 runs. Sizes
 * separated by commas run one after the other in the same process.
 *
 * push: one room of `members` joined members (built without push evaluation, cached the same
 * way). Then a message is sent into it in turn with push evaluation after the event (the
 * default for a room this big: the worker of services/push/evaluation.ts), inline (every
 * member in the event's transaction) and off, 5 times each after a warm-up: the send's time,
 * the time until every member was evaluated, the longest the event loop was held from the send
 * until then (monitorEventLoopDelay), and the longest a small read made beside it (every 5 ms)
 * waited.
 *
 * PostgreSQL: COMMONS_BENCH_POSTGRES_URL (default postgres://postgres:commons-ci@127.0.0.1:5432/postgres),
 * whose user may create databases.
 */
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import pg from 'pg';
import { loadConfig } from '../src/config/load.js';
import { loadServerSecrets } from '../src/config/server-secrets.js';
import { serviceSettingsOf } from '../src/main.js';
import { createServices, type Requester, type Services } from '../src/services/index.js';
import { openStorage, type Storage, type Stores } from '../src/storage/index.js';
import { copySqliteToPostgres } from './copy-dataset.js';
import { bulkLoadMessages, NEEDLE_EVERY, searchBodies } from './search-bulk.js';

const SERVER_NAME = 'bench.local';
const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const CACHE = path.join(ROOT, 'bench/.cache/timeline-extras');
/** Bump when what the builders write changes. */
const FORMAT = 1;
const POSTGRES_URL =
  process.env.COMMONS_BENCH_POSTGRES_URL ??
  'postgres://postgres:commons-ci@127.0.0.1:5432/postgres';
const BATCH = 2000;
/**
 * Search rooms bigger than this are bulk-loaded (search-bulk.ts), not built through the writer
 * (COMMONS_BENCH_SEARCH_BULK_ABOVE: another threshold, e.g. to compare a bulk-loaded room with
 * one the writer built).
 */
const BULK_ABOVE = Number(process.env.COMMONS_BENCH_SEARCH_BULK_ABOVE ?? 250_000);

const requester = (userId: string): Requester => ({ userId, deviceId: 'BENCH', isAdmin: false });
const uid = (localpart: string) => `@${localpart}:${SERVER_NAME}`;
const log = (message: string) =>
  console.log(`[${new Date().toISOString().slice(11, 19)}] ${message}`);

/** Services over `real` whose writes go into the transaction `batch` has open. */
function batchingServices(real: Storage, dataDir: string, pushEvaluation: boolean) {
  let current: Stores | null = null;
  const storage: Storage = {
    dialect: real.dialect,
    get stores() {
      return current ?? real.stores;
    },
    tx: (name, fn) => (current ? fn(current) : real.tx(name, fn)),
    changes: real.changes,
    ping: () => real.ping(),
    claimServerName: (candidate) => real.claimServerName(candidate),
    poolStats: () => real.poolStats(),
    close: () => real.close(),
  };
  const services = makeServices(storage, dataDir, pushEvaluation);
  async function batch<T>(name: string, fn: () => Promise<T>): Promise<T> {
    return real.tx(name, async (stores) => {
      current = stores;
      try {
        return await fn();
      } finally {
        current = null;
      }
    });
  }
  return { services, batch };
}

function makeServices(
  storage: Storage,
  dataDir: string,
  pushEvaluation: boolean,
  pushInlineMembers?: number,
): Services {
  const defaults = loadConfig({ env: {} });
  return createServices({
    settings: {
      ...serviceSettingsOf(defaults),
      serverName: SERVER_NAME,
      registrationEnabled: false,
      registrationSharedSecret: null,
      passwordCostLog2N: 10,
      pushEvaluation,
      ...(pushInlineMembers === undefined ? {} : { pushInlineMembers }),
    },
    storage,
    now: Date.now,
    signingKey: loadServerSecrets(dataDir).signingKey,
  });
}

async function insertUsers(storage: Storage, localparts: readonly string[]): Promise<void> {
  for (let at = 0; at < localparts.length; at += BATCH)
    await storage.tx('benchUsers', async (tx) => {
      for (const localpart of localparts.slice(at, at + BATCH))
        await tx.accounts.insertUser({
          userId: uid(localpart),
          localpart,
          passwordHash: null,
          isAdmin: false,
          displayname: localpart,
          createdTs: 0,
        });
    });
}

interface Built {
  url: string;
  dataDir: string;
  roomId: string;
  cleanup(): Promise<void>;
}

/**
 * The cached dataset `name` for the dialect, built by `build` into a fresh SQLite file when
 * missing (PostgreSQL: loaded from that file into a template database, cloned per run).
 */
async function cached(
  name: string,
  dialect: 'sqlite' | 'postgres',
  build: (url: string, dataDir: string) => Promise<string>,
): Promise<Built> {
  const dir = path.join(CACHE, `${name}-f${FORMAT}`);
  const file = path.join(dir, 'commons.db');
  const dataDir = path.join(dir, 'data');
  const roomFile = path.join(dir, 'room-id');
  if (!existsSync(roomFile)) {
    const building = `${dir}.building-${process.pid}`;
    rmSync(building, { recursive: true, force: true });
    mkdirSync(path.join(building, 'data'), { recursive: true });
    const started = performance.now();
    const roomId = await build(
      `sqlite:${path.join(building, 'commons.db')}`,
      path.join(building, 'data'),
    );
    writeFileSync(path.join(building, 'room-id'), roomId);
    rmSync(dir, { recursive: true, force: true });
    renameSync(building, dir);
    log(`built ${name} in ${((performance.now() - started) / 1000).toFixed(0)} s`);
  }
  const roomId = readFileSync(roomFile, 'utf8');
  const work = path.join(os.tmpdir(), `commons-bench-te-${process.pid}`);
  rmSync(work, { recursive: true, force: true });
  cpSync(dataDir, path.join(work, 'data'), { recursive: true });
  if (dialect === 'sqlite') {
    copyFileSync(file, path.join(work, 'commons.db'));
    return {
      url: `sqlite:${path.join(work, 'commons.db')}`,
      dataDir: path.join(work, 'data'),
      roomId,
      cleanup: async () => rmSync(work, { recursive: true, force: true }),
    };
  }
  const template = `commons_bench_te_${name.replace(/[^a-z0-9]/gi, '_')}_f${FORMAT}`.toLowerCase();
  const runName = `commons_bench_te_run_${process.pid}`;
  const admin = new pg.Client({ connectionString: POSTGRES_URL });
  await admin.connect();
  try {
    const exists = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [template]);
    if (exists.rowCount === 0) {
      const loading = `${template}_loading`;
      await admin.query(`DROP DATABASE IF EXISTS "${loading}"`);
      await admin.query(`CREATE DATABASE "${loading}"`);
      const started = performance.now();
      await copySqliteToPostgres(file, withDatabase(POSTGRES_URL, loading), () => undefined);
      await admin.query(`ALTER DATABASE "${loading}" RENAME TO "${template}"`);
      log(
        `loaded ${name} into PostgreSQL in ${((performance.now() - started) / 1000).toFixed(0)} s`,
      );
    }
    await admin.query(`DROP DATABASE IF EXISTS "${runName}"`);
    await admin.query(`CREATE DATABASE "${runName}" TEMPLATE "${template}"`);
  } finally {
    await admin.end();
  }
  return {
    url: withDatabase(POSTGRES_URL, runName),
    dataDir: path.join(work, 'data'),
    roomId,
    async cleanup() {
      const c = new pg.Client({ connectionString: POSTGRES_URL });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS "${runName}"`);
      await c.end();
      rmSync(work, { recursive: true, force: true });
    },
  };
}

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

function stats(times: number[]) {
  const sorted = [...times].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
  return { median: at(0.5), p95: at(0.95), max: sorted[sorted.length - 1] ?? 0 };
}
const ms = (n: number) => n.toFixed(n < 10 ? 2 : 1);

// ---------------------------------------------------------------------------------------------

/**
 * The search room: created and joined through the services, then `events` messages through
 * the event writer, or, above BULK_ABOVE events, the first two through the writer and the
 * rest bulk-loaded in their image (search-bulk.ts).
 */
async function buildSearchRoom(events: number, url: string, dataDir: string): Promise<string> {
  const bulk = events > BULK_ABOVE;
  const storage = await openStorage(url, { poolSize: 2 });
  const bodyOf = searchBodies();
  let roomId: string;
  try {
    await insertUsers(storage, ['alice', 'bob']);
    const { services, batch } = batchingServices(storage, dataDir, false);
    roomId = await batch('benchRoom', async () => {
      const { roomId } = await services.rooms.createRoom(requester(uid('alice')), {
        preset: 'public_chat',
        name: 'search',
      });
      await services.membership.join(requester(uid('bob')), roomId);
      return roomId;
    });
    const started = performance.now();
    const written = bulk ? 2 : events;
    for (let at = 0; at < written; at += BATCH) {
      await batch('benchMessages', async () => {
        for (let i = at; i < Math.min(written, at + BATCH); i++) {
          await services.roomEvents.sendMessage(
            requester(senderOf(i)),
            roomId,
            'm.room.message',
            `m${i}`,
            { msgtype: 'm.text', body: bodyOf(i) },
          );
        }
      });
      if ((at / BATCH) % 25 === 0) {
        const done = Math.min(written, at + BATCH);
        const rate = done / ((performance.now() - started) / 1000);
        log(`  ${done} / ${written} events (${rate.toFixed(0)}/s)`);
      }
    }
  } finally {
    await storage.close();
  }
  if (bulk)
    await bulkLoadMessages({
      url,
      roomId,
      serverName: SERVER_NAME,
      signingKey: loadServerSecrets(dataDir).signingKey,
      from: 2,
      to: events,
      senderOf,
      bodyOf,
      log,
    });
  return roomId;
}

const senderOf = (i: number) => uid(i % 2 === 0 ? 'alice' : 'bob');

/**
 * Checks the room's answers before they are timed: `needle`'s count is the number of events
 * that hold it by construction, and `w1`'s and `w7 w12`'s counts equal a count over the stored
 * events' bodies (read from their PDUs, not from the search rows).
 */
async function checkSearchRoom(
  storage: Storage,
  services: Services,
  roomId: string,
  events: number,
): Promise<string> {
  const countOf = async (term: string) =>
    (
      (await services.search.search(requester(uid('alice')), { search_term: term }, undefined)) as {
        search_categories: { room_events: { count?: number } };
      }
    ).search_categories.room_events.count;
  const expected = { needle: 0, w1: 0, 'w7 w12': 0 };
  let after = -1;
  for (;;) {
    const rows = await storage.stores.rooms.selectRoomEvents(roomId, {
      after,
      upTo: Number.MAX_SAFE_INTEGER,
      direction: 'forward',
      limit: 10_000,
    });
    for (const row of rows) {
      after = row.streamOrdering;
      const body = row.pdu.type === 'm.room.message' ? row.pdu.content.body : undefined;
      if (typeof body !== 'string') continue;
      const words = new Set(body.split(' '));
      if (words.has('needle')) expected.needle++;
      if (words.has('w1')) expected.w1++;
      if (words.has('w7') && words.has('w12')) expected['w7 w12']++;
    }
    if (rows.length < 10_000) break;
  }
  // Messages 0 … events - 1 hold needle at NEEDLE_EVERY / 2, then every NEEDLE_EVERY.
  const needles =
    events > NEEDLE_EVERY / 2 ? Math.floor((events - NEEDLE_EVERY / 2 - 1) / NEEDLE_EVERY) + 1 : 0;
  const problems: string[] = [];
  if (expected.needle !== needles)
    problems.push(`${expected.needle} stored bodies hold needle, ${needles} built`);
  for (const [term, count] of Object.entries(expected)) {
    const answered = await countOf(term);
    if (answered !== count) problems.push(`${term}: search counts ${answered}, bodies ${count}`);
  }
  if (problems.length > 0) throw new Error(`search room check failed: ${problems.join('; ')}`);
  return Object.entries(expected)
    .map(([term, count]) => `${term} ${count}`)
    .join(', ');
}

async function benchSearch(events: number, dialect: 'sqlite' | 'postgres'): Promise<void> {
  const name = events > BULK_ABOVE ? `search-${events}-bulk` : `search-${events}`;
  const built = await cached(name, dialect, (url, dataDir) =>
    buildSearchRoom(events, url, dataDir),
  );
  const storage = await openStorage(built.url, { poolSize: 4 });
  try {
    const services = makeServices(storage, built.dataDir, true);
    const alice = requester(uid('alice'));
    const checked = await checkSearchRoom(storage, services, built.roomId, events);
    log(`checked: search counts = counts over the stored bodies (${checked})`);
    console.log(
      `search, ${dialect}, one room of ${events} events${events > BULK_ABOVE ? ' (bulk-loaded)' : ''}, load average ${os
        .loadavg()
        .map((n) => n.toFixed(1))
        .join(' ')}`,
    );
    console.log('| term | order_by | results (count) | median ms | p95 ms |');
    console.log('| --- | --- | ---: | ---: | ---: |');
    for (const term of ['needle', 'w1', 'w7 w12', 'w4000']) {
      for (const order of ['rank', 'recent'] as const) {
        const run = () =>
          services.search.search(alice, { search_term: term, order_by: order }, undefined);
        const first = (
          (await run()) as {
            search_categories: { room_events: { count?: number; results?: unknown[] } };
          }
        ).search_categories.room_events;
        const times: number[] = [];
        for (let i = 0; i < 15; i++) {
          const t0 = performance.now();
          await run();
          times.push(performance.now() - t0);
        }
        const s = stats(times);
        console.log(
          `| \`${term}\` | ${order} | ${first.results?.length ?? 0} (${first.count ?? '?'}) | ${ms(s.median)} | ${ms(s.p95)} |`,
        );
      }
    }
  } finally {
    await storage.close();
    await built.cleanup();
  }
}

// ---------------------------------------------------------------------------------------------

async function buildBigRoom(members: number, url: string, dataDir: string): Promise<string> {
  const storage = await openStorage(url, { poolSize: 2 });
  try {
    const localparts = Array.from({ length: members }, (_, i) => `m${i}`);
    await insertUsers(storage, localparts);
    const { services, batch } = batchingServices(storage, dataDir, false);
    const roomId = await batch('benchRoom', async () => {
      const { roomId } = await services.rooms.createRoom(requester(uid('m0')), {
        preset: 'public_chat',
        name: 'big',
      });
      return roomId;
    });
    const started = performance.now();
    for (let at = 1; at < members; at += BATCH / 2) {
      await batch('benchJoins', async () => {
        for (let i = at; i < Math.min(members, at + BATCH / 2); i++)
          await services.membership.join(requester(uid(`m${i}`)), roomId);
      });
      if (((at - 1) / (BATCH / 2)) % 10 === 0) {
        const done = Math.min(members, at + BATCH / 2);
        log(
          `  ${done} / ${members} joins (${(done / ((performance.now() - started) / 1000)).toFixed(0)}/s)`,
        );
      }
    }
    return roomId;
  } finally {
    await storage.close();
  }
}

async function benchPush(members: number, dialect: 'sqlite' | 'postgres'): Promise<void> {
  const built = await cached(`push-${members}`, dialect, (url, dataDir) =>
    buildBigRoom(members, url, dataDir),
  );
  const storage = await openStorage(built.url, { poolSize: 4 });
  try {
    // after: the default (rooms over 100 members evaluated after the event's transaction, by
    // the worker); inline: every member in the event's transaction (as before #24's worker);
    // off: no evaluation at all.
    const modes = {
      after: makeServices(storage, built.dataDir, true),
      inline: makeServices(storage, built.dataDir, true, Number.MAX_SAFE_INTEGER),
      off: makeServices(storage, built.dataDir, false),
    };
    const worker = modes.after.pushEvaluation;
    worker.start({
      log: { warn: (fields, message) => log(`${message} ${JSON.stringify(fields)}`) },
    });
    console.log(
      `push, ${dialect}, one room of ${members} joined members, load average ${os
        .loadavg()
        .map((n) => n.toFixed(1))
        .join(' ')}`,
    );
    const sender = requester(uid('m0'));
    type Row = { send: number; evaluated: number; loop: number; loop99: number; read: number };
    const results: Record<keyof typeof modes, Row[]> = { after: [], inline: [], off: [] };
    let n = 0;
    const ROUNDS = 5;
    const order = ['after', 'inline', 'off'] as const;
    for (let round = 0; round < (ROUNDS + 1) * order.length; round++) {
      const key = order[round % order.length] as keyof typeof modes;
      const services = modes[key];
      const delay = monitorEventLoopDelay({ resolution: 1 });
      delay.enable();
      // A small read every 5 ms beside the send and the evaluation: how long does one wait?
      let reading = true;
      let longestRead = 0;
      const reader = (async () => {
        while (reading) {
          const t0 = performance.now();
          await storage.stores.rooms.selectRoom(built.roomId);
          longestRead = Math.max(longestRead, performance.now() - t0);
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
      })();
      const t0 = performance.now();
      await services.roomEvents.sendMessage(sender, built.roomId, 'm.room.message', `p${n++}`, {
        msgtype: 'm.text',
        body: `hello everyone ${round}`,
      });
      const took = performance.now() - t0;
      // Until the worker has evaluated every member (at once for inline and off).
      await worker.idle();
      const evaluated = performance.now() - t0;
      reading = false;
      await reader;
      // A few milliseconds more, so the histogram's timer records a delay still under way
      // (a send that never yields to timers is otherwise never sampled).
      await new Promise((resolve) => setTimeout(resolve, 5));
      delay.disable();
      // The first round of each is a warm-up.
      if (round >= order.length)
        results[key].push({
          send: took,
          evaluated,
          loop: delay.max / 1e6,
          loop99: delay.percentile(99) / 1e6,
          read: longestRead,
        });
    }
    await worker.stop();
    console.log(
      '| push evaluation | send median ms | send max ms | evaluated median ms | event loop delay max ms (p99) | read beside it max ms |',
    );
    console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
    for (const key of order) {
      const rows = results[key];
      const send = stats(rows.map((r) => r.send));
      const evaluated = stats(rows.map((r) => r.evaluated));
      const loop = stats(rows.map((r) => r.loop));
      const loop99 = stats(rows.map((r) => r.loop99));
      const read = stats(rows.map((r) => r.read));
      console.log(
        `| ${key} | ${ms(send.median)} | ${ms(send.max)} | ${key === 'off' ? '–' : ms(evaluated.median)} | ${ms(loop.max)} (${ms(loop99.max)}) | ${ms(read.max)} |`,
      );
    }
    const pushed = await storage.stores.push.selectNotifications(
      uid('m1'),
      Number.MAX_SAFE_INTEGER,
      100,
      false,
    );
    console.log(
      `(m1 has ${pushed.length} notifications: ${(ROUNDS + 1) * 2} expected from the rounds with evaluation)`,
    );
  } finally {
    await storage.close();
    await built.cleanup();
  }
}

const [mode, sizeArg, dialectArg] = process.argv.slice(2);
const dialect = dialectArg === 'postgres' ? 'postgres' : 'sqlite';
if (mode === 'search')
  for (const size of (sizeArg ?? '1000000').split(',')) await benchSearch(Number(size), dialect);
else if (mode === 'push') await benchPush(Number(sizeArg ?? 100_000), dialect);
else {
  console.error('usage: timeline-extras.ts search|push [size] [sqlite|postgres]');
  process.exitCode = 2;
}
