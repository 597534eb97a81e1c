/**
 * `npm run bench:peers`: Commons and Synapse side by side, on the same data built through each
 * server's client API — a room of --members joined members (each with a display name), and a
 * pair of users sharing --shared rooms — then the membership queries timed on both, one server
 * after the other for each request (the order alternating), after checking that both give the
 * same answers (same members, names and counts; user IDs compared by localpart).
 *
 * Both run on SQLite by default; --postgres URL gives each a database of its own on that
 * server. Without PyPI (Synapse cannot be installed) the run says SKIPPED and exits 0.
 * Writes bench/results/<time>-peers-<database>.json and prints a table.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { databaseUrl } from './cache.js';
import { httpClient, jsonOf, type HttpClient } from './http.js';
import { loadTest, percentile } from './load.js';
import { startCommons } from './processes.js';
import { installSynapse, startSynapse } from './synapse.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const C = '/_matrix/client/v3';

const { values: args } = parseArgs({
  options: {
    members: { type: 'string', default: '2000' },
    shared: { type: 'string', default: '100' },
    runs: { type: 'string', default: '25' },
    'load-seconds': { type: 'string', default: '5' },
    postgres: { type: 'string' },
  },
});

interface Account {
  userId: string;
  token: string;
}

interface Peer {
  name: 'Commons' | 'Synapse';
  url: string;
  http: HttpClient;
  owner?: Account;
  pairA?: Account;
  pairB?: Account;
  bigRoom?: string;
  stop(): Promise<void>;
}

const localpart = (userId: string) => userId.slice(1, userId.indexOf(':'));

async function ok<T>(peer: Peer, what: string, result: ReturnType<HttpClient['get']>): Promise<T> {
  const r = await result;
  if (r.status !== 200)
    throw new Error(`${peer.name} ${what}: ${r.status} ${r.body.toString().slice(0, 200)}`);
  return jsonOf<T>(r) as T;
}

async function register(peer: Peer, name: string, displayname: string): Promise<Account> {
  const body = await ok<{ user_id: string; access_token: string }>(
    peer,
    `register ${name}`,
    peer.http.post(`${C}/register`, {
      username: name,
      password: 'bench-password',
      auth: { type: 'm.login.dummy' },
      inhibit_login: false,
    }),
  );
  const account = { userId: body.user_id, token: body.access_token };
  await put(peer, `/profile/${encodeURIComponent(account.userId)}/displayname`, account, {
    displayname,
  });
  return account;
}

async function put(peer: Peer, urlPath: string, account: Account, body: unknown) {
  const res = await fetch(`${peer.url}${C}${urlPath}`, {
    method: 'PUT',
    headers: { Authorization: `Bearer ${account.token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (res.status !== 200) throw new Error(`${peer.name} PUT ${urlPath}: ${res.status}`);
}

const createRoom = async (peer: Peer, account: Account) =>
  (
    await ok<{ room_id: string }>(
      peer,
      'createRoom',
      peer.http.post(
        `${C}/createRoom`,
        { preset: 'public_chat', room_version: '10' },
        account.token,
      ),
    )
  ).room_id;

const join = (peer: Peer, account: Account, roomId: string) =>
  ok(
    peer,
    'join',
    peer.http.post(`${C}/rooms/${encodeURIComponent(roomId)}/join`, {}, account.token),
  );

/** The same data on each server, built through its client API, 16 requests at a time. */
async function build(peer: Peer, members: number, shared: number, log: (m: string) => void) {
  const started = Date.now();
  peer.owner = await register(peer, 'owner', 'The Owner');
  peer.pairA = await register(peer, 'pair_a', 'Pair A');
  peer.pairB = await register(peer, 'pair_b', 'Pair B');
  const bigRoom = await createRoom(peer, peer.owner);
  peer.bigRoom = bigRoom;
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      for (let i = next++; i < members - 1; i = next++) {
        const member = await register(peer, `member_${i}`, `Member ${i}`);
        await join(peer, member, bigRoom);
      }
    }),
  );
  for (let i = 0; i < shared; i++) {
    const room = await createRoom(peer, peer.pairA);
    await join(peer, peer.pairB, room);
  }
  log(`${peer.name}: built in ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

interface Answers {
  joined: string[];
  names: string[];
  members: number;
  joinedRooms: number;
}

async function answersOf(peer: Peer): Promise<Answers> {
  const room = encodeURIComponent(peer.bigRoom!);
  const joined = await ok<{ joined: Record<string, { display_name?: string }> }>(
    peer,
    'joined_members',
    peer.http.get(`${C}/rooms/${room}/joined_members`, peer.owner!.token),
  );
  const members = await ok<{ chunk: unknown[] }>(
    peer,
    'members',
    peer.http.get(`${C}/rooms/${room}/members`, peer.owner!.token),
  );
  const rooms = await ok<{ joined_rooms: string[] }>(
    peer,
    'joined_rooms',
    peer.http.get(`${C}/joined_rooms`, peer.pairA!.token),
  );
  const entries = Object.entries(joined.joined).sort(([a], [b]) => (a < b ? -1 : 1));
  return {
    joined: entries.map(([id]) => localpart(id)).sort(),
    names: entries.map(([, p]) => p.display_name ?? '').sort(),
    members: members.chunk.length,
    joinedRooms: rooms.joined_rooms.length,
  };
}

function differences(a: Answers, b: Answers): string[] {
  const out: string[] = [];
  if (JSON.stringify(a.joined) !== JSON.stringify(b.joined)) out.push('joined members differ');
  if (JSON.stringify(a.names) !== JSON.stringify(b.names)) out.push('display names differ');
  if (a.members !== b.members) out.push(`/members: ${a.members} against ${b.members}`);
  if (a.joinedRooms !== b.joinedRooms)
    out.push(`/joined_rooms: ${a.joinedRooms} against ${b.joinedRooms}`);
  return out;
}

interface Measure {
  name: string;
  path: (peer: Peer) => string;
  token: (peer: Peer) => string;
}

const MEASURES: Measure[] = [
  {
    name: '/joined_members (big room)',
    path: (p) => `${C}/rooms/${encodeURIComponent(p.bigRoom!)}/joined_members`,
    token: (p) => p.owner!.token,
  },
  {
    name: '/members (big room)',
    path: (p) => `${C}/rooms/${encodeURIComponent(p.bigRoom!)}/members`,
    token: (p) => p.owner!.token,
  },
  {
    name: '/members?membership=join',
    path: (p) => `${C}/rooms/${encodeURIComponent(p.bigRoom!)}/members?membership=join`,
    token: (p) => p.owner!.token,
  },
  {
    name: '/joined_rooms (pair member)',
    path: () => `${C}/joined_rooms`,
    token: (p) => p.pairA!.token,
  },
];

async function createPostgresDatabase(adminUrl: string, name: string, synapse: boolean) {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    // Synapse asks for the C collation.
    await admin.query(
      synapse
        ? `CREATE DATABASE ${name} ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0`
        : `CREATE DATABASE ${name}`,
    );
  } finally {
    await admin.end();
  }
  return databaseUrl(adminUrl, name);
}

async function main(): Promise<void> {
  const log = (message: string) => console.log(`[peers] ${message}`);
  const install = installSynapse(path.join(ROOT, 'bench', '.cache'));
  if ('problem' in install) {
    console.log('='.repeat(78));
    console.log(`bench:peers: Synapse SKIPPED — ${install.problem}`);
    console.log('='.repeat(78));
    return;
  }
  const members = Number(args.members);
  const shared = Number(args.shared);
  const runs = Number(args.runs);
  const database = args.postgres ? 'postgres' : 'sqlite';
  const work = mkdtempSync(path.join(tmpdir(), 'commons-peers-'));
  const peers: Peer[] = [];
  try {
    const commonsDir = path.join(work, 'commons');
    mkdirSync(commonsDir);
    const commons = await startCommons({
      root: ROOT,
      url: args.postgres
        ? await createPostgresDatabase(args.postgres, 'commons_bench_peers', false)
        : `sqlite:${path.join(commonsDir, 'commons.db')}`,
      dataDir: commonsDir,
      entry: 'tsx',
      extraEnv: {
        COMMONS_REGISTRATION_ENABLED: 'true',
        COMMONS_PASSWORD_HASHING_SCRYPT_LOG2_N: '10',
      },
    });
    peers.push({
      name: 'Commons',
      url: commons.url,
      http: httpClient(commons.url, 16),
      stop: commons.stop,
    });
    const synapse = await startSynapse({
      install,
      dataDir: path.join(work, 'synapse'),
      database: args.postgres
        ? await createPostgresDatabase(args.postgres, 'synapse_bench_peers', true)
        : null,
    });
    peers.push({
      name: 'Synapse',
      url: synapse.url,
      http: httpClient(synapse.url, 16),
      stop: synapse.stop,
    });
    log(
      `Synapse ${install.version} and Commons on ${database}; ${members} members, ${shared} shared rooms`,
    );

    for (const peer of peers) await build(peer, members, shared, log);
    const [commonsPeer, synapsePeer] = peers as [Peer, Peer];
    const differ = differences(await answersOf(commonsPeer), await answersOf(synapsePeer));
    log(
      differ.length === 0
        ? 'both servers give the same answers'
        : `answers differ: ${differ.join('; ')}`,
    );

    const results: Record<string, unknown>[] = [];
    for (const measure of MEASURES) {
      const times = new Map<string, number[]>(peers.map((p) => [p.name, []]));
      for (const peer of peers) await peer.http.get(measure.path(peer), measure.token(peer));
      for (let i = 0; i < runs; i++) {
        const order = i % 2 === 0 ? peers : [...peers].reverse();
        for (const peer of order) {
          const r = await peer.http.get(measure.path(peer), measure.token(peer));
          if (r.status !== 200) throw new Error(`${peer.name} ${measure.name}: ${r.status}`);
          times.get(peer.name)!.push(r.ms);
        }
      }
      const rates = new Map<string, number>();
      for (const peer of peers) {
        const summary = await loadTest({
          base: peer.url,
          path: measure.path(peer),
          token: measure.token(peer),
          connections: 32,
          warmupSeconds: 1,
          durationSeconds: Number(args['load-seconds']),
          runs: 1,
        });
        rates.set(peer.name, summary.rps.median);
      }
      const stat = (name: string) => {
        const sorted = [...times.get(name)!].sort((a, b) => a - b);
        return { p50: +percentile(sorted, 50).toFixed(2), p99: +percentile(sorted, 99).toFixed(2) };
      };
      const c = stat('Commons');
      const s = stat('Synapse');
      results.push({
        measure: measure.name,
        commons: { ...c, rps: rates.get('Commons') },
        synapse: { ...s, rps: rates.get('Synapse') },
        latencyRatio: +(c.p50 / s.p50).toFixed(3),
        throughputRatio: +((rates.get('Commons') ?? 0) / (rates.get('Synapse') ?? 1)).toFixed(2),
      });
    }
    console.log(
      `| measure | Commons p50 / p99 ms | Synapse ${install.version} p50 / p99 ms | Commons ÷ Synapse | req/s at 32 connections (Commons / Synapse) |`,
    );
    console.log('|---|---|---|---|---|');
    for (const r of results as {
      measure: string;
      commons: { p50: number; p99: number; rps: number };
      synapse: { p50: number; p99: number; rps: number };
      latencyRatio: number;
      throughputRatio: number;
    }[])
      console.log(
        `| ${r.measure} | ${r.commons.p50} / ${r.commons.p99} | ${r.synapse.p50} / ${r.synapse.p99} | ${r.latencyRatio} | ${Math.round(r.commons.rps)} / ${Math.round(r.synapse.rps)} (${r.throughputRatio}×) |`,
      );
    const when = new Date().toISOString();
    const file = path.join(
      ROOT,
      'bench',
      'results',
      `${when.slice(0, 16).replace(/:/g, '-')}-peers-${database}.json`,
    );
    writeFileSync(
      file,
      `${JSON.stringify({ when, database, synapse: install.version, members, shared, runs, answersDiffer: differ, results }, null, 2)}\n`,
    );
    log(`written: ${path.relative(ROOT, file)}`);
  } finally {
    for (const peer of peers) {
      peer.http.close();
      await peer.stop().catch(() => undefined);
    }
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
