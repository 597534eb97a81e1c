/**
 * The scenarios of issue #6, each measured against one running Commons with its comparison
 * in the same run: mutual_rooms pages beside the bare node:http ceiling, the whole list beside
 * the client-side workaround, the growth curve, the big room, and writes under read load.
 * A scenario whose endpoint fails is recorded with the failure and the others go on.
 */
import { fork } from 'node:child_process';
import path from 'node:path';
import type { BenchUser, Manifest, PairInfo } from './generate.js';
import { describeFailure, httpClient, jsonOf, type HttpClient, type HttpResult } from './http.js';
import {
  loadTest,
  percentile,
  stat,
  summariseRuns,
  type LoadSummary,
  type RunResult,
  type Stat,
} from './load.js';
import { startCeiling, type CeilingFixture, type ServerProcess } from './processes.js';
import type { ProbeReport } from './probe-process.js';
import type { LoadSettings } from './profiles.js';

export const SCENARIOS = ['mutual', 'workaround', 'growth', 'bigroom', 'writes'] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

export interface ScenarioContext {
  root: string;
  workDir: string;
  manifest: Manifest;
  commons: ServerProcess;
  load: LoadSettings;
  log: (message: string) => void;
}

export interface Check {
  name: string;
  expected: number | string;
  actual: number | string;
  ok: boolean;
}

export interface SampleCheck {
  passed: boolean;
  checks: Check[];
  /** The first request for each pair (it builds the pair's index), by pair name. */
  coldMs: Record<string, number>;
}

export interface MutualCase {
  name: string;
  path: string;
  /** The page this path asks for (1 = first). */
  page: number;
  error?: string;
  c1?: LoadSummary;
  cN?: LoadSummary;
  ceiling?: { c1: LoadSummary; cN: LoadSummary; peakRssMiB: number };
  /** Commons ÷ ceiling: throughput at N connections, and p50 latency at one. */
  rpsRatio?: number;
  p50Ratio?: number;
  peakRssMiB?: number;
}

export interface WalkResult {
  pages: number;
  rooms: number;
  ms: Stat;
  error?: string;
  peakRssMiB?: number;
}

export interface WorkaroundResult {
  requests: number;
  rooms: number;
  ms: Stat;
  /** Workaround time ÷ the endpoint's: walking all pages, and the first page's p50. */
  speedupVsWalk?: number;
  speedupVsFirstPage?: number;
  error?: string;
  peakRssMiB?: number;
}

export interface GrowthPoint {
  roomsPerUser: number;
  shared: number;
  coldMs?: number;
  c1?: LoadSummary;
  error?: string;
}

export interface GrowthResult {
  points: GrowthPoint[];
  /** p50 at the largest size ÷ p50 at the smallest. */
  ratio?: number;
  peakRssMiB?: number;
}

export interface BigRequest {
  name: string;
  path: string;
  requester: string;
  items?: number;
  expectedItems?: number;
  bytes?: number;
  ttlb?: Stat;
  /** Worst latency of a trivial request (/versions) polled on another connection meanwhile. */
  worstProbeMs?: number;
  error?: string;
  peakRssMiB?: number;
}

export interface BigRoomResult {
  /** Median latency of the probe on an idle server. */
  probeBaselineMs: number;
  requests: BigRequest[];
}

export interface WriteResult {
  name: string;
  joins: number;
  failures: number;
  seconds: number;
  joinsPerSecond: number;
  joinP50?: number;
  joinP99?: number;
  reads: { name: string; count: number; p50: number; p99: number; idleP50?: number }[];
  error?: string;
  peakRssMiB?: number;
}

export interface ScenarioResults {
  mutual?: { cases: MutualCase[]; walk?: WalkResult };
  workaround?: WorkaroundResult;
  growth?: GrowthResult;
  bigRoom?: BigRoomResult;
  writes?: WriteResult[];
}

const CS = '/_matrix/client';
const enc = encodeURIComponent;

export function mutualPath(pair: PairInfo, from?: string): string {
  return `${CS}/v1/mutual_rooms?user_id=${enc(pair.b.userId)}${from ? `&from=${enc(from)}` : ''}`;
}

interface MutualPage {
  joined: string[];
  count?: number;
  next_batch?: string;
}

function parseMutual(result: HttpResult): MutualPage | string {
  if (result.status !== 200) return describeFailure(result);
  const body = jsonOf<MutualPage>(result);
  if (!body || !Array.isArray(body.joined)) return 'response has no `joined` array';
  return body;
}

/** Follows next_batch from the first page; returns each page's path and the rooms. */
async function walkPages(
  client: HttpClient,
  pair: PairInfo,
  stopAtPage = Infinity,
): Promise<{ paths: string[]; rooms: string[]; count?: number; ms: number } | string> {
  const paths: string[] = [];
  const rooms: string[] = [];
  let from: string | undefined;
  let count: number | undefined;
  const started = performance.now();
  for (;;) {
    const pagePath = mutualPath(pair, from);
    paths.push(pagePath);
    const page = parseMutual(await client.get(pagePath, pair.a.accessToken));
    if (typeof page === 'string') return page;
    count ??= page.count;
    rooms.push(...page.joined);
    if (!page.next_batch || paths.length >= stopAtPage) break;
    if (paths.length > 100_000) return 'more than 100,000 pages: next_batch never ends';
    from = page.next_batch;
  }
  return {
    paths,
    rooms,
    ...(count !== undefined ? { count } : {}),
    ms: performance.now() - started,
  };
}

/** Checks a sample of the generated state through the HTTP API before anything is measured. */
export async function sampleCheck(client: HttpClient, manifest: Manifest): Promise<SampleCheck> {
  const checks: Check[] = [];
  const coldMs: Record<string, number> = {};
  const add = (name: string, expected: number | string, actual: number | string) =>
    checks.push({ name, expected, actual, ok: expected === actual });

  const pairs = [manifest.sharing, manifest.disjoint, manifest.light, ...manifest.growth];
  for (const pair of pairs) {
    const first = await client.get(mutualPath(pair), pair.a.accessToken);
    coldMs[pair.name] = first.ms;
    const walked = await walkPages(client, pair);
    if (typeof walked === 'string') {
      add(`mutual_rooms, ${pair.name} pair: rooms`, pair.shared, walked);
      continue;
    }
    add(`mutual_rooms, ${pair.name} pair: rooms over all pages`, pair.shared, walked.rooms.length);
    add(`mutual_rooms, ${pair.name} pair: count`, pair.shared, walked.count ?? 'absent');
    if (pair.sharedRoomIds) {
      const got = [...new Set(walked.rooms)].sort();
      const same =
        got.length === pair.sharedRoomIds.length &&
        got.every((r, i) => r === pair.sharedRoomIds?.[i]);
      add(
        `mutual_rooms, ${pair.name} pair: the generated intersection`,
        'same rooms',
        same ? 'same rooms' : 'different rooms',
      );
    }
  }

  const big = manifest.bigRoom;
  const owner = manifest.owner.accessToken;
  const room = enc(big.roomId);
  const count = async (
    name: string,
    p: string,
    token: string,
    expected: number,
    pick: (body: Record<string, unknown>) => number | undefined,
  ) => {
    const result = await client.get(p, token);
    if (result.status !== 200) return add(name, expected, describeFailure(result));
    const body = jsonOf(result);
    add(name, expected, (body && pick(body)) ?? 'unreadable body');
  };
  const chunkLength = (b: Record<string, unknown>) =>
    Array.isArray(b.chunk) ? b.chunk.length : undefined;
  const keys = (field: string) => (b: Record<string, unknown>) => {
    const value = b[field];
    return value && typeof value === 'object' ? Object.keys(value).length : undefined;
  };
  const all = big.joined + big.left + big.banned;
  await count(
    'big room /joined_members',
    `${CS}/v3/rooms/${room}/joined_members`,
    owner,
    big.joined,
    keys('joined'),
  );
  await count(
    'big room /members?membership=join',
    `${CS}/v3/rooms/${room}/members?membership=join`,
    owner,
    big.joined,
    chunkLength,
  );
  await count('big room /members', `${CS}/v3/rooms/${room}/members`, owner, all, chunkLength);
  await count(
    `big room /members?at=${big.oldToken}`,
    `${CS}/v3/rooms/${room}/members?at=${enc(big.oldToken)}`,
    owner,
    big.membersAtOldToken,
    chunkLength,
  );
  const heavy = manifest.sharing.a;
  await count(
    'heavy user /joined_rooms',
    `${CS}/v3/joined_rooms`,
    heavy.accessToken,
    manifest.sharing.roomsEach,
    (b) => (Array.isArray(b.joined_rooms) ? b.joined_rooms.length : undefined),
  );
  await count(
    'heavy user MSC2895 /rooms?membership=join',
    `${CS}/unstable/org.matrix.msc2895/rooms?membership=join`,
    heavy.accessToken,
    manifest.sharing.roomsEach,
    keys('rooms'),
  );
  return { passed: checks.every((c) => c.ok), checks, coldMs };
}

/** Scenarios 1 and 2: mutual_rooms pages at 1 and N connections, and the ceiling beside them. */
async function mutualScenario(
  ctx: ScenarioContext,
  client: HttpClient,
): Promise<NonNullable<ScenarioResults['mutual']>> {
  const { manifest, load, commons } = ctx;
  const cases: MutualCase[] = [];
  const planned: { name: string; pair: PairInfo; page: number }[] = [
    { name: 'heavy sharing pair, first page', pair: manifest.sharing, page: 1 },
    { name: 'heavy sharing pair, deep page', pair: manifest.sharing, page: 50 },
    { name: 'heavy disjoint pair', pair: manifest.disjoint, page: 1 },
    { name: 'light pair', pair: manifest.light, page: 1 },
  ];
  const fixtures: CeilingFixture[] = [];
  const tokens = new Map<string, string>();
  for (const plan of planned) {
    let pagePath = mutualPath(plan.pair);
    let page = 1;
    if (plan.page > 1) {
      const walked = await walkPages(client, plan.pair, plan.page);
      if (typeof walked === 'string') {
        cases.push({ name: plan.name, path: pagePath, page: plan.page, error: walked });
        continue;
      }
      page = walked.paths.length;
      pagePath = walked.paths[walked.paths.length - 1] as string;
    }
    const name = page === plan.page ? plan.name : `${plan.name} (page ${page}, the last)`;
    const probe = await client.get(pagePath, plan.pair.a.accessToken);
    if (probe.status !== 200) {
      cases.push({ name, path: pagePath, page, error: describeFailure(probe) });
      continue;
    }
    fixtures.push({
      path: pagePath,
      status: probe.status,
      contentType: probe.contentType,
      body: probe.body.toString('base64'),
    });
    tokens.set(pagePath, plan.pair.a.accessToken);
    cases.push({ name, path: pagePath, page });
  }
  const measure = (base: string, p: string, token: string | undefined, connections: number) =>
    loadTest({
      base,
      path: p,
      token,
      connections,
      warmupSeconds: load.warmupSeconds,
      durationSeconds: load.durationSeconds,
      runs: load.runs,
    });
  const ceiling =
    fixtures.length > 0
      ? await startCeiling(
          ctx.root,
          path.join(ctx.workDir, `ceiling-${process.pid}.json`),
          fixtures,
        )
      : undefined;
  try {
    // One longer unmeasured run first, so the first case does not pay for the JIT.
    const first = cases.find((c) => !c.error);
    if (first) {
      await loadTest({
        base: commons.url,
        path: first.path,
        token: tokens.get(first.path),
        connections: load.connections,
        warmupSeconds: 0,
        durationSeconds: Math.max(1, load.warmupSeconds),
        runs: 1,
      });
    }
    for (const c of cases) {
      if (c.error) {
        ctx.log(`    ${c.name}: FAILED ${c.error}`);
        continue;
      }
      const token = tokens.get(c.path);
      commons.startMemoryWindow();
      c.c1 = await measure(commons.url, c.path, token, 1);
      c.cN = await measure(commons.url, c.path, token, load.connections);
      c.peakRssMiB = commons.peakRssMiB();
      if (ceiling) {
        ceiling.startMemoryWindow();
        const c1 = await measure(ceiling.url, c.path, undefined, 1);
        const cN = await measure(ceiling.url, c.path, undefined, load.connections);
        c.ceiling = { c1, cN, peakRssMiB: ceiling.peakRssMiB() };
        c.rpsRatio = c.cN.rps.median / cN.rps.median;
        c.p50Ratio = c.c1.p50.median / c1.p50.median;
      }
      ctx.log(
        `    ${c.name}: p50 ${fmt(c.c1.p50.median)} ms, p99 ${fmt(c.c1.p99.median)} ms (c=1); ${Math.round(c.cN.rps.median)} req/s (c=${load.connections}); ceiling ${Math.round(c.ceiling?.cN.rps.median ?? NaN)} req/s → ${fmt(c.rpsRatio ?? NaN, 2)}× of ceiling${c.cN.failures + c.c1.failures > 0 ? `; ${c.cN.failures + c.c1.failures} failed requests` : ''}`,
      );
    }
  } finally {
    await ceiling?.stop();
  }

  commons.startMemoryWindow();
  await walkPages(client, manifest.sharing); // warm-up, unmeasured
  const walks: number[] = [];
  let walk: WalkResult | undefined;
  for (let i = 0; i < load.repeats; i++) {
    const walked = await walkPages(client, manifest.sharing);
    if (typeof walked === 'string') {
      walk = { pages: 0, rooms: 0, ms: stat([]), error: walked };
      break;
    }
    walks.push(walked.ms);
    walk = { pages: walked.paths.length, rooms: walked.rooms.length, ms: stat(walks) };
  }
  if (walk) {
    walk.peakRssMiB = commons.peakRssMiB();
    ctx.log(
      walk.error
        ? `    walk: FAILED ${walk.error}`
        : `    walking all ${walk.pages} pages (${walk.rooms} rooms): ${fmt(walk.ms.median)} ms`,
    );
  }
  return { cases, ...(walk ? { walk } : {}) };
}

/** Scenario 3: /joined_rooms, then each room's /joined_members, intersected by the client. */
async function workaroundScenario(
  ctx: ScenarioContext,
  mutual: ScenarioResults['mutual'],
): Promise<WorkaroundResult> {
  const { manifest, load, commons } = ctx;
  const pair = manifest.sharing;
  const client = httpClient(commons.url, load.workaroundConcurrency);
  commons.startMemoryWindow();
  try {
    const times: number[] = [];
    let requests = 0;
    let rooms = 0;
    const repeats = Math.min(load.repeats, 3);
    for (let i = 0; i < repeats; i++) {
      const started = performance.now();
      const list = await client.get(`${CS}/v3/joined_rooms`, pair.a.accessToken);
      if (list.status !== 200)
        return {
          requests: 0,
          rooms: 0,
          ms: stat([]),
          error: `/joined_rooms: ${describeFailure(list)}`,
        };
      const roomIds = jsonOf<{ joined_rooms: string[] }>(list)?.joined_rooms ?? [];
      let next = 0;
      let shared = 0;
      let failure: string | undefined;
      const worker = async () => {
        while (next < roomIds.length && !failure) {
          const roomId = roomIds[next++] as string;
          const res = await client.get(
            `${CS}/v3/rooms/${enc(roomId)}/joined_members`,
            pair.a.accessToken,
          );
          if (res.status !== 200) failure = `/joined_members: ${describeFailure(res)}`;
          const joined = jsonOf<{ joined?: Record<string, unknown> }>(res)?.joined ?? {};
          if (pair.b.userId in joined) shared += 1;
        }
      };
      await Promise.all(Array.from({ length: load.workaroundConcurrency }, worker));
      if (failure) return { requests: 0, rooms: 0, ms: stat([]), error: failure };
      times.push(performance.now() - started);
      requests = roomIds.length + 1;
      rooms = shared;
    }
    const result: WorkaroundResult = {
      requests,
      rooms,
      ms: stat(times),
      peakRssMiB: commons.peakRssMiB(),
    };
    const walkMs = mutual?.walk?.ms.median;
    const firstPage = mutual?.cases.find((c) => c.page === 1 && c.c1)?.c1?.p50.median;
    if (walkMs) result.speedupVsWalk = result.ms.median / walkMs;
    if (firstPage) result.speedupVsFirstPage = result.ms.median / firstPage;
    ctx.log(
      `    workaround: ${requests} requests, ${rooms} shared rooms found, ${fmt(result.ms.median)} ms → endpoint ${fmt(result.speedupVsWalk ?? NaN, 0)}× faster (all pages), ${fmt(result.speedupVsFirstPage ?? NaN, 0)}× (first page)`,
    );
    return result;
  } finally {
    client.close();
  }
}

/** Scenario 4: the first page's latency as each user of the pair is in more rooms. */
async function growthScenario(
  ctx: ScenarioContext,
  coldMs: Record<string, number>,
): Promise<GrowthResult> {
  const { manifest, load, commons } = ctx;
  commons.startMemoryWindow();
  // The points' runs are interleaved (a run of each point in turn, then again), so that a
  // drift of this machine's speed during the scenario falls on every point alike: a page
  // takes well under 0.1 ms here, and back-to-back runs of one point after another let the
  // machine's changes of pace read as growth.
  const runs = manifest.growth.map(() => [] as RunResult[]);
  for (let round = 0; round < load.runs; round++) {
    for (const [i, pair] of manifest.growth.entries()) {
      const once = await loadTest({
        base: commons.url,
        path: mutualPath(pair),
        token: pair.a.accessToken,
        connections: 1,
        warmupSeconds: round === 0 ? load.warmupSeconds : 0,
        durationSeconds: load.durationSeconds,
        runs: 1,
      });
      runs[i]?.push(...once.runs);
    }
  }
  const points: GrowthPoint[] = manifest.growth.map((pair, i) => {
    const point: GrowthPoint = { roomsPerUser: pair.roomsEach, shared: pair.shared };
    const cold = coldMs[pair.name];
    if (cold !== undefined) point.coldMs = cold;
    const c1 = summariseRuns(1, runs[i] ?? []);
    if (c1.runs.every((r) => r.ok === 0)) point.error = 'no successful response';
    else point.c1 = c1;
    ctx.log(
      `    ${pair.roomsEach} rooms per user: p50 ${fmt(c1.p50.median)} ms, p99 ${fmt(c1.p99.median)} ms${point.coldMs !== undefined ? ` (first request, building the pair's index: ${fmt(point.coldMs)} ms)` : ''}`,
    );
    return point;
  });
  const measured = points.filter((p) => p.c1);
  const first = measured[0]?.c1?.p50.median;
  const last = measured[measured.length - 1]?.c1?.p50.median;
  const result: GrowthResult = { points, peakRssMiB: commons.peakRssMiB() };
  if (first && last && measured.length > 1) result.ratio = last / first;
  return result;
}

/** The probe process (bench/probe-process.ts): another client polling `/versions`. */
interface Probe {
  /** Runs `work` with the probe polling; the worst latency of the probes sent meanwhile. */
  during<T>(work: () => Promise<T>): Promise<{ value: T; worstMs: number }>;
  close(): void;
}

async function startProbe(root: string, base: string): Promise<Probe> {
  const child = fork(path.join(root, 'bench', 'probe-process.ts'), [base], {
    cwd: root,
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  const stopped = () =>
    new Promise<ProbeReport>((resolve, reject) => {
      child.once('message', (report) => resolve(report as ProbeReport));
      child.once('exit', (code) => reject(new Error(`the probe process exited (${code})`)));
      child.send('stop');
    });
  return {
    async during(work) {
      child.send('start');
      const outcome = await work().then(
        (value) => ({ ok: true as const, value }),
        (error: unknown) => ({ ok: false as const, error }),
      );
      const report = await stopped();
      if (!outcome.ok) throw outcome.error;
      return { value: outcome.value, worstMs: report.worstMs };
    },
    close: () => child.disconnect(),
  };
}

async function bigRoomScenario(ctx: ScenarioContext, client: HttpClient): Promise<BigRoomResult> {
  const { manifest, load, commons } = ctx;
  const big = manifest.bigRoom;
  const room = enc(big.roomId);
  const baseline: number[] = [];
  const idle = httpClient(commons.url, 1);
  for (let i = 0; i < 20; i++) baseline.push((await idle.get(`${CS}/versions`)).ms);
  idle.close();
  const owner = manifest.owner;
  const heavy = manifest.sharing.a;
  const all = big.joined + big.left + big.banned;
  const chunk = (b: Record<string, unknown>) =>
    Array.isArray(b.chunk) ? b.chunk.length : undefined;
  const keys = (field: string) => (b: Record<string, unknown>) => {
    const v = b[field];
    return v && typeof v === 'object' ? Object.keys(v).length : undefined;
  };
  const plans: {
    name: string;
    path: string;
    user: BenchUser;
    expected: number;
    items: (b: Record<string, unknown>) => number | undefined;
  }[] = [
    {
      name: '/members (all)',
      path: `${CS}/v3/rooms/${room}/members`,
      user: owner,
      expected: all,
      items: chunk,
    },
    {
      name: '/members?membership=join',
      path: `${CS}/v3/rooms/${room}/members?membership=join`,
      user: owner,
      expected: big.joined,
      items: chunk,
    },
    {
      name: '/joined_members',
      path: `${CS}/v3/rooms/${room}/joined_members`,
      user: owner,
      expected: big.joined,
      items: keys('joined'),
    },
    {
      name: '/members?at= (an old token)',
      path: `${CS}/v3/rooms/${room}/members?at=${enc(big.oldToken)}`,
      user: owner,
      expected: big.membersAtOldToken,
      items: chunk,
    },
    {
      name: `/joined_rooms (${manifest.sharing.roomsEach} rooms)`,
      path: `${CS}/v3/joined_rooms`,
      user: heavy,
      expected: manifest.sharing.roomsEach,
      items: (b) => (Array.isArray(b.joined_rooms) ? b.joined_rooms.length : undefined),
    },
    {
      name: `MSC2895 /rooms?membership=join (${manifest.sharing.roomsEach} rooms)`,
      path: `${CS}/unstable/org.matrix.msc2895/rooms?membership=join`,
      user: heavy,
      expected: manifest.sharing.roomsEach,
      items: keys('rooms'),
    },
  ];
  // Issue #5: an initial lazy-loading /sync (matrix-js-sdk's filter) for a user in 1,000 rooms.
  const syncPair =
    manifest.growth.find((g) => g.roomsEach === 1000) ??
    [...manifest.growth].sort((x, y) => y.roomsEach - x.roomsEach)[0];
  if (syncPair) {
    const lazyFilter = JSON.stringify({
      room: { state: { lazy_load_members: true }, timeline: { limit: 8 } },
    });
    plans.push({
      name: `initial lazy-loading /sync (${syncPair.roomsEach} rooms)`,
      path: `${CS}/v3/sync?timeout=0&filter=${enc(lazyFilter)}`,
      user: syncPair.a,
      expected: syncPair.roomsEach,
      items: (b) => {
        const rooms = b.rooms as { join?: Record<string, unknown> } | undefined;
        return rooms?.join ? Object.keys(rooms.join).length : undefined;
      },
    });
  }
  const requests: BigRequest[] = [];
  const probe = await startProbe(ctx.root, commons.url);
  try {
    for (const plan of plans) await bigRequest(plan);
  } finally {
    probe.close();
  }
  return {
    probeBaselineMs: percentile(
      baseline.sort((a, b) => a - b),
      50,
    ),
    requests,
  };

  async function bigRequest(plan: (typeof plans)[number]): Promise<void> {
    const entry: BigRequest = {
      name: plan.name,
      path: plan.path,
      requester: plan.user.userId,
      expectedItems: plan.expected,
    };
    const warm = await client.get(plan.path, plan.user.accessToken);
    if (warm.status !== 200) {
      entry.error = describeFailure(warm);
      requests.push(entry);
      ctx.log(`    ${plan.name}: FAILED ${entry.error}`);
      return;
    }
    const body = jsonOf(warm);
    const items = body ? plan.items(body) : undefined;
    if (items !== undefined) entry.items = items;
    entry.bytes = warm.body.length;
    commons.startMemoryWindow();
    const times: number[] = [];
    let worst = 0;
    const repeats = Math.max(load.repeats, 3);
    for (let i = 0; i < repeats; i++) {
      const { value, worstMs } = await probe.during(() =>
        client.get(plan.path, plan.user.accessToken),
      );
      times.push(value.ms);
      worst = Math.max(worst, worstMs);
    }
    entry.ttlb = stat(times);
    entry.worstProbeMs = worst;
    entry.peakRssMiB = commons.peakRssMiB();
    requests.push(entry);
    ctx.log(
      `    ${plan.name}: ${fmt(entry.ttlb.median)} ms to the last byte (${entry.items ?? '?'} items, ${(entry.bytes / 1024).toFixed(0)} KiB); worst /versions meanwhile ${fmt(worst)} ms; peak RSS ${entry.peakRssMiB} MiB`,
    );
  }
}

/** Scenario 6: joins at a fixed concurrency for a fixed time, with membership reads alongside. */
async function writeRun(
  ctx: ScenarioContext,
  name: string,
  next: (k: number) => { user: BenchUser; roomId: string } | null,
  reads: { name: string; path: string; token: string; idleP50?: number }[],
): Promise<WriteResult> {
  const { load, commons } = ctx;
  const writer = httpClient(commons.url, load.writeConnections);
  const reader = httpClient(commons.url, 1);
  commons.startMemoryWindow();
  const latencies: number[] = [];
  let failures = 0;
  let firstFailure: string | undefined;
  let k = 0;
  let done = false;
  const started = performance.now();
  const deadline = started + load.writeSeconds * 1000;
  const readLatencies = reads.map(() => [] as number[]);
  const readLoop = (async () => {
    let i = 0;
    while (!done) {
      const r = i++ % reads.length;
      const read = reads[r];
      if (!read) break;
      const res = await reader.get(read.path, read.token);
      if (res.status === 200) readLatencies[r]?.push(res.ms);
    }
  })();
  const worker = async () => {
    while (performance.now() < deadline) {
      const op = next(k++);
      if (!op) break;
      const res = await writer.post(
        `${CS}/v3/rooms/${enc(op.roomId)}/join`,
        {},
        op.user.accessToken,
      );
      if (res.status === 200) latencies.push(res.ms);
      else {
        failures += 1;
        firstFailure ??= describeFailure(res);
      }
    }
  };
  await Promise.all(Array.from({ length: load.writeConnections }, worker));
  const seconds = (performance.now() - started) / 1000;
  done = true;
  await readLoop;
  writer.close();
  reader.close();
  latencies.sort((a, b) => a - b);
  const result: WriteResult = {
    name,
    joins: latencies.length,
    failures,
    seconds,
    joinsPerSecond: latencies.length / seconds,
    reads: reads.map((read, r) => {
      const sorted = (readLatencies[r] ?? []).sort((a, b) => a - b);
      return {
        name: read.name,
        count: sorted.length,
        p50: percentile(sorted, 50),
        p99: percentile(sorted, 99),
        ...(read.idleP50 !== undefined ? { idleP50: read.idleP50 } : {}),
      };
    }),
    peakRssMiB: commons.peakRssMiB(),
  };
  if (latencies.length > 0) {
    result.joinP50 = percentile(latencies, 50);
    result.joinP99 = percentile(latencies, 99);
  }
  if (latencies.length === 0 && firstFailure) result.error = firstFailure;
  ctx.log(
    `    ${name}: ${fmt(result.joinsPerSecond, 0)} joins/s (p50 ${fmt(result.joinP50 ?? NaN)} ms, p99 ${fmt(result.joinP99 ?? NaN)} ms${failures ? `, ${failures} failed: ${firstFailure}` : ''}); reads meanwhile: ${result.reads.map((r) => `${r.name} p50 ${fmt(r.p50)} ms`).join(', ')}`,
  );
  return result;
}

async function writesScenario(
  ctx: ScenarioContext,
  mutual: ScenarioResults['mutual'],
): Promise<WriteResult[]> {
  const { manifest } = ctx;
  const writers = manifest.writers;
  if (writers.length === 0) return [];
  const idle = mutual?.cases.find((c) => c.page === 1)?.c1?.p50.median;
  const reads = [
    {
      name: 'mutual_rooms first page (heavy pair)',
      path: mutualPath(manifest.sharing),
      token: manifest.sharing.a.accessToken,
      ...(idle !== undefined ? { idleP50: idle } : {}),
    },
    {
      name: `/joined_members of a ${manifest.readRoom.joined}-member room`,
      path: `${CS}/v3/rooms/${enc(manifest.readRoom.roomId)}/joined_members`,
      token: manifest.sharing.a.accessToken,
    },
  ];
  const big = await writeRun(
    ctx,
    'joins into the big room',
    (k) =>
      k < writers.length
        ? { user: writers[k] as BenchUser, roomId: manifest.bigRoom.roomId }
        : null,
    reads,
  );
  const rooms = manifest.writeRoomIds;
  const many = await writeRun(
    ctx,
    `joins into many rooms (${rooms.length} rooms)`,
    (k) => ({
      user: writers[(k + Math.floor(k / rooms.length)) % writers.length] as BenchUser,
      roomId: rooms[k % rooms.length] as string,
    }),
    reads,
  );
  return [big, many];
}

/** The title a scenario is logged under. */
export const SCENARIO_TITLES: Record<ScenarioName, string> = {
  mutual: 'mutual_rooms and the ceiling',
  workaround: 'the client-side workaround',
  growth: 'growth',
  bigroom: 'the big room',
  writes: 'writes under read load',
};

/**
 * Runs one scenario against one server and keeps its result in `results` (the workaround and
 * the writes take the mutual_rooms result, so run them after it). A scenario that fails is
 * logged and leaves no result.
 */
export async function runScenario(
  name: ScenarioName,
  ctx: ScenarioContext,
  check: SampleCheck,
  results: ScenarioResults,
): Promise<void> {
  const client = httpClient(ctx.commons.url, 1);
  try {
    switch (name) {
      case 'mutual':
        results.mutual = await mutualScenario(ctx, client);
        break;
      case 'workaround':
        results.workaround = await workaroundScenario(ctx, results.mutual);
        break;
      case 'growth':
        results.growth = await growthScenario(ctx, check.coldMs);
        break;
      case 'bigroom':
        results.bigRoom = await bigRoomScenario(ctx, client);
        break;
      case 'writes':
        results.writes = await writesScenario(ctx, results.mutual);
        break;
    }
  } catch (err) {
    ctx.log(`    FAILED: ${(err as Error).stack ?? String(err)}`);
  } finally {
    client.close();
  }
}

export function fmt(value: number, digits = 2): string {
  if (!Number.isFinite(value)) return '–';
  return value.toFixed(digits);
}
