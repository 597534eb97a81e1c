/**
 * What the peers bench times on each server: every scenario is one operation (a request, a
 * walk of pages, a bot's pass over its rooms, a /sync) timed at one connection, interleaved
 * between the servers with the order alternating, and run by 32 connections at once for a
 * rate. A time is the requests' own, from sending to the last byte (the bench's parsing of
 * the answer is not counted, since it would add the same to both). Scenarios whose answers a server could keep (Synapse keeps a /sync answer for two
 * minutes) vary what they ask each time.
 */
import { loadTest, percentile } from '../load.js';
import { C, inParallel, r, type PeerClient } from './client.js';
import type { DatasetShape, Manifest } from './dataset.js';

export interface Peer {
  client: PeerClient;
  manifest: Manifest;
}

/**
 * One operation; resolves to how many items it listed or wrote (rooms, members, events), and
 * the milliseconds to count when only part of it is the thing measured (an incremental /sync
 * after the message that wakes it).
 */
type Operation = (
  peer: Peer,
  worker: number,
  iteration: number,
) => Promise<number | { items: number; ms: number }>;

const itemsOf = (done: number | { items: number }) =>
  typeof done === 'number' ? done : done.items;

export interface Scenario {
  /** A stable key (targets refer to it); `name` says it with the run's sizes. */
  id: string;
  name: string;
  /** What one operation is, for the table ("request", "walk", "pass over 2,000 rooms"). */
  unit: string;
  /** Timed runs at one connection (per server). */
  runs: number;
  op: Operation;
  /** A plain GET at 32 connections goes through autocannon; others through `concurrent`. */
  get?: (peer: Peer) => { path: string; token: string };
  /** The rate run, when it is not `op` repeated by each connection. */
  rateRun?: (peer: Peer) => Promise<{ items: number; seconds: number }>;
  /** At 32 connections: run for `seconds`, or (`once`) each connection does one operation. */
  concurrency: { connections: number; seconds?: number; once?: boolean };
  /** What the rate counts: operations, or the items they list (rooms listed per second). */
  rateOf: 'operations' | 'items';
}

export interface Timing {
  p50: number;
  p99: number;
  /** Operations (or items) per second at `connections`. */
  rate: number;
  items: number;
}

export interface ScenarioResult {
  id: string;
  scenario: string;
  unit: string;
  rateOf: Scenario['rateOf'];
  connections: number;
  commons: Timing;
  synapse: Timing;
  /** Commons' p50 ÷ Synapse's. */
  latencyRatio: number;
  /** Commons' rate ÷ Synapse's. */
  rateRatio: number;
}

const simpleGet =
  (at: (p: Peer) => { path: string; token: string }, count: (body: unknown) => number): Operation =>
  async (peer) => {
    const { path, token } = at(peer);
    const { body, ms } = await peer.client.getTimed<unknown>(path, path, token);
    return { items: count(body), ms };
  };

const chunkLength = (body: unknown) => (body as { chunk: unknown[] }).chunk.length;

/** A lazy-loading filter no server has seen before (Synapse keeps identical /sync answers). */
function lazyFilter(nonce: string): string {
  return encodeURIComponent(
    JSON.stringify({
      room: {
        state: { lazy_load_members: true },
        timeline: { limit: 10, lazy_load_members: true },
      },
      presence: { not_types: [`bench.${nonce}`] },
    }),
  );
}

let nonceCounter = 0;
const nonce = () => `${process.pid}.${Date.now()}.${nonceCounter++}`;

/** Where pair A's incremental /sync starts from, per server; moved on by each sync. */
const sinceTokens = new Map<string, string>();

/** Every page of pair A's mutual rooms with pair B; the time is the pages' own, summed. */
async function mutualWalk(peer: Peer): Promise<{ items: number; ms: number }> {
  const { pairA, pairB } = peer.manifest;
  let listed = 0;
  let ms = 0;
  let from: string | undefined;
  for (;;) {
    const path = `/_matrix/client/v1/mutual_rooms?user_id=${r(pairB.userId)}${from ? `&from=${r(from)}` : ''}`;
    const page = await peer.client.getTimed<{ joined: string[]; next_batch?: string }>(
      path,
      path,
      pairA.token,
    );
    listed += page.body.joined.length;
    ms += page.ms;
    if (!page.body.next_batch) return { items: listed, ms };
    from = page.body.next_batch;
  }
}

/**
 * A pass of the bot over its rooms' `/joined_members`, `parallel` at a time; the time is the
 * requests' own, summed, when one at a time, and the wall clock's otherwise.
 */
async function botPass(peer: Peer, parallel: number): Promise<{ items: number; ms: number }> {
  const { bot, botRoomIds } = peer.manifest;
  const started = performance.now();
  let summed = 0;
  await inParallel(botRoomIds.length, parallel, async (i) => {
    const path = `${C}/rooms/${r(botRoomIds[i] as string)}/joined_members`;
    summed += (await peer.client.getTimed(path, path, bot.token)).ms;
  });
  const ms = parallel === 1 ? summed : performance.now() - started;
  return { items: botRoomIds.length, ms };
}

const n = (value: number) => value.toLocaleString('en-US');

export function scenarios(shape: DatasetShape, runs: number, loadSeconds: number): Scenario[] {
  const get32 = { connections: 32, seconds: loadSeconds };
  const big = (p: Peer) => `${C}/rooms/${r(p.manifest.bigRoom)}`;
  const ownerGet = (suffix: string) => (p: Peer) => ({
    path: `${big(p)}${suffix}`,
    token: p.manifest.owner.token,
  });
  const mutualFirst = (p: Peer) => ({
    path: `/_matrix/client/v1/mutual_rooms?user_id=${r(p.manifest.pairB.userId)}`,
    token: p.manifest.pairA.token,
  });
  const joinedRooms = (p: Peer) => ({ path: `${C}/joined_rooms`, token: p.manifest.pairA.token });
  const plain = (
    id: string,
    name: string,
    at: (p: Peer) => { path: string; token: string },
    count: (body: unknown) => number,
  ): Scenario => ({
    id,
    name,
    unit: 'request',
    runs,
    op: simpleGet(at, count),
    get: at,
    concurrency: get32,
    rateOf: 'operations',
  });
  return [
    plain(
      'joined_members',
      `/joined_members, ${n(shape.members)}-member room`,
      ownerGet('/joined_members'),
      (b) => Object.keys((b as { joined: object }).joined).length,
    ),
    plain(
      'members',
      `/members, ${n(shape.members)} joined + ${n(shape.left)} left`,
      ownerGet('/members'),
      chunkLength,
    ),
    plain(
      'members_join',
      '/members?membership=join',
      ownerGet('/members?membership=join'),
      chunkLength,
    ),
    plain(
      'members_at',
      '/members?at= (half-way token)',
      (p) => ownerGet(`/members?at=${r(p.manifest.atToken)}`)(p),
      chunkLength,
    ),
    plain(
      'joined_rooms',
      `/joined_rooms, user in ${n(shape.shared + shape.own)} rooms`,
      joinedRooms,
      (b) => (b as { joined_rooms: unknown[] }).joined_rooms.length,
    ),
    plain(
      'mutual_first_page',
      'mutual rooms, first page',
      mutualFirst,
      (b) => (b as { joined: unknown[] }).joined.length,
    ),
    {
      id: 'mutual_walk',
      name: `mutual rooms, whole walk (${n(shape.shared)} shared)`,
      unit: 'walk',
      runs,
      op: mutualWalk,
      concurrency: get32,
      rateOf: 'items',
    },
    {
      id: 'bot_start',
      name: `bot start-up: /joined_members of each of ${n(shape.botRooms)} rooms of ${shape.botRoomSize}`,
      unit: 'pass',
      runs: Math.max(3, Math.ceil(runs / 5)),
      op: (peer) => botPass(peer, 1),
      // A bridge starting: one pass, 32 requests at a time; rooms per second.
      rateRun: async (peer) => {
        const { items, ms } = await botPass(peer, 32);
        return { items, seconds: ms / 1000 };
      },
      concurrency: { connections: 32, once: true },
      rateOf: 'items',
    },
    {
      id: 'initial_sync',
      name: `initial lazy-loading /sync, user in ${n(shape.shared + shape.own)} rooms`,
      unit: 'sync',
      runs: Math.max(3, Math.ceil(runs / 5)),
      op: async (peer) => {
        const path = `${C}/sync?timeout=0&filter=${lazyFilter(nonce())}`;
        const { body, ms } = await peer.client.getTimed<{
          next_batch: string;
          rooms?: { join?: object };
        }>('initial /sync', path, peer.manifest.pairA.token);
        sinceTokens.set(peer.client.name, body.next_batch);
        return { items: Object.keys(body.rooms?.join ?? {}).length, ms };
      },
      concurrency: { connections: 32, once: true },
      rateOf: 'operations',
    },
    {
      id: 'incremental_sync',
      name: 'incremental /sync after one message',
      unit: 'sync',
      runs,
      op: async (peer, worker, iteration) => {
        const { pairA, pairB, pairRoom } = peer.manifest;
        const key = `${peer.client.name}:${worker}`;
        let since = sinceTokens.get(key) ?? sinceTokens.get(peer.client.name);
        if (!since) throw new Error('incremental /sync before an initial one');
        if (worker === 0 || iteration % 8 === 0)
          await peer.client.put(
            'send',
            `${C}/rooms/${r(pairRoom)}/send/m.room.message/inc-${nonce()}`,
            { msgtype: 'm.text', body: 'incremental' },
            pairB.token,
          );
        const path = `${C}/sync?timeout=0&since=${r(since)}&filter=${lazyFilter(nonce())}`;
        const { body, ms } = await peer.client.getTimed<{
          next_batch: string;
          rooms?: { join?: object };
        }>('incremental /sync', path, pairA.token);
        since = body.next_batch;
        sinceTokens.set(key, since);
        return { items: Object.keys(body.rooms?.join ?? {}).length, ms };
      },
      concurrency: get32,
      rateOf: 'operations',
    },
  ];
}

/** Writes under 8 writers: messages, each writer into its own room; then joins and leaves. */
export function writeScenarios(seconds: number): Scenario[] {
  return [
    {
      id: 'write_messages',
      name: 'writes: messages, 8 writers',
      unit: 'event',
      runs: 0,
      op: async (peer, worker) => {
        const writer = peer.manifest.writers[worker % peer.manifest.writers.length]!;
        const room = peer.manifest.writerRooms[worker % peer.manifest.writerRooms.length]!;
        await peer.client.put(
          'send',
          `${C}/rooms/${r(room)}/send/m.room.message/w-${nonce()}`,
          { msgtype: 'm.text', body: 'a write' },
          writer.token,
        );
        return 1;
      },
      concurrency: { connections: 8, seconds },
      rateOf: 'operations',
    },
    {
      id: 'write_joins',
      name: 'writes: joins and leaves, 8 writers',
      unit: 'membership event',
      runs: 0,
      op: async (peer, worker, iteration) => {
        const writer = peer.manifest.writers[worker % peer.manifest.writers.length]!;
        const action = iteration % 2 === 0 ? 'join' : 'leave';
        await peer.client.post(
          action,
          `${C}/rooms/${r(peer.manifest.joinRoom)}/${action}`,
          {},
          writer.token,
        );
        return 1;
      },
      concurrency: { connections: 8, seconds },
      rateOf: 'operations',
    },
  ];
}

/** Runs `op` from `connections` workers for `seconds` (or once each); the rate per second. */
async function concurrent(
  peer: Peer,
  op: Operation,
  connections: number,
  seconds: number | undefined,
): Promise<{ operations: number; items: number; seconds: number }> {
  const started = performance.now();
  const deadline = started + (seconds ?? 0) * 1000;
  let operations = 0;
  let items = 0;
  await Promise.all(
    Array.from({ length: connections }, async (_, worker) => {
      for (let i = 0; seconds === undefined ? i < 1 : performance.now() < deadline; i++) {
        items += itemsOf(await op(peer, worker, i));
        operations += 1;
      }
    }),
  );
  return { operations, items, seconds: (performance.now() - started) / 1000 };
}

/**
 * Times `scenario` on both servers. With `warmup`, each server first does that many of the
 * scenario's operations (at most as many as the timed runs), untimed and interleaved as the
 * timed ones are: what is measured is a server that has answered such requests before (its
 * code compiled, its caches filled), as a running server has, not its first answers.
 */
export async function measure(
  scenario: Scenario,
  peers: [Peer, Peer],
  log: (m: string) => void,
  warmup = 0,
  /**
   * Waits until both servers are idle: called before the timed runs and before each server's
   * concurrent part, so that neither is timed while either still works for what came before.
   */
  quiet: () => Promise<void> = () => Promise.resolve(),
): Promise<ScenarioResult> {
  const times = new Map<string, number[]>(peers.map((p) => [p.client.name, []]));
  const items = new Map<string, number>();
  for (let i = 0; i < Math.min(warmup, scenario.runs); i++) {
    const order = i % 2 === 0 ? peers : ([peers[1], peers[0]] as const);
    for (const peer of order) await scenario.op(peer, 0, i);
  }
  if (scenario.runs > 0) await quiet();
  for (let i = 0; i < scenario.runs; i++) {
    const order = i % 2 === 0 ? peers : ([peers[1], peers[0]] as const);
    for (const peer of order) {
      const started = performance.now();
      const done = await scenario.op(peer, 0, i);
      items.set(peer.client.name, itemsOf(done));
      times
        .get(peer.client.name)!
        .push(typeof done === 'number' ? performance.now() - started : done.ms);
    }
  }
  const rates = new Map<string, number>();
  const { connections } = scenario.concurrency;
  for (const peer of peers) {
    await quiet();
    if (scenario.get) {
      const { path, token } = scenario.get(peer);
      const summary = await loadTest({
        base: peer.client.url,
        path,
        token,
        connections,
        warmupSeconds: 1,
        durationSeconds: scenario.concurrency.seconds ?? 5,
        runs: 1,
      });
      if (summary.failures > 0)
        log(
          `${peer.client.name} ${scenario.name}: ${summary.failures} failures at ${connections} connections`,
        );
      rates.set(peer.client.name, summary.rps.median);
    } else if (scenario.rateRun) {
      const run = await scenario.rateRun(peer);
      rates.set(peer.client.name, run.items / run.seconds);
    } else {
      const run = await concurrent(
        peer,
        scenario.op,
        connections,
        scenario.concurrency.once ? undefined : scenario.concurrency.seconds,
      );
      if (scenario.runs === 0) items.set(peer.client.name, run.operations);
      rates.set(
        peer.client.name,
        (scenario.rateOf === 'items' ? run.items : run.operations) / run.seconds,
      );
    }
  }
  const timing = (name: string): Timing => {
    const sorted = [...times.get(name)!].sort((a, b) => a - b);
    return {
      p50: sorted.length ? +percentile(sorted, 50).toFixed(2) : NaN,
      p99: sorted.length ? +percentile(sorted, 99).toFixed(2) : NaN,
      rate: +(rates.get(name) ?? NaN).toFixed(1),
      items: items.get(name) ?? 0,
    };
  };
  const commons = timing('Commons');
  const synapse = timing('Synapse');
  const result: ScenarioResult = {
    id: scenario.id,
    scenario: scenario.name,
    unit: scenario.unit,
    rateOf: scenario.rateOf,
    connections,
    commons,
    synapse,
    latencyRatio: +(commons.p50 / synapse.p50).toFixed(3),
    rateRatio: +(commons.rate / synapse.rate).toFixed(2),
  };
  log(
    `${scenario.name}: Commons ${commons.p50} ms, ${commons.rate}/s; Synapse ${synapse.p50} ms, ${synapse.rate}/s`,
  );
  return result;
}
