/**
 * Backfilled events go through the checks on receipt of a PDU, against a fake resident server
 * (test/helpers/fake-remote.ts) that answers /backfill with what it likes: a message of a user
 * banned before it (allowed by its own auth events, refused by the state before it) is kept
 * as rejected and never served; an event with a forged signature is dropped; the honest event
 * beside them enters the timeline. Both databases.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, it } from 'node:test';
import { addContentHash, computeEventId } from '../../src/core/event-hashing.js';
import type { Pdu, RoomVersionId } from '../../src/core/pdu.js';
import { generateSigningKey, signPdu } from '../../src/core/signing.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { forEachDatabase } from '../helpers/databases.js';
import { startFakeRemote, type FakeRemote } from '../helpers/fake-remote.js';
import { makeTestCa, startFederatedServer, type TestCa } from '../helpers/federation.js';
import { remoteEvent } from '../helpers/remote-events.js';
import type { TestServer } from '../helpers/server.js';

const C = '/_matrix/client/v3';
const F = '/_matrix/federation';
const enc = encodeURIComponent;

forEachDatabase('federation: checks on backfilled events', (dialect) => {
  let ca: TestCa;
  let a: TestServer & { serverName: string };
  let remote: FakeRemote;
  let alice: TestUser;
  let roomId: string;
  const version: RoomVersionId = '11';
  let txn = 0;

  const send = (pdus: unknown[]) =>
    remote.request(a.serverName, 'PUT', `${F}/v1/send/b${++txn}`, {
      origin: remote.serverName,
      origin_server_ts: Date.now(),
      pdus,
      edus: [],
    });
  const asAlice = <T = Record<string, unknown>>(method: string, path: string, body?: unknown) =>
    a.request<T>(method, `${C}${path}`, {
      token: alice.accessToken,
      ...(body !== undefined ? { body } : {}),
    });
  /** A remote user joined through make_join/send_join; the join's ID. */
  async function joinRemote(userId: string): Promise<string> {
    const template = await remote.request(
      a.serverName,
      'GET',
      `${F}/v1/make_join/${enc(roomId)}/${enc(userId)}?ver=${version}`,
    );
    assert.equal(template.status, 200, JSON.stringify(template.body));
    const hashed = addContentHash({
      ...template.body.event,
      content: { membership: 'join' },
      signatures: {},
    } as Pdu);
    const join = signPdu(hashed, version, remote.serverName, remote.key);
    const joinId = computeEventId(join, version);
    remote.events.set(joinId, join);
    const joined = await remote.request(
      a.serverName,
      'PUT',
      `${F}/v2/send_join/${enc(roomId)}/${enc(joinId)}`,
      join,
    );
    assert.equal(joined.status, 200, JSON.stringify(joined.body));
    return joinId;
  }

  before(async () => {
    ca = makeTestCa();
    a = await startFederatedServer(dialect, ca);
    remote = await startFakeRemote(ca);
    alice = await registerUser(a, 'alice');
    const created = await asAlice<{ room_id: string }>('POST', '/createRoom', {
      preset: 'public_chat',
      room_version: version,
    });
    assert.equal(created.status, 200);
    roomId = created.body.room_id;
  });
  after(async () => {
    await a?.close();
    await remote?.close();
    rmSync(ca.dir, { recursive: true, force: true });
  });

  it('a backfilled event refused by the state before it is rejected, never served; a forged one is dropped', async () => {
    const bob = `@bob:${remote.serverName}`;
    const mallory = `@mallory:${remote.serverName}`;
    const bobJoin = await joinRemote(bob);
    const malloryJoin = await joinRemote(mallory);
    const banned = await asAlice<{ event_id?: string }>('POST', `/rooms/${enc(roomId)}/ban`, {
      user_id: mallory,
    });
    assert.equal(banned.status, 200, JSON.stringify(banned.body));
    // The room's state after the ban, as A serves it, and the ban's ID and depth.
    const tip = await remote.request(
      a.serverName,
      'GET',
      `${F}/v1/make_join/${enc(roomId)}/${enc(`@probe:${remote.serverName}`)}?ver=${version}`,
    );
    assert.equal(tip.status, 200, JSON.stringify(tip.body));
    const banId = (tip.body.event.prev_events as string[])[0] as string;
    const depth = tip.body.event.depth as number;
    const stateIds = await remote.request(
      a.serverName,
      'GET',
      `${F}/v1/state_ids/${enc(roomId)}?event_id=${enc(banId)}`,
    );
    assert.equal(stateIds.status, 200, JSON.stringify(stateIds.body));
    const stateAfterBan = [...(stateIds.body.pdu_ids as string[]), banId];
    const { body: createState } = await asAlice<{ event_id?: string }>(
      'GET',
      `/rooms/${enc(roomId)}/state/m.room.create/?format=event`,
    );
    const { body: levelsState } = await asAlice<{ event_id?: string }>(
      'GET',
      `/rooms/${enc(roomId)}/state/m.room.power_levels/?format=event`,
    );
    const createId = createState.event_id as string;
    const levelsId = levelsState.event_id as string;

    // After the ban: Bob's message (honest), then Mallory's — citing her old join as if she
    // were still in the room (allowed by its own auth events, not by the state before it).
    const honest = remote.event(version, {
      roomId,
      type: 'm.room.message',
      sender: bob,
      content: { msgtype: 'm.text', body: 'honest history' },
      authEvents: [createId, levelsId, bobJoin],
      prevEvents: [banId],
      depth,
    });
    const forgedByState = remote.event(version, {
      roomId,
      type: 'm.room.message',
      sender: mallory,
      content: { msgtype: 'm.text', body: 'banned but speaking' },
      authEvents: [createId, levelsId, malloryJoin],
      prevEvents: [honest.eventId],
      depth: depth + 1,
    });
    remote.stateAfter.set(honest.eventId, stateAfterBan);
    remote.stateAfter.set(forgedByState.eventId, stateAfterBan);
    // A third, signed with a key that is not the remote server's: dropped.
    const forgedSignature = remoteEvent(version, remote.serverName, generateSigningKey(), {
      roomId,
      type: 'm.room.message',
      sender: bob,
      content: { msgtype: 'm.text', body: 'not really from bob' },
      authEvents: [createId, levelsId, bobJoin],
      prevEvents: [honest.eventId],
      depth: depth + 1,
    });
    remote.backfillExtra = [forgedSignature.pdu];
    // Bob's next message names Mallory's as its prev event: A learns of the hole.
    const latest = remote.event(version, {
      roomId,
      type: 'm.room.message',
      sender: bob,
      content: { msgtype: 'm.text', body: 'latest' },
      authEvents: [createId, levelsId, bobJoin],
      prevEvents: [forgedByState.eventId],
      depth: depth + 2,
    });
    const res = await send([latest.pdu]);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(res.body.pdus, { [latest.eventId]: {} });

    // Alice pages back past everything held: A backfills from the remote server.
    remote.backfillAsked = 0;
    const page = await asAlice<{ chunk: { event_id: string; content: { body?: string } }[] }>(
      'GET',
      `/rooms/${enc(roomId)}/messages?dir=b&limit=100`,
    );
    assert.equal(page.status, 200, JSON.stringify(page.body));
    assert.ok(remote.backfillAsked >= 1, 'the remote server was asked to backfill');
    const ids = page.body.chunk.map((e) => e.event_id);
    assert.ok(ids.includes(honest.eventId), 'the honest backfilled event is served');
    assert.ok(ids.includes(latest.eventId));
    assert.ok(!ids.includes(forgedByState.eventId), 'the rejected event is not served');
    assert.ok(!ids.includes(forgedSignature.eventId), 'the forged event is not served');

    const dag = a.running.services.roomDag;
    const known = await dag.knownEvents(a.running.storage.stores, [
      honest.eventId,
      forgedByState.eventId,
      forgedSignature.eventId,
    ]);
    assert.equal(known.get(honest.eventId)?.status, 'timeline');
    assert.equal(known.get(forgedByState.eventId)?.status, 'rejected');
    assert.match(String(known.get(forgedByState.eventId)?.reason), /not in this room/i);
    assert.equal(known.has(forgedSignature.eventId), false, 'dropped, not kept');

    // Never served as accepted: not by /event, not by /context, not to other servers.
    for (const path of [
      `/rooms/${enc(roomId)}/event/${enc(forgedByState.eventId)}`,
      `/rooms/${enc(roomId)}/context/${enc(forgedByState.eventId)}`,
    ]) {
      const got = await asAlice<{ errcode: string }>('GET', path);
      assert.equal(got.status, 404, path);
      assert.equal(got.body.errcode, 'M_NOT_FOUND');
    }
    const served = await remote.request(
      a.serverName,
      'GET',
      `${F}/v1/event/${enc(forgedByState.eventId)}`,
    );
    assert.ok([403, 404].includes(served.status), JSON.stringify(served.body));
    // Paging again asks nothing more of it and serves the same.
    const again = await asAlice<{ chunk: { event_id: string }[] }>(
      'GET',
      `/rooms/${enc(roomId)}/messages?dir=b&limit=100`,
    );
    assert.ok(!again.body.chunk.some((e) => e.event_id === forgedByState.eventId));
  });
});
