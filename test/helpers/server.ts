/**
 * A real Commons listening on a random port over a fresh database, plus a small JSON
 * client. Tests go through the HTTP stack exactly as clients do.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { loadConfig, type ResolvedConfig } from '../../src/config/load.js';
import { startServer, type RunningServer } from '../../src/main.js';
import { createTestDatabase, type TestDatabase, type TestDialect } from './databases.js';

export interface TestServer {
  url: string;
  config: ResolvedConfig;
  running: RunningServer;
  dialect: TestDialect;
  request<T = Record<string, unknown>>(
    method: string,
    path: string,
    options?: RequestOptions,
  ): Promise<TestResponse<T>>;
  close(): Promise<void>;
}

export interface RequestOptions {
  token?: string;
  body?: unknown;
  /** Sent as-is instead of JSON-encoding `body`. */
  rawBody?: string;
  headers?: Record<string, string>;
}

export interface TestResponse<T> {
  status: number;
  headers: Headers;
  body: T;
}

/** Config overrides as environment-style variables, e.g. {COMMONS_RATE_LIMITS_ENABLED: 'true'}. */
export type ConfigEnv = Record<string, string>;

export async function startTestServer(
  dialect: TestDialect,
  env: ConfigEnv = {},
  logger?: pino.Logger,
): Promise<TestServer> {
  const database: TestDatabase = await createTestDatabase(dialect);
  const dataDir = mkdtempSync(path.join(tmpdir(), 'commons-data-'));
  const server = await startServerOn(database, dataDir, env, logger);
  return {
    ...server,
    async close() {
      await server.close();
      await database.drop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * A Commons on an existing database and data_dir (startTestServer makes fresh ones): for
 * restarts and for several servers sharing one database. close() stops it and leaves both.
 */
export async function startServerOn(
  database: TestDatabase,
  dataDir: string,
  env: ConfigEnv = {},
  /** The server's logger (default: silent, or COMMONS_TEST_LOG_LEVEL). */
  givenLogger?: pino.Logger,
): Promise<TestServer> {
  const config = loadConfig({
    env: {
      COMMONS_DATA_DIR: dataDir,
      COMMONS_DATABASE_URL: database.url,
      COMMONS_LISTEN_PORT: '0',
      COMMONS_SERVER_NAME: 'test.local',
      COMMONS_RATE_LIMITS_ENABLED: 'false',
      COMMONS_PASSWORD_HASHING_SCRYPT_LOG2_N: '10',
      COMMONS_LOG_LEVEL: 'silent',
      ...env,
    },
  });
  const logger = givenLogger ?? pino({ level: process.env.COMMONS_TEST_LOG_LEVEL ?? 'silent' });
  const running = await startServer(config, { logger });
  const request = async <T>(
    method: string,
    urlPath: string,
    options: RequestOptions = {},
  ): Promise<TestResponse<T>> => {
    const headers: Record<string, string> = { ...options.headers };
    if (options.token !== undefined) headers.Authorization = `Bearer ${options.token}`;
    let body: string | undefined = options.rawBody;
    if (body === undefined && options.body !== undefined) {
      body = JSON.stringify(options.body);
      headers['Content-Type'] ??= 'application/json';
    }
    const response = await fetch(running.url + urlPath, { method, headers, body });
    const text = await response.text();
    let parsed: unknown = text;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      // left as text: the test decides whether that is acceptable
    }
    return { status: response.status, headers: response.headers, body: parsed as T };
  };
  return {
    url: running.url,
    config,
    running,
    dialect: database.dialect,
    request,
    close: async () => {
      await running.close();
    },
  };
}
