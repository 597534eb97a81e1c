/**
 * The "idle clients" scenario (`npm run bench -- --scenario idle`, issue #19): message delivery
 * between two users while many other users hold idle /sync long-polls, beside the same load
 * without them, measured in the same run. Its own small dataset (the idle users, in rooms of
 * ten, and the two talking users in their own room), seeded through Commons' services in a few
 * seconds; it does not need the big dataset of the other scenarios.
 *
 * For each setup (SQLite; PostgreSQL; PostgreSQL with three worker processes) the phases are:
 * a baseline (the load alone), the idle users connecting (an initial sync each, then a
 * long-poll), the load while every idle user holds a long-poll, and a second baseline after
 * they have gone. Throughout, /versions is probed every 20 ms and each server's peak RSS kept.
 */
import { sectionOfFile } from './doc-sections.js';
import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { Agent, request } from 'node:http';
import pg from 'pg';
import { loadServerSecrets } from '../src/config/server-secrets.js';
import type { Requester } from '../src/services/index.js';
import { openStorage } from '../src/storage/index.js';
import { batchingServices, SERVER_NAME } from './generate.js';
import { startCommons, type ServerProcess } from './processes.js';
import type { PollerStart, PollerStats } from './idle-poller.js';

const ROOM_SIZE = 10;
const POLLERS = 2;
const MESSAGE_INTERVAL_MS = 100;
const PROBE_INTERVAL_MS = 20;
/** How long a message may take to arrive before it counts as lost. */
const DRAIN_MS = 10_000;
/** The longest the idle users may take to connect before the idle phase starts anyway. */
const CONNECT_LIMIT_MS = 900_000;

export type IdleSetup = 'sqlite' | 'postgres' | 'postgres-3-workers';

export interface IdleOptions {
  root: string;
  workDir: string;
  resultsDir: string;
  postgresUrl: string;
  setups: IdleSetup[];
  users: number;
  durationSeconds: number;
  pollTimeoutMs: number;
  connectConcurrency: number;
  serverEntry: 'tsx' | 'dist';
  cpuProfDir?: string | undefined;
  serverEnv?: Record<string, string>;
  log: (message: string) => void;
}

export interface LatencySummary {
  count: number;
  p50: number;
  p99: number;
  max: number;
}

export interface PhaseResult {
  phase: 'baseline' | 'connect' | 'idle' | 'baseline-after';
  seconds: number;
  sent: number;
  delivered: number;
  /** Messages delivered per second of the phase. */
  throughput: number;
  delivery: LatencySummary;
  versions: LatencySummary;
  /** Peak RSS of each server process during the phase, MiB. */
  rssMiB: number[];
  /** PostgreSQL: the most connections of the bench database seen at once, by state. */
  connections?: { active: number; idleInTransaction: number; total: number };
  pollers?: Omit<PollerStats, 'type'>;
}

export interface IdleSetupResult {
  setup: IdleSetup;
  workers: number;
  users: number;
  seedSeconds: number;
  connectSeconds?: number;
  phases: PhaseResult[];
  error?: string;
}

export interface IdleReport {
  format: 1;
  scenario: 'idle-clients';
  startedAt: string;
  seconds: number;
  git: { commit: string; dirty: boolean };
  settings: {
    users: number;
    roomSize: number;
    durationSeconds: number;
    pollTimeoutMs: number;
    connectConcurrency: number;
    messageIntervalMs: number;
  };
  loadAverage: number[];
  setups: IdleSetupResult[];
}

interface BenchUser {
  userId: string;
  token: string;
}

interface Seeded {
  sender: BenchUser;
  receiver: BenchUser;
  roomId: string;
  idle: BenchUser[];
}

const requester = (userId: string): Requester => ({ userId, deviceId: 'BENCH', isAdmin: false });

/** Users, their tokens and rooms, written in a few large transactions. */
async function seed(url: string, dataDir: string, users: number): Promise<Seeded> {
  const real = await openStorage(url, { poolSize: 2 });
  const { signingKey } = loadServerSecrets(dataDir);
  const { services, batch } = batchingServices(real, signingKey, async () => undefined);
  const uid = (localpart: string) => `@${localpart}:${SERVER_NAME}`;
  const idleIds = Array.from({ length: users }, (_, i) => uid(`idle${i}`));
  const all = [uid('sender'), uid('receiver'), ...idleIds];
  const tokens = new Map<string, string>();
  try {
    const now = Date.now();
    for (let start = 0; start < all.length; start += 1000) {
      await batch('idleBenchUsers', async (stores) => {
        for (const userId of all.slice(start, start + 1000)) {
          const localpart = userId.slice(1, userId.indexOf(':'));
          await stores.accounts.insertUser({
            userId,
            localpart,
            passwordHash: null,
            isAdmin: false,
            displayname: localpart,
            createdTs: now,
          });
          const login = await services.accounts.issueLogin(userId, {
            deviceId: 'BENCH',
            displayName: 'benchmark',
            ip: null,
          });
          tokens.set(userId, login.accessToken);
        }
      });
    }
    const roomId = await batch('idleBenchTalk', async () => {
      const { roomId } = await services.rooms.createRoom(requester(uid('sender')), {
        preset: 'public_chat',
        name: 'talk',
      });
      await services.membership.join(requester(uid('receiver')), roomId);
      return roomId;
    });
    const groups = Math.ceil(users / ROOM_SIZE);
    for (let g0 = 0; g0 < groups; g0 += 50) {
      await batch('idleBenchRooms', async () => {
        for (let g = g0; g < Math.min(groups, g0 + 50); g++) {
          const members = idleIds.slice(g * ROOM_SIZE, (g + 1) * ROOM_SIZE);
          const { roomId: room } = await services.rooms.createRoom(
            requester(members[0] as string),
            { preset: 'public_chat', name: `idle ${g}` },
          );
          for (const member of members.slice(1))
            await services.membership.join(requester(member), room);
        }
      });
    }
    const user = (userId: string): BenchUser => ({ userId, token: tokens.get(userId) ?? '' });
    return {
      sender: user(uid('sender')),
      receiver: user(uid('receiver')),
      roomId,
      idle: idleIds.map(user),
    };
  } finally {
    await real.close();
  }
}

function summary(values: number[]): LatencySummary {
  if (values.length === 0) return { count: 0, p50: 0, p99: 0, max: 0 };
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) =>
    sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] as number;
  const round = (v: number) => Math.round(v * 100) / 100;
  return {
    count: sorted.length,
    p50: round(at(0.5)),
    p99: round(at(0.99)),
    max: round(sorted[sorted.length - 1] as number),
  };
}

interface Response {
  status: number;
  body: string;
}

function send(
  agent: Agent,
  base: string,
  method: string,
  urlPath: string,
  token?: string,
  body?: unknown,
): Promise<Response> {
  return new Promise((resolve, reject) => {
    const target = new URL(base);
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: Record<string, string | number> = {};
    if (token) headers.Authorization = `Bearer ${token}`;
    if (payload) {
      headers['Content-Type'] = 'application/json';
      headers['Content-Length'] = payload.length;
    }
    const req = request(
      { host: target.hostname, port: target.port, path: urlPath, method, headers, agent },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/** The load: a message every 100 ms from sender to receiver, and the receiver's long-poll. */
function messageLoad(urls: string[], seeded: Seeded) {
  const senderUrl = urls[0] as string;
  // With several workers the receiver polls another process than the sender writes to.
  const receiverUrl = urls[urls.length > 1 ? 1 : 0] as string;
  const senderAgent = new Agent({ keepAlive: true, maxSockets: 64 });
  const receiverAgent = new Agent({ keepAlive: true, maxSockets: 1 });
  const sentAt = new Map<string, number>();
  const deliveredAt = new Map<string, number>();
  let stopped = false;
  let counter = 0;
  let since: string | null = null;

  async function receive(): Promise<void> {
    while (!stopped) {
      const query: string =
        since === null ? 'timeout=0' : `timeout=30000&since=${encodeURIComponent(since)}`;
      try {
        const res = await send(
          receiverAgent,
          receiverUrl,
          'GET',
          `/_matrix/client/v3/sync?${query}`,
          seeded.receiver.token,
        );
        const now = performance.now();
        if (res.status !== 200) throw new Error(`sync: HTTP ${res.status}`);
        const body = JSON.parse(res.body) as {
          next_batch: string;
          rooms?: {
            join?: Record<
              string,
              { timeline?: { events?: { content?: { bench_id?: string } }[] } }
            >;
          };
        };
        since = body.next_batch;
        const events = body.rooms?.join?.[seeded.roomId]?.timeline?.events ?? [];
        for (const event of events) {
          const id = event.content?.bench_id;
          if (id && !deliveredAt.has(id)) deliveredAt.set(id, now);
        }
      } catch {
        await delay(200);
      }
    }
  }

  let timer: NodeJS.Timeout | null = null;
  let inFlight = 0;
  const receiving = receive();
  return {
    /** Waits until the receiver has its first token. */
    async ready() {
      while (since === null) await delay(20);
    },
    startSending() {
      timer = setInterval(() => {
        if (inFlight >= 64) return;
        const id = `m${counter++}`;
        sentAt.set(id, performance.now());
        inFlight += 1;
        send(
          senderAgent,
          senderUrl,
          'PUT',
          `/_matrix/client/v3/rooms/${encodeURIComponent(seeded.roomId)}/send/m.room.message/${id}`,
          seeded.sender.token,
          { msgtype: 'm.text', body: `message ${id}`, bench_id: id },
        )
          .catch(() => undefined)
          .finally(() => (inFlight -= 1));
      }, MESSAGE_INTERVAL_MS);
    },
    /** The ids sent so far (a phase is the ids between two marks). */
    mark: () => counter,
    /** Deliveries of the messages m<from>..m<to-1>, after waiting for stragglers. */
    async settle(from: number, to: number) {
      const deadline = performance.now() + DRAIN_MS;
      const done = () => {
        for (let i = from; i < to; i++) if (!deliveredAt.has(`m${i}`)) return false;
        return true;
      };
      while (!done() && performance.now() < deadline) await delay(50);
      const latencies: number[] = [];
      for (let i = from; i < to; i++) {
        const sent = sentAt.get(`m${i}`);
        const got = deliveredAt.get(`m${i}`);
        if (sent !== undefined && got !== undefined) latencies.push(got - sent);
      }
      return { sent: to - from, latencies };
    },
    async stop() {
      stopped = true;
      if (timer) clearInterval(timer);
      senderAgent.destroy();
      receiverAgent.destroy();
      await receiving;
    },
  };
}

/** /versions every 20 ms, round-robin over the servers, one at a time. */
function versionsProbe(urls: string[]) {
  const agent = new Agent({ keepAlive: true, maxSockets: urls.length });
  let samples: number[] = [];
  let stopped = false;
  const running = (async () => {
    let i = 0;
    while (!stopped) {
      const started = performance.now();
      try {
        await send(agent, urls[i++ % urls.length] as string, 'GET', '/_matrix/client/versions');
        samples.push(performance.now() - started);
      } catch {
        samples.push(performance.now() - started);
      }
      const wait = PROBE_INTERVAL_MS - (performance.now() - started);
      if (wait > 0) await delay(wait);
    }
  })();
  return {
    take(): number[] {
      const taken = samples;
      samples = [];
      return taken;
    },
    async stop() {
      stopped = true;
      await running;
      agent.destroy();
    },
  };
}

/** The most connections of the database at once, by state (PostgreSQL), sampled each 250 ms. */
function connectionWatcher(adminUrl: string | null, database: string | null) {
  let peak = { active: 0, idleInTransaction: 0, total: 0 };
  if (!adminUrl || !database) return { take: () => undefined, stop: async () => {} };
  const client = new pg.Client({ connectionString: adminUrl });
  const connected = client.connect();
  let stopped = false;
  const running = (async () => {
    await connected;
    while (!stopped) {
      const { rows } = await client.query<{ state: string | null; n: string }>(
        `SELECT state, count(*) AS n FROM pg_stat_activity WHERE datname = $1 GROUP BY state`,
        [database],
      );
      const by = (state: string) => Number(rows.find((r) => r.state === state)?.n ?? 0);
      const total = rows.reduce((sum, r) => sum + Number(r.n), 0);
      peak = {
        active: Math.max(peak.active, by('active')),
        idleInTransaction: Math.max(peak.idleInTransaction, by('idle in transaction')),
        total: Math.max(peak.total, total),
      };
      await delay(250);
    }
  })();
  return {
    take() {
      const taken = peak;
      peak = { active: 0, idleInTransaction: 0, total: 0 };
      return taken;
    },
    async stop() {
      stopped = true;
      await running.catch(() => undefined);
      await client.end();
    },
  };
}

function startPollers(root: string, idle: BenchUser[], urls: string[], options: IdleOptions) {
  const children: ChildProcess[] = [];
  const latest: PollerStats[] = [];
  const per = Math.ceil(idle.length / POLLERS);
  for (let p = 0; p < POLLERS; p++) {
    const child = fork(path.join(root, 'bench', 'idle-poller.ts'), [], {
      cwd: root,
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    latest[p] = { type: 'stats', connected: 0, answered: 0, woken: 0, errors: 0 };
    child.on('message', (m: PollerStats) => (latest[p] = m));
    const start: PollerStart = {
      type: 'start',
      urls,
      tokens: idle.slice(p * per, (p + 1) * per).map((u) => u.token),
      offset: p * per,
      pollTimeoutMs: options.pollTimeoutMs,
      connectConcurrency: Math.max(1, Math.floor(options.connectConcurrency / POLLERS)),
    };
    child.send(start);
    children.push(child);
  }
  const total = (): Omit<PollerStats, 'type'> => {
    const sum = { connected: 0, answered: 0, woken: 0, errors: 0 } as Omit<PollerStats, 'type'>;
    for (const s of latest) {
      sum.connected += s.connected;
      sum.answered += s.answered;
      sum.woken += s.woken;
      sum.errors += s.errors;
      if (s.lastError) sum.lastError = s.lastError;
    }
    return sum;
  };
  return {
    total,
    async stop() {
      await Promise.all(
        children.map(
          (child) =>
            new Promise<void>((resolve) => {
              if (child.exitCode !== null) return resolve();
              child.once('exit', () => resolve());
              child.send({ type: 'stop' });
              setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
            }),
        ),
      );
    },
  };
}

const quoteIdent = (name: string) => `"${name.replace(/"/g, '""')}"`;

async function admin<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

function databaseUrl(adminUrl: string, name: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

async function runSetup(
  setup: IdleSetup,
  options: IdleOptions,
  prepared: {
    url: string;
    dataDir: string;
    seeded: Seeded;
    seedSeconds: number;
    db: string | null;
  },
): Promise<IdleSetupResult> {
  const { log } = options;
  const workers = setup === 'postgres-3-workers' ? 3 : 1;
  const result: IdleSetupResult = {
    setup,
    workers,
    users: prepared.seeded.idle.length,
    seedSeconds: prepared.seedSeconds,
    phases: [],
  };
  const servers: ServerProcess[] = [];
  try {
    for (let w = 0; w < workers; w++)
      servers.push(
        await startCommons({
          root: options.root,
          url: prepared.url,
          dataDir: prepared.dataDir,
          entry: options.serverEntry,
          cpuProfDir: options.cpuProfDir,
          extraEnv: { ...options.serverEnv },
        }),
      );
    const urls = servers.map((s) => s.url);
    const load = messageLoad(urls, prepared.seeded);
    const probe = versionsProbe(urls);
    const watcher = connectionWatcher(prepared.db ? options.postgresUrl : null, prepared.db);
    await load.ready();
    load.startSending();
    await delay(2000); // warm-up
    probe.take();
    watcher.take();

    const phase = async (
      name: PhaseResult['phase'],
      body: () => Promise<void>,
      pollers?: { total(): Omit<PollerStats, 'type'> },
    ) => {
      for (const s of servers) s.startMemoryWindow();
      probe.take();
      watcher.take();
      const from = load.mark();
      const started = performance.now();
      await body();
      const seconds = (performance.now() - started) / 1000;
      const to = load.mark();
      const versions = summary(probe.take());
      const rssMiB = servers.map((s) => s.peakRssMiB());
      const connections = watcher.take();
      const { sent, latencies } = await load.settle(from, to);
      const row: PhaseResult = {
        phase: name,
        seconds: Math.round(seconds * 10) / 10,
        sent,
        delivered: latencies.length,
        throughput: Math.round((latencies.length / seconds) * 100) / 100,
        delivery: summary(latencies),
        versions,
        rssMiB,
        ...(connections ? { connections } : {}),
        ...(pollers ? { pollers: pollers.total() } : {}),
      };
      result.phases.push(row);
      log(
        `  ${setup} ${name}: ${row.delivered}/${row.sent} delivered, ${row.throughput}/s, ` +
          `delivery p50 ${row.delivery.p50} p99 ${row.delivery.p99} ms, /versions p99 ` +
          `${row.versions.p99} max ${row.versions.max} ms, RSS ${rssMiB.join('+')} MiB` +
          (connections
            ? `, connections ${connections.total} (active ${connections.active}, idle in tx ${connections.idleInTransaction})`
            : '') +
          (row.pollers ? `, polls ${JSON.stringify(row.pollers)}` : ''),
      );
    };

    await phase('baseline', () => delay(options.durationSeconds * 1000));
    const pollers = startPollers(options.root, prepared.seeded.idle, urls, options);
    try {
      const connectStarted = performance.now();
      const connectLimit = Date.now() + CONNECT_LIMIT_MS;
      await phase(
        'connect',
        async () => {
          while (
            pollers.total().connected + pollers.total().errors < prepared.seeded.idle.length &&
            Date.now() < connectLimit
          )
            await delay(100);
        },
        pollers,
      );
      result.connectSeconds = Math.round((performance.now() - connectStarted) / 100) / 10;
      await phase('idle', () => delay(options.durationSeconds * 1000), pollers);
    } finally {
      await pollers.stop();
    }
    await delay(2000);
    await phase('baseline-after', () => delay(options.durationSeconds * 1000));
    await load.stop();
    await probe.stop();
    await watcher.stop();
  } catch (err) {
    result.error = (err as Error).stack ?? String(err);
    log(`  ${setup}: ${result.error}`);
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
  }
  return result;
}

export async function runIdleClients(
  options: IdleOptions,
  git: { commit: string; dirty: boolean },
): Promise<IdleReport> {
  const started = Date.now();
  const report: IdleReport = {
    format: 1,
    scenario: 'idle-clients',
    startedAt: new Date(started).toISOString(),
    seconds: 0,
    git,
    settings: {
      users: options.users,
      roomSize: ROOM_SIZE,
      durationSeconds: options.durationSeconds,
      pollTimeoutMs: options.pollTimeoutMs,
      connectConcurrency: options.connectConcurrency,
      messageIntervalMs: MESSAGE_INTERVAL_MS,
    },
    loadAverage: [],
    setups: [],
  };
  const runDir = path.join(options.workDir, `idle-${process.pid}`);
  rmSync(runDir, { recursive: true, force: true });
  mkdirSync(runDir, { recursive: true });
  const pgTemplate = `commons_bench_idle_${process.pid}`;
  let pgSeeded: { seeded: Seeded; seedSeconds: number; dataDir: string } | null = null;
  try {
    for (const setup of options.setups) {
      options.log(`idle clients: ${setup} (${options.users} idle users)`);
      const dataDir = path.join(runDir, setup.startsWith('postgres') ? 'postgres' : 'sqlite');
      mkdirSync(dataDir, { recursive: true });
      let url: string;
      let db: string | null = null;
      let seeded: Seeded;
      let seedSeconds: number;
      if (setup === 'sqlite') {
        url = `sqlite:${path.join(dataDir, 'commons.db')}`;
        const t = performance.now();
        seeded = await seed(url, dataDir, options.users);
        seedSeconds = Math.round((performance.now() - t) / 100) / 10;
      } else {
        if (!pgSeeded) {
          await admin(options.postgresUrl, (c) =>
            c.query(`CREATE DATABASE ${quoteIdent(pgTemplate)}`),
          );
          const t = performance.now();
          const s = await seed(
            databaseUrl(options.postgresUrl, pgTemplate),
            dataDir,
            options.users,
          );
          await admin(databaseUrl(options.postgresUrl, pgTemplate), (c) =>
            c.query('VACUUM ANALYZE'),
          );
          pgSeeded = {
            seeded: s,
            seedSeconds: Math.round((performance.now() - t) / 100) / 10,
            dataDir,
          };
        }
        // Each PostgreSQL setup starts from the same seeded state (nobody online yet).
        db = `${pgTemplate}_${setup === 'postgres' ? 'one' : 'three'}`;
        await admin(options.postgresUrl, (c) =>
          c.query(`CREATE DATABASE ${quoteIdent(db as string)} TEMPLATE ${quoteIdent(pgTemplate)}`),
        );
        url = databaseUrl(options.postgresUrl, db);
        seeded = pgSeeded.seeded;
        seedSeconds = pgSeeded.seedSeconds;
      }
      options.log(`  seeded in ${seedSeconds} s`);
      report.loadAverage.push(...(await import('node:os')).loadavg().slice(0, 1));
      report.setups.push(await runSetup(setup, options, { url, dataDir, seeded, seedSeconds, db }));
      if (db)
        await admin(options.postgresUrl, (c) =>
          c.query(`DROP DATABASE IF EXISTS ${quoteIdent(db as string)} WITH (FORCE)`),
        );
    }
  } finally {
    if (pgSeeded)
      await admin(options.postgresUrl, (c) =>
        c.query(`DROP DATABASE IF EXISTS ${quoteIdent(pgTemplate)} WITH (FORCE)`),
      ).catch(() => undefined);
    rmSync(runDir, { recursive: true, force: true });
  }
  report.seconds = Math.round((Date.now() - started) / 1000);
  mkdirSync(options.resultsDir, { recursive: true });
  const stamp = report.startedAt.slice(0, 16).replace(':', '-');
  const file = path.join(options.resultsDir, `${stamp}-idle.json`);
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  options.log(`results: ${path.relative(options.root, file)}`);
  return report;
}

export const IDLE_BEGIN = '<!-- idle-clients:begin -->';
export const IDLE_END = '<!-- idle-clients:end -->';

/** The idle-clients section of docs/benchmarks.md, kept between its markers. */
export function existingIdleSection(docsPath: string): string | null {
  return sectionOfFile(docsPath, 'idle-clients');
}
