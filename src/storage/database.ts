/**
 * Opens the database named by a URL (`sqlite:<path>` or `postgres://…`) behind one Kysely
 * query layer, applies migrations, and runs named transactions.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import pg from 'pg';
import {
  Kysely,
  sql,
  PostgresDialect,
  SqliteDialect,
  type PostgresCursor,
  type PostgresPool,
  type PostgresQueryResult,
  type Transaction,
} from 'kysely';
import type { Database } from './schema.js';
import { migrateToLatest } from './migrations/index.js';
import { PREPARED_MARK } from './prepared-query.js';

export type DialectName = 'sqlite' | 'postgres';
export type Db = Kysely<Database>;
export type Tx = Transaction<Database>;

export interface StorageLogger {
  debug(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/** A PostgreSQL pool's connections right now (SQLite has one connection and no pool). */
export interface PoolStats {
  /** Open connections, idle or in use. */
  total: number;
  idle: number;
  /** Queries waiting for a connection. */
  waiting: number;
  max: number;
}

export interface DatabaseHandle {
  readonly dialect: DialectName;
  readonly db: Db;
  poolStats(): PoolStats | null;
  /** Runs `fn` in one transaction named for logs; commits when it resolves. */
  tx<T>(name: string, fn: (trx: Tx) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export interface OpenOptions {
  poolSize?: number;
  logger?: StorageLogger;
  /** False: the schema is left as it is (tests that build an older one); default true. */
  migrate?: boolean;
}

const INT8_OID = 20;
/** Prepared SQLite statements kept for reuse (distinct SQL texts; IN lists vary). */
const STATEMENT_CACHE_SIZE = 1000;

/**
 * better-sqlite3 behind Kysely, with prepared statements cached by SQL text: Kysely asks for
 * a fresh `prepare` on every query, which costs as much as running a small one. Reusing a
 * statement is safe here: one connection, and every query runs to completion (no
 * `stream()`), so no statement is in use twice.
 */
function cachingStatements(sqlite: SqliteDatabase.Database) {
  const statements = new Map<string, SqliteDatabase.Statement>();
  return {
    close: () => sqlite.close(),
    prepare(sql: string): SqliteDatabase.Statement {
      const cached = statements.get(sql);
      if (cached) {
        statements.delete(sql);
        statements.set(sql, cached);
        return cached;
      }
      const statement = sqlite.prepare(sql);
      statements.set(sql, statement);
      if (statements.size > STATEMENT_CACHE_SIZE) {
        const oldest = statements.keys().next().value;
        if (oldest !== undefined) statements.delete(oldest);
      }
      return statement;
    },
  };
}

/**
 * One server process owns a SQLite database, as its caches require (they see no other
 * process's writes): it holds an exclusive lock on a companion file, `<file>-lock`, for as long
 * as it runs (the operating system drops it if the process dies), so a second server on the
 * same file refuses to start. The database itself stays open to other readers (a backup, the
 * sqlite3 shell). Several server processes need PostgreSQL.
 */
function claimSqliteFile(file: string): SqliteDatabase.Database | null {
  if (file === ':memory:') return null;
  const lock = new SqliteDatabase(`${file}-lock`);
  try {
    // A process that is still shutting down gets a few seconds to let go.
    lock.pragma('busy_timeout = 5000');
    lock.pragma('locking_mode = EXCLUSIVE');
    // The first write takes the exclusive lock; this locking mode keeps it until close.
    lock.exec('CREATE TABLE IF NOT EXISTS owner (pid INTEGER); DELETE FROM owner');
    lock.prepare('INSERT INTO owner (pid) VALUES (?)').run(process.pid);
    return lock;
  } catch (err) {
    lock.close();
    if ((err as { code?: string }).code === 'SQLITE_BUSY')
      throw new Error(
        `the SQLite database ${file} is in use by another process (another Commons server?): ` +
          'SQLite serves one process; use PostgreSQL to run several',
        { cause: err },
      );
    throw err;
  }
}

function openSqlite(file: string): Db {
  if (file !== ':memory:') mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  const lock = claimSqliteFile(file);
  let sqlite: SqliteDatabase.Database;
  try {
    sqlite = new SqliteDatabase(file);
    sqlite.pragma('journal_mode = WAL');
    sqlite.pragma('synchronous = FULL');
    sqlite.pragma('foreign_keys = ON');
    sqlite.pragma('busy_timeout = 5000');
    // A 64 MiB page cache (SQLite's default is 2 MiB): a big room's member rows lie all over the
    // file, and reading its 120,001-member list took 600 ms with the default, 290 ms with this.
    sqlite.pragma('cache_size = -65536');
  } catch (err) {
    lock?.close();
    throw err;
  }
  const statements = cachingStatements(sqlite);
  return new Kysely<Database>({
    dialect: new SqliteDialect({
      database: {
        ...statements,
        close() {
          statements.close();
          lock?.close();
        },
      },
    }),
  });
}

function openPostgres(
  url: string,
  poolSize: number,
  logger: StorageLogger | undefined,
): { db: Db; pool: pg.Pool } {
  const pool = new pg.Pool({
    connectionString: url,
    max: poolSize,
    // No JIT compilation and no parallel workers: both pay off for long analytic queries, not
    // for these short ones, and PostgreSQL's estimates switch them on where they cost most.
    // JIT compiled for 150 ms before a page read; the auth-state lookup of a join into a
    // 100,000-member room (3 rows) was planned for 48,000 and launched two workers, 5 ms.
    options: '-c jit=off -c max_parallel_workers_per_gather=0',
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === INT8_OID
          ? (value: string) => Number(value)
          : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
    },
  });
  // An idle connection can be closed by the server (restart, admin command): pg reports it
  // on the pool, and an unhandled 'error' would end the process. The pool replaces it.
  pool.on('error', (err) => logger?.warn({ err: err.message }, 'idle PostgreSQL connection lost'));
  const db = new Kysely<Database>({
    dialect: new PostgresDialect({ pool: preparingNamed(pool, logger) }),
  });
  return { db, pool };
}

/**
 * The pool as Kysely sees it, sending each prepared query's SQL (prepared-query.ts) as a named
 * statement: pg prepares it once per connection, and PostgreSQL then runs it without parsing
 * and planning it again (after five runs it keeps a generic plan where that costs no more).
 * A membership lookup went from 0.27 to 0.17 ms a round trip, the merged page of a small
 * room's joined members from 0.45 to 0.19 ms. Every other query is sent as before.
 */
function preparingNamed(pool: pg.Pool, logger: StorageLogger | undefined): PostgresPool {
  const names = new Map<string, string>();
  const nameOf = (text: string) => {
    let name = names.get(text);
    if (name === undefined) {
      name = `commons_${names.size + 1}`;
      names.set(text, name);
    }
    return name;
  };
  return {
    async connect() {
      const client = await pool.connect();
      // pg listens for a lost connection only while it is idle in the pool. One lost while
      // checked out (an admin's pg_terminate_backend between two statements of a transaction)
      // would be an unhandled 'error' that ends the process: note it here, and hand the
      // connection back as broken so the pool drops it. Its statements fail on their own.
      let lost: Error | undefined;
      const onLost = (err: Error) => {
        lost = err;
        logger?.warn({ err: err.message }, 'PostgreSQL connection lost while in use');
      };
      client.on('error', onLost);
      function query<R>(
        sqlText: string,
        parameters: ReadonlyArray<unknown>,
      ): Promise<PostgresQueryResult<R>>;
      function query<R>(cursor: PostgresCursor<R>): PostgresCursor<R>;
      function query<R>(
        first: string | PostgresCursor<R>,
        parameters?: ReadonlyArray<unknown>,
      ): Promise<PostgresQueryResult<R>> | PostgresCursor<R> {
        if (typeof first !== 'string') return client.query(first as never) as PostgresCursor<R>;
        const values = [...(parameters ?? [])];
        const config = first.startsWith(PREPARED_MARK)
          ? { name: nameOf(first), text: first, values }
          : { text: first, values };
        return client.query(config) as unknown as Promise<PostgresQueryResult<R>>;
      }
      return {
        query,
        release: () => {
          client.removeListener('error', onLost);
          client.release(lost);
        },
      };
    },
    end: () => pool.end(),
  };
}

/**
 * The first query, with what to do when it fails: a missing database, a refused login, no
 * server at the address (pg's own messages name none of what to do).
 */
async function checkPostgres(db: Db, url: string): Promise<void> {
  try {
    await sql`SELECT 1`.execute(db);
  } catch (err) {
    throw new Error(postgresProblem(err as Error & { code?: string }, url), { cause: err });
  }
}

export function postgresProblem(err: Error & { code?: string }, url: string): string {
  let parsed: URL | null = null;
  try {
    parsed = new URL(url);
  } catch {
    // described without its parts
  }
  const host = parsed?.hostname || 'localhost';
  const port = parsed?.port || '5432';
  const user = decodeURIComponent(parsed?.username ?? '') || process.env.USER || 'postgres';
  const name = decodeURIComponent(parsed?.pathname.slice(1) ?? '') || user;
  const where = `PostgreSQL at ${host}:${port}`;
  // Several addresses tried (localhost: ::1 and 127.0.0.1) fail as one AggregateError.
  const inner = (err as { errors?: (Error & { code?: string })[] }).errors?.[0];
  switch (err.code ?? inner?.code) {
    case '3D000':
      return (
        `database "${name}" does not exist on ${where}: create it with ` +
        `createdb -h ${host} -p ${port} -U ${user} ${name} (or CREATE DATABASE "${name}"; in psql)`
      );
    case '28P01':
    case '28000':
      return `${where} refused user "${user}" (${err.message}): check the user and password in database.url`;
    case 'ECONNREFUSED':
      return `could not connect to ${where} (connection refused): is PostgreSQL running there, and is database.url right?`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `could not connect to ${where}: no such host (${err.code}); check database.url`;
    default:
      return `could not use ${where}, database "${name}": ${err.message}`;
  }
}

export function dialectOf(url: string): DialectName {
  if (url.startsWith('sqlite:')) return 'sqlite';
  if (/^postgres(ql)?:\/\//.test(url)) return 'postgres';
  throw new Error(`unsupported database URL scheme: ${url.split(':')[0]}`);
}

/** Opens the database and brings its schema to the latest migration. */
export async function openDatabase(
  url: string,
  options: OpenOptions = {},
): Promise<DatabaseHandle> {
  const dialect = dialectOf(url);
  const poolSize = options.poolSize ?? 10;
  const postgres = dialect === 'postgres' ? openPostgres(url, poolSize, options.logger) : null;
  const db = postgres ? postgres.db : openSqlite(url.slice('sqlite:'.length));
  const pool = postgres?.pool;
  try {
    if (dialect === 'postgres') await checkPostgres(db, url);
    if (options.migrate !== false) await migrateToLatest(db as unknown as Kysely<unknown>);
  } catch (err) {
    await db.destroy();
    throw err;
  }
  const logger = options.logger;
  return {
    dialect,
    db,
    poolStats: () =>
      pool
        ? {
            total: pool.totalCount,
            idle: pool.idleCount,
            waiting: pool.waitingCount,
            max: poolSize,
          }
        : null,
    async tx<T>(name: string, fn: (trx: Tx) => Promise<T>): Promise<T> {
      const started = performance.now();
      try {
        return await db.transaction().execute(fn);
      } finally {
        logger?.debug({ tx: name, ms: +(performance.now() - started).toFixed(2) }, 'transaction');
      }
    },
    close: () => db.destroy(),
  };
}
