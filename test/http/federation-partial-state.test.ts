/**
 * Partial-state joins (MSC3706) between Commons servers, both sides:
 * - serving: `send_join?omit_members=true` to a remote server (test/helpers/fake-remote.ts)
 *   answers `members_omitted`, `servers_in_room`, state without member events but the
 *   joiner's and the heroes' (when the room has no name), and an auth chain holding the
 *   member events the kept state needs but none of the state's own events;
 * - joining: a user of A joins B's room of `MEMBERS` members (made on B through the event
 *   writer). The room is partial-state on A when /join answers; the user reads and sends at
 *   once, a message of a B member whose join A does not hold yet is accepted, and member
 *   queries asked during the gap (`/members`, `/joined_members`, mutual rooms) answer the
 *   same as after the full state is in — never a shorter list; then the room is complete.
 * - a restart of A while B is down: the fetch resumes and completes.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, it } from 'node:test';
import pino from 'pino';
import type { RoomVersionId } from '../../src/core/pdu.js';
import { createEventWriter } from '../../src/services/event-writer.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { createTestDatabase, forEachDatabase, type TestDatabase } from '../helpers/databases.js';
import { eventually } from '../helpers/eventually.js';
import { startFakeRemote, type FakeRemote } from '../helpers/fake-remote.js';
import {
  federationEnv,
  freePort,
  makeTestCa,
  startFederatedServer,
  type TestCa,
} from '../helpers/federation.js';
import { startServerOn, type TestServer } from '../helpers/server.js';
import { serviceContextOf } from '../helpers/services.js';

type Federated = TestServer & { serverName: string; port: number };
const r = encodeURIComponent;
const MEMBERS = 1500;
const version: RoomVersionId = '11';

const as =
  (server: TestServer, user: TestUser) =>
  <T = Record<string, unknown>>(method: string, p: string, body?: unknown) =>
    server.request<T>(method, `/_matrix/client/v3${p}`, {
      token: user.accessToken,
      ...(body !== undefined ? { body } : {}),
    });

/** `count` members joined to the room, straight through the event writer, in batches. */
async function addMembers(server: Federated, roomId: string, prefix: string, count: number) {
  const ctx = serviceContextOf(server);
  const writer = createEventWriter(ctx);
  for (let i = 0; i < count; i += 250) {
    await ctx.storage.tx('test-members', async (stores) => {
      await stores.rooms.lockRoom(roomId);
      for (let j = i; j < Math.min(i + 250, count); j++) {
        const user = `@${prefix}${String(j).padStart(5, '0')}:${server.serverName}`;
        await writer.append(stores, roomId, {
          type: 'm.room.member',
          stateKey: user,
          sender: user,
          content: { membership: 'join', displayname: `Member ${j}` },
        });
      }
    });
  }
}

/** A message from `sender` (a member without an account) made on its server, sent on. */
async function sendAs(server: Federated, roomId: string, sender: string, body: string) {
  const ctx = serviceContextOf(server);
  const writer = createEventWriter(ctx);
  const federation = server.running.services.federation;
  assert.ok(federation);
  writer.addDeriver(federation.deriver);
  await ctx.storage.tx('test-message', async (stores) => {
    await stores.rooms.lockRoom(roomId);
    await writer.append(stores, roomId, {
      type: 'm.room.message',
      sender,
      content: { msgtype: 'm.text', body },
    });
  });
}

/** A request asked again after a 429's `retry_after_ms` (as clients do), 5 times at most. */
async function retried<T extends { status: number; body: unknown }>(
  ask: () => Promise<T>,
): Promise<T> {
  for (let i = 0; ; i++) {
    const answer = await ask();
    if (answer.status !== 429 || i === 5) return answer;
    const wait = (answer.body as { retry_after_ms?: number }).retry_after_ms;
    assert.equal(typeof wait, 'number', 'a 429 says when to retry');
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
}

forEachDatabase('partial-state joins between Commons servers', (dialect) => {
  let ca: TestCa;
  let database: TestDatabase;
  let dataDir: string;
  let aPort: number;
  let a: Federated;
  let b: Federated;
  let remote: FakeRemote;
  let alice: TestUser;
  let bob: TestUser;

  const startA = async (logger?: pino.Logger) => {
    const server = await startServerOn(database, dataDir, federationEnv(ca, aPort), logger);
    a = Object.assign(server, { serverName: `127.0.0.1:${aPort}`, port: aPort });
  };

  before(async () => {
    ca = makeTestCa();
    database = await createTestDatabase(dialect);
    dataDir = mkdtempSync(path.join(tmpdir(), 'commons-data-'));
    aPort = await freePort();
    await startA();
    b = await startFederatedServer(dialect, ca);
    remote = await startFakeRemote(ca);
    alice = await registerUser(a, 'alice');
    bob = await registerUser(b, 'bob');
  });
  after(async () => {
    await a?.close();
    await b?.close();
    await remote?.close();
    await database?.drop();
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(ca.dir, { recursive: true, force: true });
  });

  /** A room of B's, made by bob with `members` extra members; its ID. */
  async function bigRoom(prefix: string, members: number, name?: string): Promise<string> {
    const created = await as(b, bob)<{ room_id: string }>('POST', '/createRoom', {
      preset: 'public_chat',
      room_version: version,
      ...(name !== undefined ? { name } : {}),
    });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    await addMembers(b, created.body.room_id, prefix, members);
    return created.body.room_id;
  }

  /** The remote server's join through send_join, with or without omit_members. */
  async function remoteJoin(roomId: string, user: string, query: string) {
    const F = '/_matrix/federation';
    const made = await remote.request(
      b.serverName,
      'GET',
      `${F}/v1/make_join/${r(roomId)}/${r(user)}?ver=${version}`,
    );
    assert.equal(made.status, 200, JSON.stringify(made.body));
    const template = made.body.event as {
      prev_events: string[];
      auth_events: string[];
      depth: number;
    };
    const join = remote.event(version, {
      roomId,
      type: 'm.room.member',
      sender: user,
      stateKey: user,
      content: { membership: 'join' },
      authEvents: template.auth_events,
      prevEvents: template.prev_events,
      depth: template.depth,
    });
    return remote.request(
      b.serverName,
      'PUT',
      `${F}/v2/send_join/${r(roomId)}/${r(join.eventId)}${query}`,
      join.pdu,
    );
  }

  type WirePdu = {
    type: string;
    state_key?: string;
    sender: string;
    auth_events: string[];
    content: Record<string, unknown>;
  };

  it('serves send_join with omit_members: no member events but the heroes, a trimmed auth chain', async () => {
    const roomId = await bigRoom('hero', 8);
    const full = await remoteJoin(roomId, `@full:${remote.serverName}`, '');
    assert.equal(full.status, 200, JSON.stringify(full.body));
    assert.equal(full.body.members_omitted, false);
    const fullMembers = (full.body.state as WirePdu[]).filter((e) => e.type === 'm.room.member');
    assert.equal(fullMembers.length, 1 + 8, 'bob and 8 members (the state before the join)');

    const user = `@partial:${remote.serverName}`;
    const answer = await remoteJoin(roomId, user, '?omit_members=true');
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.equal(answer.body.members_omitted, true);
    assert.deepEqual(answer.body.servers_in_room, [b.serverName, remote.serverName].sort());
    const state = answer.body.state as WirePdu[];
    const members = state.filter((e) => e.type === 'm.room.member').map((e) => e.state_key);
    // No name, no canonical alias: the five heroes by user ID (joined members).
    const heroes = [
      `@${'full'}:${remote.serverName}`,
      ...Array.from({ length: 8 }, (_, j) => `@hero${String(j).padStart(5, '0')}:${b.serverName}`),
      bob.userId,
    ]
      .sort()
      .slice(0, 5);
    assert.deepEqual(members.sort(), heroes);
    // Every non-member state event is there.
    const types = new Set(state.map((e) => e.type));
    for (const t of ['m.room.create', 'm.room.power_levels', 'm.room.join_rules'])
      assert.ok(types.has(t), t);
    // The auth chain: none of the state's own events (bob's join, which authorises the
    // power levels, is in state here as a hero's).
    const chain = answer.body.auth_chain as WirePdu[];
    const chainKeys = chain.map((e) => `${e.type}|${e.state_key ?? ''}`);
    const stateKeys = new Set(state.map((e) => `${e.type}|${e.state_key ?? ''}`));
    for (const key of chainKeys) assert.ok(!stateKeys.has(key), `${key} in state and auth_chain`);
    assert.ok(state.length < (full.body.state as unknown[]).length);
  });

  it('serves a named room with omit_members: no member events at all', async () => {
    const roomId = await bigRoom('named', 4, 'A named room');
    const answer = await remoteJoin(roomId, `@n:${remote.serverName}`, '?omit_members=true');
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    const state = answer.body.state as WirePdu[];
    assert.deepEqual(
      state.filter((e) => e.type === 'm.room.member'),
      [],
    );
    // The member events the kept state needs are in the auth chain: bob's join authorises
    // the power levels; the members' joins, which nothing kept needs, are not.
    const chain = answer.body.auth_chain as WirePdu[];
    const chainMembers = chain.filter((e) => e.type === 'm.room.member').map((e) => e.state_key);
    assert.deepEqual(chainMembers, [bob.userId]);
    assert.ok(
      chain.every((e) => !state.some((s) => s.type === e.type && s.state_key === e.state_key)),
    );
    const bad = await remote.request(
      b.serverName,
      'PUT',
      `/_matrix/federation/v2/send_join/${r(roomId)}/${r('$x')}?omit_members=maybe`,
      {},
    );
    assert.equal(bad.status, 400);
  });

  let bigRoomId = '';
  it(`joins a room of ${MEMBERS} members with partial state; queries in the gap match the final lists`, async () => {
    bigRoomId = await bigRoom('m', MEMBERS);
    const sender = `@m00007:${b.serverName}`;
    const joined = await as(a, alice)('POST', `/join/${r(bigRoomId)}?via=${r(b.serverName)}`, {});
    assert.equal(joined.status, 200, JSON.stringify(joined.body));
    const partialAtJoin =
      await serviceContextOf(a).storage.stores.partialState.selectPartialRoom(bigRoomId);
    // The member queries, asked at once (during the gap: they wait for the full state, or
    // answer 429 with a retry hint after a while, which a client follows).
    const queries = Promise.all([
      retried(() =>
        as(a, alice)<{ chunk: { state_key: string }[] }>('GET', `/rooms/${r(bigRoomId)}/members`),
      ),
      retried(() =>
        as(a, alice)<{ joined: Record<string, unknown> }>(
          'GET',
          `/rooms/${r(bigRoomId)}/joined_members`,
        ),
      ),
      retried(() =>
        a.request<{ joined: string[] }>(
          'GET',
          `/_matrix/client/v1/user/mutual_rooms?user_id=${r(sender)}`,
          { token: alice.accessToken },
        ),
      ),
    ]);
    // Reading and sending work at once.
    const sent = await as(a, alice)('PUT', `/rooms/${r(bigRoomId)}/send/m.room.message/t1`, {
      msgtype: 'm.text',
      body: 'hello from A',
    });
    assert.equal(sent.status, 200, JSON.stringify(sent.body));
    const messages = await as(a, alice)<{ chunk: { type: string }[] }>(
      'GET',
      `/rooms/${r(bigRoomId)}/messages?dir=b&limit=5`,
    );
    assert.equal(messages.status, 200);
    // A B member whose join A may not hold yet writes; A accepts it.
    await sendAs(b, bigRoomId, sender, 'hello from a member of B');
    const seenOnB = await eventually(
      async () =>
        (
          await as(b, bob)<{ chunk: { content: { body?: string } }[] }>(
            'GET',
            `/rooms/${r(bigRoomId)}/messages?dir=b&limit=10`,
          )
        ).body.chunk.some((e) => e.content.body === 'hello from A'),
      (ok) => ok,
      60_000,
    );
    assert.ok(seenOnB, 'B got the message sent during the gap');
    const seenOnA = await eventually(
      async () =>
        (
          await as(a, alice)<{ chunk: { sender: string; content: { body?: string } }[] }>(
            'GET',
            `/rooms/${r(bigRoomId)}/messages?dir=b&limit=10`,
          )
        ).body.chunk.some((e) => e.sender === sender),
      (ok) => ok,
      60_000,
    );
    assert.ok(seenOnA, "A accepted the B member's message");

    const [members, joinedMembers, mutual] = await queries;
    assert.equal(members.status, 200, JSON.stringify(members.body));
    assert.equal(joinedMembers.status, 200);
    assert.equal(mutual.status, 200, JSON.stringify(mutual.body));
    // The final answers, once the room is complete.
    await eventually(
      () => serviceContextOf(a).storage.stores.partialState.selectPartialRoom(bigRoomId),
      (row) => row === undefined,
      60_000,
    );
    const finalMembers = await as(a, alice)<{ chunk: { state_key: string }[] }>(
      'GET',
      `/rooms/${r(bigRoomId)}/members`,
    );
    const onB = await as(b, bob)<{ joined: Record<string, unknown> }>(
      'GET',
      `/rooms/${r(bigRoomId)}/joined_members`,
    );
    const expected = Object.keys(onB.body.joined).sort();
    assert.equal(expected.length, MEMBERS + 2, 'bob, the members, alice');
    assert.deepEqual(members.body.chunk.map((e) => e.state_key).sort(), expected);
    assert.deepEqual(finalMembers.body.chunk.map((e) => e.state_key).sort(), expected);
    assert.deepEqual(Object.keys(joinedMembers.body.joined).sort(), expected);
    assert.ok(mutual.body.joined.includes(bigRoomId), 'the room shared with the B member');
    // The members learnt at completion reach what else is kept from state: A's user
    // directory finds a member of B's public room by the display name in its member event.
    const wanted = expected.find(
      (u) => u !== bob.userId && u.endsWith(`:${b.serverName}`) && u !== sender,
    );
    assert.ok(wanted);
    const found = await as(a, alice)<{ results: { user_id: string; display_name?: string }[] }>(
      'POST',
      '/user_directory/search',
      { search_term: `Member ${Number(wanted.slice(2, wanted.indexOf(':')))}`, limit: 50 },
    );
    assert.equal(found.status, 200, JSON.stringify(found.body));
    assert.ok(
      found.body.results.some((u) => u.user_id === wanted),
      `${wanted} in A's user directory: ${JSON.stringify(found.body)}`,
    );
    assert.ok(partialAtJoin, 'the room was partial-state when /join answered');
    assert.deepEqual(partialAtJoin.servers, [b.serverName]);
  });

  it('resumes the fetch after a restart of the joining server, the resident down meanwhile', async () => {
    // A resident that can be stopped and started again on its own database.
    const cDatabase = await createTestDatabase(dialect);
    const cDir = mkdtempSync(path.join(tmpdir(), 'commons-data-'));
    const cPort = await freePort();
    const startC = async (): Promise<Federated> =>
      Object.assign(await startServerOn(cDatabase, cDir, federationEnv(ca, cPort)), {
        serverName: `127.0.0.1:${cPort}`,
        port: cPort,
      });
    let c = await startC();
    try {
      const carol = await registerUser(c, 'carol');
      const created = await as(c, carol)<{ room_id: string }>('POST', '/createRoom', {
        preset: 'public_chat',
        room_version: version,
      });
      const roomId = created.body.room_id;
      await addMembers(c, roomId, 'z', 400);
      const joined = await as(a, alice)('POST', `/join/${r(roomId)}?via=${r(c.serverName)}`, {});
      assert.equal(joined.status, 200, JSON.stringify(joined.body));
      await c.close();
      const before =
        await serviceContextOf(a).storage.stores.partialState.selectPartialRoom(roomId);
      assert.ok(before, 'still partial: the resident went away before the full state came');
      // Nobody joins through a server whose state of the room is partial.
      const viaUs = await remote.request(
        a.serverName,
        'GET',
        `/_matrix/federation/v1/make_join/${r(roomId)}/${r(`@late:${remote.serverName}`)}?ver=${version}`,
      );
      assert.equal(viaUs.status, 404, JSON.stringify(viaUs.body));
      // Nor takes its state from it: /state and /state_ids are 404 while partial.
      for (const what of ['state', 'state_ids']) {
        const read = await remote.request(
          a.serverName,
          'GET',
          `/_matrix/federation/v1/${what}/${r(roomId)}?event_id=${r('$any')}`,
        );
        assert.equal(read.status, 404, `${what}: ${JSON.stringify(read.body)}`);
        assert.equal(read.body.errcode, 'M_NOT_FOUND');
      }
      // The client's /state: what is certainly known answers at once (every entry but the
      // members', and a member entry held); the whole state, or a member entry not held yet,
      // waits for the full state: 30 s, then 429 with a retry hint while it cannot come.
      const create = await as(a, alice)('GET', `/rooms/${r(roomId)}/state/m.room.create/`);
      assert.equal(create.status, 200, JSON.stringify(create.body));
      const own = await as(a, alice)(
        'GET',
        `/rooms/${r(roomId)}/state/m.room.member/${r(alice.userId)}`,
      );
      assert.equal(own.status, 200, JSON.stringify(own.body));
      assert.equal(own.body.membership, 'join');
      const member = `@z00005:${c.serverName}`;
      const waited = await Promise.all([
        as(a, alice)('GET', `/rooms/${r(roomId)}/state`),
        as(a, alice)('GET', `/rooms/${r(roomId)}/state/m.room.member/${r(member)}`),
      ]);
      for (const answer of waited) {
        assert.equal(answer.status, 429, JSON.stringify(answer.body));
        assert.equal(answer.body.errcode, 'M_LIMIT_EXCEEDED');
        assert.equal(typeof answer.body.retry_after_ms, 'number');
      }
      await a.close();
      await startA();
      c = await startC();
      // The member query waits for the resumed fetch (and asks for it to run now).
      const members = await retried(() =>
        as(a, alice)<{ joined: Record<string, unknown> }>(
          'GET',
          `/rooms/${r(roomId)}/joined_members`,
        ),
      );
      assert.equal(members.status, 200, JSON.stringify(members.body));
      assert.equal(Object.keys(members.body.joined).length, 400 + 2);
      // Complete now: /state has every member, and the member entry answers.
      const state = await as(a, alice)<{ type: string }[]>('GET', `/rooms/${r(roomId)}/state`);
      assert.equal(state.status, 200);
      assert.equal(state.body.filter((e) => e.type === 'm.room.member').length, 400 + 2);
      const learnt = await as(a, alice)(
        'GET',
        `/rooms/${r(roomId)}/state/m.room.member/${r(`@z00005:${c.serverName}`)}`,
      );
      assert.equal(learnt.status, 200, JSON.stringify(learnt.body));
      assert.equal(learnt.body.membership, 'join');
      const after = await serviceContextOf(a).storage.stores.partialState.selectPartialRoom(roomId);
      assert.equal(after, undefined);
    } finally {
      await c.close();
      await cDatabase.drop();
      rmSync(cDir, { recursive: true, force: true });
    }
  });
  it(
    'two processes on one PostgreSQL database resume a partial room: one fetch, under a lease',
    { skip: dialect !== 'postgres' && 'two processes share a database on PostgreSQL only' },
    async () => {
      const cDatabase = await createTestDatabase(dialect);
      const cDir = mkdtempSync(path.join(tmpdir(), 'commons-data-'));
      const cPort = await freePort();
      const startC = async (): Promise<Federated> =>
        Object.assign(await startServerOn(cDatabase, cDir, federationEnv(ca, cPort)), {
          serverName: `127.0.0.1:${cPort}`,
          port: cPort,
        });
      let c = await startC();
      let second: TestServer | undefined;
      try {
        const carol = await registerUser(c, 'carol');
        const created = await as(c, carol)<{ room_id: string }>('POST', '/createRoom', {
          preset: 'public_chat',
          room_version: version,
        });
        const roomId = created.body.room_id;
        await addMembers(c, roomId, 'w', 300);
        const joined = await as(a, alice)('POST', `/join/${r(roomId)}?via=${r(c.serverName)}`, {});
        assert.equal(joined.status, 200, JSON.stringify(joined.body));
        await c.close();
        assert.ok(
          await serviceContextOf(a).storage.stores.partialState.selectPartialRoom(roomId),
          'still partial: the resident went away before the full state came',
        );
        await a.close();
        c = await startC();
        // Both processes of A start at once and each resumes the room's fetch.
        const lines: string[] = [];
        const logger = () =>
          pino(
            { level: 'info' },
            new Writable({
              write(chunk: Buffer, _encoding, done) {
                lines.push(chunk.toString('utf8'));
                done();
              },
            }),
          );
        const secondPort = await freePort();
        [, second] = await Promise.all([
          startA(logger()),
          startServerOn(
            database,
            dataDir,
            { ...federationEnv(ca, aPort), COMMONS_FEDERATION_LISTEN_PORT: String(secondPort) },
            logger(),
          ),
        ]);
        const members = await retried(() =>
          as(a, alice)<{ joined: Record<string, unknown> }>(
            'GET',
            `/rooms/${r(roomId)}/joined_members`,
          ),
        );
        assert.equal(members.status, 200, JSON.stringify(members.body));
        assert.equal(Object.keys(members.body.joined).length, 300 + 2);
        const fetched = lines.filter(
          (l) => l.includes('partial-state full state fetched') && l.includes(roomId),
        );
        assert.equal(fetched.length, 1, `one fetch of the room in all: ${fetched.join('')}`);
      } finally {
        await second?.close();
        await c.close();
        await cDatabase.drop();
        rmSync(cDir, { recursive: true, force: true });
      }
    },
  );
});
