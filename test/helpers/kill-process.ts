/**
 * A Commons run as its own process (`src/cli.ts`) that a test can SIGKILL and start again on
 * the same database and data directory: the set-up the process kill tests share.
 */
import { once } from 'node:events';
import Sqlite from 'better-sqlite3';
import pg from 'pg';
import type { TestDatabase } from './databases.js';
import type { RequestOptions, TestResponse, TestServer } from './server.js';
import { startWorker, type Worker } from './worker.js';

export interface KillableCommons {
  /** Whether a process is running (started and not killed since). */
  readonly running: boolean;
  /** The running process's client URL. */
  readonly url: string;
  /** Starts a process with the environment `env()` gives now (over the defaults). */
  start(): Promise<void>;
  /** SIGKILLs the running process (no graceful stop) and waits for it to exit. */
  kill(): Promise<void>;
  /** A JSON request to the running process's client listener. */
  request<T = Record<string, unknown>>(
    method: string,
    urlPath: string,
    options?: RequestOptions,
  ): Promise<TestResponse<T>>;
  /** `request` in the shape the client helpers (`registerUser`…) take. */
  readonly server: TestServer;
}

/** `env` is read at each start, so it may name a database and directory made later. */
export function killableCommons(env: () => Record<string, string>): KillableCommons {
  let worker: Worker | undefined;
  const request = async <T>(
    method: string,
    urlPath: string,
    options: RequestOptions = {},
  ): Promise<TestResponse<T>> => {
    if (!worker) throw new Error('no process running');
    const headers: Record<string, string> = { 'Content-Type': 'application/json' };
    if (options.token) headers.Authorization = `Bearer ${options.token}`;
    const body = options.body === undefined ? undefined : JSON.stringify(options.body);
    const response = await fetch(worker.url + urlPath, { method, headers, body });
    const text = await response.text();
    return {
      status: response.status,
      headers: response.headers,
      body: (text === '' ? undefined : JSON.parse(text)) as T,
    };
  };
  return {
    get running() {
      return worker !== undefined;
    },
    get url() {
      if (!worker) throw new Error('no process running');
      return worker.url;
    },
    async start() {
      worker = await startWorker({
        COMMONS_LISTEN_HOST: '127.0.0.1',
        COMMONS_LISTEN_PORT: '0',
        COMMONS_SERVER_NAME: 'test.local',
        COMMONS_RATE_LIMITS_ENABLED: 'false',
        COMMONS_PASSWORD_HASHING_SCRYPT_LOG2_N: '10',
        COMMONS_LOG_LEVEL: 'info',
        ...env(),
      });
    },
    async kill() {
      const child = worker?.child;
      worker = undefined;
      if (!child || child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    },
    request,
    server: { request } as unknown as TestServer,
  };
}

/** Counts rows of a running process's database from outside it (read-only on SQLite). */
export interface DatabaseCounter {
  /** `SELECT count(*) AS n …` with `$1`, `$2`… placeholders. */
  count(query: string, params: readonly (string | number)[]): Promise<number>;
  close(): Promise<void>;
}

export async function openCounter(database: TestDatabase): Promise<DatabaseCounter> {
  if (database.dialect === 'sqlite') {
    const reader = new Sqlite(database.url.slice('sqlite:'.length), { readonly: true });
    return {
      async count(query, params) {
        const row = reader.prepare(query.replace(/\$\d+/g, '?')).get(...params) as
          { n: number } | undefined;
        return Number(row?.n ?? 0);
      },
      async close() {
        reader.close();
      },
    };
  }
  const reader = new pg.Client({ connectionString: database.url });
  await reader.connect();
  return {
    async count(query, params) {
      return Number((await reader.query<{ n: string }>(query, [...params])).rows[0]?.n ?? 0);
    },
    close: () => reader.end(),
  };
}
