/**
 * `node --import tsx bench/partial-state.ts [members] [--commons-only] [--build-only]
 * [--local-joins=N] [--synapse-only]`: joining a big room over
 * federation with partial state (MSC3706), Commons against Synapse in the same run (issue #25).
 *
 * A Commons server B (SQLite) holds a public room of `members` joined members, made through
 * the event writer, 250 joins a transaction. B's data directory (database, signing key) is kept
 * under bench/.cache/partial-state/ with the federation port its server name carries, and
 * copied for each run, so a rerun starts in seconds (the events stay valid: same name, same
 * key). Then, one after the other:
 * 1. a user of another Commons server A joins it by ID via B (A asks `omit_members=true`):
 *    seconds until `/join` answers, until the first message is sent (join + send), and until
 *    A's `/joined_members` answers the complete list (it waits for the background fetch;
 *    a 429 is retried after its `retry_after_ms`);
 * 2. a Synapse user (Synapse 1.163 from PyPI, which joins with partial state by default)
 *    joins the same room via B: the same three times on Synapse (its `/joined_members` polled
 *    every second until complete);
 * 3. once Synapse has the whole member list, a user of a third Commons server A2 joins via
 *    Synapse only: Synapse is then the resident server (it answers make_join, send_join with
 *    `omit_members`, `/state_ids` and `/state`), though the members are B's users. The same
 *    three times.
 * 2 and 3 are skipped when Synapse cannot be installed, or with `--commons-only`. With
 * `--build-only`, B's room is built (when not kept yet) and nothing else is done (but the
 * local joins). With `--local-joins=N`, first N users of B join the room through the client API (every event
 * deriver): the mean, median and slowest `POST /join` are printed.
 *
 * A's log line for the completion gives the split: fetching and checking, then applying.
 *
 * The joiners A and A2 on SQLite by default; `COMMONS_TEST_DATABASE_URL=postgres://…` for
 * PostgreSQL (B stays on SQLite, as kept).
 */
import { appendFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { realpathSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import type { RoomVersionId } from '../src/core/pdu.js';
import { createEventWriter } from '../src/services/event-writer.js';
import { registerUser } from '../test/helpers/client.js';
import { testDialects } from '../test/helpers/databases.js';
import {
  federationEnv,
  freePort,
  makeTestCa,
  startFederatedServer,
  type TestCa,
} from '../test/helpers/federation.js';
import { synapseInstall } from '../test/helpers/requirements.js';
import { startServerOn, type TestServer } from '../test/helpers/server.js';
import { serviceContextOf } from '../test/helpers/services.js';
import { requestJson, startSynapsePeer } from '../test/helpers/synapse-peer.js';

const args = process.argv.slice(2);
const members = Number(args.find((a) => !a.startsWith('--')) ?? 10_000);
const commonsOnly = args.includes('--commons-only');
/** Skips A's join (1.): Synapse joins first, then A2 via Synapse. */
const synapseOnly = args.includes('--synapse-only');
const buildOnly = args.includes('--build-only');
/** Local users of B joining the room through `POST /join` first (`--local-joins=N`). */
const localJoins = Number(args.find((a) => a.startsWith('--local-joins='))?.split('=')[1] ?? 0);
const version: RoomVersionId = '11';
const BATCH = 250;
const enc = encodeURIComponent;
const client = `/_matrix/client/v3`;
const seconds = (from: number) => ((performance.now() - from) / 1000).toFixed(1);
const load = () =>
  loadavg()
    .map((l) => l.toFixed(1))
    .join(' ');
const CACHE = path.join(
  path.dirname(fileURLToPath(import.meta.url)),
  '.cache',
  'partial-state',
  `commons-resident-v${version}-${members}`,
);

interface Manifest {
  port: number;
  serverName: string;
  roomId: string;
  members: number;
  buildSeconds: number;
  builtAt: string;
}

/** B's SQLite database, in its data directory (kept together). */
const databaseIn = (dataDir: string) => ({
  dialect: 'sqlite' as const,
  url: `sqlite:${path.join(dataDir, 'commons.db')}`,
  drop: async () => {},
});

/** Builds B's room into CACHE (once). */
async function buildResident(ca: TestCa): Promise<Manifest> {
  rmSync(`${CACHE}.building`, { recursive: true, force: true });
  mkdirSync(path.join(`${CACHE}.building`, 'data'), { recursive: true });
  const building = realpathSync(`${CACHE}.building`);
  const port = await freePort();
  const b = await startServerOn(
    databaseIn(path.join(building, 'data')),
    path.join(building, 'data'),
    federationEnv(ca, port),
  );
  const serverName = `127.0.0.1:${port}`;
  const started = performance.now();
  let roomId: string;
  try {
    const bob = await registerUser(b, 'bob');
    const created = await b.request<{ room_id: string }>('POST', `${client}/createRoom`, {
      token: bob.accessToken,
      body: { preset: 'public_chat', room_version: version, name: 'Big room' },
    });
    roomId = created.body.room_id;
    const ctx = serviceContextOf(b);
    const writer = createEventWriter(ctx);
    for (let i = 0; i < members - 1; i += BATCH) {
      await ctx.storage.tx('bench-members', async (stores) => {
        await stores.rooms.lockRoom(roomId);
        for (let j = i; j < Math.min(i + BATCH, members - 1); j++) {
          const user = `@member${j}:${serverName}`;
          await writer.append(stores, roomId, {
            type: 'm.room.member',
            stateKey: user,
            sender: user,
            content: { membership: 'join', displayname: `Member ${j}` },
          });
        }
      });
      if ((i / BATCH) % 40 === 39) console.log(`  ${i + BATCH} members, ${seconds(started)} s`);
    }
  } finally {
    await b.close();
  }
  const manifest: Manifest = {
    port,
    serverName,
    roomId,
    members,
    buildSeconds: Number(seconds(started)),
    builtAt: new Date().toISOString(),
  };
  writeFileSync(path.join(building, 'manifest.json'), JSON.stringify(manifest, null, 2));
  renameSync(building, CACHE);
  return manifest;
}

/** B started from a copy of the kept build. */
async function startResident(
  ca: TestCa,
): Promise<{ b: TestServer; manifest: Manifest; dataDir: string }> {
  let manifest: Manifest;
  if (existsSync(path.join(CACHE, 'manifest.json'))) {
    manifest = JSON.parse(readFileSync(path.join(CACHE, 'manifest.json'), 'utf8')) as Manifest;
    console.log(
      `room of ${members} kept from ${manifest.builtAt} (built in ${manifest.buildSeconds} s)`,
    );
  } else {
    console.log(`building the room of ${members} members on B (kept under ${CACHE})`);
    manifest = await buildResident(ca);
    console.log(`room built: ${manifest.buildSeconds} s`);
  }
  const dataDir = mkdtempSync(path.join(tmpdir(), 'commons-resident-'));
  const copied = performance.now();
  cpSync(path.join(CACHE, 'data'), dataDir, { recursive: true });
  const b = await startServerOn(databaseIn(dataDir), dataDir, federationEnv(ca, manifest.port));
  console.log(`B started from a copy in ${seconds(copied)} s`);
  return { b, manifest, dataDir };
}

/** Polls a Commons' `/joined_members` until it lists `count` (retrying its 429s). */
async function commonsComplete(
  server: TestServer,
  token: string,
  roomId: string,
  count: number,
): Promise<void> {
  for (;;) {
    const list = await server.request<{
      joined?: Record<string, unknown>;
      retry_after_ms?: number;
    }>('GET', `${client}/rooms/${enc(roomId)}/joined_members`, { token });
    const listed = Object.keys(list.body.joined ?? {});
    if (list.status === 200 && listed.length === count) return;
    if (list.status === 200) {
      // Complete (Commons answers only then), but not the list expected: say how it differs.
      const others = listed.filter((user) => !/^@member\d+:/.test(user));
      console.log(
        `complete /joined_members lists ${listed.length} members, not ${count}; besides @memberN: ${others.join(', ')}`,
      );
      return;
    }
    if (list.status === 429) {
      await new Promise((resolve) => setTimeout(resolve, list.body.retry_after_ms ?? 1000));
      continue;
    }
    throw new Error(`joined_members: ${list.status} ${JSON.stringify(list.body).slice(0, 200)}`);
  }
}

/** A Commons user joins via `via`: the three times, as text. */
async function commonsJoins(
  server: TestServer,
  name: string,
  roomId: string,
  via: string,
  count: number,
): Promise<string> {
  const user = await registerUser(server, name);
  const started = performance.now();
  const joined = await server.request('POST', `${client}/join/${enc(roomId)}?via=${enc(via)}`, {
    token: user.accessToken,
    body: {},
  });
  if (joined.status !== 200) throw new Error(`join: ${JSON.stringify(joined.body)}`);
  const joinS = seconds(started);
  const sent = await server.request(
    'PUT',
    `${client}/rooms/${enc(roomId)}/send/m.room.message/b1`,
    {
      token: user.accessToken,
      body: { msgtype: 'm.text', body: 'hello' },
    },
  );
  if (sent.status !== 200) throw new Error(`send: ${JSON.stringify(sent.body)}`);
  const firstS = seconds(started);
  await commonsComplete(server, user.accessToken, roomId, count);
  return `/join ${joinS} s, first message sent ${firstS} s, /joined_members complete ${seconds(started)} s`;
}

/** A Commons server whose completion log line is printed as it comes. */
function completionLogger(label: string): pino.Logger {
  // Every line is kept in a file too, named here.
  const file = path.join(
    tmpdir(),
    `partial-state-${label.replace(/\W+/g, '-')}-${process.pid}.log`,
  );
  console.log(`${label} logs to ${file}`);
  const completions = new Writable({
    write(chunk: Buffer, _encoding, done) {
      const line = chunk.toString('utf8');
      appendFileSync(file, line);
      if (line.includes('partial-state room complete')) {
        const { entries, fetchMs, applyMs } = JSON.parse(line) as Record<
          string,
          number | undefined
        >;
        console.log(
          `${label} completion: ${entries} entries, fetch and check ${((fetchMs ?? 0) / 1000).toFixed(1)} s, apply ${((applyMs ?? 0) / 1000).toFixed(1)} s`,
        );
      }
      done();
    },
  });
  return pino({ level: 'info' }, completions);
}

/** `localJoins` users of B join the room with `POST /join`, one after the other. */
async function timeLocalJoins(b: TestServer, roomId: string): Promise<void> {
  const times: number[] = [];
  for (let i = 0; i < localJoins; i++) {
    const user = await registerUser(b, `local${i}`);
    const at = performance.now();
    const joined = await b.request('POST', `${client}/join/${enc(roomId)}`, {
      token: user.accessToken,
      body: {},
    });
    if (joined.status !== 200) throw new Error(`local join: ${JSON.stringify(joined.body)}`);
    times.push(performance.now() - at);
  }
  const mean = times.reduce((x, y) => x + y, 0) / times.length;
  times.sort((x, y) => x - y);
  console.log(
    `POST /join on B (local users, ${localJoins}): mean ${mean.toFixed(1)} ms, median ${times[Math.floor(localJoins / 2)]!.toFixed(1)} ms, slowest ${times.at(-1)!.toFixed(1)} ms`,
  );
}

async function main(): Promise<void> {
  const dialect = testDialects().includes('postgres') ? 'postgres' : 'sqlite';
  const ca = makeTestCa();
  console.log(`joiners on ${dialect}, ${members} members, load average ${load()}`);
  const { b, manifest, dataDir } = await startResident(ca);
  const roomId = manifest.roomId;
  if (localJoins > 0) await timeLocalJoins(b, roomId);
  if (buildOnly) {
    await b.close();
    rmSync(dataDir, { recursive: true, force: true });
    return;
  }
  const total = members + localJoins;
  const servers: { close(): Promise<void> }[] = [b];
  try {
    // 1. Commons joins with partial state.
    let joined = total;
    if (!synapseOnly) {
      const a = await startFederatedServer(dialect, ca, undefined, completionLogger('Commons A'));
      servers.push(a);
      console.log(`load average ${load()}`);
      joined += 1;
      console.log(
        `Commons joins via B: ${await commonsJoins(a, 'alice', roomId, manifest.serverName, joined)}`,
      );
    }

    // 2. Synapse joins the same room.
    const install = synapseInstall();
    if (commonsOnly) {
      console.log('Synapse join: skipped (--commons-only)');
      return;
    }
    if ('problem' in install) {
      console.log(`Synapse join: skipped (${install.problem})`);
      return;
    }
    const synapse = await startSynapsePeer(install, ca);
    servers.push({ close: () => synapse.stop() });
    const url = (p: string) => `${synapse.clientUrl}${client}${p}`;
    const first = await requestJson(url('/register'), 'POST', {
      username: 'sam',
      password: 'correct horse',
    });
    const second = await requestJson(url('/register'), 'POST', {
      username: 'sam',
      password: 'correct horse',
      auth: { type: 'm.login.dummy', session: first.body.session },
    });
    const token = second.body.access_token as string;
    console.log(`load average ${load()}`);
    const started = performance.now();
    const sj = await requestJson(
      url(`/join/${enc(roomId)}?server_name=${enc(manifest.serverName)}`),
      'POST',
      {},
      token,
    );
    if (sj.status !== 200) throw new Error(`Synapse join: ${JSON.stringify(sj.body)}`);
    const sJoinS = seconds(started);
    const ss = await requestJson(
      url(`/rooms/${enc(roomId)}/send/m.room.message/s1`),
      'PUT',
      { msgtype: 'm.text', body: 'hello' },
      token,
    );
    if (ss.status !== 200) throw new Error(`Synapse send: ${JSON.stringify(ss.body)}`);
    const sFirstS = seconds(started);
    console.log(`Synapse: /join ${sJoinS} s, first message sent ${sFirstS} s`);
    joined += 1;
    for (;;) {
      // Synapse's request waits for the complete list: past fetch's 300 s wait for an answer,
      // it is asked again.
      const list = await requestJson(
        url(`/rooms/${enc(roomId)}/joined_members`),
        'GET',
        undefined,
        token,
      ).catch((error: unknown) => {
        console.log(
          `Synapse /joined_members not answered (${String(error)}) at ${seconds(started)} s`,
        );
        return undefined;
      });
      if (!list) continue;
      const count = Object.keys((list.body.joined as Record<string, unknown>) ?? {}).length;
      if (list.status === 200 && count === joined) break;
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    console.log(
      `Synapse joins via B: /join ${sJoinS} s, first message sent ${sFirstS} s, /joined_members complete ${seconds(started)} s`,
    );

    // 3. A third Commons joins via Synapse only (the members are B's users).
    const a2 = await startFederatedServer(dialect, ca, undefined, completionLogger('Commons A2'));
    servers.push(a2);
    console.log(`load average ${load()}`);
    console.log(
      `Commons joins via Synapse: ${await commonsJoins(a2, 'carol', roomId, synapse.serverName, joined + 1)}`,
    );
  } finally {
    console.log(`load average at the end ${load()}`);
    for (const server of servers.reverse()) await server.close();
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(ca.dir, { recursive: true, force: true });
  }
}

await main();
