/**
 * `node --import tsx bench/federation.ts [members] [pdus]`: federation's receiving side.
 *
 * A room of `members` joined members (made through the event writer, in batches) which a
 * remote server (test/helpers/fake-remote.ts) joins through make_join/send_join; then
 * 1. a Synapse user joining that room by ID (make_join, send_join with the room's whole state
 *    and auth chain, Synapse checking every signature): seconds until `/join` answers
 *    (skipped when Synapse cannot be installed);
 * 2. inbound `PUT /send` throughput: the remote server sends `pdus` messages in transactions
 *    of 50, the first naming the room's forward extremities, each next one the message before;
 *    PDUs accepted per second. Then the same again beside a fork kept open: a local user
 *    joins and the remote goes on naming only its own last message, so every message it
 *    sends meets that join as another extremity (current state is resolved from both
 *    branches). Beside it, in the same run: the same number of messages sent by a local user
 *    through the client API, one request each (events per second).
 *
 * SQLite by default; `COMMONS_TEST_DATABASE_URL=postgres://…` for PostgreSQL.
 */
import { performance } from 'node:perf_hooks';
import { rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { computeEventId } from '../src/core/event-hashing.js';
import type { Pdu, RoomVersionId } from '../src/core/pdu.js';
import { createEventWriter } from '../src/services/event-writer.js';
import { registerUser } from '../test/helpers/client.js';
import { testDialects } from '../test/helpers/databases.js';
import { startFakeRemote } from '../test/helpers/fake-remote.js';
import { makeTestCa, startFederatedServer } from '../test/helpers/federation.js';
import { synapseInstall } from '../test/helpers/requirements.js';
import { serviceContextOf } from '../test/helpers/services.js';
import { startSynapsePeer } from '../test/helpers/synapse-peer.js';

const members = Number(process.argv[2] ?? 10_000);
const pdus = Number(process.argv[3] ?? 2_000);
const version: RoomVersionId = '11';
const BATCH = 250;
const enc = encodeURIComponent;

async function main(): Promise<void> {
  const dialect = testDialects().includes('postgres') ? 'postgres' : 'sqlite';
  const ca = makeTestCa();
  const commons = await startFederatedServer(dialect, ca);
  const remote = await startFakeRemote(ca);
  const load = loadavg()[0]?.toFixed(1);
  console.log(`database ${dialect}, ${members} members, ${pdus} PDUs, load average ${load}`);
  try {
    const alice = await registerUser(commons, 'alice');
    const created = await commons.request<{ room_id: string }>(
      'POST',
      '/_matrix/client/v3/createRoom',
      { token: alice.accessToken, body: { preset: 'public_chat', room_version: version } },
    );
    const roomId = created.body.room_id;

    // The room's members, straight through the event writer.
    const ctx = serviceContextOf(commons);
    const writer = createEventWriter(ctx);
    let started = performance.now();
    for (let i = 0; i < members - 1; i += BATCH) {
      await ctx.storage.tx('bench-members', async (stores) => {
        await stores.rooms.lockRoom(roomId);
        for (let j = i; j < Math.min(i + BATCH, members - 1); j++) {
          const user = `@member${j}:${commons.serverName}`;
          await writer.append(stores, roomId, {
            type: 'm.room.member',
            stateKey: user,
            sender: user,
            content: { membership: 'join', displayname: `Member ${j}` },
          });
        }
      });
    }
    console.log(`room built: ${((performance.now() - started) / 1000).toFixed(1)} s`);

    // A remote server joins.
    const F = '/_matrix/federation';
    const bob = `@bob:${remote.serverName}`;
    const template = await remote.request(
      commons.serverName,
      'GET',
      `${F}/v1/make_join/${enc(roomId)}/${enc(bob)}?ver=${version}`,
    );
    const event = template.body.event as {
      prev_events: string[];
      auth_events: string[];
      depth: number;
    } & Record<string, unknown>;
    const join = remote.event(version, {
      roomId,
      type: 'm.room.member',
      sender: bob,
      stateKey: bob,
      content: { membership: 'join' },
      authEvents: event.auth_events,
      prevEvents: event.prev_events,
      depth: event.depth,
    });
    started = performance.now();
    const joined = await remote.request(
      commons.serverName,
      'PUT',
      `${F}/v2/send_join/${enc(roomId)}/${enc(join.eventId)}`,
      join.pdu,
    );
    if (joined.status !== 200) throw new Error(`send_join: ${JSON.stringify(joined.body)}`);
    const sendJoinMs = performance.now() - started;
    console.log(`send_join of a remote user: ${sendJoinMs.toFixed(0)} ms`);
    await synapseJoin(ca, roomId, commons.serverName, members);
    const state = joined.body.state as Pdu[];
    const idOf = (type: string) =>
      computeEventId(state.find((p) => p.type === type) as Pdu, version);
    const auth = [idOf('m.room.create'), idOf('m.room.power_levels'), join.eventId];

    // 1. Inbound /send throughput: the remote's first message names the room's forward
    // extremities (the Synapse user's join among them), each next one the message before.
    const extremities = await ctx.storage.stores.rooms.selectExtremities(roomId);
    let prev = extremities.map((x) => x.eventId);
    let depth = Math.max(event.depth, ...extremities.map((x) => x.depth)) + 1;
    let batchNumber = 0;
    const sendChained = async (label: string): Promise<void> => {
      let accepted = 0;
      const from = performance.now();
      for (let sent = 0; sent < pdus;) {
        const batch: Pdu[] = [];
        for (; batch.length < 50 && sent < pdus; sent++) {
          const message = remote.event(version, {
            roomId,
            type: 'm.room.message',
            sender: bob,
            content: { msgtype: 'm.text', body: `message ${sent}` },
            authEvents: auth,
            prevEvents: prev,
            depth: depth++,
          });
          prev = [message.eventId];
          batch.push(message.pdu);
        }
        const res = await remote.request(
          commons.serverName,
          'PUT',
          `${F}/v1/send/bench${batchNumber++}`,
          { origin: remote.serverName, origin_server_ts: Date.now(), pdus: batch },
        );
        const results = Object.values(res.body.pdus as Record<string, object>);
        accepted += results.filter((r) => !('error' in r)).length;
      }
      const s = (performance.now() - from) / 1000;
      console.log(
        `inbound /send, ${label}: ${accepted}/${pdus} accepted in ${s.toFixed(1)} s = ${(accepted / s).toFixed(1)} PDUs/s`,
      );
    };
    await sendChained('chained on the room');

    // 2. The same beside a fork kept open: a local user joins, and the remote goes on naming
    // only its own last message, so each of its messages meets that join as another forward
    // extremity and current state is the resolution of both branches.
    const carol = await registerUser(commons, 'carol');
    const carolJoined = await commons.request('POST', `/_matrix/client/v3/join/${enc(roomId)}`, {
      token: carol.accessToken,
      body: {},
    });
    if (carolJoined.status !== 200) throw new Error(`join: ${JSON.stringify(carolJoined.body)}`);
    await sendChained('beside a fork kept open');

    // Beside it: the same number of local messages through the client API.
    started = performance.now();
    for (let i = 0; i < pdus; i++) {
      await commons.request(
        'PUT',
        `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/local${i}`,
        { token: alice.accessToken, body: { msgtype: 'm.text', body: `local ${i}` } },
      );
    }
    const localS = (performance.now() - started) / 1000;
    console.log(
      `send_join of a remote user (state of ${state.length}): ${sendJoinMs.toFixed(0)} ms`,
    );
    console.log(
      `local client sends: ${pdus} in ${localS.toFixed(1)} s = ${(pdus / localS).toFixed(1)} events/s`,
    );
  } finally {
    await commons.close();
    await remote.close();
    rmSync(ca.dir, { recursive: true, force: true });
  }
}

/** 2. A Synapse user joins the room by ID: seconds until its /join answers. */
async function synapseJoin(
  ca: ReturnType<typeof makeTestCa>,
  roomId: string,
  commonsName: string,
  members: number,
): Promise<void> {
  let started: number;
  const install = synapseInstall();
  if ('problem' in install) {
    console.log(`Synapse join: skipped (${install.problem})`);
    return;
  }
  const synapse = await startSynapsePeer(install, ca);
  try {
    const post = async (path: string, body: unknown, token?: string) => {
      const res = await fetch(`${synapse.clientUrl}/_matrix/client/v3${path}`, {
        method: 'POST',
        headers: {
          'Content-Type': 'application/json',
          ...(token ? { Authorization: `Bearer ${token}` } : {}),
        },
        body: JSON.stringify(body),
      });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    const first = await post('/register', { username: 'sam', password: 'correct horse' });
    const second = await post('/register', {
      username: 'sam',
      password: 'correct horse',
      auth: { type: 'm.login.dummy', session: first.body.session },
    });
    const token = second.body.access_token as string;
    started = performance.now();
    const joinedSynapse = await post(
      `/join/${enc(roomId)}?server_name=${enc(commonsName)}`,
      {},
      token,
    );
    const joinS = (performance.now() - started) / 1000;
    if (joinedSynapse.status !== 200) {
      throw new Error(`Synapse join: ${JSON.stringify(joinedSynapse.body)}`);
    }
    console.log(`Synapse user joins the room of ${members} members: ${joinS.toFixed(1)} s`);
  } finally {
    await synapse.stop();
  }
}

await main();
