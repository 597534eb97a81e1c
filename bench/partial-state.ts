/**
 * `node --import tsx bench/partial-state.ts [members] [--commons-only]`: joining a big room over federation
 * with partial state (MSC3706), Commons against Synapse in the same run.
 *
 * A Commons server B holds a room of `members` joined members (made through the event
 * writer, in batches). Then, one after the other:
 * 1. a user of another Commons server A joins it by ID (A asks `omit_members=true`):
 *    seconds until `/join` answers, until the first message is sent (join + send), and until
 *    A's `/joined_members` answers the complete list (it waits for the background fetch;
 *    a 429 is retried after its `retry_after_ms`);
 * 2. a Synapse user (Synapse 1.163 from PyPI, which joins with partial state by default)
 *    joins the same room: the same three times on Synapse (its `/joined_members` polled every
 *    second until complete). Skipped when Synapse cannot be installed, or with
 *    `--commons-only`.
 *
 * A's log line for the completion gives the split: fetching and checking, then applying.
 *
 * SQLite by default; `COMMONS_TEST_DATABASE_URL=postgres://…` for PostgreSQL.
 */
import { performance } from 'node:perf_hooks';
import { Writable } from 'node:stream';
import pino from 'pino';
import { rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import type { RoomVersionId } from '../src/core/pdu.js';
import { createEventWriter } from '../src/services/event-writer.js';
import { registerUser } from '../test/helpers/client.js';
import { testDialects } from '../test/helpers/databases.js';
import { makeTestCa, startFederatedServer } from '../test/helpers/federation.js';
import { synapseInstall } from '../test/helpers/requirements.js';
import { serviceContextOf } from '../test/helpers/services.js';
import { requestJson, startSynapsePeer } from '../test/helpers/synapse-peer.js';

const args = process.argv.slice(2);
const members = Number(args.find((a) => !a.startsWith('--')) ?? 10_000);
const commonsOnly = args.includes('--commons-only');
const version: RoomVersionId = '11';
const BATCH = 250;
const enc = encodeURIComponent;
const seconds = (from: number) => ((performance.now() - from) / 1000).toFixed(1);

async function main(): Promise<void> {
  const dialect = testDialects().includes('postgres') ? 'postgres' : 'sqlite';
  const ca = makeTestCa();
  const b = await startFederatedServer(dialect, ca);
  // A's completion log line (fetch and apply times), printed as it comes.
  const completions = new Writable({
    write(chunk: Buffer, _encoding, done) {
      const line = chunk.toString('utf8');
      if (line.includes('partial-state room complete')) {
        const { entries, fetchMs, applyMs } = JSON.parse(line) as Record<
          string,
          number | undefined
        >;
        console.log(
          `Commons completion: ${entries} entries, fetch and check ${((fetchMs ?? 0) / 1000).toFixed(1)} s, apply ${((applyMs ?? 0) / 1000).toFixed(1)} s`,
        );
      }
      done();
    },
  });
  const a = await startFederatedServer(
    dialect,
    ca,
    undefined,
    pino({ level: 'info' }, completions),
  );
  console.log(
    `database ${dialect}, ${members} members, load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}`,
  );
  try {
    const bob = await registerUser(b, 'bob');
    const created = await b.request<{ room_id: string }>('POST', '/_matrix/client/v3/createRoom', {
      token: bob.accessToken,
      body: { preset: 'public_chat', room_version: version, name: 'Big room' },
    });
    const roomId = created.body.room_id;
    const ctx = serviceContextOf(b);
    const writer = createEventWriter(ctx);
    let started = performance.now();
    for (let i = 0; i < members - 1; i += BATCH) {
      await ctx.storage.tx('bench-members', async (stores) => {
        await stores.rooms.lockRoom(roomId);
        for (let j = i; j < Math.min(i + BATCH, members - 1); j++) {
          const user = `@member${j}:${b.serverName}`;
          await writer.append(stores, roomId, {
            type: 'm.room.member',
            stateKey: user,
            sender: user,
            content: { membership: 'join', displayname: `Member ${j}` },
          });
        }
      });
    }
    console.log(`room built: ${seconds(started)} s`);

    // 1. Commons joins with partial state.
    const alice = await registerUser(a, 'alice');
    const client = `/_matrix/client/v3`;
    started = performance.now();
    const joined = await a.request(
      'POST',
      `${client}/join/${enc(roomId)}?via=${enc(b.serverName)}`,
      {
        token: alice.accessToken,
        body: {},
      },
    );
    if (joined.status !== 200) throw new Error(`join: ${JSON.stringify(joined.body)}`);
    const joinS = seconds(started);
    const sent = await a.request('PUT', `${client}/rooms/${enc(roomId)}/send/m.room.message/b1`, {
      token: alice.accessToken,
      body: { msgtype: 'm.text', body: 'hello' },
    });
    if (sent.status !== 200) throw new Error(`send: ${JSON.stringify(sent.body)}`);
    const firstS = seconds(started);
    for (;;) {
      const list = await a.request<{ joined?: Record<string, unknown>; retry_after_ms?: number }>(
        'GET',
        `${client}/rooms/${enc(roomId)}/joined_members`,
        { token: alice.accessToken },
      );
      if (list.status === 200 && Object.keys(list.body.joined ?? {}).length === members + 1) break;
      if (list.status === 429) {
        await new Promise((resolve) => setTimeout(resolve, list.body.retry_after_ms ?? 1000));
        continue;
      }
      throw new Error(`joined_members: ${list.status} ${JSON.stringify(list.body).slice(0, 200)}`);
    }
    console.log(
      `Commons joins: /join ${joinS} s, first message sent ${firstS} s, /joined_members complete ${seconds(started)} s`,
    );

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
    try {
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
      started = performance.now();
      const sj = await requestJson(
        url(`/join/${enc(roomId)}?server_name=${enc(b.serverName)}`),
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
      for (;;) {
        const list = await requestJson(
          url(`/rooms/${enc(roomId)}/joined_members`),
          'GET',
          undefined,
          token,
        );
        const count = Object.keys((list.body.joined as Record<string, unknown>) ?? {}).length;
        if (list.status === 200 && count === members + 2) break;
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
      console.log(
        `Synapse joins: /join ${sJoinS} s, first message sent ${sFirstS} s, /joined_members complete ${seconds(started)} s`,
      );
    } finally {
      await synapse.stop();
    }
  } finally {
    console.log(
      `load average at the end ${loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')}`,
    );
    await a.close();
    await b.close();
    rmSync(ca.dir, { recursive: true, force: true });
  }
}

await main();
