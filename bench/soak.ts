/**
 * The soak run (`npm run soak`): a Commons process of its own, on a fresh SQLite database (or
 * PostgreSQL with --postgres URL), answers a long stream of mixed requests — ordinary client
 * traffic beside hostile input (bad JSON, deep nesting, unknown paths, wrong tokens, huge
 * query strings) — and its memory is read as it goes:
 *
 * - after every tenth of the requests, a full garbage collection in the server (through
 *   bench/soak-agent.mjs, loaded into it), then its live heap and its resident memory: a live
 *   heap that keeps rising is a leak, a flat one is not;
 * - a heap snapshot before the measured run and one after it: the object kinds whose count
 *   grew between them say what is kept, if anything is.
 *
 * Prints a table and writes bench/results/<time>-soak.json. Traffic goes to 127.0.0.1 only,
 * bounded by --requests (default 100,000) and --max-minutes (default 20).
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { startCommons, type ServerProcess } from './processes.js';
import { seededRandom, type Random } from './random.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const C = '/_matrix/client/v3';

const { values: args } = parseArgs({
  options: {
    requests: { type: 'string', default: '100000' },
    connections: { type: 'string', default: '16' },
    'max-minutes': { type: 'string', default: '20' },
    postgres: { type: 'string' },
    seed: { type: 'string', default: '1' },
    keep: { type: 'boolean', default: false },
    /** Without the heap snapshots, whose making leaves the server's RSS higher. */
    'skip-snapshots': { type: 'boolean', default: false },
  },
});

interface Reply {
  status: number;
  body: string;
}

function client(base: string, connections: number) {
  const agent = new Agent({ keepAlive: true, maxSockets: connections });
  const url = new URL(base);
  return {
    send(
      method: string,
      urlPath: string,
      options: { token?: string; body?: string | Buffer; contentType?: string } = {},
    ): Promise<Reply> {
      return new Promise((resolve, reject) => {
        const headers: Record<string, string | number> = {};
        if (options.token) headers.Authorization = `Bearer ${options.token}`;
        if (options.body !== undefined) {
          headers['Content-Type'] = options.contentType ?? 'application/json';
          headers['Content-Length'] = Buffer.byteLength(options.body);
        }
        const req = request(
          { host: url.hostname, port: url.port, path: urlPath, method, headers, agent },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (chunk: Buffer) => chunks.push(chunk));
            res.on('end', () =>
              resolve({
                status: res.statusCode ?? 0,
                body: Buffer.concat(chunks).toString('utf8'),
              }),
            );
            res.on('error', reject);
          },
        );
        req.on('error', reject);
        req.end(options.body);
      });
    },
    close: () => agent.destroy(),
  };
}
type Client = ReturnType<typeof client>;

interface User {
  userId: string;
  token: string;
}

async function register(http: Client, name: string): Promise<User> {
  const reply = await http.send('POST', `${C}/register`, {
    body: JSON.stringify({
      username: name,
      password: 'soak-password',
      auth: { type: 'm.login.dummy' },
    }),
  });
  if (reply.status !== 200) throw new Error(`register ${name}: ${reply.status} ${reply.body}`);
  const body = JSON.parse(reply.body) as { user_id: string; access_token: string };
  return { userId: body.user_id, token: body.access_token };
}

async function json<T>(reply: Promise<Reply>, what: string): Promise<T> {
  const r = await reply;
  if (r.status !== 200) throw new Error(`${what}: ${r.status} ${r.body.slice(0, 200)}`);
  return JSON.parse(r.body) as T;
}

/** A few users in a few shared rooms, so the ordinary requests have something to read. */
async function seed(http: Client, random: Random) {
  const users: User[] = [];
  for (let i = 0; i < 12; i++) users.push(await register(http, `soak${i}`));
  const rooms: string[] = [];
  for (let i = 0; i < 6; i++) {
    const owner = users[i % users.length]!;
    const { room_id } = await json<{ room_id: string }>(
      http.send('POST', `${C}/createRoom`, {
        token: owner.token,
        body: JSON.stringify({ preset: 'public_chat', name: `soak room ${i}` }),
      }),
      'createRoom',
    );
    rooms.push(room_id);
    for (const user of users) {
      if (user === owner || random.next() < 0.3) continue;
      await json(
        http.send('POST', `${C}/rooms/${encodeURIComponent(room_id)}/join`, {
          token: user.token,
          body: '{}',
        }),
        'join',
      );
    }
  }
  return { users, rooms };
}

/** One request of the mix: ordinary traffic most of the time, hostile input the rest. */
function pickRequest(
  random: Random,
  world: { users: User[]; rooms: string[] },
  counter: number,
): { method: string; path: string; token?: string; body?: string; contentType?: string } {
  const user = world.users[random.int(world.users.length)]!;
  const other = world.users[random.int(world.users.length)]!;
  const room = encodeURIComponent(world.rooms[random.int(world.rooms.length)]!);
  const token = user.token;
  const kinds = [
    () => ({ method: 'GET', path: `${C}/sync?timeout=0`, token }),
    () => ({ method: 'GET', path: `${C}/rooms/${room}/members`, token }),
    () => ({ method: 'GET', path: `${C}/rooms/${room}/joined_members`, token }),
    () => ({ method: 'GET', path: `${C}/joined_rooms`, token }),
    () => ({
      method: 'GET',
      path: `/_matrix/client/v1/mutual_rooms?user_id=${encodeURIComponent(other.userId)}`,
      token,
    }),
    () => ({ method: 'GET', path: `${C}/rooms/${room}/messages?dir=b&limit=20`, token }),
    () => ({
      method: 'PUT',
      path: `${C}/rooms/${room}/send/m.room.message/soak${counter}`,
      token,
      body: JSON.stringify({ msgtype: 'm.text', body: `message ${counter}` }),
    }),
    () => ({
      method: 'PUT',
      path: `${C}/profile/${encodeURIComponent(user.userId)}/displayname`,
      token,
      body: JSON.stringify({ displayname: `User ${counter % 50}` }),
    }),
    () => ({ method: 'GET', path: '/_matrix/client/versions' }),
    // Hostile input.
    () => ({
      method: 'POST',
      path: `${C}/createRoom`,
      token,
      body: '{"name": "unterminated',
    }),
    () => ({
      method: 'PUT',
      path: `${C}/user/${encodeURIComponent(user.userId)}/account_data/org.soak.deep`,
      token,
      body: `${'['.repeat(2000)}${']'.repeat(2000)}`,
    }),
    () => ({
      method: 'POST',
      path: `/_matrix/media/v3/upload?n=${counter}`,
      token,
      body: Buffer.alloc(2048, counter % 256).toString('latin1'),
      contentType: 'image/png',
    }),
    () => ({ method: 'GET', path: `/_matrix/client/v3/nothing/here/${counter}` }),
    () => ({ method: 'GET', path: `${C}/sync?timeout=0`, token: `nope${counter}` }),
    () => ({
      method: 'GET',
      path: `${C}/rooms/${room}/members?membership=${'x'.repeat(6000)}${counter}`,
      token,
    }),
    () => ({ method: 'GET', path: `${C}/rooms/!nowhere${counter}:soak/members`, token }),
    () => ({
      method: 'GET',
      path: `${C}/rooms/${room}/messages?filter=${encodeURIComponent('{"limit":')}${counter}`,
      token,
    }),
  ];
  return kinds[random.int(kinds.length)]!();
}

interface HeapSummary {
  liveMiB: number;
  counts: Map<string, number>;
}

/** Reads a heap snapshot: its live size and the number of objects of each kind. */
function readSnapshot(file: string): HeapSummary {
  const snapshot = JSON.parse(readFileSync(file, 'utf8')) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
    nodes: number[];
    strings: string[];
  };
  const fields = snapshot.snapshot.meta.node_fields;
  const width = fields.length;
  const typeAt = fields.indexOf('type');
  const nameAt = fields.indexOf('name');
  const sizeAt = fields.indexOf('self_size');
  const types = snapshot.snapshot.meta.node_types[0];
  const counts = new Map<string, number>();
  let bytes = 0;
  for (let i = 0; i < snapshot.nodes.length; i += width) {
    bytes += snapshot.nodes[i + sizeAt]!;
    const type = types[snapshot.nodes[i + typeAt]!] ?? '?';
    const kind =
      type === 'object' || type === 'closure'
        ? `${type}:${snapshot.strings[snapshot.nodes[i + nameAt]!]}`
        : type;
    counts.set(kind, (counts.get(kind) ?? 0) + 1);
  }
  return { liveMiB: +(bytes / 1048576).toFixed(1), counts };
}

interface AgentReply {
  sequence: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  rss: number;
  snapshot?: string;
}

/** Talks to bench/soak-agent.mjs in the server: a command file, a signal, a reply file. */
function agent(server: ServerProcess, dir: string) {
  let sequence = 0;
  return async (command: 'gc' | 'snapshot'): Promise<AgentReply> => {
    writeFileSync(path.join(dir, 'command'), command);
    const file = path.join(dir, `reply-${++sequence}.json`);
    process.kill(server.pid, 'SIGUSR2');
    const deadline = Date.now() + 120_000;
    for (;;) {
      if (Date.now() > deadline) throw new Error(`the soak agent did not answer "${command}"`);
      await delay(command === 'gc' ? 20 : 500);
      if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8')) as AgentReply;
    }
  };
}

const mib = (bytes: number) => +(bytes / 1048576).toFixed(1);

async function main(): Promise<void> {
  const total = Number(args.requests);
  const connections = Number(args.connections);
  const deadline = Date.now() + Number(args['max-minutes']) * 60_000;
  const random = seededRandom(Number(args.seed), 'soak');
  const dataDir = mkdtempSync(path.join(tmpdir(), 'commons-soak-'));
  const agentDir = path.join(dataDir, 'agent');
  mkdirSync(agentDir);
  const url = args.postgres ?? `sqlite:${path.join(dataDir, 'commons.db')}`;
  const server = await startCommons({
    root: ROOT,
    url,
    dataDir,
    entry: 'tsx',
    nodeArgs: ['--expose-gc', '--import', path.join(ROOT, 'bench', 'soak-agent.mjs')],
    extraEnv: {
      SOAK_AGENT_DIR: agentDir,
      COMMONS_REGISTRATION_ENABLED: 'true',
      COMMONS_PASSWORD_HASHING_SCRYPT_LOG2_N: '10',
    },
  });
  const ask = agent(server, agentDir);
  const http = client(server.url, connections);
  const statuses = new Map<number, number>();
  const readings: {
    requests: number;
    liveHeapMiB: number;
    heapTotalMiB: number;
    externalMiB: number;
    rssMiB: number;
  }[] = [];
  const read = async (requests: number) => {
    const reply = await ask('gc');
    readings.push({
      requests,
      liveHeapMiB: mib(reply.heapUsed),
      heapTotalMiB: mib(reply.heapTotal),
      externalMiB: mib(reply.external),
      rssMiB: mib(reply.rss),
    });
  };
  const snapshot = async (): Promise<HeapSummary | undefined> => {
    if (args['skip-snapshots']) return undefined;
    const reply = await ask('snapshot');
    const summary = readSnapshot(reply.snapshot!);
    rmSync(reply.snapshot!);
    return summary;
  };
  let first: HeapSummary | undefined;
  let last: HeapSummary | undefined;
  let sent = 0;
  let done = 0;
  const started = Date.now();
  try {
    const world = await seed(http, random);
    // Warm up, so the first reading is of a server that has run every path once.
    for (let i = 0; i < 2000; i++) {
      const r = pickRequest(random, world, i);
      await http.send(r.method, r.path, r);
    }
    first = await snapshot();
    await read(0);
    const step = Math.max(1, Math.floor(total / 10));
    let nextMark = step;
    let reading: Promise<void> | null = null;
    const worker = async () => {
      while (sent < total && Date.now() < deadline) {
        const n = ++sent;
        const r = pickRequest(random, world, n + 2000);
        const reply = await http.send(r.method, r.path, r);
        statuses.set(reply.status, (statuses.get(reply.status) ?? 0) + 1);
        done++;
        if (done >= nextMark && !reading) {
          const at = nextMark;
          nextMark += step;
          reading = read(at).finally(() => {
            reading = null;
          });
        }
      }
    };
    await Promise.all(Array.from({ length: connections }, worker));
    await reading;
    if (readings.at(-1)?.requests !== done) await read(done);
    last = await snapshot();
  } finally {
    http.close();
    await server.stop();
    if (!args.keep) rmSync(dataDir, { recursive: true, force: true });
  }
  const seconds = (Date.now() - started) / 1000;

  const growth =
    first && last
      ? [...last.counts]
          .map(([kind, count]) => ({ kind, from: first!.counts.get(kind) ?? 0, to: count }))
          .filter((g) => g.to > g.from)
          .sort((a, b) => b.to - b.from - (a.to - a.from))
          .slice(0, 12)
      : [];
  const report = {
    when: new Date().toISOString(),
    database: url.startsWith('sqlite:') ? 'sqlite' : 'postgres',
    requests: done,
    connections,
    seconds: Math.round(seconds),
    statuses: Object.fromEntries([...statuses].sort((a, b) => a[0] - b[0])),
    readings,
    snapshotLiveMiB: { first: first?.liveMiB, last: last?.liveMiB },
    growthFirstToLast: growth,
  };
  console.log(
    `soak: ${done} requests on ${report.database} in ${report.seconds} s, ${connections} connections`,
  );
  console.log(`statuses: ${JSON.stringify(report.statuses)}`);
  console.log('requests  live heap after GC  V8 heap  external  RSS   (MiB)');
  const column = (value: number, width: number) => String(value).padStart(width);
  for (const r of readings)
    console.log(
      `${column(r.requests, 8)}  ${column(r.liveHeapMiB, 18)}  ${column(r.heapTotalMiB, 7)}  ${column(r.externalMiB, 8)}  ${column(r.rssMiB, 5)}`,
    );
  console.log('object kinds that grew from the first heap snapshot to the last (count):');
  for (const g of growth) console.log(`  ${g.kind}: ${g.from} -> ${g.to}`);
  const resultsDir = path.join(ROOT, 'bench', 'results');
  mkdirSync(resultsDir, { recursive: true });
  const file = path.join(
    resultsDir,
    `${report.when.slice(0, 16).replace(/:/g, '-')}-soak-${report.database}.json`,
  );
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`written: ${path.relative(ROOT, file)}`);
}

await main();
