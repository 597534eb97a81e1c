/**
 * The room DAG (migration 0021, `src/services/rooms-dag/`): the state at every event for local
 * events (across several levels of the state groups' delta tree), a long chain of groups (each
 * state read back, each chain short), received events entering a local room (a remote
 * member becomes a member everywhere), a fork of two concurrent remote events resolved the
 * same whichever arrives first, rejected and soft-failed events kept out of the timeline, and
 * a room imported from a send_join answer — on both databases.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { stateKeyOf, type Pdu, type RoomVersionId } from '../../src/core/pdu.js';
import { generateSigningKey } from '../../src/core/signing.js';
import {
  deltaBaseStep,
  extendGroup,
  MAX_STATE_GROUP_STEP,
} from '../../src/services/rooms-dag/state-groups.js';
import type { Services } from '../../src/services/index.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { forEachDatabase } from '../helpers/databases.js';
import { remoteEvent } from '../helpers/remote-events.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { servicesOf } from '../helpers/services.js';
import { SignedRoom, ALICE, BOB } from '../fixtures/signed-room.js';

const C = '/_matrix/client/v3';
const REMOTE = 'remote.test';
const remoteKey = generateSigningKey();

forEachDatabase('room DAG: state at every event, received events, imports', (dialect) => {
  let server: TestServer;
  let services: Services;
  let alice: TestUser;

  before(async () => {
    server = await startTestServer(dialect);
    services = servicesOf(server);
    alice = await registerUser(server, 'alice');
  });
  after(async () => {
    await server?.close();
  });

  const stores = () => server.running.storage.stores;
  const tx = <T>(fn: Parameters<typeof server.running.storage.tx<T>>[1]) =>
    server.running.storage.tx('test', fn);

  async function createRoom(version: RoomVersionId): Promise<string> {
    const created = await server.request<{ room_id: string }>('POST', `${C}/createRoom`, {
      token: alice.accessToken,
      body: { preset: 'public_chat', room_version: version },
    });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    return created.body.room_id;
  }

  const currentStateMap = async (roomId: string) =>
    new Map(
      (await stores().rooms.selectAllStateEvents(roomId)).map((row) => [
        stateKeyOf(row.pdu.type, row.pdu.state_key ?? ''),
        row.eventId,
      ]),
    );

  it('local events record the state before and after each one, past step 64', async () => {
    const roomId = await createRoom('11');
    const topics: string[] = [];
    for (let i = 0; i < 70; i++) {
      const put = await server.request<{ event_id: string }>(
        'PUT',
        `${C}/rooms/${encodeURIComponent(roomId)}/state/m.room.topic/`,
        { token: alice.accessToken, body: { topic: `topic ${i}` } },
      );
      assert.equal(put.status, 200);
      topics.push(put.body.event_id);
    }
    const sent = await server.request<{ event_id: string }>(
      'PUT',
      `${C}/rooms/${encodeURIComponent(roomId)}/send/m.room.message/t1`,
      { token: alice.accessToken, body: { msgtype: 'm.text', body: 'hi' } },
    );
    const topicKey = stateKeyOf('m.room.topic', '');
    for (const [i, id] of topics.entries()) {
      const beforeIt = await services.roomDag.stateAt(stores(), id, 'before');
      const afterIt = await services.roomDag.stateAt(stores(), id, 'after');
      assert.equal(beforeIt?.get(topicKey), i === 0 ? undefined : topics[i - 1]);
      assert.equal(afterIt?.get(topicKey), id);
    }
    const atMessage = await services.roomDag.stateAt(stores(), sent.body.event_id, 'before');
    assert.deepEqual(atMessage, await currentStateMap(roomId));
  });

  it('a chain of 600 changes: every group reads its state, over at most log2(step) + 1 groups', async () => {
    const roomId = await createRoom('11');
    const expected = new Map<string, string>([[stateKeyOf('m.room.create', ''), '$create']]);
    let head = await tx((s) =>
      s.roomDag.insertStateGroup(roomId, null, [['m.room.create', '', '$create']]),
    );
    const heads: { groupId: number; hops: number; state: Map<string, string> }[] = [];
    for (let i = 1; i <= 600; i++) {
      // Joins, a few changed twice, and every seventh change a removal of an earlier one.
      const changes = new Map<string, string | null>();
      if (i % 7 === 0) changes.set(stateKeyOf('m.room.member', `@u${i - 3}:x`), null);
      else changes.set(stateKeyOf('m.room.member', `@u${i % 50 === 0 ? 1 : i}:x`), `$e${i}`);
      for (const [key, id] of changes) {
        if (id === null) expected.delete(key);
        else expected.set(key, id);
      }
      const base = head;
      head = await tx((s) => extendGroup(s, roomId, base, changes));
      assert.equal(head.hops, i);
      heads.push({ ...head, state: new Map(expected) });
    }
    for (const { groupId, hops, state } of heads) {
      assert.deepEqual(await stores().roomDag.selectStateGroup(groupId), state, `step ${hops}`);
      let length = 1;
      for (let step = hops; step > 0; step = deltaBaseStep(step)) length++;
      assert.ok(length <= Math.log2(hops) + 2, `step ${hops}: ${length} groups`);
    }
    // Some keys only, from the deepest delta and from the top one.
    const last = heads.at(-1)!;
    const keys = [stateKeyOf('m.room.member', '@u1:x'), stateKeyOf('m.room.member', '@u593:x')];
    assert.deepEqual(
      await stores().roomDag.selectStateGroupEntries(
        last.groupId,
        keys.map((k) => k.split('\u0000') as [string, string]),
      ),
      new Map(keys.flatMap((k) => (last.state.has(k) ? [[k, last.state.get(k)!]] : []))),
    );
    // Past the last step a chain starts again from a whole snapshot.
    const far = await tx((s) =>
      s.roomDag.insertStateGroup(roomId, last, [], MAX_STATE_GROUP_STEP - 1),
    );
    const restarted = await tx((s) =>
      extendGroup(s, roomId, far, new Map([[stateKeyOf('m.room.topic', ''), '$t']])),
    );
    assert.equal(restarted.hops, 0);
    assert.deepEqual(
      await stores().roomDag.selectStateGroup(restarted.groupId),
      new Map([...last.state, [stateKeyOf('m.room.topic', ''), '$t']]),
    );
  });

  it('a remote join, a fork of two remote events and rejected/soft-failed ones', async () => {
    const roomId = await createRoom('11');
    const state = await currentStateMap(roomId);
    const id = (type: string, key = '') => state.get(stateKeyOf(type, key)) as string;
    const [extremity] = await stores().rooms.selectExtremities(roomId);
    assert.ok(extremity);
    const bob = `@bob:${REMOTE}`;
    const auth = [id('m.room.create'), id('m.room.power_levels'), id('m.room.join_rules')];
    const join = remoteEvent('11', REMOTE, remoteKey, {
      roomId,
      type: 'm.room.member',
      sender: bob,
      stateKey: bob,
      content: { membership: 'join', displayname: 'Bob' },
      authEvents: auth,
      prevEvents: [extremity.eventId],
      depth: extremity.depth + 1,
    });
    const receive = (
      event: { eventId: string; pdu: Pdu },
      status: 'accepted' | 'rejected' | 'soft_failed' = 'accepted',
    ) =>
      tx(async (s) => {
        await s.rooms.lockRoom(roomId);
        return services.roomDag.persistReceived(s, {
          roomId,
          version: '11',
          eventId: event.eventId,
          pdu: event.pdu,
          status,
          origin: REMOTE,
        });
      });
    const joined = await receive(join);
    assert.equal(joined.status, 'accepted');
    assert.equal((await receive(join)).duplicate, true);

    const members = await server.request<{ joined: Record<string, { display_name?: string }> }>(
      'GET',
      `${C}/rooms/${encodeURIComponent(roomId)}/joined_members`,
      { token: alice.accessToken },
    );
    assert.equal(members.status, 200);
    assert.deepEqual(Object.keys(members.body.joined).sort(), [alice.userId, bob].sort());
    assert.equal(members.body.joined[bob]?.display_name, 'Bob');

    // Two concurrent profile changes of Bob's: the later one (by timestamp) wins, whichever
    // arrives first.
    const profile = (name: string, ts: number) =>
      remoteEvent('11', REMOTE, remoteKey, {
        roomId,
        type: 'm.room.member',
        sender: bob,
        stateKey: bob,
        content: { membership: 'join', displayname: name },
        authEvents: [...auth.slice(0, 2), join.eventId],
        prevEvents: [join.eventId],
        depth: extremity.depth + 2,
        ts,
      });
    const early = profile('Bob early', 1_800_000_000_000);
    const late = profile('Bob late', 1_800_000_000_500);
    await receive(late);
    await receive(early);
    const extremities = (await stores().rooms.selectExtremities(roomId)).map((e) => e.eventId);
    assert.deepEqual(extremities.sort(), [early.eventId, late.eventId].sort());
    const now = await currentStateMap(roomId);
    assert.equal(now.get(stateKeyOf('m.room.member', bob)), late.eventId);
    const after2 = await server.request<{ joined: Record<string, { display_name?: string }> }>(
      'GET',
      `${C}/rooms/${encodeURIComponent(roomId)}/joined_members`,
      { token: alice.accessToken },
    );
    assert.equal(after2.body.joined[bob]?.display_name, 'Bob late');

    // A local event now has both forward extremities as prev events.
    const sent = await server.request<{ event_id: string }>(
      'PUT',
      `${C}/rooms/${encodeURIComponent(roomId)}/send/m.room.message/merge`,
      { token: alice.accessToken, body: { msgtype: 'm.text', body: 'merged' } },
    );
    const merged = await stores().rooms.selectEvent(sent.body.event_id);
    assert.deepEqual([...(merged?.pdu.prev_events ?? [])].sort(), extremities.sort());

    // Rejected and soft-failed events stay out of the timeline.
    const bad = remoteEvent('11', REMOTE, remoteKey, {
      roomId,
      type: 'm.room.topic',
      sender: bob,
      stateKey: '',
      content: { topic: 'not allowed' },
      authEvents: [...auth.slice(0, 2), join.eventId],
      prevEvents: [sent.body.event_id],
      depth: extremity.depth + 4,
    });
    assert.equal((await receive(bad, 'rejected')).status, 'rejected');
    const soft = remoteEvent('11', REMOTE, remoteKey, {
      roomId,
      type: 'm.room.message',
      sender: bob,
      content: { msgtype: 'm.text', body: 'soft' },
      authEvents: [...auth.slice(0, 2), join.eventId],
      prevEvents: [sent.body.event_id],
      depth: extremity.depth + 4,
    });
    assert.equal((await receive(soft, 'soft_failed')).status, 'soft_failed');
    assert.equal(await stores().rooms.selectEvent(bad.eventId), undefined);
    assert.equal(await stores().rooms.selectEvent(soft.eventId), undefined);
    const known = await services.roomDag.knownEvents(stores(), [bad.eventId, soft.eventId]);
    assert.equal(known.get(bad.eventId)?.status, 'rejected');
    assert.equal(known.get(soft.eventId)?.status, 'soft_failed');
    const messages = await server.request<{ chunk: { event_id: string }[] }>(
      'GET',
      `${C}/rooms/${encodeURIComponent(roomId)}/messages?dir=b&limit=50`,
      { token: alice.accessToken },
    );
    const ids = messages.body.chunk.map((e) => e.event_id);
    assert.ok(ids.includes(join.eventId) && ids.includes(late.eventId));
    assert.ok(!ids.includes(bad.eventId) && !ids.includes(soft.eventId));
    assert.equal(
      (await currentStateMap(roomId)).get(stateKeyOf('m.room.topic', '')),
      state.get(stateKeyOf('m.room.topic', '')),
    );
    // The auth chain of Bob's join.
    const chain = await services.roomDag.authChain(stores(), [join.eventId]);
    assert.deepEqual(
      chain.map((e) => e.eventId).sort(),
      [...auth, id('m.room.member', alice.userId)].sort(),
    );
  });

  for (const version of ['10', '12'] as const) {
    it(`imports a room of version ${version} from a send_join answer`, async () => {
      const room = new SignedRoom(version);
      const state = [room.create, room.aliceJoin, room.powerLevels, room.joinRules];
      await tx(async (s) => {
        await s.rooms.lockRoom(room.roomId);
        await services.roomDag.importRoom(s, {
          roomId: room.roomId,
          version,
          state,
          authChain: state,
          event: room.bobJoin,
          origin: 'a.test',
        });
      });
      const row = await stores().rooms.selectRoom(room.roomId);
      assert.equal(row?.roomVersion, version);
      assert.deepEqual(await stores().rooms.selectMembersOfRoom(room.roomId, 'join'), [ALICE, BOB]);
      assert.deepEqual(
        (await stores().rooms.selectExtremities(room.roomId)).map((e) => e.eventId),
        [room.bobJoin.eventId],
      );
      const current = await currentStateMap(room.roomId);
      assert.equal(current.size, 5);
      assert.deepEqual(
        await services.roomDag.stateAt(stores(), room.bobJoin.eventId, 'after'),
        current,
      );
      const create = await stores().rooms.selectEvent(room.create.eventId);
      assert.ok(
        create && create.streamOrdering < 0,
        'the state is in the timeline, before the join',
      );
      const chain = await services.roomDag.authChain(stores(), [room.bobJoin.eventId]);
      assert.deepEqual(
        chain.map((e) => e.eventId).sort(),
        [room.create, room.aliceJoin, room.powerLevels, room.joinRules]
          .map((e) => e.eventId)
          .sort(),
      );
    });
  }
});
