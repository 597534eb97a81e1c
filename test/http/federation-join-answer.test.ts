/**
 * The send_join answer is checked as a whole before a room is imported: a resident server
 * answering a state that does not hold together — a power levels event its sender could not
 * send, a state event whose auth events it leaves out — is refused, and the join goes on
 * through the next server. The residents here are small servers of the test's own holding
 * one room of version 11 (events signed with their first server's key), with a bad and a
 * good answer.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:https';
import { rmSync } from 'node:fs';
import { after, before, it } from 'node:test';
import type { Pdu, RoomVersionId } from '../../src/core/pdu.js';
import { ownServerKeys } from '../../src/core/server-keys.js';
import { generateSigningKey, type SigningKey } from '../../src/core/signing.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { forEachDatabase } from '../helpers/databases.js';
import { freePort, makeTestCa, startFederatedServer, type TestCa } from '../helpers/federation.js';
import { remoteEvent, type RemoteEventSpec } from '../helpers/remote-events.js';
import type { TestServer } from '../helpers/server.js';

const C = '/_matrix/client/v3';
const r = encodeURIComponent;
const VERSION: RoomVersionId = '11';

type Answer = 'good' | 'tampered-power' | 'missing-auth';
interface Built {
  eventId: string;
  pdu: Pdu;
}

/** The room, made by @creator on the first resident: good state and two bad ones. */
function buildRoom(server: string, key: SigningKey) {
  const roomId = `!joincheck:${server}`;
  const creator = `@creator:${server}`;
  const mallory = `@mallory:${server}`;
  let depth = 0;
  let last: Built | undefined;
  const make = (spec: Omit<RemoteEventSpec, 'roomId' | 'depth' | 'prevEvents'>): Built =>
    remoteEvent(VERSION, server, key, {
      ...spec,
      roomId,
      depth: ++depth,
      prevEvents: last ? [last.eventId] : [],
    });
  const next = (spec: Omit<RemoteEventSpec, 'roomId' | 'depth' | 'prevEvents'>): Built =>
    (last = make(spec));
  const create = next({
    type: 'm.room.create',
    sender: creator,
    stateKey: '',
    content: { room_version: VERSION },
    authEvents: [],
  });
  const creatorJoin = next({
    type: 'm.room.member',
    sender: creator,
    stateKey: creator,
    content: { membership: 'join' },
    authEvents: [create.eventId],
  });
  const levels = next({
    type: 'm.room.power_levels',
    sender: creator,
    stateKey: '',
    content: { users: { [creator]: 100 }, users_default: 0, state_default: 50 },
    authEvents: [create.eventId, creatorJoin.eventId],
  });
  const joinRules = next({
    type: 'm.room.join_rules',
    sender: creator,
    stateKey: '',
    content: { join_rule: 'public' },
    authEvents: [create.eventId, creatorJoin.eventId, levels.eventId],
  });
  const malloryJoin = next({
    type: 'm.room.member',
    sender: mallory,
    stateKey: mallory,
    content: { membership: 'join' },
    authEvents: [create.eventId, levels.eventId, joinRules.eventId],
  });
  const good = [create, creatorJoin, levels, joinRules, malloryJoin];
  // Mallory (power 0) makes herself and everyone an admin: the auth rules refuse it.
  const grab = next({
    type: 'm.room.power_levels',
    sender: mallory,
    stateKey: '',
    content: { users: { [creator]: 100, [mallory]: 100 }, users_default: 100 },
    authEvents: [create.eventId, levels.eventId, malloryJoin.eventId],
  });
  // A topic by the creator, its auth events named but the answer without one of them.
  const topic = next({
    type: 'm.room.topic',
    sender: creator,
    stateKey: '',
    content: { topic: 'hello' },
    authEvents: [create.eventId, levels.eventId, creatorJoin.eventId],
  });
  return { roomId, create, creatorJoin, levels, joinRules, malloryJoin, good, grab, topic };
}
type Room = ReturnType<typeof buildRoom>;

/** A resident server answering make_join and send_join for the room with `answer`. */
async function startResident(
  ca: TestCa,
  key: SigningKey,
  port: number,
  room: () => Room,
  answer: Answer,
) {
  const serverName = `127.0.0.1:${port}`;
  const sendJoins: string[] = [];
  const server: Server = createServer({ cert: ca.certPem, key: ca.keyPem }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = new URL(req.url ?? '/', 'https://x').pathname;
      const reply = (status: number, body: unknown) =>
        res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
      if (path === '/_matrix/key/v2/server')
        return reply(200, ownServerKeys(serverName, key, [], Date.now() + 3600_000));
      const { roomId, create, creatorJoin, levels, joinRules, good, grab, topic } = room();
      let state: Built[] = good;
      let chain: Built[] = good;
      let levelsNow = levels;
      if (answer === 'tampered-power') {
        state = [...good.filter((e) => e !== levels), grab];
        levelsNow = grab;
      }
      if (answer === 'missing-auth') {
        state = [...good.filter((e) => e !== creatorJoin), topic];
        chain = state;
      }
      const head = state.reduce((a, b) => (a.pdu.depth > b.pdu.depth ? a : b));
      const m = /^\/_matrix\/federation\/v1\/make_join\/([^/]+)\/([^/]+)$/.exec(path);
      if (m && req.method === 'GET') {
        const userId = decodeURIComponent(m[2] ?? '');
        return reply(200, {
          room_version: VERSION,
          event: {
            room_id: roomId,
            type: 'm.room.member',
            sender: userId,
            state_key: userId,
            content: { membership: 'join' },
            origin: userId.slice(userId.indexOf(':') + 1),
            origin_server_ts: Date.now(),
            depth: head.pdu.depth + 1,
            prev_events: [head.eventId],
            auth_events: [create.eventId, levelsNow.eventId, joinRules.eventId],
          },
        });
      }
      if (/^\/_matrix\/federation\/v2\/send_join\//.test(path) && req.method === 'PUT') {
        sendJoins.push(path);
        return reply(200, {
          origin: serverName,
          state: state.map((e) => e.pdu),
          auth_chain: chain.map((e) => e.pdu),
        });
      }
      if (/^\/_matrix\/federation\/v1\/send\//.test(path)) return reply(200, { pdus: {} });
      if (path === '/_matrix/federation/v1/query/directory') {
        const alias = new URL(req.url ?? '/', 'https://x').searchParams.get('room_alias');
        return alias === `#lobby:${serverName}`
          ? reply(200, { room_id: roomId, servers: [serverName, 'elsewhere.test'] })
          : reply(404, { errcode: 'M_NOT_FOUND', error: 'Room alias not found' });
      }
      reply(404, { errcode: 'M_UNRECOGNIZED', error: 'Unrecognized request' });
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    serverName,
    sendJoins,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

forEachDatabase('send_join answers checked as a whole', (dialect) => {
  let ca: TestCa;
  let a: TestServer & { serverName: string };
  let alice: TestUser;
  let room: Room;
  let tampered: Awaited<ReturnType<typeof startResident>>;
  let missing: Awaited<ReturnType<typeof startResident>>;
  let good: Awaited<ReturnType<typeof startResident>>;

  before(async () => {
    ca = makeTestCa();
    a = await startFederatedServer(dialect, ca);
    alice = await registerUser(a, 'alice');
    const key = generateSigningKey();
    const port = await freePort();
    // The first resident's name is the one that signs the room's events.
    room = buildRoom(`127.0.0.1:${port}`, key);
    tampered = await startResident(ca, key, port, () => room, 'tampered-power');
    missing = await startResident(
      ca,
      generateSigningKey(),
      await freePort(),
      () => room,
      'missing-auth',
    );
    good = await startResident(ca, generateSigningKey(), await freePort(), () => room, 'good');
  });
  after(async () => {
    await a?.close();
    await tampered?.close();
    await missing?.close();
    await good?.close();
    rmSync(ca.dir, { recursive: true, force: true });
  });

  const join = (...servers: string[]) =>
    a.request<{ errcode?: string; error?: string; room_id?: string }>(
      'POST',
      `${C}/join/${r(room.roomId)}?${servers.map((s) => `via=${r(s)}`).join('&')}`,
      { token: alice.accessToken, body: {} },
    );

  it('a state with a power levels event its sender could not send is refused (502)', async () => {
    const answer = await join(tampered.serverName);
    assert.equal(answer.status, 502, JSON.stringify(answer.body));
    assert.equal(answer.body.errcode, 'M_UNKNOWN');
    assert.match(answer.body.error ?? '', /not authorised/);
    assert.equal(tampered.sendJoins.length, 1, 'send_join was asked, and its answer refused');
    const rooms = await a.request<{ joined_rooms: string[] }>('GET', `${C}/joined_rooms`, {
      token: alice.accessToken,
    });
    assert.deepEqual(rooms.body.joined_rooms, [], 'nothing was imported');
  });

  it('a state event whose auth events the answer leaves out is refused (502)', async () => {
    const answer = await join(missing.serverName);
    assert.equal(answer.status, 502, JSON.stringify(answer.body));
    assert.match(answer.body.error ?? '', /not in the answer/);
    assert.ok((answer.body.error ?? '').includes(room.creatorJoin.eventId));
  });

  it('after bad answers the join goes on through the next server, with the true state', async () => {
    const answer = await join(tampered.serverName, missing.serverName, good.serverName);
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.equal(good.sendJoins.length, 1);
    const levels = await a.request<{ users?: Record<string, number> }>(
      'GET',
      `${C}/rooms/${r(room.roomId)}/state/m.room.power_levels/`,
      { token: alice.accessToken },
    );
    assert.equal(levels.status, 200, JSON.stringify(levels.body));
    assert.deepEqual(levels.body.users, { [`@creator:${tampered.serverName}`]: 100 });
    const topic = await a.request('GET', `${C}/rooms/${r(room.roomId)}/state/m.room.topic/`, {
      token: alice.accessToken,
    });
    assert.equal(topic.status, 404, 'the topic of the bad answer is nowhere');
  });

  it('GET /directory/room asks the alias’s server: found, unknown (404), unreachable (502)', async () => {
    const ask = (alias: string) =>
      a.request<{ room_id?: string; servers?: string[]; errcode?: string }>(
        'GET',
        `${C}/directory/room/${r(alias)}`,
        { token: alice.accessToken },
      );
    const found = await ask(`#lobby:${good.serverName}`);
    assert.equal(found.status, 200, JSON.stringify(found.body));
    assert.equal(found.body.room_id, room.roomId);
    assert.deepEqual(found.body.servers, [good.serverName, 'elsewhere.test']);
    const unknown = await ask(`#nothing:${good.serverName}`);
    assert.equal(unknown.status, 404, JSON.stringify(unknown.body));
    assert.equal(unknown.body.errcode, 'M_NOT_FOUND');
    const down = await ask(`#lobby:127.0.0.1:${await freePort()}`);
    assert.equal(down.status, 502, JSON.stringify(down.body));
    assert.equal(down.body.errcode, 'M_UNKNOWN');
  });
});
