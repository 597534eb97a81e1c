/**
 * Receiving over federation, against a fake remote server (test/helpers/fake-remote.ts):
 * events fetched to check a received one (/event_auth) are checked against their own auth
 * events — a fetched power-levels event its sender had no power to send is rejected, and the
 * event citing it with it — and a gap longer than one /get_missing_events answer is filled in
 * several rounds. Both databases.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, it } from 'node:test';
import { addContentHash, computeEventId } from '../../src/core/event-hashing.js';
import type { Pdu, RoomVersionId } from '../../src/core/pdu.js';
import { signPdu } from '../../src/core/signing.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { forEachDatabase } from '../helpers/databases.js';
import { startFakeRemote, type FakeRemote } from '../helpers/fake-remote.js';
import { makeTestCa, startFederatedServer, type TestCa } from '../helpers/federation.js';
import type { TestServer } from '../helpers/server.js';
import { rowsMentioning } from '../helpers/rows-mentioning.js';

const C = '/_matrix/client/v3';
const F = '/_matrix/federation';
const enc = encodeURIComponent;

forEachDatabase('federation: checks on events fetched while receiving', (dialect) => {
  let ca: TestCa;
  let a: TestServer & { serverName: string };
  let remote: FakeRemote;
  let alice: TestUser;
  let roomId: string;
  let bob: string;
  let createId: string;
  let levelsId: string;
  let joinRulesId: string;
  let bobJoinId: string;
  const version: RoomVersionId = '11';
  let txn = 0;

  const send = (pdus: unknown[]) =>
    remote.request(a.serverName, 'PUT', `${F}/v1/send/r${++txn}`, {
      origin: remote.serverName,
      origin_server_ts: Date.now(),
      pdus,
      edus: [],
    });
  /** Where the room's next event goes (a make_join template's prev events and depth). */
  const tip = async () => {
    const res = await remote.request(
      a.serverName,
      'GET',
      `${F}/v1/make_join/${enc(roomId)}/${enc(`@probe:${remote.serverName}`)}?ver=${version}`,
    );
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body.event as { prev_events: string[]; depth: number };
  };
  const messageIds = async () =>
    (
      await a.request<{ chunk: { event_id: string }[] }>(
        'GET',
        `${C}/rooms/${enc(roomId)}/messages?dir=b&limit=200`,
        { token: alice.accessToken },
      )
    ).body.chunk.map((e) => e.event_id);

  before(async () => {
    ca = makeTestCa();
    a = await startFederatedServer(dialect, ca);
    remote = await startFakeRemote(ca);
    alice = await registerUser(a, 'alice');
    const created = await a.request<{ room_id: string }>('POST', `${C}/createRoom`, {
      token: alice.accessToken,
      body: { preset: 'public_chat', room_version: version },
    });
    assert.equal(created.status, 200);
    roomId = created.body.room_id;
    bob = `@bob:${remote.serverName}`;
    // Bob of the remote server joins through make_join/send_join.
    const template = await remote.request(
      a.serverName,
      'GET',
      `${F}/v1/make_join/${enc(roomId)}/${enc(bob)}?ver=${version}`,
    );
    assert.equal(template.status, 200, JSON.stringify(template.body));
    const hashed = addContentHash({
      ...template.body.event,
      content: { membership: 'join' },
      signatures: {},
    } as Pdu);
    const join = signPdu(hashed, version, remote.serverName, remote.key);
    bobJoinId = computeEventId(join, version);
    remote.events.set(bobJoinId, join);
    const joined = await remote.request(
      a.serverName,
      'PUT',
      `${F}/v2/send_join/${enc(roomId)}/${enc(bobJoinId)}`,
      join,
    );
    assert.equal(joined.status, 200, JSON.stringify(joined.body));
    const state = joined.body.state as Pdu[];
    const idOf = (type: string) =>
      computeEventId(state.find((p) => p.type === type) as Pdu, version);
    createId = idOf('m.room.create');
    levelsId = idOf('m.room.power_levels');
    joinRulesId = idOf('m.room.join_rules');
  });
  after(async () => {
    await a?.close();
    await remote?.close();
    rmSync(ca.dir, { recursive: true, force: true });
  });

  it('a fetched auth event that fails its own auth events is rejected, with the event citing it', async () => {
    const t = await tip();
    // Bob (power 0) gives himself 100: never sent, only served on /event_auth.
    const grab = remote.event(version, {
      roomId,
      type: 'm.room.power_levels',
      sender: bob,
      stateKey: '',
      content: { users: { [alice.userId]: 100, [bob]: 100 } },
      authEvents: [createId, levelsId, bobJoinId],
      prevEvents: t.prev_events,
      depth: t.depth,
    });
    const topic = remote.event(version, {
      roomId,
      type: 'm.room.topic',
      sender: bob,
      stateKey: '',
      content: { topic: 'taken over' },
      authEvents: [createId, grab.eventId, bobJoinId],
      prevEvents: t.prev_events,
      depth: t.depth,
    });
    const res = await send([topic.pdu]);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.match(String(res.body.pdus[topic.eventId]?.error), /rejected/i);
    const dag = a.running.services.roomDag;
    const known = await dag.knownEvents(a.running.storage.stores, [grab.eventId, topic.eventId]);
    assert.equal(known.get(grab.eventId)?.status, 'rejected');
    assert.equal(known.get(topic.eventId)?.status, 'rejected');
    const current = await a.request<{ topic?: string }>(
      'GET',
      `${C}/rooms/${enc(roomId)}/state/m.room.topic/`,
      { token: alice.accessToken },
    );
    assert.notEqual(current.body.topic, 'taken over');
    assert.ok(!(await messageIds()).includes(topic.eventId));
  });

  it('a gap of 25 events is filled with several /get_missing_events rounds', async () => {
    remote.serveMissingEvents = true;
    remote.missingEventsAsked = 0;
    const t = await tip();
    let prev = t.prev_events;
    const chain: string[] = [];
    const events: Pdu[] = [];
    for (let i = 0; i < 25; i++) {
      const message = remote.event(version, {
        roomId,
        type: 'm.room.message',
        sender: bob,
        content: { msgtype: 'm.text', body: `gap ${i}` },
        authEvents: [createId, levelsId, bobJoinId],
        prevEvents: prev,
        depth: t.depth + i,
      });
      chain.push(message.eventId);
      events.push(message.pdu);
      prev = [message.eventId];
    }
    const res = await send([events[events.length - 1]]);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(res.body.pdus, { [chain[chain.length - 1] as string]: {} });
    assert.ok(remote.missingEventsAsked >= 3, `asked ${remote.missingEventsAsked} times`);
    const ids = await messageIds();
    for (const id of chain) assert.ok(ids.includes(id), `${id} is in the timeline`);
    // Every one has its state: it entered the timeline in order, not as an outlier.
    const dag = a.running.services.roomDag;
    const known = await dag.knownEvents(a.running.storage.stores, chain);
    assert.deepEqual([...new Set([...known.values()].map((e) => e.status))], ['timeline']);
    remote.serveMissingEvents = false;
  });

  it('a gap past 5 rounds: the rest is bridged with the state of the oldest event’s prev event', async () => {
    remote.serveMissingEvents = true;
    remote.missingEventsAsked = 0;
    const t = await tip();
    const ids = await remote.request(
      a.serverName,
      'GET',
      `${F}/v1/state_ids/${enc(roomId)}?event_id=${enc(t.prev_events[0] ?? '')}`,
    );
    assert.equal(ids.status, 200, JSON.stringify(ids.body));
    const state = [...new Set([...(ids.body.pdu_ids as string[]), t.prev_events[0] as string])];
    let prev = t.prev_events;
    const chain: string[] = [];
    const events: Pdu[] = [];
    for (let i = 0; i < 60; i++) {
      const message = remote.event(version, {
        roomId,
        type: 'm.room.message',
        sender: bob,
        content: { msgtype: 'm.text', body: `long gap ${i}` },
        authEvents: [createId, levelsId, bobJoinId],
        prevEvents: prev,
        depth: t.depth + i,
      });
      // Messages change no state: the state after each is the state before the gap.
      remote.stateAfter.set(message.eventId, state);
      chain.push(message.eventId);
      events.push(message.pdu);
      prev = [message.eventId];
    }
    const res = await send([events[events.length - 1]]);
    assert.deepEqual(res.body.pdus, { [chain[chain.length - 1] as string]: {} });
    assert.equal(remote.missingEventsAsked, 5);
    // The 50 events before the one sent came by /get_missing_events; the 9 before them stay
    // out of the timeline (the oldest fetched one was received with the state after its prev
    // event, fetched with /state_ids: that one is an outlier)...
    const dag = a.running.services.roomDag;
    const known = await dag.knownEvents(a.running.storage.stores, chain);
    assert.deepEqual(
      chain.map((id) => known.get(id)?.status === 'timeline'),
      chain.map((_, i) => i >= 9),
    );
    // ...until /messages pages back past them: they are a hole, backfilled from the remote.
    const timeline = new Set(await messageIds());
    assert.deepEqual(
      chain.map((id) => timeline.has(id)),
      chain.map(() => true),
    );
    remote.serveMissingEvents = false;
  });

  it('a profile change losing to the one already current leaves the user directory as resolved', async () => {
    const t = await tip();
    const profile = (name: string, ts: number) =>
      remote.event(version, {
        roomId,
        type: 'm.room.member',
        sender: bob,
        stateKey: bob,
        content: { membership: 'join', displayname: name },
        authEvents: [createId, levelsId, joinRulesId, bobJoinId],
        prevEvents: t.prev_events,
        depth: t.depth,
        ts,
      });
    const late = profile('Robert Late', Date.now());
    const early = profile('Robert Early', Date.now() - 60_000);
    assert.deepEqual((await send([late.pdu])).body.pdus, { [late.eventId]: {} });
    assert.deepEqual((await send([early.pdu])).body.pdus, { [early.eventId]: {} });
    const search = await a.request<{ results: { user_id: string; display_name?: string }[] }>(
      'POST',
      `${C}/user_directory/search`,
      { token: alice.accessToken, body: { search_term: 'Robert' } },
    );
    assert.equal(search.status, 200, JSON.stringify(search.body));
    assert.deepEqual(
      search.body.results.map((r) => [r.user_id, r.display_name]),
      [[bob, 'Robert Late']],
    );
  });
  it('messages on a fork kept open are accepted, current state keeps both branches, and the branches are resolved once', async () => {
    const t = await tip();
    // A local user joins: the other branch the remote never names.
    const carol = await registerUser(a, 'carol');
    const joined = await a.request('POST', `${C}/join/${enc(roomId)}`, {
      token: carol.accessToken,
      body: {},
    });
    assert.equal(joined.status, 200, JSON.stringify(joined.body));
    const resolutions = async () => (await rowsMentioning(a, [roomId])).state_resolutions ?? 0;
    const kept = await resolutions();
    let prev = t.prev_events;
    const messages = Array.from({ length: 6 }, (_, i) => {
      const message = remote.event(version, {
        roomId,
        type: 'm.room.message',
        sender: bob,
        content: { msgtype: 'm.text', body: `on the fork ${i}` },
        authEvents: [createId, levelsId, bobJoinId],
        prevEvents: prev,
        depth: t.depth + i,
      });
      prev = [message.eventId];
      return message;
    });
    const sent = await send(messages.map((m) => m.pdu));
    assert.deepEqual(sent.body.pdus, Object.fromEntries(messages.map((m) => [m.eventId, {}])));
    const members = await a.request<{ joined: Record<string, unknown> }>(
      'GET',
      `${C}/rooms/${enc(roomId)}/joined_members`,
      { token: alice.accessToken },
    );
    assert.deepEqual(
      Object.keys(members.body.joined).sort(),
      [alice.userId, bob, carol.userId].sort(),
    );
    const ids = await messageIds();
    for (const m of messages) assert.ok(ids.includes(m.eventId), m.eventId);
    // Both branches stay forward extremities: the next event names the last message and the join.
    const next = await tip();
    assert.ok(next.prev_events.includes(messages[5]!.eventId), JSON.stringify(next.prev_events));
    assert.equal(next.prev_events.length, 2, JSON.stringify(next.prev_events));
    // Six messages met the same two branches: one resolution kept, made by the first.
    assert.equal((await resolutions()) - kept, 1);
  });
});
