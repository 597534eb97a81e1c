/**
 * The processes under measurement: Commons started as a user starts it (its own process,
 * configured through COMMONS_* variables), and the bare node:http ceiling server. Both are
 * read for resident memory through /proc.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { httpClient } from './http.js';

export interface ServerProcess {
  url: string;
  pid: number;
  /** Resets the peak resident set size (where the kernel allows) and starts sampling. */
  startMemoryWindow(): void;
  /** Peak resident memory in MiB since the last window started. */
  peakRssMiB(): number;
  stop(): Promise<void>;
}

function procStatusKiB(pid: number, field: 'VmRSS' | 'VmHWM'): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Peak RSS of a process: the kernel's high-water mark (reset per window) or 20 ms samples. */
function memoryWatcher(pid: number) {
  let sampled = 0;
  let canReset = false;
  const timer = setInterval(() => {
    sampled = Math.max(sampled, procStatusKiB(pid, 'VmRSS') ?? 0);
  }, 20);
  timer.unref();
  return {
    start() {
      sampled = procStatusKiB(pid, 'VmRSS') ?? 0;
      try {
        writeFileSync(`/proc/${pid}/clear_refs`, '5');
        canReset = true;
      } catch {
        canReset = false;
      }
    },
    peakMiB(): number {
      const hwm = canReset ? (procStatusKiB(pid, 'VmHWM') ?? 0) : 0;
      return +(Math.max(hwm, sampled, procStatusKiB(pid, 'VmRSS') ?? 0) / 1024).toFixed(1);
    },
    stop() {
      clearInterval(timer);
    },
  };
}

/** A TCP port of 127.0.0.1 free at the time of asking. */
/**
 * A port free on 127.0.0.1 for a server to listen on, picked at random below Linux's
 * ephemeral range (32768–60999): a port the kernel hands out can be taken again by any
 * outgoing connection before the server (or its restart) binds it; one below that range is
 * only ever taken by a listener that asked for it.
 */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    const server = createServer();
    const bound = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (bound) {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      return port;
    }
  }
}

async function stopChild(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timeout = delay(10_000, undefined, { ref: false }).then(() => 'timeout');
  if ((await Promise.race([exited.then(() => 'exited'), timeout])) === 'timeout') {
    child.kill('SIGKILL');
    await exited;
  }
}

function watchExit(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
}

/** The environment without COMMONS_* (ours or a developer's) nor test-runner variables. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (name.startsWith('COMMONS_') || name.startsWith('NODE_TEST')) continue;
    env[name] = value;
  }
  return { ...env, ...extra };
}

export interface StartCommonsOptions {
  root: string;
  url: string;
  dataDir: string;
  /** 'tsx' runs src/cli.ts through tsx; 'dist' runs the built dist/src/cli.js. */
  entry: 'tsx' | 'dist';
  /** Where --cpu-prof writes the server's profile, when profiling. */
  cpuProfDir?: string | undefined;
  /** Further options for node itself (e.g. --heapsnapshot-signal). */
  nodeArgs?: string[];
  extraEnv?: Record<string, string>;
}

export async function startCommons(options: StartCommonsOptions): Promise<ServerProcess> {
  const port = await freePort();
  const args: string[] = [];
  if (options.cpuProfDir) args.push('--cpu-prof', '--cpu-prof-dir', options.cpuProfDir);
  args.push(...(options.nodeArgs ?? []));
  if (options.entry === 'tsx') args.push('--import', 'tsx', path.join('src', 'cli.ts'));
  else args.push(path.join('dist', 'src', 'cli.js'));
  const child = spawn(process.execPath, args, {
    cwd: options.root,
    env: cleanEnv({
      COMMONS_DATA_DIR: options.dataDir,
      COMMONS_DATABASE_URL: options.url,
      COMMONS_LISTEN_HOST: '127.0.0.1',
      COMMONS_LISTEN_PORT: String(port),
      COMMONS_SERVER_NAME: 'bench.local',
      COMMONS_RATE_LIMITS_ENABLED: 'false',
      COMMONS_REGISTRATION_ENABLED: 'false',
      COMMONS_LOG_LEVEL: 'warn',
      ...options.extraEnv,
    }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-4000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = watchExit(child);
  const url = `http://127.0.0.1:${port}`;
  const client = httpClient(url, 1);
  const deadline = Date.now() + 60_000;
  try {
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null)
        throw new Error(
          `Commons exited during start-up (${child.exitCode ?? child.signalCode}):\n${output}`,
        );
      if (Date.now() > deadline) throw new Error(`Commons did not answer within 60 s:\n${output}`);
      const ready = await client.get('/_matrix/client/versions').catch(() => undefined);
      if (ready?.status === 200) break;
      await delay(100);
    }
  } catch (err) {
    await stopChild(child, exited);
    throw err;
  } finally {
    client.close();
  }
  const pid = child.pid ?? 0;
  const memory = memoryWatcher(pid);
  return {
    url,
    pid,
    startMemoryWindow: () => memory.start(),
    peakRssMiB: () => memory.peakMiB(),
    async stop() {
      memory.stop();
      await stopChild(child, exited);
    },
  };
}

export interface CeilingFixture {
  path: string;
  status: number;
  contentType: string;
  /** The response body, base64. */
  body: string;
}

/** Starts bench/ceiling-server.ts serving `fixtures` (written to `file`). */
export async function startCeiling(
  root: string,
  file: string,
  fixtures: CeilingFixture[],
): Promise<ServerProcess> {
  writeFileSync(file, JSON.stringify(fixtures));
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', path.join('bench', 'ceiling-server.ts'), file],
    { cwd: root, env: cleanEnv({}), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const exited = watchExit(child);
  const port = await new Promise<number>((resolve, reject) => {
    let text = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      text += chunk.toString('utf8');
      const match = /listening on (\d+)/.exec(text);
      if (match) resolve(Number(match[1]));
    });
    child.stderr?.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
    void exited.then(() => reject(new Error(`ceiling server exited: ${text}`)));
  });
  const pid = child.pid ?? 0;
  const memory = memoryWatcher(pid);
  return {
    url: `http://127.0.0.1:${port}`,
    pid,
    startMemoryWindow: () => memory.start(),
    peakRssMiB: () => memory.peakMiB(),
    async stop() {
      memory.stop();
      await stopChild(child, exited);
      rmSync(file, { force: true });
    },
  };
}
