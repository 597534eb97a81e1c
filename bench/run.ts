/**
 * `npm run bench [-- options]`: builds (or reuses) the dataset, starts Commons as its own
 * process on each database, checks a sample of the data through the HTTP API, runs the
 * scenarios, and writes bench/results/<date>-<profile>.json and (for full runs, or with
 * --docs) docs/benchmarks.md with its SVG charts. See docs/benchmarks.md for the options.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import SqliteDatabase from 'better-sqlite3';
import {
  type CachedManifest,
  postgresProblem,
  prepareDatabase,
  type BenchDialect,
  type PreparedDatabase,
} from './cache.js';
import { startCommons, type ServerProcess } from './processes.js';
import { PROFILES, scaleDataset, type DatasetProfile, type Profile } from './profiles.js';
import { writeDocs, writeIdleSection, evaluateTargets, type Target } from './report.js';
import {
  runScenario,
  sampleCheck,
  SCENARIO_TITLES,
  SCENARIOS,
  type SampleCheck,
  type ScenarioContext,
  type ScenarioName,
  type ScenarioResults,
} from './scenarios.js';
import { httpClient } from './http.js';
import { runIdleClients, type IdleReport, type IdleSetup } from './idle-clients.js';

export const ROOT = fileURLToPath(new URL('../', import.meta.url));
export const DEFAULT_POSTGRES_URL = 'postgres://postgres@127.0.0.1:5432/postgres';

export interface BenchOptions {
  profile: Profile['name'];
  dialects: BenchDialect[] | 'both';
  seed: number;
  /** Multiplies every count of the dataset (full profile only). */
  scale: number;
  scenarios: ScenarioName[];
  /** Null disables the dataset cache. */
  cacheDir: string | null;
  workDir: string;
  resultsDir: string;
  /** Where docs/benchmarks.md and its charts go; null writes no docs. */
  docsPath: string | null;
  postgresUrl: string;
  serverEntry: 'tsx' | 'dist';
  cpuProfile: boolean;
  /** COMMONS_* settings for the server under test, beside the bench's own (e.g. an A/B run). */
  serverEnv?: Record<string, string>;
  /** Only build (or find) the datasets in the cache, measuring nothing. */
  buildOnly: boolean;
  /** Only write the docs again from this raw results file. */
  render?: string;
  log: (message: string) => void;
  /** Overrides of the profile's load settings (the smoke test shortens them). */
  load?: Partial<Profile['load']>;
  /** The idle-clients scenario (its own dataset), when `--scenario` names `idle`. */
  idle?: { users: number; durationSeconds: number; pollTimeoutMs: number; workers: boolean };
}

export interface Machine {
  cpu: string;
  cores: number;
  memoryGiB: number;
  node: string;
  os: string;
  sqlite: string;
  postgres?: string;
}

export interface DatabaseReport {
  dialect: BenchDialect;
  skipped?: string;
  error?: string;
  dataset?: {
    fromCache: boolean;
    buildSeconds: number;
    /** Loaded from the SQLite build's rows rather than built on this database. */
    loadedFrom?: 'sqlite';
    events: number;
    users: number;
    rooms: number;
    builtAt: string;
  };
  sampleCheck?: SampleCheck;
  scenarios?: ScenarioResults;
  seconds?: number;
}

export interface BenchReport {
  format: 1;
  profile: Profile['name'];
  seed: number;
  scale: number;
  dataset: DatasetProfile;
  load: Profile['load'];
  startedAt: string;
  finishedAt: string;
  seconds: number;
  command: string;
  git: { commit: string; dirty: boolean };
  machine: Machine;
  databases: DatabaseReport[];
  targets: Target[];
  resultsFile: string;
}

function git(): { commit: string; dirty: boolean } {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
      cwd: ROOT,
      encoding: 'utf8',
    }).trim();
    const status = execFileSync('git', ['status', '--porcelain', '--', 'src'], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    return { commit, dirty: status.trim() !== '' };
  } catch {
    return { commit: 'unknown', dirty: false };
  }
}

async function machine(postgresUrl: string | null): Promise<Machine> {
  const sqlite = new SqliteDatabase(':memory:');
  const sqliteVersion = (sqlite.prepare('select sqlite_version() as v').get() as { v: string }).v;
  sqlite.close();
  const result: Machine = {
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    os: `${os.type()} ${os.release()}`,
    sqlite: sqliteVersion,
  };
  if (postgresUrl) {
    const client = new pg.Client({ connectionString: postgresUrl });
    try {
      await client.connect();
      const { rows } = await client.query<{ server_version: string }>('SHOW server_version');
      if (rows[0]) result.postgres = rows[0].server_version;
    } catch {
      // left out: the report says PostgreSQL was skipped
    } finally {
      await client.end().catch(() => {});
    }
  }
  return result;
}

function summariseManifest(
  manifest: CachedManifest,
  fromCache: boolean,
): NonNullable<DatabaseReport['dataset']> {
  return {
    fromCache,
    buildSeconds: manifest.buildSeconds,
    ...(manifest.loadedFrom ? { loadedFrom: manifest.loadedFrom } : {}),
    events: manifest.events,
    users: manifest.users,
    rooms: manifest.rooms,
    builtAt: manifest.builtAt,
  };
}

function prepare(
  options: BenchOptions,
  profile: Profile,
  dialect: BenchDialect,
  loadFrom?: () => Promise<PreparedDatabase>,
) {
  const tag = dialect === 'sqlite' ? '[sqlite]  ' : '[postgres]';
  return prepareDatabase({
    ...(loadFrom ? { loadFrom } : {}),
    dialect,
    profile: profile.name,
    dataset: profile.dataset,
    seed: options.seed,
    cacheDir: options.cacheDir,
    workDir: options.workDir,
    postgresUrl: options.postgresUrl,
    root: ROOT,
    progress: (message) => options.log(`${tag}${message}`),
  });
}

/** One database's server under measurement, and what it reports. */
interface Session {
  prepared: PreparedDatabase;
  report: DatabaseReport;
  /** Absent when the server did not start. */
  server?: ServerProcess;
  ctx?: ScenarioContext;
  cpuProfDir?: string | undefined;
  /** Milliseconds spent starting it and in its own scenarios. */
  busyMs: number;
}

const tagOf = (dialect: BenchDialect) => (dialect === 'sqlite' ? '[sqlite]  ' : '[postgres]');

/** Starts Commons on a prepared database and checks a sample of its data through HTTP. */
async function startSession(
  options: BenchOptions,
  profile: Profile,
  prepared: PreparedDatabase,
  stamp: string,
): Promise<Session> {
  const started = performance.now();
  const dialect = prepared.dialect;
  const log = (message: string) => options.log(`${tagOf(dialect)}${message}`);
  const session: Session = {
    prepared,
    report: { dialect, dataset: summariseManifest(prepared.manifest, prepared.fromCache) },
    busyMs: 0,
  };
  try {
    session.cpuProfDir = options.cpuProfile
      ? path.join(options.resultsDir, 'profiles', `${stamp}-${dialect}`)
      : undefined;
    const server = await startCommons({
      root: ROOT,
      url: prepared.url,
      dataDir: prepared.dataDir,
      entry: options.serverEntry,
      cpuProfDir: session.cpuProfDir,
      ...(options.serverEnv ? { extraEnv: options.serverEnv } : {}),
    });
    session.server = server;
    log(`  Commons (pid ${server.pid}) at ${server.url}; checking a sample of the data`);
    const client = httpClient(server.url, 1);
    try {
      session.report.sampleCheck = await sampleCheck(client, prepared.manifest);
    } finally {
      client.close();
    }
    for (const check of session.report.sampleCheck.checks) {
      if (!check.ok)
        log(`    CHECK FAILED ${check.name}: expected ${check.expected}, got ${check.actual}`);
    }
    const { checks, passed } = session.report.sampleCheck;
    log(
      `    sample check ${passed ? 'passed' : 'FAILED'} (${checks.filter((c) => c.ok).length}/${checks.length})`,
    );
    session.report.scenarios = {};
    session.ctx = {
      root: ROOT,
      workDir: options.workDir,
      manifest: prepared.manifest,
      commons: server,
      load: profile.load,
      log,
    };
  } catch (err) {
    log(`  FAILED: ${(err as Error).stack ?? String(err)}`);
    session.report.error = (err as Error).message;
  }
  session.busyMs += performance.now() - started;
  return session;
}

/** Stops the session's server and removes its copy of the dataset. */
async function endSession(session: Session, log: (message: string) => void): Promise<void> {
  try {
    await session.server?.stop();
    if (session.cpuProfDir)
      log(
        `${tagOf(session.report.dialect)}  CPU profile of the server in ${path.relative(ROOT, session.cpuProfDir)}/`,
      );
  } finally {
    await session.prepared.cleanup();
  }
  session.report.seconds = +(session.busyMs / 1000).toFixed(1);
}

/**
 * Each scenario on every database in turn, the order of the databases alternating from one
 * scenario to the next, so that PostgreSQL and SQLite are measured minutes apart at most and a
 * change of the machine's pace during the run falls on both alike: the PostgreSQL ÷ SQLite
 * ratios compare like with like. (Measured one database after the other, sub-millisecond
 * latencies moved by up to 2x between the halves of one run.)
 */
async function measureSideBySide(options: BenchOptions, sessions: Session[]): Promise<void> {
  const running = sessions.filter((s) => s.ctx !== undefined);
  let turn = 0;
  for (const name of SCENARIOS) {
    if (!options.scenarios.includes(name)) continue;
    options.log(`\n== ${SCENARIO_TITLES[name]} ==`);
    const order = turn++ % 2 === 0 ? running : [...running].reverse();
    for (const session of order) {
      const { ctx, report } = session;
      if (!ctx || !report.sampleCheck || !report.scenarios) continue;
      const started = performance.now();
      await runScenario(name, ctx, report.sampleCheck, report.scenarios);
      session.busyMs += performance.now() - started;
    }
  }
}

/**
 * The datasets of the run. The quick and tiny ones are built on each database side by side
 * (one mostly waits on PostgreSQL, the other on SQLite's CPU work). The full one is built on
 * SQLite and loaded from there into PostgreSQL (copy-dataset.ts): the same rows, an hour
 * sooner. Both are then measured side by side (measureSideBySide).
 */
async function prepareAll(
  options: BenchOptions,
  profile: Profile,
  dialects: BenchDialect[],
): Promise<PromiseSettledResult<PreparedDatabase>[]> {
  if (profile.name !== 'full' || !dialects.includes('postgres'))
    return Promise.allSettled(dialects.map((d) => prepare(options, profile, d)));
  const settle = async (p: Promise<PreparedDatabase>) => (await Promise.allSettled([p]))[0];
  const sqlite = dialects.includes('sqlite')
    ? await settle(prepare(options, profile, 'sqlite'))
    : undefined;
  // Without SQLite in the run, its dataset is prepared only if PostgreSQL's must be built.
  let preparedForLoading: PreparedDatabase | undefined;
  const loadFrom = async (): Promise<PreparedDatabase> => {
    if (sqlite?.status === 'rejected') throw sqlite.reason;
    if (sqlite) return sqlite.value;
    preparedForLoading = await prepare(options, profile, 'sqlite');
    return preparedForLoading;
  };
  const postgres = await settle(prepare(options, profile, 'postgres', loadFrom));
  await preparedForLoading?.cleanup();
  return dialects.map((d) => (d === 'sqlite' && sqlite ? sqlite : postgres));
}

export async function runBenchmarks(options: BenchOptions): Promise<BenchReport> {
  const started = performance.now();
  const startedAt = new Date();
  const stamp = startedAt.toISOString().slice(0, 16).replace(':', '-');
  const base = PROFILES[options.profile];
  const profile: Profile = {
    ...base,
    dataset: options.profile === 'full' ? scaleDataset(base.dataset, options.scale) : base.dataset,
    load: { ...base.load, ...options.load },
  };
  mkdirSync(options.workDir, { recursive: true });
  mkdirSync(options.resultsDir, { recursive: true });
  if (options.cacheDir) mkdirSync(options.cacheDir, { recursive: true });
  let dialects: BenchDialect[];
  const skipped: DatabaseReport[] = [];
  if (options.dialects === 'both') {
    const problem = await postgresProblem(options.postgresUrl);
    dialects = problem === null ? ['sqlite', 'postgres'] : ['sqlite'];
    if (problem !== null) {
      options.log(`PostgreSQL SKIPPED: ${options.postgresUrl} is unreachable (${problem})`);
      skipped.push({ dialect: 'postgres', skipped: `unreachable: ${problem}` });
    }
  } else {
    dialects = options.dialects;
  }
  options.log(
    `Commons benchmarks: ${profile.name} profile${options.scale !== 1 ? ` ×${options.scale}` : ''}, seed ${options.seed}, on ${dialects.join(' and ')}`,
  );
  const prepared = await prepareAll(options, profile, dialects);
  const databases: DatabaseReport[] = [];
  const sessions: Session[] = [];
  try {
    for (const [i, dialect] of dialects.entries()) {
      const ready = prepared[i];
      if (!ready || ready.status === 'rejected') {
        const err =
          ready?.status === 'rejected' ? (ready.reason as Error) : new Error('not prepared');
        options.log(`  ${dialect} dataset FAILED: ${err.stack ?? String(err)}`);
        databases.push({ dialect, error: `dataset: ${err.message}` });
        continue;
      }
      if (options.buildOnly) {
        options.log(`  ${dialect} dataset ready (${ready.value.fromCache ? 'cached' : 'built'})`);
        databases.push({ dialect, dataset: summariseManifest(ready.value.manifest, false) });
        await ready.value.cleanup();
        continue;
      }
      const session = await startSession(options, profile, ready.value, stamp);
      sessions.push(session);
      databases.push(session.report);
    }
    await measureSideBySide(options, sessions);
  } finally {
    for (const session of sessions) await endSession(session, options.log);
  }
  databases.push(...skipped);
  const seconds = +((performance.now() - started) / 1000).toFixed(1);
  const resultsFile = path.join(options.resultsDir, `${stamp}-${profile.name}.json`);
  const report: BenchReport = {
    format: 1,
    profile: profile.name,
    seed: options.seed,
    scale: options.scale,
    dataset: profile.dataset,
    load: profile.load,
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    seconds,
    command: ['npm run bench --', ...process.argv.slice(2)].join(' '),
    git: git(),
    machine: await machine(dialects.includes('postgres') ? options.postgresUrl : null),
    databases,
    targets: [],
    // A --build-only run measures nothing and writes no results.
    resultsFile: options.buildOnly ? '' : path.relative(ROOT, resultsFile),
  };
  if (options.buildOnly) {
    options.log(`\ndatasets ready in ${seconds} s; nothing measured (--build-only)`);
    return report;
  }
  report.targets = evaluateTargets(report);
  writeFileSync(resultsFile, `${JSON.stringify(report, null, 2)}\n`);
  options.log(`\nraw results: ${path.relative(process.cwd(), resultsFile)}`);
  if (options.docsPath) {
    const written = await writeDocs(report, options.docsPath);
    options.log(`report: ${written.map((f) => path.relative(process.cwd(), f)).join(', ')}`);
  }
  options.log('\ntargets:');
  for (const target of report.targets)
    options.log(`  [${target.status}] ${target.name}: ${target.figure}`);
  options.log(`\ndone in ${report.seconds} s`);
  return report;
}

const USAGE = `usage: npm run bench -- [--quick] [--db sqlite|postgres|both] [--seed N] [--scenario LIST]
                        [--scale X] [--no-cache] [--docs|--no-docs] [--cpu-prof] [--server tsx|dist]
                        [--build-only] [--render results.json] [--runs N] [--duration S]
                        [--server-env COMMONS_KEY=VALUE ...]
  --quick          a small dataset and short runs (under three minutes); default is the full profile
  --db             which databases (default both; PostgreSQL is skipped with a notice when unreachable)
  --seed           dataset seed (default 1)
  --scenario       comma-separated subset of: ${SCENARIOS.join(', ')}, idle (the sample check
                   always runs; idle, the idle /sync clients of issue #19, has its own dataset)
  --scale          multiply the full profile's counts (e.g. 0.1 for a tenth of Matrix HQ scale)
  --no-cache       build the dataset afresh and keep nothing
  --docs/--no-docs write docs/benchmarks.md and its charts (default: on for full runs only)
  --cpu-prof       profile the server (node --cpu-prof) into bench/results/profiles/
  --server         run the server from src through tsx (default) or from the build in dist/
  --build-only     build (or find) the cached datasets and stop, measuring nothing
  --render FILE    write docs/benchmarks.md (or its idle-clients section) again from a raw results file
  --runs N         measured runs per load case (default: the profile's; the median is reported)
  --duration S     seconds per run (default: the profile's)
  --server-env     a setting for the server under test, repeatable (e.g. COMMONS_HTTP_FAST_READS=false)
  --idle-users N   the idle scenario's idle users, each holding a /sync long-poll (default 10000)
  --idle-duration S  seconds of each of its load phases (default 30)
  --no-workers     the idle scenario without its PostgreSQL three-worker setup
  COMMONS_BENCH_POSTGRES_URL names the PostgreSQL server (default ${DEFAULT_POSTGRES_URL})`;

/**
 * `--scenario idle` (with or without others): the other scenarios first, on their dataset,
 * then the idle clients on theirs; the idle section of docs/benchmarks.md is rewritten when
 * docs are written (`--docs`, or a full run).
 */
async function runIdle(options: BenchOptions): Promise<void> {
  const idle = options.idle;
  if (!idle) return;
  if (options.scenarios.length > 0) await runBenchmarks(options);
  const wanted: IdleSetup[] = [];
  const problem =
    options.dialects === 'both' || options.dialects.includes('postgres')
      ? await postgresProblem(options.postgresUrl)
      : 'not asked for';
  if (options.dialects === 'both' || options.dialects.includes('sqlite')) wanted.push('sqlite');
  if (problem === null) {
    wanted.push('postgres');
    if (idle.workers) wanted.push('postgres-3-workers');
  } else if (problem !== 'not asked for') {
    options.log(`PostgreSQL SKIPPED: ${options.postgresUrl} is unreachable (${problem})`);
  }
  const report = await runIdleClients(
    {
      root: ROOT,
      workDir: options.workDir,
      resultsDir: options.resultsDir,
      postgresUrl: options.postgresUrl,
      setups: wanted,
      users: idle.users,
      durationSeconds: idle.durationSeconds,
      pollTimeoutMs: idle.pollTimeoutMs,
      connectConcurrency: 64,
      serverEntry: options.serverEntry,
      cpuProfDir: options.cpuProfile ? path.join(options.resultsDir, 'profiles') : undefined,
      ...(options.serverEnv ? { serverEnv: options.serverEnv } : {}),
      log: options.log,
    },
    git(),
  );
  if (options.docsPath) {
    await writeIdleSection(report, options.docsPath);
    options.log(`report: ${path.relative(process.cwd(), options.docsPath)}`);
  }
}

/** `--render`: the page (and charts) again from raw results, e.g. after changing report.ts. */
async function renderOnly(file: string): Promise<void> {
  const raw = JSON.parse(readFileSync(path.resolve(file), 'utf8')) as
    BenchReport | (IdleReport & { profile?: undefined });
  if ('scenario' in raw && raw.scenario === 'idle-clients') {
    const docs = path.join(ROOT, 'docs', 'benchmarks.md');
    await writeIdleSection(raw, docs);
    process.stdout.write(`report: ${path.relative(process.cwd(), docs)} (idle clients)\n`);
    return;
  }
  const report = raw as BenchReport;
  report.targets = evaluateTargets(report);
  const written = await writeDocs(report, path.join(ROOT, 'docs', 'benchmarks.md'));
  process.stdout.write(
    `report: ${written.map((f) => path.relative(process.cwd(), f)).join(', ')}\n`,
  );
}

export function parseOptions(argv: string[]): BenchOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      tiny: { type: 'boolean', default: false },
      db: { type: 'string', default: 'both' },
      seed: { type: 'string', default: '1' },
      scenario: { type: 'string' },
      scale: { type: 'string', default: '1' },
      'no-cache': { type: 'boolean', default: false },
      docs: { type: 'boolean' },
      'no-docs': { type: 'boolean', default: false },
      'cpu-prof': { type: 'boolean', default: false },
      server: { type: 'string', default: 'tsx' },
      'build-only': { type: 'boolean', default: false },
      render: { type: 'string' },
      runs: { type: 'string' },
      duration: { type: 'string' },
      'server-env': { type: 'string', multiple: true },
      'idle-users': { type: 'string', default: '10000' },
      'idle-duration': { type: 'string', default: '30' },
      'no-workers': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const profile: Profile['name'] = values.tiny ? 'tiny' : values.quick ? 'quick' : 'full';
  const db = values.db;
  if (db !== 'sqlite' && db !== 'postgres' && db !== 'both')
    throw new Error(`--db must be sqlite, postgres or both\n${USAGE}`);
  const seed = Number(values.seed);
  if (!Number.isInteger(seed) || seed < 0) throw new Error('--seed must be a non-negative integer');
  const scale = Number(values.scale);
  if (!(scale > 0)) throw new Error('--scale must be a positive number');
  const scenarios = values.scenario
    ? values.scenario.split(',').map((s) => s.trim())
    : [...SCENARIOS];
  for (const s of scenarios) {
    if (!(SCENARIOS as readonly string[]).includes(s) && s !== 'idle')
      throw new Error(`unknown scenario ${s}; known: ${SCENARIOS.join(', ')}, idle`);
  }
  const idleUsers = Number(values['idle-users']);
  const idleDuration = Number(values['idle-duration']);
  if (!Number.isInteger(idleUsers) || idleUsers < 1)
    throw new Error('--idle-users must be a positive integer');
  if (!(idleDuration > 0)) throw new Error('--idle-duration must be a positive number of seconds');
  if (values.server !== 'tsx' && values.server !== 'dist')
    throw new Error('--server must be tsx or dist');
  const docs = values['no-docs'] ? false : (values.docs ?? profile === 'full');
  const load: Partial<Profile['load']> = {};
  if (values.runs !== undefined) {
    const runs = Number(values.runs);
    if (!Number.isInteger(runs) || runs < 1) throw new Error('--runs must be a positive integer');
    load.runs = runs;
    load.repeats = runs;
  }
  if (values.duration !== undefined) {
    const seconds = Number(values.duration);
    if (!(seconds > 0)) throw new Error('--duration must be a positive number of seconds');
    load.durationSeconds = seconds;
  }
  const serverEnv: Record<string, string> = {};
  for (const setting of values['server-env'] ?? []) {
    const match = /^(COMMONS_[A-Z0-9_]+)=(.*)$/.exec(setting);
    if (!match) throw new Error(`--server-env takes COMMONS_KEY=VALUE, not ${setting}`);
    serverEnv[match[1] as string] = match[2] as string;
  }
  return {
    profile,
    dialects: db === 'both' ? 'both' : [db],
    ...(Object.keys(serverEnv).length > 0 ? { serverEnv } : {}),
    seed,
    scale,
    scenarios: scenarios.filter((s): s is ScenarioName => s !== 'idle'),
    ...(scenarios.includes('idle')
      ? {
          idle: {
            users: idleUsers,
            durationSeconds: idleDuration,
            pollTimeoutMs: 30_000,
            workers: !values['no-workers'],
          },
        }
      : {}),
    cacheDir: values['no-cache'] ? null : path.join(ROOT, 'bench', '.cache'),
    workDir: path.join(ROOT, 'bench', '.work'),
    resultsDir: path.join(ROOT, 'bench', 'results'),
    docsPath: docs ? path.join(ROOT, 'docs', 'benchmarks.md') : null,
    postgresUrl: process.env.COMMONS_BENCH_POSTGRES_URL ?? DEFAULT_POSTGRES_URL,
    serverEntry: values.server,
    cpuProfile: values['cpu-prof'],
    buildOnly: values['build-only'],
    ...(values.render !== undefined ? { render: values.render } : {}),
    ...(Object.keys(load).length > 0 ? { load } : {}),
    log: (message) => process.stdout.write(`${message}\n`),
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  let options: BenchOptions;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exit(2);
  }
  if (options.render !== undefined) {
    renderOnly(options.render).then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`bench: ${(err as Error).message}\n`);
        process.exit(1);
      },
    );
  } else if (options.idle) {
    runIdle(options).then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
        process.exit(1);
      },
    );
  } else {
    runBenchmarks(options).then(
      (report) => {
        const failed = report.databases.some(
          (d) => d.error || (d.sampleCheck && !d.sampleCheck.passed),
        );
        process.exit(failed ? 1 : 0);
      },
      (err: unknown) => {
        process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
        process.exit(1);
      },
    );
  }
}
