/**
 * `npm run bench:peers`: Commons and Synapse side by side (issue #20). Installs the newest
 * Synapse from PyPI into a cached virtual environment, starts both servers on SQLite (or each
 * on a PostgreSQL database of its own with --postgres), builds the same dataset through each
 * server's client API (bench/peers/dataset.ts; built once and kept under
 * bench/.cache/peers/), checks that both give the same answers, then times the scenarios of
 * bench/peers/scenarios.ts on both, interleaved. Without PyPI the run says SKIPPED and exits 0.
 *
 * Writes bench/results/<time>-peers-<database>.json, prints the table, and with --docs puts it
 * in docs/benchmarks.md ("Commons and Synapse").
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { VERSION } from '../src/version.js';
import { databaseUrl, postgresProblem } from './cache.js';
import { startCommons, type ServerProcess } from './processes.js';
import { installSynapse, startSynapse, type SynapseProcess } from './synapse.js';
import { C, peerClient, r, type PeerClient, type PeerName } from './peers/client.js';
import {
  BUILD_PARALLEL,
  buildDataset,
  ISSUE_SHAPE,
  type DatasetShape,
  type Manifest,
} from './peers/dataset.js';
import { journalDone, openJournal } from './peers/journal.js';
import { measure, scenarios, writeScenarios, type Peer } from './peers/scenarios.js';
import { renderRun, type PeersReport } from './peers/report.js';
import { writePeersSection } from './peers/docs.js';
import { waitUntilQuiet } from './quiet.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

const HELP = `npm run bench:peers -- [options]
  --members N        joined members of the big room (${ISSUE_SHAPE.members})
  --left N           members who joined the big room and left (${ISSUE_SHAPE.left})
  --shared N         rooms the pair shares (${ISSUE_SHAPE.shared})
  --own N            rooms each of the pair is in alone (${ISSUE_SHAPE.own})
  --bot-rooms N      the bot's rooms (${ISSUE_SHAPE.botRooms})
  --bot-room-size N  members of each bot room (${ISSUE_SHAPE.botRoomSize})
  --runs N           timed runs of each request at one connection (25)
  --warmup N         untimed runs of each request on both servers first (as many as --runs)
  --load-seconds N   seconds at 32 connections (5)
  --write-seconds N  seconds of each write scenario (10)
  --postgres URL     both servers on PostgreSQL (a database each, made on that server)
  --rebuild          build the data again instead of using the cached copy (or carrying
                     on with a build that stopped part-way)
  --build-only       build (or check) the data and stop before measuring
  --build-parallel N requests in flight at once on each server while building (${BUILD_PARALLEL})
  --only ID,…        time only these scenarios (joined_members, members, members_join,
                     members_at, joined_rooms, mutual_first_page, mutual_walk, bot_start,
                     initial_sync, incremental_sync, write_messages, write_joins); not with --docs
  --cpu-prof DIR     write Commons' CPU profile (.cpuprofile, for Chrome's DevTools) into DIR
  --docs             write the figures into docs/benchmarks.md`;

const { values: args } = parseArgs({
  options: {
    members: { type: 'string', default: String(ISSUE_SHAPE.members) },
    left: { type: 'string', default: String(ISSUE_SHAPE.left) },
    shared: { type: 'string', default: String(ISSUE_SHAPE.shared) },
    own: { type: 'string', default: String(ISSUE_SHAPE.own) },
    'bot-rooms': { type: 'string', default: String(ISSUE_SHAPE.botRooms) },
    'bot-room-size': { type: 'string', default: String(ISSUE_SHAPE.botRoomSize) },
    runs: { type: 'string', default: '25' },
    warmup: { type: 'string' },
    'load-seconds': { type: 'string', default: '5' },
    'write-seconds': { type: 'string', default: '10' },
    postgres: { type: 'string' },
    rebuild: { type: 'boolean', default: false },
    docs: { type: 'boolean', default: false },
    'build-only': { type: 'boolean', default: false },
    'build-parallel': { type: 'string', default: String(BUILD_PARALLEL) },
    'cpu-prof': { type: 'string' },
    only: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});

const log = (message: string) =>
  console.log(`[peers ${new Date().toISOString().slice(11, 19)}] ${message}`);

function positive(name: string, value: string | undefined): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a whole number`);
  return n;
}

async function createPostgresDatabase(adminUrl: string, name: string, synapse: boolean) {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    // Synapse asks for the C collation.
    await admin.query(
      synapse
        ? `CREATE DATABASE ${name} ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0`
        : `CREATE DATABASE ${name}`,
    );
  } finally {
    await admin.end();
  }
}

interface Side {
  name: PeerName;
  dir: string;
  manifestFile: string;
  /** The build's journal (peers/journal.ts): the data counts as built once it says so. */
  journalFile: string;
  /** PostgreSQL: the database's name. */
  database?: string;
}

/** Where each server's built data lives, and whether it is there to be used. */
function sidesOf(shape: DatasetShape, dialect: 'sqlite' | 'postgres') {
  const key = createHash('sha256').update(JSON.stringify(shape)).digest('hex').slice(0, 10);
  // The cache's real path (bench/.cache may be a link to another checkout's): Synapse writes its
  // data directory's paths into its configuration, which must outlive the checkout that built it.
  const cache = path.join(ROOT, 'bench', '.cache');
  const real = existsSync(cache) ? realpathSync(cache) : cache;
  const base = path.join(real, 'peers', `${dialect}-${key}`);
  const side = (name: PeerName): Side => ({
    name,
    dir: path.join(base, name.toLowerCase()),
    manifestFile: path.join(base, `${name.toLowerCase()}-manifest.json`),
    journalFile: path.join(base, `${name.toLowerCase()}-journal.jsonl`),
    ...(dialect === 'postgres' ? { database: `${name.toLowerCase()}_peers_${key}` } : {}),
  });
  return { base, commons: side('Commons'), synapse: side('Synapse') };
}

/**
 * Claims the data directory for this process (`build.pid` in it), so that a second run of the
 * same shape cannot build into it, or time it, while a first is still building; a claim whose
 * process is gone is taken over. Released when this process exits.
 */
function lockBase(base: string): void {
  mkdirSync(base, { recursive: true });
  const file = path.join(base, 'build.pid');
  const holder = existsSync(file) ? Number(readFileSync(file, 'utf8')) : 0;
  if (holder > 0 && holder !== process.pid) {
    let alive = true;
    try {
      process.kill(holder, 0);
    } catch {
      alive = false;
    }
    if (alive)
      throw new Error(
        `${base} is in use by process ${holder} (a build under way?): wait for it or stop it`,
      );
  }
  writeFileSync(file, String(process.pid));
  process.once('exit', () => rmSync(file, { force: true }));
}

/**
 * A server a run killed outright (SIGKILL) left running on a side's data, found from the process
 * ID that run recorded in `server.pid` and stopped, so that two servers never share one
 * database: the process is stopped only if it is still that server (its command line or
 * environment names the side's directory).
 */
async function stopStray(side: Side): Promise<void> {
  const file = path.join(side.dir, 'server.pid');
  if (!existsSync(file)) return;
  const pid = Number(readFileSync(file, 'utf8'));
  const proc = (what: string) => {
    try {
      return readFileSync(`/proc/${pid}/${what}`, 'utf8');
    } catch {
      return '';
    }
  };
  const ours =
    pid > 0 &&
    (side.name === 'Synapse'
      ? proc('cmdline').includes(path.join(side.dir, 'homeserver.yaml'))
      : proc('environ').split('\0').includes(`COMMONS_DATA_DIR=${side.dir}`));
  if (ours) {
    log(`${side.name}: stopping process ${pid}, left running on this data by a killed run`);
    process.kill(pid, 'SIGTERM');
    for (let i = 0; i < 150 && proc('cmdline') !== ''; i++)
      await new Promise((resolve) => setTimeout(resolve, 100));
    if (proc('cmdline') !== '') process.kill(pid, 'SIGKILL');
  }
  rmSync(file, { force: true });
}

/** Records a side's server process (see stopStray). */
const recordServer = (side: Side, pid: number) =>
  writeFileSync(path.join(side.dir, 'server.pid'), String(pid));

/**
 * The built data's manifest when the side's data is complete (its journal says so; data built
 * before there were journals has a manifest only), or null once the side is ready to be built:
 * kept as it is when a journal says a build began (the build carries on), emptied otherwise.
 */
async function prepare(side: Side, rebuild: boolean): Promise<Manifest | null> {
  const journaled = existsSync(side.journalFile);
  if (!rebuild && existsSync(side.manifestFile) && (!journaled || journalDone(side.journalFile)))
    return JSON.parse(readFileSync(side.manifestFile, 'utf8')) as Manifest;
  if (!rebuild && journaled) {
    log(`${side.name}: carrying on with the build its journal records (${side.journalFile})`);
    return null;
  }
  rmSync(side.dir, { recursive: true, force: true });
  rmSync(side.manifestFile, { force: true });
  rmSync(side.journalFile, { force: true });
  mkdirSync(side.dir, { recursive: true });
  if (side.database && args.postgres)
    await createPostgresDatabase(args.postgres, side.database, side.name === 'Synapse');
  return null;
}

interface Answers {
  joined: string;
  names: string;
  members: number;
  joinedNow: number;
  joinedAt: number;
  pairRooms: number;
  botRooms: number;
  mutual: number;
  botRoomSizes: string;
}

const localpart = (userId: string) => userId.slice(1, userId.indexOf(':'));

async function answersOf(client: PeerClient, m: Manifest): Promise<Answers> {
  const big = `${C}/rooms/${r(m.bigRoom)}`;
  const joined = await client.get<{ joined: Record<string, { display_name?: string }> }>(
    'joined_members',
    `${big}/joined_members`,
    m.owner.token,
  );
  const count = async (path: string, token = m.owner.token) =>
    (await client.get<{ chunk: unknown[] }>(path, path, token)).chunk.length;
  const roomsOf = async (token: string) =>
    (await client.get<{ joined_rooms: string[] }>('joined_rooms', `${C}/joined_rooms`, token))
      .joined_rooms.length;
  let mutual = 0;
  let from: string | undefined;
  do {
    const page: { joined: string[]; next_batch?: string } = await client.get(
      'mutual_rooms',
      `/_matrix/client/v1/mutual_rooms?user_id=${r(m.pairB.userId)}${from ? `&from=${r(from)}` : ''}`,
      m.pairA.token,
    );
    mutual += page.joined.length;
    from = page.next_batch;
  } while (from);
  const sizes: number[] = [];
  for (const roomId of m.botRoomIds.slice(0, 20)) {
    const body = await client.get<{ joined: object }>(
      'bot room joined_members',
      `${C}/rooms/${r(roomId)}/joined_members`,
      m.bot.token,
    );
    sizes.push(Object.keys(body.joined).length);
  }
  const entries = Object.entries(joined.joined);
  return {
    joined: entries
      .map(([id]) => localpart(id))
      .sort()
      .join(','),
    names: entries
      .map(([, p]) => p.display_name ?? '')
      .sort()
      .join(','),
    members: await count(`${big}/members`),
    joinedNow: await count(`${big}/members?membership=join`),
    joinedAt: await count(`${big}/members?membership=join&at=${r(m.atToken)}`),
    pairRooms: await roomsOf(m.pairA.token),
    botRooms: await roomsOf(m.bot.token),
    mutual,
    botRoomSizes: sizes.join(','),
  };
}

function differences(a: Answers, b: Answers): string[] {
  const out: string[] = [];
  for (const key of Object.keys(a) as (keyof Answers)[]) {
    if (a[key] === b[key]) continue;
    const short = (v: string | number) =>
      typeof v === 'string' && v.length > 60 ? `${v.slice(0, 60)}…` : v;
    out.push(`${key}: Commons ${short(a[key])}, Synapse ${short(b[key])}`);
  }
  return out;
}

function rssMiB(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = /^VmRSS:\s+(\d+) kB/m.exec(status);
    return match ? +(Number(match[1]) / 1024).toFixed(1) : NaN;
  } catch {
    return NaN;
  }
}

/** Asks bench/soak-agent.mjs in the server for its memory (after a full GC with 'gc'). */
async function askAgent(
  pid: number,
  dir: string,
  command: 'gc' | 'none',
  sequence: number,
): Promise<Record<string, number>> {
  writeFileSync(path.join(dir, 'command'), command);
  process.kill(pid, 'SIGUSR2');
  const file = path.join(dir, `reply-${sequence}.json`);
  for (let i = 0; i < 600 && !existsSync(file); i++)
    await new Promise((resolve) => setTimeout(resolve, 50));
  return JSON.parse(readFileSync(file, 'utf8')) as Record<string, number>;
}

async function main(): Promise<void> {
  if (args.help) {
    console.log(HELP);
    return;
  }
  const install = installSynapse(path.join(ROOT, 'bench', '.cache'));
  if ('problem' in install) {
    console.log('='.repeat(78));
    console.log(`bench:peers: Synapse SKIPPED — ${install.problem}`);
    console.log('='.repeat(78));
    return;
  }
  if (args.postgres) {
    const problem = await postgresProblem(args.postgres);
    if (problem) throw new Error(`--postgres: ${problem}`);
  }
  const shape: DatasetShape = {
    members: positive('members', args.members),
    left: positive('left', args.left),
    shared: positive('shared', args.shared),
    own: positive('own', args.own),
    botRooms: positive('bot-rooms', args['bot-rooms']),
    botRoomSize: positive('bot-room-size', args['bot-room-size']),
  };
  if (args.only !== undefined && args.docs)
    throw new Error('--only times part of the run: not with --docs, which writes a whole run');
  const runs = positive('runs', args.runs);
  const warmup = args.warmup === undefined ? runs : positive('warmup', args.warmup);
  const dialect = args.postgres ? 'postgres' : 'sqlite';
  const sides = sidesOf(shape, dialect);
  lockBase(sides.base);
  const commonsManifest = await prepare(sides.commons, args.rebuild);
  const synapseManifest = await prepare(sides.synapse, args.rebuild);

  const built = spawnSync(process.execPath, ['scripts/build.mjs', '--if-stale'], {
    cwd: ROOT,
    stdio: 'inherit',
  });
  if (built.status !== 0) throw new Error('scripts/build.mjs failed');
  const agentDir = mkdtempSync(path.join(tmpdir(), 'peers-agent-'));
  let commons: ServerProcess | undefined;
  let synapse: SynapseProcess | undefined;
  const clients: PeerClient[] = [];
  // Stopped (at a session's end, say): both servers are stopped cleanly; a build that was under
  // way carries on from its journal next time.
  const stopOnSignal = (signal: NodeJS.Signals) => {
    log(`${signal}: stopping both servers`);
    void Promise.all([commons?.stop(), synapse?.stop()]).finally(() => process.exit(130));
  };
  process.once('SIGTERM', stopOnSignal);
  process.once('SIGINT', stopOnSignal);
  try {
    await stopStray(sides.commons);
    await stopStray(sides.synapse);
    commons = await startCommons({
      // The soak run's agent: on a signal, the server reports its memory (after a GC if asked).
      nodeArgs: ['--expose-gc', '--import', path.join(ROOT, 'bench', 'soak-agent.mjs')],
      root: ROOT,
      url:
        args.postgres && sides.commons.database
          ? databaseUrl(args.postgres, sides.commons.database)
          : `sqlite:${path.join(sides.commons.dir, 'commons.db')}`,
      dataDir: sides.commons.dir,
      // As operators run it: the built server (brought up to date first).
      entry: 'dist',
      cpuProfDir: args['cpu-prof'] ? path.resolve(args['cpu-prof']) : undefined,
      extraEnv: {
        COMMONS_REGISTRATION_ENABLED: 'true',
        COMMONS_PASSWORD_HASHING_SCRYPT_LOG2_N: '10',
        SOAK_AGENT_DIR: agentDir,
      },
    });
    const synapseOn = (building: boolean) =>
      startSynapse({
        install,
        dataDir: sides.synapse.dir,
        database:
          args.postgres && sides.synapse.database
            ? databaseUrl(args.postgres, sides.synapse.database)
            : null,
        building,
      });
    recordServer(sides.commons, commons.pid);
    synapse = await synapseOn(synapseManifest === null);
    recordServer(sides.synapse, synapse.pid);
    const buildParallel = Math.max(1, positive('build-parallel', args['build-parallel']));
    const sockets = Math.max(32, buildParallel);
    const commonsClient = peerClient('Commons', commons.url, sockets);
    let synapseClient = peerClient('Synapse', synapse.url, sockets);
    clients.push(commonsClient, synapseClient);
    log(`Synapse ${install.version} and Commons on ${dialect}; shape ${JSON.stringify(shape)}`);

    // Both built at once (the measurements come later, on a quiet machine). Each side's
    // manifest is written, and its journal closed with `done`, as soon as that side is built.
    const build = async (side: Side, client: PeerClient) => {
      const journal = openJournal(side.journalFile);
      const manifest = await buildDataset(client, shape, log, {
        journal,
        parallel: buildParallel,
      });
      writeFileSync(side.manifestFile, JSON.stringify(manifest, null, 2));
      journal.write({ t: 'done' });
      return manifest;
    };
    const [cm, sm] = await Promise.all([
      commonsManifest ?? build(sides.commons, commonsClient),
      synapseManifest ?? build(sides.synapse, synapseClient),
    ]);
    log(`data ready (built in ${cm.builtSeconds} s on Commons, ${sm.builtSeconds} s on Synapse)`);
    if (synapseManifest === null && !args['build-only']) {
      // Measured as configured, not as built (synapse.ts: fast commits while building).
      synapseClient.close();
      await synapse.stop();
      synapse = await synapseOn(false);
      recordServer(sides.synapse, synapse.pid);
      synapseClient = peerClient('Synapse', synapse.url, sockets);
      clients.push(synapseClient);
    }

    const differ = differences(
      await answersOf(commonsClient, cm),
      await answersOf(synapseClient, sm),
    );
    log(
      differ.length === 0
        ? 'both servers give the same answers'
        : `answers differ: ${differ.join('; ')}`,
    );

    if (args['build-only']) return;

    const peers: [Peer, Peer] = [
      { client: commonsClient, manifest: cm },
      { client: synapseClient, manifest: sm },
    ];
    const results = [];
    const loadStart = loadavg()[0] ?? NaN;
    const only = args.only?.split(',');
    const all = [
      ...scenarios(shape, runs, positive('load-seconds', args['load-seconds'])),
      ...writeScenarios(positive('write-seconds', args['write-seconds'])),
    ].filter((scenario) => !only || only.includes(scenario.id));
    // Before each scenario's timed runs and each server's concurrent part: both servers idle
    // (a load test's requests still in flight when it ends are answered first).
    const serverPids = [commons.pid, synapse.pid];
    const quiet = async () => {
      const { waitedMs, quiet: idle } = await waitUntilQuiet(serverPids);
      if (!idle || waitedMs > 2000)
        log(
          `${idle ? 'waited' : 'gave up waiting'} ${(waitedMs / 1000).toFixed(1)} s for both servers to be idle`,
        );
    };
    const rssAfter: NonNullable<PeersReport['rssAfter']> = [];
    for (const scenario of all) {
      results.push(await measure(scenario, peers, log, warmup, quiet));
      rssAfter.push({
        id: scenario.id,
        commons: rssMiB(commons.pid),
        synapse: rssMiB(synapse.pid),
      });
    }
    const rssAtEnd = { commons: rssMiB(commons.pid), synapse: rssMiB(synapse.pid) };
    const before = await askAgent(commons.pid, agentDir, 'none', 1);
    const after = await askAgent(commons.pid, agentDir, 'gc', 2);
    const mib = (bytes: number | undefined) => +((bytes ?? NaN) / 1048576).toFixed(1);

    const when = new Date().toISOString();
    const report: PeersReport = {
      when,
      database: dialect,
      synapseVersion: install.version,
      commonsVersion: VERSION,
      shape: { ...shape },
      runs,
      warmup,
      loadAverage: { start: +loadStart.toFixed(2), end: +(loadavg()[0] ?? NaN).toFixed(2) },
      answersDiffer: differ,
      results,
      rssMiB: rssAtEnd,
      rssAfter,
      commonsMemory: {
        heapUsed: mib(before.heapUsed),
        heapTotal: mib(before.heapTotal),
        external: mib(before.external),
        rest: mib((before.rss ?? NaN) - (before.heapTotal ?? NaN) - (before.external ?? NaN)),
        rssAfterGc: mib(after.rss),
        heapTotalAfterGc: mib(after.heapTotal),
      },
      builtSeconds: { commons: cm.builtSeconds, synapse: sm.builtSeconds },
    };
    const file = path.join(
      ROOT,
      'bench',
      'results',
      `${when.slice(0, 16).replace(/:/g, '-')}-peers-${dialect}.json`,
    );
    writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
    const source = path.relative(ROOT, file);
    console.log(renderRun(report, source));
    log(`written: ${source}`);
    if (args.docs) {
      await writePeersSection(path.join(ROOT, 'docs', 'benchmarks.md'), report, source);
      log('docs/benchmarks.md: the "Commons and Synapse" section updated');
    }
  } finally {
    for (const client of clients) client.close();
    await commons?.stop().catch(() => undefined);
    await synapse?.stop().catch(() => undefined);
    rmSync(agentDir, { recursive: true, force: true });
  }
}

await main();
