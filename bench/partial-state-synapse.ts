/**
 * `node --import tsx bench/partial-state-synapse.ts [members] [runs]`: joining a big room
 * hosted by Synapse, with partial state (MSC3706), a Commons joiner against a Synapse joiner
 * in the same run (issue #25).
 *
 * The resident server R is Synapse 1.163 (PyPI, SQLite) holding a public room of `members`
 * joined members, all users of R. They are made through an application service registration
 * (no password hashing; the service's users are not rate limited): each registered with
 * `inhibit_login`, then joined with `?user_id=`, eight requests in flight. R's data directory is
 * kept under bench/.cache/partial-state/ (with the federation port its server name carries) and
 * copied for each run, so that a rerun starts in seconds.
 *
 * Then, one after the other:
 * 1. a user of a Commons server A joins the room by ID via R (A asks `omit_members=true`);
 * 2. a user of a second Synapse S joins it the same way (Synapse asks for partial state).
 * For each joiner: seconds until `/join` answered, until the first message was sent, until
 * `/joined_members` and `/members` gave the complete list (Commons answers 429 with
 * `retry_after_ms` during the gap, retried; Synapse's request waits); and `/v1/mutual_rooms`
 * about a member of R (a remote user for both joiners) asked right after the join (during the
 * gap: its answer and how long it took; Commons waits for the member list there) and once
 * complete.
 * 3. With both complete, member lists whose members all arrived over federation: `/members`,
 * `/members?membership=join`, `/joined_members` and `/v1/mutual_rooms` about a remote member,
 * each asked `runs` times on A and on S in turn; median and 95th percentile in ms.
 *
 * Commons on SQLite by default; `COMMONS_TEST_DATABASE_URL=postgres://…` for PostgreSQL
 * (R and S stay on SQLite).
 */
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { realpathSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { registerUser } from '../test/helpers/client.js';
import { testDialects } from '../test/helpers/databases.js';
import { makeTestCa, startFederatedServer, type TestCa } from '../test/helpers/federation.js';
import { synapseInstall } from '../test/helpers/requirements.js';
import {
  requestJson,
  startSynapsePeer,
  type JsonAnswer,
  type SynapsePeer,
} from '../test/helpers/synapse-peer.js';
import type { SynapseInstall } from './synapse.js';
import { freePort } from './processes.js';

const members = Number(process.argv[2] ?? 10_000);
const runs = Number(process.argv[3] ?? 9);
const IN_FLIGHT = 8;
const enc = encodeURIComponent;
const C = '/_matrix/client/v3';
const CACHE = path.join(
  path.dirname(fileURLToPath(import.meta.url)),
  '.cache',
  'partial-state',
  `synapse-resident-v11-${members}`,
);
const load = () =>
  loadavg()
    .map((l) => l.toFixed(1))
    .join(' ');
const since = (from: number) => (performance.now() - from) / 1000;

interface Manifest {
  fedPort: number;
  serverName: string;
  roomId: string;
  members: number;
  asToken: string;
  buildSeconds: number;
  synapse: string;
  /** The directory it was built in, which its configuration files name. */
  builtIn: string;
}

const permissive = { per_second: 100000, burst_count: 100000 };

/** R's configuration over the peer defaults: the application service, no rate limits. */
const residentExtra = (dir: string) => ({
  app_service_config_files: [path.join(dir, 'bench-appservice.yaml')],
  rc_message: permissive,
  rc_joins: { local: permissive, remote: permissive },
  rc_joins_per_room: permissive,
  rc_room_creation: permissive,
  rc_federation: { window_size: 1000, sleep_limit: 10000, reject_limit: 100000, concurrent: 100 },
});

/** Runs `work(i)` for i in [0, count), `IN_FLIGHT` at a time. */
async function pool(count: number, work: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < count) await work(next++);
    }),
  );
}

function must(answer: JsonAnswer, what: string): JsonAnswer {
  if (answer.status !== 200)
    throw new Error(`${what}: ${answer.status} ${JSON.stringify(answer.body).slice(0, 300)}`);
  return answer;
}

/** Builds R's room into CACHE (once): the room and its `members` users. */
async function buildResident(install: SynapseInstall, ca: TestCa): Promise<Manifest> {
  rmSync(`${CACHE}.building`, { recursive: true, force: true });
  mkdirSync(`${CACHE}.building`, { recursive: true });
  // The path Synapse writes into its configuration files (bench/.cache may be a symlink).
  const building = realpathSync(`${CACHE}.building`);
  const asToken = randomBytes(16).toString('hex');
  writeFileSync(
    path.join(building, 'bench-appservice.yaml'),
    JSON.stringify({
      id: 'bench',
      url: null,
      as_token: asToken,
      hs_token: randomBytes(16).toString('hex'),
      sender_localpart: 'bench',
      namespaces: { users: [{ exclusive: true, regex: '@u[0-9]+:.*' }], aliases: [], rooms: [] },
      rate_limited: false,
    }),
  );
  const fedPort = await freePort();
  const started = performance.now();
  const r = await startSynapsePeer(install, ca, residentExtra(building), {
    dir: building,
    fedPort,
  });
  try {
    const url = (p: string) => `${r.clientUrl}${C}${p}`;
    const room = must(
      await requestJson(
        url('/createRoom'),
        'POST',
        { preset: 'public_chat', room_version: '11', name: 'Big Synapse room' },
        asToken,
      ),
      'createRoom',
    );
    const roomId = room.body.room_id as string;
    let done = 0;
    await pool(members - 1, async (i) => {
      must(
        await requestJson(
          url('/register'),
          'POST',
          { type: 'm.login.application_service', username: `u${i}`, inhibit_login: true },
          asToken,
        ),
        `register u${i}`,
      );
      must(
        await requestJson(
          url(`/join/${enc(roomId)}?user_id=${enc(`@u${i}:${r.serverName}`)}`),
          'POST',
          {},
          asToken,
        ),
        `join u${i}`,
      );
      if (++done % 1000 === 0)
        console.log(`  ${done} joined, ${since(started).toFixed(0)} s, load ${load()}`);
    });
    const manifest: Manifest = {
      fedPort,
      serverName: r.serverName,
      roomId,
      members,
      asToken,
      buildSeconds: Math.round(since(started)),
      synapse: install.version,
      builtIn: building,
    };
    await r.stop();
    writeFileSync(path.join(building, 'manifest.json'), JSON.stringify(manifest, null, 2));
    rmSync(CACHE, { recursive: true, force: true });
    renameSync(building, CACHE);
    return manifest;
  } finally {
    await r.stop();
  }
}

/** R started on a copy of its kept data directory (its paths rewritten to the copy). */
async function startResident(
  install: SynapseInstall,
  ca: TestCa,
  manifest: Manifest,
): Promise<{ r: SynapsePeer; dir: string }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'commons-bench-resident-'));
  cpSync(CACHE, dir, { recursive: true });
  for (const file of readdirSync(dir).filter((f) => /\.(yaml|config)$/.test(f))) {
    const at = path.join(dir, file);
    writeFileSync(at, readFileSync(at, 'utf8').split(manifest.builtIn).join(dir));
  }
  const r = await startSynapsePeer(install, ca, residentExtra(dir), {
    dir,
    fedPort: manifest.fedPort,
  });
  return { r, dir };
}

function stats(values: number[]): string {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
  return `${at(0.5).toFixed(1)} / ${at(0.95).toFixed(1)}`;
}

/** A client of one joining server: its base URL and its user's token. */
interface Joiner {
  name: string;
  call(method: string, p: string, body?: unknown): Promise<JsonAnswer>;
}

const count = (answer: JsonAnswer) =>
  Array.isArray(answer.body.chunk)
    ? answer.body.chunk.length
    : Object.keys((answer.body.joined as Record<string, unknown> | undefined) ?? {}).length;

/** Asks `p` until it answers `expected` members (a 429 waits its `retry_after_ms`). */
async function untilComplete(joiner: Joiner, p: string, expected: number): Promise<void> {
  for (;;) {
    const answer = await joiner.call('GET', p);
    if (answer.status === 200 && count(answer) >= expected) return;
    if (answer.status === 429) {
      await delay((answer.body.retry_after_ms as number | undefined) ?? 1000);
      continue;
    }
    if (answer.status !== 200)
      throw new Error(`${joiner.name} ${p}: ${answer.status} ${JSON.stringify(answer.body)}`);
    await delay(1000);
  }
}

async function join(
  joiner: Joiner,
  roomId: string,
  via: string,
  remoteMember: string,
  expected: number,
): Promise<string> {
  const started = performance.now();
  must(
    await joiner.call('POST', `/join/${enc(roomId)}?server_name=${enc(via)}&via=${enc(via)}`, {}),
    `${joiner.name} join`,
  );
  const joinS = since(started);
  must(
    await joiner.call('PUT', `/rooms/${enc(roomId)}/send/m.room.message/t1`, {
      msgtype: 'm.text',
      body: 'hello',
    }),
    `${joiner.name} send`,
  );
  const firstS = since(started);
  const mutual = `/_matrix/client/v1/mutual_rooms?user_id=${enc(remoteMember)}`;
  const asked = performance.now();
  const gap = await joiner.call('GET', mutual);
  const gapAnswer = `${
    gap.status === 200 ? `${(gap.body.joined as string[]).length} room(s)` : `HTTP ${gap.status}`
  } in ${since(asked).toFixed(1)} s`;
  await untilComplete(joiner, `/rooms/${enc(roomId)}/joined_members`, expected);
  const joinedS = since(started);
  await untilComplete(joiner, `/rooms/${enc(roomId)}/members?membership=join`, expected);
  const membersS = since(started);
  const after = must(await joiner.call('GET', mutual), `${joiner.name} mutual_rooms`);
  const line = `| ${joiner.name} | ${joinS.toFixed(1)} s | ${firstS.toFixed(1)} s | ${joinedS.toFixed(1)} s | ${membersS.toFixed(1)} s | ${gapAnswer} | ${(after.body.joined as string[]).length} room(s) |`;
  console.log(line);
  return line;
}

async function main(): Promise<void> {
  const install = synapseInstall();
  if ('problem' in install) {
    console.log(`SKIPPED: Synapse cannot be installed (${install.problem})`);
    return;
  }
  const dialect = testDialects().includes('postgres') ? 'postgres' : 'sqlite';
  const ca = makeTestCa();
  console.log(`Commons on ${dialect}, ${members} members, load average ${load()}`);
  const manifestFile = path.join(CACHE, 'manifest.json');
  let manifest: Manifest;
  if (existsSync(manifestFile)) {
    manifest = JSON.parse(readFileSync(manifestFile, 'utf8')) as Manifest;
    console.log(`resident room kept from an earlier build (${manifest.buildSeconds} s)`);
  } else {
    manifest = await buildResident(install, ca);
    console.log(`resident room built in ${manifest.buildSeconds} s, load average ${load()}`);
  }
  const { r, dir } = await startResident(install, ca, manifest);
  const a = await startFederatedServer(dialect, ca);
  const s = await startSynapsePeer(install, ca);
  try {
    const alice = await registerUser(a, 'alice');
    const commons: Joiner = {
      name: `Commons (${dialect})`,
      call: (method, p, body) =>
        requestJson(
          `${a.url}${p.startsWith('/_matrix') ? '' : C}${p}`,
          method,
          body,
          alice.accessToken,
        ),
    };
    const sUrl = (p: string) => `${s.clientUrl}${p.startsWith('/_matrix') ? '' : C}${p}`;
    const first = await requestJson(sUrl('/register'), 'POST', {
      username: 'sam',
      password: 'correct horse',
    });
    const second = must(
      await requestJson(sUrl('/register'), 'POST', {
        username: 'sam',
        password: 'correct horse',
        auth: { type: 'm.login.dummy', session: first.body.session },
      }),
      'Synapse register',
    );
    const token = second.body.access_token as string;
    const synapse: Joiner = {
      name: `Synapse ${install.version} (SQLite)`,
      call: (method, p, body) => requestJson(sUrl(p), method, body, token),
    };
    const remoteMember = `@u7:${manifest.serverName}`;
    console.log(
      `\n| joining server (resident: Synapse, ${members} members) | /join answered | first message sent | /joined_members complete | /members complete | mutual_rooms with a member of R, during the gap | once complete |`,
    );
    console.log('| --- | --- | --- | --- | --- | --- | --- |');
    await join(commons, manifest.roomId, manifest.serverName, remoteMember, members + 1);
    await join(synapse, manifest.roomId, manifest.serverName, remoteMember, members + 2);
    // Commons has Synapse's join too once it arrived.
    await untilComplete(commons, `/rooms/${enc(manifest.roomId)}/joined_members`, members + 2);

    console.log(`\nmember lists of members that arrived over federation, load ${load()}`);
    console.log(`| request | ${commons.name}: median / p95 ms | ${synapse.name} |`);
    console.log('| --- | --- | --- |');
    const room = enc(manifest.roomId);
    for (const [name, p] of [
      ['/members', `/rooms/${room}/members`],
      ['/members?membership=join', `/rooms/${room}/members?membership=join`],
      ['/joined_members', `/rooms/${room}/joined_members`],
      [
        '/v1/mutual_rooms (a member of R)',
        `/_matrix/client/v1/mutual_rooms?user_id=${enc(remoteMember)}`,
      ],
    ] as const) {
      const times: Record<string, number[]> = { commons: [], synapse: [] };
      const sizes: Record<string, number> = {};
      for (let run = 0; run < runs; run++) {
        for (const [key, joiner] of [
          ['commons', commons],
          ['synapse', synapse],
        ] as const) {
          const t0 = performance.now();
          const answer = must(await joiner.call('GET', p), `${joiner.name} ${name}`);
          times[key]?.push(performance.now() - t0);
          sizes[key] = Array.isArray(answer.body.joined)
            ? answer.body.joined.length
            : count(answer);
        }
      }
      console.log(
        `| ${name} | ${stats(times.commons ?? [])} (${sizes.commons}) | ${stats(times.synapse ?? [])} (${sizes.synapse}) |`,
      );
    }
  } finally {
    console.log(`load average at the end ${load()}`);
    await s.stop();
    await a.close();
    await r.stop();
    rmSync(dir, { recursive: true, force: true });
    rmSync(ca.dir, { recursive: true, force: true });
  }
}

await main();
