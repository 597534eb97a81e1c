/**
 * Commons alone on a copy of the peers bench's cached data: runs the peers scenarios (or some
 * of them) against it and reports the process's memory (V8 heap, external, array buffers, the
 * rest of RSS) before and after a full GC, and optionally a CPU profile. For finding what a
 * peers run's figure is made of without Synapse beside it.
 *
 *   node --import tsx bench/peers-probe.ts --data bench/.cache/peers/sqlite-00866c11db \
 *     [--only write_messages,write_joins] [--cpu-prof DIR] [--seconds 8] [--runs 25] \
 *     [--profile incremental_sync:FILE] [--postgres postgres://user:password@host/postgres]
 *
 * With `--postgres` (and `--data bench/.cache/peers/postgres-*`), Commons runs on a copy of the
 * peers bench's cached PostgreSQL database (made from it as a template, dropped at the end).
 *
 * `--profile ID:FILE` writes a CPU profile of that scenario alone (its runs at one connection
 * and its concurrent part; `--seconds 0` leaves out every scenario's concurrent part) to FILE, taken inside the
 * server by bench/soak-agent.mjs; `--cpu-prof DIR` profiles the whole process. Beside the
 * times at one connection, the server's CPU time per timed run (user and system, from /proc;
 * 10 ms ticks, so take it over many runs): on a busy machine it varies far less than the times.
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { spawnSync } from 'node:child_process';
import pg from 'pg';
import { databaseUrl } from './cache.js';
import { loadTest } from './load.js';
import { processCpuMs } from './quiet.js';
import { startCommons } from './processes.js';
import { peerClient } from './peers/client.js';
import { scenarios, writeScenarios, type Peer } from './peers/scenarios.js';
import type { Manifest } from './peers/dataset.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const { values: args } = parseArgs({
  options: {
    data: { type: 'string' },
    only: { type: 'string' },
    'cpu-prof': { type: 'string' },
    seconds: { type: 'string', default: '8' },
    runs: { type: 'string', default: '25' },
    'fast-reads': { type: 'string' },
    env: { type: 'string', multiple: true },
    'node-arg': { type: 'string', multiple: true },
    profile: { type: 'string' },
    postgres: { type: 'string' },
  },
});
if (!args.data)
  throw new Error('--data DIR (a bench/.cache/peers/sqlite-* or postgres-* directory)');
const manifest = JSON.parse(
  readFileSync(path.join(args.data, 'commons-manifest.json'), 'utf8'),
) as Manifest;
const work = mkdtempSync(path.join(os.tmpdir(), 'peers-probe-'));
cpSync(path.join(args.data, 'commons'), work, { recursive: true });
rmSync(path.join(work, 'commons.db-lock'), { force: true });
/** PostgreSQL: a copy of the cached database (its name as bench/peers.ts gives it). */
const copy = args.postgres ? `commons_probe_${process.pid}` : undefined;
async function admin(statement: string): Promise<void> {
  const client = new pg.Client({ connectionString: args.postgres });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}
if (copy) {
  const cached = `commons_peers_${path.basename(path.resolve(args.data)).replace(/^postgres-/, '')}`;
  await admin(`CREATE DATABASE "${copy}" TEMPLATE "${cached}"`);
}
const agentDir = path.join(work, 'agent');
mkdirSync(agentDir);

const built = spawnSync(process.execPath, ['scripts/build.mjs', '--if-stale'], {
  cwd: ROOT,
  stdio: 'inherit',
});
if (built.status !== 0) throw new Error('build failed');

const extraEnv: Record<string, string> = { SOAK_AGENT_DIR: agentDir };
for (const pair of args.env ?? []) {
  const at = pair.indexOf('=');
  extraEnv[pair.slice(0, at)] = pair.slice(at + 1);
}
const commons = await startCommons({
  root: ROOT,
  url:
    copy && args.postgres
      ? databaseUrl(args.postgres, copy)
      : `sqlite:${path.join(work, 'commons.db')}`,
  dataDir: work,
  entry: 'dist',
  cpuProfDir: args['cpu-prof'] ? path.resolve(args['cpu-prof']) : undefined,
  nodeArgs: [
    ...(args['node-arg'] ?? []),
    '--expose-gc',
    '--import',
    path.join(ROOT, 'bench', 'soak-agent.mjs'),
  ],
  extraEnv,
});
let sequence = 0;
async function agent(
  command: 'gc' | 'none' | 'profile-start' | 'profile-stop',
): Promise<Record<string, number | string>> {
  writeFileSync(path.join(agentDir, 'command'), command);
  process.kill(commons.pid, 'SIGUSR2');
  const file = path.join(agentDir, `reply-${++sequence}.json`);
  for (let i = 0; i < 200 && !existsSync(file); i++) await new Promise((r) => setTimeout(r, 50));
  return JSON.parse(readFileSync(file, 'utf8')) as Record<string, number | string>;
}
const mib = (b: number | string | undefined) => +(Number(b ?? 0) / 1048576).toFixed(1);
function show(what: string, m: Record<string, number | string>): void {
  const rss = Number(m.rss ?? 0);
  const heapTotal = Number(m.heapTotal ?? 0);
  const external = Number(m.external ?? 0);
  console.log(
    `${what}: rss ${mib(rss)}, heapUsed ${mib(m.heapUsed)}, heapTotal ${mib(heapTotal)}, external ${mib(external)} (arrayBuffers ${mib(m.arrayBuffers)}), rest ${mib(rss - heapTotal - external)}`,
  );
}
/** The server's CPU time so far (user and system), in ms, from /proc (Linux). */
const serverCpuMs = () => processCpuMs(commons.pid);
const [profiled, profileFile] = args.profile?.split(/:(.*)/s) ?? [];
const at = (sorted: number[], q: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))]?.toFixed(2);

const client = peerClient('Commons', commons.url);
const peer: Peer = { client, manifest };
const shape = manifest.shape;
const seconds = Number(args.seconds);
const runs = Number(args.runs);
const only = args.only?.split(',');
try {
  show('started', await agent('none'));
  for (const scenario of [...scenarios(shape, runs, seconds), ...writeScenarios(seconds)]) {
    if (only && !only.includes(scenario.id)) continue;
    const started = performance.now();
    let ops = 0;
    if (scenario.id === profiled) await agent('profile-start');
    if (scenario.runs > 0) {
      const times: number[] = [];
      let cpuFrom = NaN;
      for (let i = 0; i < scenario.runs * 2; i++) {
        if (i === scenario.runs) cpuFrom = serverCpuMs();
        const done = await scenario.op(peer, 0, i);
        if (i >= scenario.runs) times.push(typeof done === 'number' ? NaN : done.ms);
      }
      const cpuPerRun = (serverCpuMs() - cpuFrom) / scenario.runs;
      times.sort((a, b) => a - b);
      console.log(
        `${scenario.id}: p50 ${at(times, 0.5)} ms (p10 ${at(times, 0.1)}, p90 ${at(times, 0.9)}, ${times.length} runs); server CPU ${cpuPerRun.toFixed(2)} ms a run`,
      );
    }
    if (scenario.get) {
      const { path: at, token } = scenario.get(peer);
      const summary = await loadTest({
        base: commons.url,
        path: at,
        token,
        connections: scenario.concurrency.connections,
        warmupSeconds: 1,
        durationSeconds: seconds,
        runs: 1,
      });
      console.log(`${scenario.id}: ${summary.rps.median} req/s at 32 (autocannon)`);
    } else if (scenario.rateRun) {
      const run = await scenario.rateRun(peer);
      console.log(`${scenario.id}: ${(run.items / run.seconds).toFixed(1)} items/s`);
    } else if (seconds > 0) {
      const once = scenario.concurrency.once === true;
      const deadline = performance.now() + seconds * 1000;
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: scenario.concurrency.connections }, async (_, worker) => {
          for (let i = 0; once ? i < 1 : performance.now() < deadline; i++) {
            await scenario.op(peer, worker, i);
            ops++;
          }
        }),
      );
      const took = (performance.now() - t0) / 1000;
      console.log(
        `${scenario.id}: ${(ops / took).toFixed(1)} ops/s at ${scenario.concurrency.connections}`,
      );
    }
    if (scenario.id === profiled) {
      const reply = await agent('profile-stop');
      cpSync(String(reply.profile), path.resolve(profileFile ?? `${profiled}.cpuprofile`));
      console.log(`  profile of ${profiled}: ${profileFile ?? `${profiled}.cpuprofile`}`);
    }
    show(
      `  after ${scenario.id} (${((performance.now() - started) / 1000).toFixed(1)} s)`,
      await agent('none'),
    );
  }
  show('end, before GC', await agent('none'));
  show('end, after GC', await agent('gc'));
} finally {
  client.close();
  await commons.stop();
  rmSync(work, { recursive: true, force: true });
  if (copy) await admin(`DROP DATABASE IF EXISTS "${copy}" WITH (FORCE)`);
}
