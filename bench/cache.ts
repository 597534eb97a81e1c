/**
 * Built datasets, cached so reruns start fast. An entry is keyed by profile, seed, dataset
 * sizes, the generator's code and DATA_FORMAT. Commons' own code is not part of the key: a
 * cached dataset is brought up to date by Commons' own migrations when a run finds it, exactly
 * as an upgraded deployment would be, so a schema change does not force a rebuild (and the
 * upgrade path gets exercised on a large database). Bump DATA_FORMAT when a change in src/ makes
 * what was written before wrong rather than merely older. SQLite entries are files under
 * bench/.cache/ (copied for each run, since the write scenario changes the database);
 * PostgreSQL entries are template databases named commons_bench_<key>, cloned for each run.
 */
import { createHash } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { openDatabase } from '../src/storage/database.js';
import { copySqliteToPostgres } from './copy-dataset.js';
import { generateDataset, type Manifest, type Progress } from './generate.js';
import type { DatasetProfile } from './profiles.js';

export type BenchDialect = 'sqlite' | 'postgres';

/** A dataset's manifest, and whether it was loaded from another database's build. */
export type CachedManifest = Manifest & {
  /** Set when this database was loaded from the SQLite build (copy-dataset.ts), not built. */
  loadedFrom?: 'sqlite';
};

export interface PreparedDatabase {
  dialect: BenchDialect;
  /** The database URL the server runs on (a copy of the cached dataset). */
  url: string;
  /** The server's data_dir: the signing and token keys the dataset was built with. */
  dataDir: string;
  manifest: CachedManifest;
  /** True when the dataset came from the cache rather than being built now. */
  fromCache: boolean;
  /** Removes the run's copy (the cache entry stays). */
  cleanup(): Promise<void>;
}

export interface PrepareOptions {
  dialect: BenchDialect;
  profile: string;
  dataset: DatasetProfile;
  seed: number;
  /** Where cache entries live; null disables the cache (build into the run directory). */
  cacheDir: string | null;
  /** Scratch space for this run. */
  workDir: string;
  /** A PostgreSQL URL whose user may create databases (its database is only the entry point). */
  postgresUrl: string;
  root: string;
  progress: Progress;
  /**
   * PostgreSQL only: when the dataset must be built, load it from the prepared SQLite copy of
   * the same dataset this yields (see copy-dataset.ts) instead of generating it. Called only
   * when there is no cached template.
   */
  loadFrom?: () => Promise<PreparedDatabase>;
}

const SECRET_FILES = ['signing.key', 'token.key'];

/**
 * The version of what Commons writes for a dataset, as far as cached datasets are concerned:
 * bump it when older datasets would be wrong (not merely lacking a newer migration).
 */
export const DATA_FORMAT = 1;

/** A hash of the generator and DATA_FORMAT: what decides the dataset's content. */
export function codeHash(root: string): string {
  const hash = createHash('sha256').update(`data format ${DATA_FORMAT}\0`);
  const files = ['generate.ts', 'profiles.ts', 'random.ts'].map((f) => path.join(root, 'bench', f));
  for (const file of files) {
    hash.update(path.relative(root, file)).update('\0').update(readFileSync(file)).update('\0');
  }
  return hash.digest('hex');
}

export function cacheKey(options: Pick<PrepareOptions, 'profile' | 'seed' | 'dataset' | 'root'>): {
  prefix: string;
  key: string;
} {
  const hash = createHash('sha256')
    .update(JSON.stringify(options.dataset))
    .update(codeHash(options.root))
    .digest('hex')
    .slice(0, 12);
  const prefix = `${options.profile}_s${options.seed}_`;
  return { prefix, key: `${prefix}${hash}` };
}

/**
 * Applies Commons' newer migrations to a cached dataset itself, once, so that runs copy an
 * up-to-date database instead of each migrating its copy (a backfill can take minutes at full
 * scale). Opening the database is what migrates it.
 */
async function upgradeCached(url: string, progress: Progress): Promise<void> {
  const started = performance.now();
  const handle = await openDatabase(url);
  await handle.close();
  const seconds = (performance.now() - started) / 1000;
  if (seconds > 1) progress(`  brought the cached dataset up to date in ${seconds.toFixed(0)} s`);
}

function copySecrets(from: string, to: string): void {
  mkdirSync(to, { recursive: true });
  for (const name of SECRET_FILES) {
    if (existsSync(path.join(from, name))) copyFileSync(path.join(from, name), path.join(to, name));
  }
}

function readManifest(dir: string): CachedManifest | undefined {
  const file = path.join(dir, 'manifest.json');
  if (!existsSync(file)) return undefined;
  return JSON.parse(readFileSync(file, 'utf8')) as CachedManifest;
}

function writeManifest(dir: string, manifest: Manifest): void {
  writeFileSync(path.join(dir, 'manifest.json'), `${JSON.stringify(manifest)}\n`);
}

export function databaseUrl(adminUrl: string, name: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

async function withAdmin<T>(adminUrl: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

const quoteIdent = (name: string) => `"${name.replace(/"/g, '""')}"`;

async function dropDatabase(adminUrl: string, name: string): Promise<void> {
  await withAdmin(adminUrl, (client) =>
    client.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`),
  );
}

/** Whether PostgreSQL answers at `adminUrl` (null) or why not. */
export async function postgresProblem(adminUrl: string): Promise<string | null> {
  const client = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return null;
  } catch (err) {
    return (err as Error).message;
  } finally {
    await client.end().catch(() => {});
  }
}

export async function prepareDatabase(options: PrepareOptions): Promise<PreparedDatabase> {
  return options.dialect === 'sqlite' ? prepareSqlite(options) : preparePostgres(options);
}

async function prepareSqlite(options: PrepareOptions): Promise<PreparedDatabase> {
  const runDir = path.join(options.workDir, `sqlite-${process.pid}`);
  rmSync(runDir, { recursive: true, force: true });
  mkdirSync(runDir, { recursive: true });
  const runDb = path.join(runDir, 'commons.db');
  const cleanup = async () => rmSync(runDir, { recursive: true, force: true });
  const build = async (dir: string) => {
    const manifest = await generateDataset({
      url: `sqlite:${path.join(dir, 'commons.db')}`,
      dataDir: dir,
      dataset: options.dataset,
      profile: options.profile,
      seed: options.seed,
      progress: options.progress,
    });
    writeManifest(dir, manifest);
    return manifest;
  };
  if (options.cacheDir === null) {
    const manifest = await build(runDir);
    return {
      dialect: 'sqlite',
      url: `sqlite:${runDb}`,
      dataDir: runDir,
      manifest,
      fromCache: false,
      cleanup,
    };
  }
  const { prefix, key } = cacheKey(options);
  const entry = path.join(options.cacheDir, `${key}-sqlite`);
  let manifest = readManifest(entry);
  const fromCache = manifest !== undefined;
  if (!manifest) {
    options.progress(`  building the ${options.profile} dataset on SQLite (cache entry ${key})`);
    const building = `${entry}.building-${process.pid}`;
    rmSync(building, { recursive: true, force: true });
    mkdirSync(building, { recursive: true });
    manifest = await build(building);
    for (const old of existsSync(options.cacheDir) ? readdirSync(options.cacheDir) : []) {
      if (old.startsWith(prefix) && old.endsWith('-sqlite') && old !== path.basename(entry))
        rmSync(path.join(options.cacheDir, old), { recursive: true, force: true });
    }
    rmSync(entry, { recursive: true, force: true });
    renameSync(building, entry);
  } else {
    options.progress(`  SQLite dataset from the cache (${key})`);
    await upgradeCached(`sqlite:${path.join(entry, 'commons.db')}`, options.progress);
  }
  copyFileSync(path.join(entry, 'commons.db'), runDb);
  copySecrets(entry, runDir);
  return {
    dialect: 'sqlite',
    url: `sqlite:${runDb}`,
    dataDir: runDir,
    manifest,
    fromCache,
    cleanup,
  };
}

async function preparePostgres(options: PrepareOptions): Promise<PreparedDatabase> {
  const admin = options.postgresUrl;
  const runName = `commons_bench_run_${process.pid}`;
  const runDir = path.join(options.workDir, `postgres-${process.pid}`);
  rmSync(runDir, { recursive: true, force: true });
  mkdirSync(runDir, { recursive: true });
  await dropDatabase(admin, runName);
  const cleanup = async () => {
    await dropDatabase(admin, runName);
    rmSync(runDir, { recursive: true, force: true });
  };
  const runUrl = databaseUrl(admin, runName);
  const generate = (url: string, dataDir: string) =>
    generateDataset({
      url,
      dataDir,
      dataset: options.dataset,
      profile: options.profile,
      seed: options.seed,
      progress: options.progress,
    });
  if (options.cacheDir === null) {
    await withAdmin(admin, (c) => c.query(`CREATE DATABASE ${quoteIdent(runName)}`));
    const manifest = await generate(runUrl, runDir);
    return {
      dialect: 'postgres',
      url: runUrl,
      dataDir: runDir,
      manifest,
      fromCache: false,
      cleanup,
    };
  }
  const { prefix, key } = cacheKey(options);
  const template = `commons_bench_${key}`;
  const entry = path.join(options.cacheDir, `${key}-postgres`);
  const exists = await withAdmin(admin, async (c) => {
    const { rows } = await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [template]);
    return rows.length > 0;
  });
  let manifest = exists ? readManifest(entry) : undefined;
  const fromCache = manifest !== undefined;
  if (!manifest) {
    options.progress(
      `  building the ${options.profile} dataset on PostgreSQL (template ${template})`,
    );
    const building = `${template}_b`;
    await dropDatabase(admin, building);
    await dropDatabase(admin, template);
    await withAdmin(admin, (c) => c.query(`CREATE DATABASE ${quoteIdent(building)}`));
    rmSync(entry, { recursive: true, force: true });
    mkdirSync(entry, { recursive: true });
    const source = await options.loadFrom?.();
    if (source?.dialect === 'sqlite') {
      options.progress(`  loading it from the SQLite dataset`);
      await copySqliteToPostgres(
        source.url.slice('sqlite:'.length),
        databaseUrl(admin, building),
        options.progress,
      );
      copySecrets(source.dataDir, entry);
      manifest = { ...source.manifest, loadedFrom: 'sqlite' };
    } else {
      manifest = await generate(databaseUrl(admin, building), entry);
    }
    // What autovacuum does after a bulk load (it is off on some machines, and slow to come):
    // planner statistics, without which PostgreSQL guessed and sorted a whole room's members
    // per page, and the visibility map, without which an index-only scan reads every row's
    // table page too. A template's copies inherit both.
    await withAdmin(databaseUrl(admin, building), (c) => c.query('VACUUM ANALYZE'));
    await withAdmin(admin, async (c) => {
      await c.query(`ALTER DATABASE ${quoteIdent(building)} RENAME TO ${quoteIdent(template)}`);
      // Older entries of this profile and seed (built by other code) are dropped.
      const { rows } = await c.query<{ datname: string }>(
        'SELECT datname FROM pg_database WHERE datname LIKE $1 AND datname <> $2',
        [`commons_bench_${prefix}%`, template],
      );
      for (const row of rows)
        await c.query(`DROP DATABASE IF EXISTS ${quoteIdent(row.datname)} WITH (FORCE)`);
    });
    writeManifest(entry, manifest);
  } else {
    options.progress(`  PostgreSQL dataset from the cache (template ${template})`);
    await upgradeCached(databaseUrl(admin, template), options.progress);
  }
  await withAdmin(admin, (c) =>
    c.query(`CREATE DATABASE ${quoteIdent(runName)} TEMPLATE ${quoteIdent(template)}`),
  );
  copySecrets(entry, runDir);
  return { dialect: 'postgres', url: runUrl, dataDir: runDir, manifest, fromCache, cleanup };
}
