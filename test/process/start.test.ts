/**
 * The real `commons` process, started the way a user starts it: `npm run build`, then
 * `node dist/src/cli.js` with a configuration file and/or COMMONS_* variables. These tests
 * see what a user sees: exit codes, stderr lines, the JSON log on stdout, files in data_dir.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request as httpRequest, type ClientRequest } from 'node:http';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { createTestDatabase, forEachDatabase } from '../helpers/databases.js';
import { assertMatchesSpec } from '../helpers/spec-contract.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = path.join(ROOT, 'dist', 'src', 'cli.js');
const START_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 5_000;

const running = new Set<ChildProcess>();
const tempDirs: string[] = [];

before(() => {
  const build = spawnSync('npm', ['run', 'build'], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(build.status, 0, `npm run build failed:\n${build.stdout}\n${build.stderr}`);
  assert.ok(existsSync(CLI), `npm run build did not produce ${CLI}`);
});

after(async () => {
  for (const child of running) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'commons-process-'));
  tempDirs.push(dir);
  return dir;
}

/** A port nothing listens on right now: bind port 0, note what the OS chose, release it. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** This process's environment without our variables (or the test runner's), plus `extra`. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith('COMMONS_') && !name.startsWith('NODE_TEST')) env[name] = value;
  }
  return { ...env, ...extra };
}

interface LogLine {
  msg?: string;
  level?: number;
  [key: string]: unknown;
}

/** The start-up line: `Commons <version> listening on <url> as <server_name>; …`. */
const isListeningLine = (line: LogLine): boolean => line.event === 'listening';

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A `node dist/src/cli.js …` child with its output collected as it comes. */
class Commons {
  readonly child: ChildProcess;
  readonly logs: LogLine[] = [];
  stdout = '';
  stderr = '';
  readonly exited: Promise<Exit>;
  private readonly events = new EventEmitter();
  private pending = '';

  constructor(args: string[], env: Record<string, string>, cwd: string = ROOT) {
    this.child = spawn(process.execPath, [CLI, ...args], {
      cwd,
      env: cleanEnv(env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    running.add(this.child);
    this.child.stdout?.setEncoding('utf8').on('data', (chunk: string) => this.onStdout(chunk));
    this.child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr += chunk;
    });
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        this.events.emit('exit');
        resolve({ code, signal });
      });
    });
  }

  private onStdout(chunk: string): void {
    this.stdout += chunk;
    this.pending += chunk;
    const lines = this.pending.split('\n');
    this.pending = lines.pop() ?? '';
    for (const line of lines) {
      if (line.trim() === '') continue;
      try {
        this.logs.push(JSON.parse(line) as LogLine);
      } catch {
        this.logs.push({ msg: line });
      }
      this.events.emit('log');
    }
  }

  private describe(): string {
    return `stdout:\n${this.stdout}\nstderr:\n${this.stderr}`;
  }

  /**
   * Resolves with the first log line whose msg is `msg` (or that `msg` accepts); rejects if
   * the process exits first.
   */
  waitForLog(
    msg: string | ((line: LogLine) => boolean),
    timeoutMs = START_TIMEOUT_MS,
  ): Promise<LogLine> {
    const matches = typeof msg === 'string' ? (l: LogLine) => l.msg === msg : msg;
    const what = typeof msg === 'string' ? `"${msg}"` : 'the awaited log line';
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const line = this.logs.find(matches);
        if (line) {
          done();
          resolve(line);
        }
        return line !== undefined;
      };
      const onExit = (): void => {
        if (check()) return;
        done();
        reject(new Error(`commons exited before logging ${what}\n${this.describe()}`));
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no ${what} within ${timeoutMs} ms\n${this.describe()}`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.events.off('log', check);
        this.events.off('exit', onExit);
      };
      if (check()) return;
      if (this.child.exitCode !== null || this.child.signalCode !== null) return onExit();
      this.events.on('log', check);
      this.events.on('exit', onExit);
    });
  }

  /** Waits for the "Commons … listening on …" line and returns the URL it logged. */
  async listening(): Promise<string> {
    const line = await this.waitForLog(isListeningLine);
    assert.equal(typeof line.url, 'string', JSON.stringify(line));
    return line.url as string;
  }

  async waitForExit(timeoutMs = STOP_TIMEOUT_MS): Promise<Exit> {
    const timeout = delay(timeoutMs).then(() => {
      throw new Error(`commons still running ${timeoutMs} ms later\n${this.describe()}`);
    });
    return Promise.race([this.exited, timeout]);
  }

  /** Sends `signal` and expects exit code 0 and the 'stopped' line soon after. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    this.child.kill(signal);
    const exit = await this.waitForExit();
    assert.deepEqual(exit, { code: 0, signal: null }, this.describe());
    const shutdown = this.logs.find((l) => l.msg === 'shutting down: finishing in-flight requests');
    assert.equal(shutdown?.signal, signal, this.describe());
    assert.ok(
      this.logs.some((l) => l.msg === 'stopped'),
      `no 'stopped' log line\n${this.describe()}`,
    );
  }
}

interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `node dist/src/cli.js …` to completion. */
async function runCli(
  args: string[],
  env: Record<string, string> = {},
  cwd: string = ROOT,
): Promise<CliResult> {
  const cli = new Commons(args, env, cwd);
  const exit = await cli.waitForExit(START_TIMEOUT_MS);
  return { status: exit.code, stdout: cli.stdout, stderr: cli.stderr };
}

/** The lines written to stderr, without the final newline. */
const lines = (text: string): string[] => text.split('\n').filter((line) => line !== '');

interface JsonResponse {
  status: number;
  body: Record<string, unknown>;
}

async function call(
  url: string,
  method: string,
  body?: unknown,
  token?: string,
): Promise<JsonResponse> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (token !== undefined) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(url, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

async function registerWithDummyFlow(base: string, username: string, password: string) {
  const first = await call(`${base}/_matrix/client/v3/register`, 'POST', { username, password });
  assert.equal(first.status, 401, JSON.stringify(first.body));
  const second = await call(`${base}/_matrix/client/v3/register`, 'POST', {
    username,
    password,
    auth: { type: 'm.login.dummy', session: first.body.session },
  });
  assert.equal(second.status, 200, JSON.stringify(second.body));
  return second.body;
}

function login(base: string, user: string, password: string): Promise<JsonResponse> {
  return call(`${base}/_matrix/client/v3/login`, 'POST', {
    type: 'm.login.password',
    identifier: { type: 'm.id.user', user },
    password,
  });
}

const fileMode = (file: string): number => statSync(file).mode & 0o777;

describe('starting commons', () => {
  it('starts from COMMONS_DATA_DIR and COMMONS_LISTEN_PORT alone and answers /versions', async () => {
    const dataDir = path.join(tempDir(), 'data');
    const port = await freePort();
    const server = new Commons([], {
      COMMONS_DATA_DIR: dataDir,
      COMMONS_LISTEN_PORT: String(port),
    });
    const url = await server.listening();
    assert.equal(url, `http://127.0.0.1:${port}`);
    const versions = await call(`${url}/_matrix/client/versions`, 'GET');
    assert.equal(versions.status, 200);
    assertMatchesSpec('versions.yaml', 'get', '/versions', 200, versions.body);
    await server.stop();
    assert.equal(server.stderr, '');
  });

  it('--version prints the version from package.json', async () => {
    const { version } = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
      version: string;
    };
    const result = await runCli(['--version']);
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stdout, `commons ${version}\n`);
    assert.equal(result.stderr, '');
  });

  it('says in one line what started: version, URL, server name, database, data_dir, config file', async () => {
    const dir = tempDir();
    const dataDir = path.join(dir, 'data');
    const file = path.join(dir, 'homeserver.yaml');
    writeFileSync(file, 'server_name: example.org\n');
    const port = await freePort();
    const server = new Commons(['--config', file], {
      COMMONS_DATA_DIR: dataDir,
      COMMONS_LISTEN_PORT: String(port),
    });
    const url = await server.listening();
    const line = server.logs.find(isListeningLine);
    const { version } = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
      version: string;
    };
    const database = `sqlite:${path.join(dataDir, 'commons.db')}`;
    assert.equal(
      line?.msg,
      `Commons ${version} listening on ${url} as example.org; database ${database}, data_dir ${dataDir}, config ${file}`,
    );
    assert.equal(line?.version, version);
    assert.equal(line?.server_name, 'example.org');
    assert.equal(line?.database, 'sqlite');
    assert.equal(line?.data_dir, dataDir);
    assert.equal(line?.config, file);
    // Fastify's own "Server listening at" line is left out: one line says it.
    assert.ok(!server.logs.some((l) => /^Server listening at/.test(l.msg ?? '')), server.stdout);
    // Not a terminal: JSON lines, every one of them.
    for (const entry of server.stdout.split('\n').filter((l) => l !== ''))
      assert.doesNotThrow(() => JSON.parse(entry), entry);
    await server.stop();
  });

  it('log.format pretty writes readable lines instead of JSON', async () => {
    const dataDir = path.join(tempDir(), 'data');
    const server = new Commons([], {
      COMMONS_DATA_DIR: dataDir,
      COMMONS_LISTEN_PORT: String(await freePort()),
      COMMONS_LOG_FORMAT: 'pretty',
    });
    const line = await server.waitForLog((l) =>
      / INFO: Commons .* listening on /.test(l.msg ?? ''),
    );
    assert.match(line.msg ?? '', /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: Commons \S+ listening on http:/);
    assert.throws(() => JSON.parse(line.msg ?? ''));
    server.child.kill('SIGTERM');
    assert.deepEqual(await server.waitForExit(), { code: 0, signal: null });
    assert.match(server.stdout, /INFO: stopped/);
  });

  it('creates commons.db, token.key and signing.key on first start and reuses them', async () => {
    const dataDir = path.join(tempDir(), 'data');
    const env = { COMMONS_DATA_DIR: dataDir, COMMONS_LISTEN_PORT: String(await freePort()) };
    assert.equal(existsSync(dataDir), false);

    const first = new Commons([], env);
    await first.listening();
    const tokenKey = readFileSync(path.join(dataDir, 'token.key'), 'utf8');
    const signingKey = readFileSync(path.join(dataDir, 'signing.key'), 'utf8');
    assert.match(tokenKey, /^[0-9a-f]{64}\n$/);
    assert.match(signingKey, /^ed25519 [A-Za-z0-9_]+ [A-Za-z0-9+/]+\n$/);
    assert.equal(fileMode(path.join(dataDir, 'token.key')), 0o600);
    assert.equal(fileMode(path.join(dataDir, 'signing.key')), 0o600);
    assert.ok(existsSync(path.join(dataDir, 'commons.db')));
    await first.stop();

    const second = new Commons([], env);
    const url = await second.listening();
    assert.equal((await call(`${url}/_matrix/client/versions`, 'GET')).status, 200);
    assert.equal(readFileSync(path.join(dataDir, 'token.key'), 'utf8'), tokenKey);
    assert.equal(readFileSync(path.join(dataDir, 'signing.key'), 'utf8'), signingKey);
    await second.stop();
  });

  it('a second server on the same SQLite database refuses to start, naming the reason; the first keeps serving', async () => {
    const dataDir = path.join(tempDir(), 'data');
    const first = new Commons([], {
      COMMONS_DATA_DIR: dataDir,
      COMMONS_LISTEN_PORT: String(await freePort()),
    });
    const url = await first.listening();
    const second = await runCli([], {
      COMMONS_DATA_DIR: dataDir,
      COMMONS_LISTEN_PORT: String(await freePort()),
    });
    assert.equal(second.status, 1);
    const [line, ...rest] = lines(second.stderr);
    assert.match(
      line ?? '',
      /^commons: could not start: the SQLite database .*commons\.db is in use by another process .*use PostgreSQL to run several$/,
    );
    assert.deepEqual(rest, []);
    assert.equal((await call(`${url}/_matrix/client/versions`, 'GET')).status, 200);
    await first.stop();
  });

  it('--generate-config prints YAML that starts the server when given back with --config', async () => {
    const generated = await runCli(['--generate-config']);
    assert.equal(generated.status, 0, generated.stderr);
    assert.equal(generated.stderr, '');
    const parsed: unknown = parseYaml(generated.stdout);
    assert.ok(parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed));

    // The file as printed, but for the port (8008 may be taken on this machine).
    const port = await freePort();
    const yaml = generated.stdout.replace(/^ {2}port: 8008$/m, `  port: ${port}`);
    assert.notEqual(yaml, generated.stdout, 'the generated file has no "  port: 8008" line');
    const dir = tempDir();
    const file = path.join(dir, 'homeserver.yaml');
    writeFileSync(file, yaml);

    // data_dir: ./data is relative to the directory commons starts in.
    const server = new Commons(['--config', file], {}, dir);
    const url = await server.listening();
    assert.equal(url, `http://127.0.0.1:${port}`);
    assert.equal((await call(`${url}/_matrix/client/versions`, 'GET')).status, 200);
    assert.ok(existsSync(path.join(dir, 'data', 'commons.db')));
    await server.stop();
    assert.equal(server.stderr, '');

    // COMMONS_CONFIG names the same file when --config is not given.
    const again = new Commons([], { COMMONS_CONFIG: file }, dir);
    assert.equal(await again.listening(), `http://127.0.0.1:${port}`);
    await again.stop();
  });

  it('refuses an unknown key: non-zero exit, one stderr line naming it, nothing created', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'homeserver.yaml');
    writeFileSync(
      file,
      `data_dir: ${JSON.stringify(path.join(dir, 'data'))}\nlisten:\n  prot: 8008\n`,
    );
    const result = await runCli(['--config', file]);
    assert.notEqual(result.status, 0);
    assert.deepEqual(lines(result.stderr), ['config: unknown key "listen.prot"']);
    assert.equal(result.stdout, '');
    assert.equal(existsSync(path.join(dir, 'data')), false);
  });

  it('refuses COMMONS_LISTEN_PORT=notaport: non-zero exit, one stderr line naming the key', async () => {
    const result = await runCli([], {
      COMMONS_DATA_DIR: path.join(tempDir(), 'data'),
      COMMONS_LISTEN_PORT: 'notaport',
    });
    assert.notEqual(result.status, 0);
    assert.deepEqual(lines(result.stderr), [
      'config: bad value for "listen.port" ("notaport"): must be integer (env COMMONS_LISTEN_PORT)',
    ]);
    assert.equal(result.stdout, '');
  });

  it('refuses a configuration file that does not exist', async () => {
    const result = await runCli(['--config', path.join(tempDir(), 'nope.yaml')]);
    assert.notEqual(result.status, 0);
    assert.equal(lines(result.stderr).length, 1, result.stderr);
    assert.match(result.stderr, /^config: cannot read .*nope\.yaml/);
  });

  it('exits non-zero with one stderr line when the port is taken, leaving no half-made data_dir', async () => {
    const blocker: Server = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = blocker.address() as AddressInfo;
      const parent = tempDir();
      const dataDir = path.join(parent, 'new', 'data');
      const result = await runCli([], {
        COMMONS_DATA_DIR: dataDir,
        COMMONS_LISTEN_PORT: String(port),
      });
      assert.notEqual(result.status, 0);
      assert.deepEqual(lines(result.stderr).length, 1, result.stderr);
      assert.match(result.stderr, /^commons: could not start: .*EADDRINUSE/);
      // The secrets and the SQLite database it made are gone, and the directories it made.
      assert.equal(existsSync(path.join(parent, 'new')), false);
      assert.ok(existsSync(parent));

      // A data_dir that was in use keeps everything when a later start fails.
      const used = path.join(parent, 'used');
      const server = new Commons([], {
        COMMONS_DATA_DIR: used,
        COMMONS_LISTEN_PORT: String(await freePort()),
      });
      await registerWithDummyFlow(await server.listening(), 'alice', 'correct horse');
      await server.stop();
      const before = ['commons.db', 'token.key', 'signing.key'].map((name) =>
        readFileSync(path.join(used, name)),
      );
      const again = await runCli([], { COMMONS_DATA_DIR: used, COMMONS_LISTEN_PORT: String(port) });
      assert.match(again.stderr, /EADDRINUSE/);
      assert.deepEqual(
        ['commons.db', 'token.key', 'signing.key'].map((name) =>
          readFileSync(path.join(used, name)),
        ),
        before,
      );
    } finally {
      await new Promise<void>((resolve) => blocker.close(() => resolve()));
    }
  });

  it('warns on stderr about a COMMONS_ variable that names no key, and starts', async () => {
    const server = new Commons([], {
      COMMONS_DATA_DIR: path.join(tempDir(), 'data'),
      COMMONS_LISTEN_PORT: String(await freePort()),
      COMMONS_LISTEN_PROT: '1234',
    });
    await server.listening();
    assert.deepEqual(lines(server.stderr), [
      'warning: config: environment variable COMMONS_LISTEN_PROT matches no configuration key; ignored',
    ]);
    await server.stop();
  });
});

describe('stopping commons', () => {
  it('on SIGTERM finishes the request in flight, then exits 0 with a "stopped" line', async () => {
    const server = new Commons([], {
      COMMONS_DATA_DIR: path.join(tempDir(), 'data'),
      COMMONS_LISTEN_PORT: String(await freePort()),
    });
    const url = await server.listening();

    // A login whose body arrives in two halves, with the SIGTERM in between.
    const body = JSON.stringify({
      type: 'm.login.password',
      identifier: { type: 'm.id.user', user: 'nobody' },
      password: 'not the password',
    });
    const half = Math.floor(body.length / 2);
    let request: ClientRequest | undefined;
    const response = new Promise<{ status: number; connection?: string; text: string }>(
      (resolve, reject) => {
        request = httpRequest(
          `${url}/_matrix/client/v3/login`,
          {
            method: 'POST',
            headers: {
              'Content-Type': 'application/json',
              'Content-Length': Buffer.byteLength(body),
            },
          },
          (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (chunk: string) => (text += chunk));
            res.on('end', () =>
              resolve({ status: res.statusCode ?? 0, connection: res.headers.connection, text }),
            );
            res.on('error', reject);
          },
        );
        request.on('error', reject);
      },
    );
    assert.ok(request);
    request.write(body.slice(0, half));
    await delay(300);

    server.child.kill('SIGTERM');
    await server.waitForLog('shutting down: finishing in-flight requests', STOP_TIMEOUT_MS);
    await delay(300);
    assert.equal(server.child.exitCode, null, 'commons exited with a request in flight');

    request.end(body.slice(half));
    const answer = await response;
    assert.equal(answer.status, 403, answer.text);
    assert.equal((JSON.parse(answer.text) as { errcode?: string }).errcode, 'M_FORBIDDEN');
    // The client is told not to reuse the connection, so it cannot hold up the exit.
    assert.equal(answer.connection, 'close');

    const exit = await server.waitForExit();
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.ok(server.logs.some((l) => l.msg === 'stopped'));
  });

  it('on SIGTERM exits 0 within a few seconds after serving requests', async () => {
    const server = new Commons([], {
      COMMONS_DATA_DIR: path.join(tempDir(), 'data'),
      COMMONS_LISTEN_PORT: String(await freePort()),
    });
    const url = await server.listening();
    // fetch keeps its connection alive: an idle connection must not hold up the exit.
    assert.equal((await call(`${url}/_matrix/client/versions`, 'GET')).status, 200);
    await server.stop('SIGTERM');
  });

  it('on SIGINT exits 0 within a few seconds with a "stopped" line', async () => {
    const server = new Commons([], {
      COMMONS_DATA_DIR: path.join(tempDir(), 'data'),
      COMMONS_LISTEN_PORT: String(await freePort()),
    });
    const url = await server.listening();
    assert.equal((await call(`${url}/_matrix/client/versions`, 'GET')).status, 200);
    await server.stop('SIGINT');
  });
});

/** A request whose body is sent only in part, so it stays in flight until `finish` or `abort`. */
function halfSentLogin(url: string) {
  const body = JSON.stringify({
    type: 'm.login.password',
    identifier: { type: 'm.id.user', user: 'nobody' },
    password: 'not the password',
  });
  const request = httpRequest(`${url}/_matrix/client/v3/login`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) },
  });
  const outcome = new Promise<string>((resolve) => {
    request.on('response', (res) => resolve(`status ${res.statusCode}`));
    request.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
  request.write(body.slice(0, 10));
  return { request, outcome };
}

describe('stopping commons: the deadline and a second signal', () => {
  it('cuts the connections still busy after shutdown.grace_seconds, then exits 0', async () => {
    const server = new Commons([], {
      COMMONS_DATA_DIR: path.join(tempDir(), 'data'),
      COMMONS_LISTEN_PORT: String(await freePort()),
      COMMONS_SHUTDOWN_GRACE_SECONDS: '1',
    });
    const url = await server.listening();
    const slow = halfSentLogin(url);
    await delay(200);
    server.child.kill('SIGTERM');
    // Well before the 10 s a slow client would otherwise be given (it never finishes).
    const exit = await server.waitForExit(STOP_TIMEOUT_MS);
    assert.deepEqual(exit, { code: 0, signal: null }, server.stdout);
    assert.ok(
      server.logs.some((l) =>
        /^shutdown: 1 s passed with 1 request\(s\) unfinished: cutting their connections$/.test(
          l.msg ?? '',
        ),
      ),
      server.stdout,
    );
    assert.ok(server.logs.some((l) => l.msg === 'stopped'));
    assert.equal(await slow.outcome, 'ECONNRESET');
  });

  it('exits at once on a second signal while waiting for a slow request', async () => {
    const server = new Commons([], {
      COMMONS_DATA_DIR: path.join(tempDir(), 'data'),
      COMMONS_LISTEN_PORT: String(await freePort()),
      COMMONS_SHUTDOWN_GRACE_SECONDS: '600',
    });
    const url = await server.listening();
    const slow = halfSentLogin(url);
    await delay(200);
    server.child.kill('SIGINT');
    await server.waitForLog('shutting down: finishing in-flight requests', STOP_TIMEOUT_MS);
    server.child.kill('SIGINT');
    const exit = await server.waitForExit(STOP_TIMEOUT_MS);
    assert.deepEqual(exit, { code: 1, signal: null }, server.stdout);
    assert.ok(server.logs.some((l) => l.msg === 'second signal (SIGINT): exiting now'));
    slow.request.destroy();
  });
});

forEachDatabase('stopping commons with /sync requests whose clients leave', (dialect) => {
  it('closes the database only after their handlers finish: no errors, exit 0', async () => {
    const database = await createTestDatabase(dialect);
    try {
      const server = new Commons([], {
        COMMONS_DATA_DIR: path.join(tempDir(), 'data'),
        COMMONS_DATABASE_URL: database.url,
        COMMONS_LISTEN_PORT: String(await freePort()),
      });
      const url = await server.listening();
      const alice = await registerWithDummyFlow(url, 'alice', 'correct horse');
      const token = alice.access_token as string;
      const first = await call(`${url}/_matrix/client/v3/sync`, 'GET', undefined, token);
      const since = first.body.next_batch as string;
      // Long-polls, woken by the shutdown (each then reads the database to answer), whose
      // clients go away as the shutdown begins.
      const polls = Array.from({ length: 8 }, () => {
        const request = httpRequest(`${url}/_matrix/client/v3/sync?since=${since}&timeout=30000`, {
          headers: { Authorization: `Bearer ${token}` },
        });
        request.on('error', () => undefined);
        request.end();
        return request;
      });
      await delay(500);
      server.child.kill('SIGTERM');
      for (const request of polls) request.destroy();
      const exit = await server.waitForExit();
      assert.deepEqual(exit, { code: 0, signal: null }, server.stdout);
      assert.doesNotMatch(server.stdout + server.stderr, /destroyed/);
      assert.deepEqual(
        server.logs.filter((l) => (l.level ?? 0) >= 50),
        [],
        server.stdout,
      );
    } finally {
      await database.drop();
    }
  });
});

describe('commons register-user', () => {
  it('registers a user on the running server, who can then log in', async () => {
    const dir = tempDir();
    const port = await freePort();
    const file = path.join(dir, 'homeserver.yaml');
    writeFileSync(
      file,
      [
        `data_dir: ${JSON.stringify(path.join(dir, 'data'))}`,
        'listen:',
        `  port: ${port}`,
        'registration:',
        '  enabled: false',
        '  shared_secret: a-shared-secret-for-the-test',
        '',
      ].join('\n'),
    );
    const server = new Commons(['--config', file], {});
    const url = await server.listening();

    const registered = await runCli([
      'register-user',
      '--user',
      'bob',
      '--password',
      'pw',
      '--config',
      file,
    ]);
    assert.equal(registered.status, 0, registered.stderr);
    assert.equal(registered.stdout, 'registered @bob:localhost\n');
    assert.equal(registered.stderr, '');

    const loggedIn = await login(url, 'bob', 'pw');
    assert.equal(loggedIn.status, 200, JSON.stringify(loggedIn.body));
    assert.equal(loggedIn.body.user_id, '@bob:localhost');
    const whoami = await call(
      `${url}/_matrix/client/v3/account/whoami`,
      'GET',
      undefined,
      loggedIn.body.access_token as string,
    );
    assert.equal(whoami.body.user_id, '@bob:localhost');
    assert.equal((await login(url, 'bob', 'wrong')).status, 403);

    // The same name again: refused, with the server's error on one stderr line.
    const again = await runCli([
      'register-user',
      '--user',
      'bob',
      '--password',
      'pw',
      '--config',
      file,
    ]);
    assert.notEqual(again.status, 0);
    assert.equal(lines(again.stderr).length, 1, again.stderr);
    assert.match(again.stderr, /^register-user: M_USER_IN_USE/);
    await server.stop();
  });

  it('refuses to run without registration.shared_secret', async () => {
    const result = await runCli(['register-user', '--user', 'bob', '--password', 'pw'], {
      COMMONS_LISTEN_PORT: String(await freePort()),
    });
    assert.notEqual(result.status, 0);
    assert.deepEqual(lines(result.stderr), [
      'register-user: registration.shared_secret is not set in the configuration',
    ]);
  });
});

forEachDatabase('commons refuses a database made for another server_name', (dialect) => {
  it('names both names and what to do; the recorded name still starts', async () => {
    const database = await createTestDatabase(dialect);
    try {
      const dataDir = path.join(tempDir(), 'data');
      const env = {
        COMMONS_DATA_DIR: dataDir,
        COMMONS_DATABASE_URL: database.url,
        COMMONS_SERVER_NAME: 'one.example',
      };
      const first = new Commons([], { ...env, COMMONS_LISTEN_PORT: String(await freePort()) });
      await registerWithDummyFlow(await first.listening(), 'alice', 'correct horse');
      await first.stop();

      const other = await runCli([], {
        ...env,
        COMMONS_SERVER_NAME: 'two.example',
        COMMONS_LISTEN_PORT: String(await freePort()),
      });
      assert.equal(other.status, 1);
      const [line, ...rest] = lines(other.stderr);
      assert.deepEqual(rest, []);
      assert.match(
        line ?? '',
        /^commons: could not start: the database \S+ belongs to server_name "one\.example" \(recorded at its first start\), but the configuration says "two\.example": .* Set server_name: one\.example to serve it, or give database\.url a new database for a server named "two\.example"$/,
      );
      // The refused start deleted nothing.
      assert.ok(existsSync(path.join(dataDir, 'signing.key')));

      const again = new Commons([], { ...env, COMMONS_LISTEN_PORT: String(await freePort()) });
      const url = await again.listening();
      assert.equal((await login(url, 'alice', 'correct horse')).status, 200);
      await again.stop();
    } finally {
      await database.drop();
    }
  });
});

describe('commons names what to do when it cannot start or reach the server', () => {
  it('a PostgreSQL database that does not exist: create it with createdb', async (t) => {
    const admin = process.env.COMMONS_TEST_DATABASE_URL;
    if (!admin) return t.skip('no PostgreSQL (COMMONS_TEST_DATABASE_URL)');
    const url = new URL(admin);
    url.pathname = '/commons_missing_database';
    const dataDir = path.join(tempDir(), 'data');
    const result = await runCli([], {
      COMMONS_DATA_DIR: dataDir,
      COMMONS_DATABASE_URL: url.toString(),
      COMMONS_LISTEN_PORT: String(await freePort()),
    });
    assert.equal(result.status, 1);
    assert.deepEqual(lines(result.stderr), [
      `commons: could not start: database "commons_missing_database" does not exist on PostgreSQL at ${url.hostname}:${url.port || '5432'}: ` +
        `create it with createdb -h ${url.hostname} -p ${url.port || '5432'} -U ${decodeURIComponent(url.username)} commons_missing_database ` +
        '(or CREATE DATABASE "commons_missing_database"; in psql)',
    ]);
    assert.equal(existsSync(dataDir), false, 'a failed first start left its data_dir');
  });

  it('register-user names the URL it could not reach', async () => {
    const port = await freePort();
    const result = await runCli(['register-user', '--user', 'bob', '--password', 'pw'], {
      COMMONS_LISTEN_PORT: String(port),
      COMMONS_REGISTRATION_SHARED_SECRET: 'a-shared-secret-for-the-test',
    });
    assert.equal(result.status, 1);
    assert.deepEqual(lines(result.stderr), [
      `register-user: could not reach the server at http://127.0.0.1:${port} (ECONNREFUSED): is it running there? ` +
        '(the address comes from listen.host and listen.port; --url names another)',
    ]);
  });
});

forEachDatabase('commons keeps accounts across a restart', (dialect) => {
  it('registers, restarts on the same database, and logs in', async () => {
    const database = await createTestDatabase(dialect);
    try {
      const env = {
        COMMONS_DATA_DIR: path.join(tempDir(), 'data'),
        COMMONS_DATABASE_URL: database.url,
        COMMONS_LISTEN_PORT: String(await freePort()),
      };
      const first = new Commons([], env);
      const started = await first.waitForLog(isListeningLine);
      assert.equal(started.database, dialect);
      const url = started.url as string;
      const alice = await registerWithDummyFlow(url, 'alice', 'correct horse');
      assert.equal(alice.user_id, '@alice:localhost');
      await first.stop();

      const second = new Commons([], env);
      assert.equal(await second.listening(), url);
      const loggedIn = await login(url, 'alice', 'correct horse');
      assert.equal(loggedIn.status, 200, JSON.stringify(loggedIn.body));
      assert.equal(loggedIn.body.user_id, '@alice:localhost');
      await second.stop();
    } finally {
      await database.drop();
    }
  });
});
