/**
 * Synapse, the peer Commons is measured beside: installed from PyPI into a cached virtual
 * environment (bench/.cache/synapse-venv; its wheels carry the Rust parts, nothing is built),
 * configured in a data directory of its own (SQLite, or a PostgreSQL database), started as its
 * own process on a free port of 127.0.0.1, client API only (no federation listener).
 *
 * Its rate limits are raised and its password hashing made cheap, as for Commons in the bench,
 * so that building a dataset through its API measures neither.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { httpClient } from './http.js';
import { freePort } from './processes.js';

export const SYNAPSE_SERVER_NAME = 'synapse.local';

/** "1.163.2 (b=main,…)" (the build tag it adds when run inside a git checkout) → "1.163.2". */
const versionOf = (printed: string) => printed.trim().split(/\s+/)[0] ?? printed.trim();

export interface SynapseInstall {
  python: string;
  version: string;
}

/** The venv's Python with Synapse installed (installing it once), or why it cannot be had. */
export function installSynapse(cacheDir: string): SynapseInstall | { problem: string } {
  const venv = path.join(cacheDir, 'synapse-venv');
  const python = path.join(venv, 'bin', 'python');
  const version = () =>
    spawnSync(python, ['-c', 'import synapse; print(synapse.__version__)'], { encoding: 'utf8' });
  if (existsSync(python) && version().status === 0)
    return { python, version: versionOf(version().stdout) };
  mkdirSync(cacheDir, { recursive: true });
  const made = spawnSync('python3', ['-m', 'venv', venv], { encoding: 'utf8' });
  if (made.status !== 0) return { problem: `python3 -m venv failed: ${made.stderr.trim()}` };
  const pip = spawnSync(
    python,
    // A registry that does not answer is given up on within about a minute (pip's own
    // defaults retry five times, each waiting up to its timeout), so that a local run without
    // PyPI reaches its SKIPPED banner quickly.
    [
      '-m',
      'pip',
      'install',
      '--quiet',
      '--retries',
      '1',
      '--timeout',
      '30',
      'matrix-synapse',
      'psycopg2-binary',
    ],
    { encoding: 'utf8', timeout: 600_000 },
  );
  if (pip.status !== 0)
    return { problem: `pip install matrix-synapse failed: ${(pip.stderr || pip.stdout).trim()}` };
  const installed = version();
  if (installed.status !== 0) return { problem: `synapse does not import: ${installed.stderr}` };
  return { python, version: versionOf(installed.stdout) };
}

export interface SynapseProcess {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

const permissive = { per_second: 100000, burst_count: 100000 };

/** The settings laid over Synapse's generated configuration. */
function overrides(port: number, database: string | null, dataDir: string) {
  const postgres = database ? new URL(database) : null;
  return {
    listeners: [
      {
        port,
        bind_addresses: ['127.0.0.1'],
        type: 'http',
        tls: false,
        x_forwarded: false,
        resources: [{ names: ['client'], compress: false }],
      },
    ],
    database: postgres
      ? {
          name: 'psycopg2',
          args: {
            user: decodeURIComponent(postgres.username),
            password: decodeURIComponent(postgres.password),
            database: postgres.pathname.slice(1),
            host: postgres.hostname,
            port: Number(postgres.port || 5432),
            cp_min: 1,
            cp_max: 10,
          },
        }
      : { name: 'sqlite3', args: { database: path.join(dataDir, 'homeserver.db') } },
    trusted_key_servers: [],
    suppress_key_server_warning: true,
    enable_registration: true,
    enable_registration_without_verification: true,
    bcrypt_rounds: 4,
    presence: { enabled: false },
    rc_message: permissive,
    rc_registration: permissive,
    rc_login: { address: permissive, account: permissive, failed_attempts: permissive },
    rc_joins: { local: permissive, remote: permissive },
    rc_joins_per_room: permissive,
    rc_room_creation: permissive,
    rc_profile: permissive,
    rc_presence: { per_user: permissive },
    rc_user_directory: permissive,
    rc_invites: { per_room: permissive, per_user: permissive, per_issuer: permissive },
  };
}

/**
 * Runs Synapse's homeserver module with each SQLite connection set to `synchronous = NORMAL`
 * (Synapse itself leaves SQLite's default, FULL): in WAL mode a commit then no longer waits for
 * the disk, only a checkpoint does. A killed process loses nothing; a machine that loses power
 * may lose the last commits, never the database. For building the peers bench's data only,
 * whose profile showed Synapse's one SQLite connection waiting on commits 72% of its time.
 */
const FAST_COMMITS = [
  'import runpy',
  'from synapse.storage.engines import sqlite as engine',
  'prepare = engine.Sqlite3Engine.on_new_connection',
  'def on_new_connection(self, db_conn):',
  '    prepare(self, db_conn)',
  '    db_conn.execute("PRAGMA synchronous = NORMAL;")',
  'engine.Sqlite3Engine.on_new_connection = on_new_connection',
  "runpy.run_module('synapse.app.homeserver', run_name='__main__', alter_sys=True)",
].join('\n');

/**
 * Starts Synapse on `dataDir` (generating its configuration there for `serverName` the first
 * time), with `overrides` laid over the generated file; resolves once `readyUrl` answers 200.
 * The bench and the federation tests both start it through this.
 */
export async function launchSynapse(options: {
  install: SynapseInstall;
  dataDir: string;
  serverName: string;
  overrides: Record<string, unknown>;
  readyUrl: string;
  /** SQLite commits that do not wait for the disk (FAST_COMMITS): for building data only. */
  fastCommits?: boolean;
}): Promise<SynapseProcess> {
  const { install, dataDir } = options;
  mkdirSync(dataDir, { recursive: true });
  const config = path.join(dataDir, 'homeserver.yaml');
  if (!existsSync(config)) {
    const generated = spawnSync(
      install.python,
      [
        '-m',
        'synapse.app.homeserver',
        '--server-name',
        options.serverName,
        '--config-path',
        config,
        '--data-directory',
        dataDir,
        '--generate-config',
        '--report-stats=no',
      ],
      { cwd: dataDir, encoding: 'utf8' },
    );
    if (generated.status !== 0)
      throw new Error(`synapse --generate-config failed: ${generated.stderr}`);
  }
  const overridesFile = path.join(dataDir, 'overrides.yaml');
  // JSON is YAML: Synapse reads the second file over the first.
  writeFileSync(overridesFile, JSON.stringify(options.overrides));
  const child: ChildProcess = spawn(
    install.python,
    [
      ...(options.fastCommits ? ['-c', FAST_COMMITS] : ['-m', 'synapse.app.homeserver']),
      '-c',
      config,
      '-c',
      overridesFile,
    ],
    { cwd: dataDir, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-6000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = new URL(options.readyUrl);
  const client = httpClient(url.origin, 1);
  const deadline = Date.now() + 120_000;
  try {
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null)
        throw new Error(`Synapse exited during start-up:\n${output}`);
      if (Date.now() > deadline) throw new Error(`Synapse did not answer within 120 s:\n${output}`);
      const ready = await client.get(url.pathname).catch(() => undefined);
      if (ready?.status === 200) break;
      await delay(200);
    }
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  } finally {
    client.close();
  }
  return {
    url: url.origin,
    pid: child.pid ?? 0,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timeout = delay(15_000, 'timeout', { ref: false });
      if ((await Promise.race([exited.then(() => 'exited'), timeout])) === 'timeout') {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}

/**
 * Starts the bench's Synapse on `dataDir`, on SQLite or on the PostgreSQL database `database`
 * names; resolves once /versions answers.
 */
export async function startSynapse(options: {
  install: SynapseInstall;
  dataDir: string;
  database: string | null;
  /** Started to build data: on SQLite, commits that do not wait for the disk (FAST_COMMITS). */
  building?: boolean;
}): Promise<SynapseProcess> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  return launchSynapse({
    install: options.install,
    dataDir: options.dataDir,
    serverName: SYNAPSE_SERVER_NAME,
    overrides: overrides(port, options.database, options.dataDir),
    readyUrl: `${url}/_matrix/client/versions`,
    fastCommits: options.building === true && options.database === null,
  });
}
