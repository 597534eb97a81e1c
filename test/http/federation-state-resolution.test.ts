/**
 * Three Commons servers in one room build real forks and resolve them the same way: each
 * server's federation sender is stopped (a partition: events queue in the outbox), users on
 * two sides make concurrent changes, and the senders start again in a chosen order. Every
 * server must end with the same `/state`, and with the answers derived from it agreeing:
 * `/members`, `/joined_members`, `/joined_rooms` and `GET /_matrix/client/v1/mutual_rooms`
 * with a user of another server, before and after a resolution that removes a join.
 *
 * A (alice, eve) hosts the rooms; B (bob) and C (carol, a second admin) join them.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { eventually } from '../helpers/eventually.js';
import { makeTestCa, startFederatedServer, type TestCa } from '../helpers/federation.js';
import type { TestServer } from '../helpers/server.js';

type Federated = TestServer & { serverName: string; port: number };
const r = encodeURIComponent;

interface ClientEvent {
  event_id: string;
  type: string;
  state_key?: string;
  content: Record<string, unknown>;
}

interface SyncBody {
  next_batch: string;
  rooms?: {
    join?: Record<
      string,
      { state?: { events: ClientEvent[] }; timeline?: { events: ClientEvent[] } }
    >;
    leave?: Record<
      string,
      { state?: { events: ClientEvent[] }; timeline?: { events: ClientEvent[] } }
    >;
  };
}

const WAIT_MS = 30_000;

forEachDatabase('state resolution across three Commons servers', (dialect) => {
  let ca: TestCa;
  let a: Federated;
  let b: Federated;
  let c: Federated;
  let alice: TestUser;
  let eve: TestUser;
  let bob: TestUser;
  let carol: TestUser;

  const as =
    (server: Federated, user: TestUser) =>
    <T = Record<string, unknown>>(method: string, path: string, body?: unknown) =>
      server.request<T>(method, path.startsWith('/_matrix') ? path : `/_matrix/client/v3${path}`, {
        token: user.accessToken,
        ...(body !== undefined ? { body } : {}),
      });

  const senderOf = (server: Federated) => {
    const federation = server.running.services.federation;
    assert.ok(federation, 'federation is enabled');
    return federation.sender;
  };
  /** A partition: nothing leaves any server until its sender starts again. */
  async function partition(): Promise<void> {
    for (const server of [a, b, c]) await senderOf(server).stop();
  }
  const heal = (server: Federated) => senderOf(server).start();

  /** The current state as event IDs by type and state key, sorted. */
  async function stateOf(server: Federated, user: TestUser, roomId: string): Promise<string[]> {
    const answer = await as(server, user)<ClientEvent[]>('GET', `/rooms/${r(roomId)}/state`);
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    return answer.body.map((e) => `${e.type}|${e.state_key ?? ''}|${e.event_id}`).sort();
  }
  async function joinedOf(server: Federated, user: TestUser, roomId: string): Promise<string[]> {
    const answer = await as(server, user)<{ joined: Record<string, unknown> }>(
      'GET',
      `/rooms/${r(roomId)}/joined_members`,
    );
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    return Object.keys(answer.body.joined).sort();
  }
  /** `/members` as user → membership, sorted. */
  async function membersOf(server: Federated, user: TestUser, roomId: string): Promise<string[]> {
    const answer = await as(server, user)<{ chunk: ClientEvent[] }>(
      'GET',
      `/rooms/${r(roomId)}/members`,
    );
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    return answer.body.chunk
      .map((e) => `${e.state_key ?? ''}=${String(e.content.membership)}`)
      .sort();
  }
  /** `/members?at=` (a sync token) as user → membership, sorted. */
  async function membersAt(
    server: Federated,
    user: TestUser,
    roomId: string,
    at: string,
  ): Promise<string[]> {
    const answer = await as(server, user)<{ chunk: ClientEvent[] }>(
      'GET',
      `/rooms/${r(roomId)}/members?at=${r(at)}`,
    );
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    return answer.body.chunk
      .map((e) => `${e.state_key ?? ''}=${String(e.content.membership)}`)
      .sort();
  }
  /** A sync token of the user's now. */
  const tokenOf = async (server: Federated, user: TestUser) =>
    (await as(server, user)<SyncBody>('GET', '/sync?timeout=0')).body.next_batch;
  async function joinedRoomsOf(server: Federated, user: TestUser): Promise<string[]> {
    const answer = await as(server, user)<{ joined_rooms: string[] }>('GET', '/joined_rooms');
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    return [...answer.body.joined_rooms].sort();
  }
  async function mutualRooms(server: Federated, user: TestUser, other: string): Promise<string[]> {
    const answer = await as(server, user)<{ joined: string[] }>(
      'GET',
      `/_matrix/client/v1/mutual_rooms?user_id=${r(other)}`,
    );
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    return [...answer.body.joined].sort();
  }
  async function until<T>(ask: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
    return eventually(ask, done, WAIT_MS);
  }
  /** Every server ends with the same state; returns it. */
  async function sameStateEverywhere(roomId: string): Promise<string[]> {
    const states = await until(
      async () => [
        await stateOf(a, alice, roomId),
        await stateOf(b, bob, roomId),
        await stateOf(c, carol, roomId),
      ],
      ([x, y, z]) =>
        JSON.stringify(x) === JSON.stringify(y) && JSON.stringify(y) === JSON.stringify(z),
    );
    assert.deepEqual(states[1], states[0], 'B resolves the fork as A does');
    assert.deepEqual(states[2], states[0], 'C resolves the fork as A does');
    return states[0] as string[];
  }

  /** A room of A's (version `version`) with alice and carol as admins, bob and carol joined. */
  async function sharedRoom(version: string): Promise<string> {
    const created = await as(a, alice)<{ room_id: string }>('POST', '/createRoom', {
      preset: 'public_chat',
      room_version: version,
      // In version 12 the creator's power is infinite and may not be listed.
      power_level_content_override: {
        users: { ...(version === '12' ? {} : { [alice.userId]: 100 }), [carol.userId]: 100 },
      },
    });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    const roomId = created.body.room_id;
    for (const [server, user] of [
      [b, bob],
      [c, carol],
    ] as const) {
      const joined = await as(server, user)(
        'POST',
        `/join/${r(roomId)}?server_name=${r(a.serverName)}`,
        {},
      );
      assert.equal(joined.status, 200, JSON.stringify(joined.body));
    }
    const everyone = [alice.userId, bob.userId, carol.userId].sort();
    for (const [server, user] of [
      [a, alice],
      [b, bob],
      [c, carol],
    ] as const) {
      assert.deepEqual(
        await until(
          () => joinedOf(server, user, roomId),
          (j) => JSON.stringify(j) === JSON.stringify(everyone),
        ),
        everyone,
      );
    }
    return roomId;
  }

  before(async () => {
    ca = makeTestCa();
    a = await startFederatedServer(dialect, ca);
    b = await startFederatedServer(dialect, ca);
    c = await startFederatedServer(dialect, ca);
    alice = await registerUser(a, 'alice');
    eve = await registerUser(a, 'eve');
    bob = await registerUser(b, 'bob');
    carol = await registerUser(c, 'carol');
  });
  after(async () => {
    // A sender stopped by a failed test would leave its outbox; close() stops it anyway.
    await a?.close();
    await b?.close();
    await c?.close();
    rmSync(ca.dir, { recursive: true, force: true });
  });

  for (const version of ['11', '12']) {
    it(`v${version}: a join rule change racing a join removes the join everywhere, and everything derived follows`, async () => {
      const roomId = await sharedRoom(version);
      const bobSince = (await as(b, bob)<SyncBody>('GET', '/sync')).body.next_batch;
      const eveSince = await tokenOf(a, eve);

      await partition();
      // A's side: eve joins while the room is public. C's side: carol makes it invite-only.
      const joined = await as(a, eve)('POST', `/rooms/${r(roomId)}/join`, {});
      assert.equal(joined.status, 200, JSON.stringify(joined.body));
      const rules = await as(c, carol)<{ event_id: string }>(
        'PUT',
        `/rooms/${r(roomId)}/state/m.room.join_rules/`,
        { join_rule: 'invite' },
      );
      assert.equal(rules.status, 200, JSON.stringify(rules.body));

      // A's side reaches B first: B sees eve joined, and shares the room with her.
      heal(a);
      const withEve = [alice.userId, bob.userId, carol.userId, eve.userId].sort();
      assert.deepEqual(
        await until(
          () => joinedOf(b, bob, roomId),
          (j) => j.includes(eve.userId),
        ),
        withEve,
      );
      assert.deepEqual(await mutualRooms(b, bob, eve.userId), [roomId]);
      assert.deepEqual(await mutualRooms(a, alice, eve.userId), [roomId]);
      assert.ok((await joinedRoomsOf(a, eve)).includes(roomId));
      const eveMid = await tokenOf(a, eve);
      const eveMidSync = await as(a, eve)<SyncBody>('GET', `/sync?since=${r(eveSince)}`);
      assert.ok(eveMidSync.body.rooms?.join?.[roomId], 'eve is joined before resolution');

      // C's side arrives: resolution puts the join rule first, and eve's join fails it.
      heal(c);
      heal(b);
      const state = await sameStateEverywhere(roomId);
      assert.ok(state.includes(`m.room.join_rules||${rules.body.event_id}`), 'invite-only wins');
      assert.ok(!state.some((e) => e.startsWith(`m.room.member|${eve.userId}|`)), 'no eve entry');

      const members = [alice.userId, bob.userId, carol.userId].sort();
      for (const [server, user] of [
        [a, alice],
        [b, bob],
        [c, carol],
      ] as const) {
        assert.deepEqual(await joinedOf(server, user, roomId), members, server.serverName);
        assert.deepEqual(
          await membersOf(server, user, roomId),
          members.map((m) => `${m}=join`).sort(),
          server.serverName,
        );
      }
      // The pair index lost the room on both servers that had it; eve's rooms too.
      assert.deepEqual(await mutualRooms(b, bob, eve.userId), []);
      assert.deepEqual(await mutualRooms(a, alice, eve.userId), []);
      assert.deepEqual(
        await mutualRooms(a, alice, bob.userId),
        await mutualRooms(b, bob, alice.userId),
      );
      assert.ok(!(await joinedRoomsOf(a, eve)).includes(roomId));
      // Eve's clients are told: the room moves to `leave` in /sync (from before her join, and
      // from while she was joined), with the join rule that won in its timeline.
      for (const since of [eveSince, eveMid]) {
        const eveSync = await as(a, eve)<SyncBody>('GET', `/sync?since=${r(since)}`);
        assert.equal(eveSync.status, 200, JSON.stringify(eveSync.body));
        assert.equal(eveSync.body.rooms?.join?.[roomId], undefined, JSON.stringify(eveSync.body));
        const left = eveSync.body.rooms?.leave?.[roomId];
        assert.ok(left, JSON.stringify(eveSync.body.rooms));
        assert.ok(
          (left.timeline?.events ?? []).some((e) => e.event_id === rules.body.event_id),
          JSON.stringify(left),
        );
        // Once told, it is not news again.
        const again = await as(a, eve)<SyncBody>(
          'GET',
          `/sync?timeout=0&since=${r(eveSync.body.next_batch)}`,
        );
        assert.equal(again.body.rooms?.leave?.[roomId], undefined);
        assert.equal(again.body.rooms?.join?.[roomId], undefined);
      }
      // An initial sync with include_leave lists it among left rooms, not joined ones.
      const filter = JSON.stringify({ room: { include_leave: true } });
      const initial = await as(a, eve)<SyncBody>('GET', `/sync?filter=${r(filter)}`);
      assert.equal(initial.body.rooms?.join?.[roomId], undefined);
      assert.ok(initial.body.rooms?.leave?.[roomId], JSON.stringify(initial.body.rooms));
      // Member lists as of a token after the resolution do not show the removed join, on the
      // server that had it as a local join and on the one that had received it.
      for (const [server, user] of [
        [a, alice],
        [b, bob],
      ] as const) {
        const at = await tokenOf(server, user);
        assert.deepEqual(
          await membersAt(server, user, roomId, at),
          members.map((m) => `${m}=join`).sort(),
          server.serverName,
        );
      }
      // Room summaries (heroes and counts in /sync) follow membership.
      const synced = await as(b, bob)<
        SyncBody & { rooms?: { join?: Record<string, { summary?: Record<string, unknown> }> } }
      >('GET', `/sync?since=${r(bobSince)}`);
      const summary = synced.body.rooms?.join?.[roomId]?.summary;
      if (summary?.['m.joined_member_count'] !== undefined)
        assert.equal(summary['m.joined_member_count'], 3);
      const seen = [
        ...(synced.body.rooms?.join?.[roomId]?.timeline?.events ?? []),
        ...(synced.body.rooms?.join?.[roomId]?.state?.events ?? []),
      ];
      assert.ok(
        seen.some((e) => e.event_id === rules.body.event_id),
        'bob’s /sync shows the join rule that won',
      );
    });
  }

  it('a ban racing a join: the ban wins on every server, the banned user’s room leaves every pair', async () => {
    const roomId = await sharedRoom('11');
    const eveSince = await tokenOf(a, eve);
    await partition();
    const joined = await as(a, eve)('POST', `/rooms/${r(roomId)}/join`, {});
    assert.equal(joined.status, 200, JSON.stringify(joined.body));
    const ban = await as(c, carol)<{ event_id: string }>('POST', `/rooms/${r(roomId)}/ban`, {
      user_id: eve.userId,
      reason: 'racing',
    });
    assert.equal(ban.status, 200, JSON.stringify(ban.body));
    heal(a);
    await until(
      () => joinedOf(b, bob, roomId),
      (j) => j.includes(eve.userId),
    );
    assert.deepEqual(await mutualRooms(b, bob, eve.userId), [roomId]);
    heal(c);
    heal(b);
    const state = await sameStateEverywhere(roomId);
    assert.ok(state.some((e) => e.startsWith(`m.room.member|${eve.userId}|`)));
    for (const [server, user] of [
      [a, alice],
      [b, bob],
      [c, carol],
    ] as const) {
      assert.ok(
        (await membersOf(server, user, roomId)).includes(`${eve.userId}=ban`),
        server.serverName,
      );
      assert.ok(!(await joinedOf(server, user, roomId)).includes(eve.userId), server.serverName);
    }
    assert.deepEqual(await mutualRooms(b, bob, eve.userId), []);
    assert.ok(!(await joinedRoomsOf(a, eve)).includes(roomId));
    // Eve's join was resolved away: her /sync has the room under `leave`, with the ban.
    const eveSync = await as(a, eve)<SyncBody>('GET', `/sync?since=${r(eveSince)}`);
    assert.equal(eveSync.body.rooms?.join?.[roomId], undefined, JSON.stringify(eveSync.body));
    const left = eveSync.body.rooms?.leave?.[roomId];
    assert.ok(left, JSON.stringify(eveSync.body.rooms));
    assert.ok(
      [...(left.timeline?.events ?? []), ...(left.state?.events ?? [])].some(
        (e) => e.state_key === eve.userId && e.content.membership === 'ban',
      ),
      JSON.stringify(left),
    );
    // Member lists as of a token after it: eve is banned, not joined, on every server.
    for (const [server, user] of [
      [a, alice],
      [b, bob],
      [c, carol],
    ] as const) {
      const listed = await membersAt(server, user, roomId, await tokenOf(server, user));
      assert.ok(listed.includes(`${eve.userId}=ban`), `${server.serverName}: ${listed.join()}`);
      assert.ok(!listed.includes(`${eve.userId}=join`), server.serverName);
    }
  });

  it('a kick by an admin demoted meanwhile: the member entry returns to the old join, which /members?at= shows', async () => {
    const roomId = await sharedRoom('12');
    const levelsUrl = `/rooms/${r(roomId)}/state/m.room.power_levels/`;
    const levels = (await as(a, alice)<Record<string, unknown>>('GET', levelsUrl)).body;
    const users = levels.users as Record<string, number>;
    const bobJoin = (await stateOf(b, bob, roomId))
      .find((e) => e.startsWith(`m.room.member|${bob.userId}|`))
      ?.split('|')[2];
    assert.ok(bobJoin);

    await partition();
    // C's side: carol kicks bob. A's side: alice (the creator) takes carol's power away.
    const kick = await as(c, carol)('POST', `/rooms/${r(roomId)}/kick`, { user_id: bob.userId });
    assert.equal(kick.status, 200, JSON.stringify(kick.body));
    const demoted = await as(a, alice)('PUT', levelsUrl, {
      ...levels,
      users: { ...users, [carol.userId]: 0 },
    });
    assert.equal(demoted.status, 200, JSON.stringify(demoted.body));
    // The kick reaches B first: bob is out there.
    heal(c);
    await until(
      async () => (await joinedRoomsOf(b, bob)).includes(roomId),
      (joined) => !joined,
    );
    // The demotion arrives: resolution orders it first, the kick fails, bob's join is back.
    heal(a);
    heal(b);
    const state = await sameStateEverywhere(roomId);
    assert.ok(state.includes(`m.room.member|${bob.userId}|${bobJoin}`), 'the old join holds');
    for (const [server, user] of [
      [b, bob],
      [c, carol],
    ] as const) {
      // A token then, read once the stream has moved on (as of now is read elsewhere).
      const at = await tokenOf(server, user);
      const sent = await as(server, user)('PUT', `/rooms/${r(roomId)}/send/m.room.message/t${at}`, {
        msgtype: 'm.text',
        body: 'later',
      });
      assert.equal(sent.status, 200, JSON.stringify(sent.body));
      const answer = await as(server, user)<{ chunk: ClientEvent[] }>(
        'GET',
        `/rooms/${r(roomId)}/members?at=${r(at)}`,
      );
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      const entry = answer.body.chunk.find((e) => e.state_key === bob.userId);
      assert.equal(entry?.event_id, bobJoin, `${server.serverName}: ${JSON.stringify(entry)}`);
      assert.equal(entry?.type, 'm.room.member');
      assert.equal(entry?.content.membership, 'join');
    }
  });

  it('concurrent power level changes resolve to the same state on every server', async () => {
    const roomId = await sharedRoom('12');
    await partition();
    const levels = await as(a, alice)<Record<string, unknown>>(
      'GET',
      `/rooms/${r(roomId)}/state/m.room.power_levels/`,
    );
    assert.equal(levels.status, 200);
    const users = levels.body.users as Record<string, number>;
    const fromA = await as(a, alice)<{ event_id: string }>(
      'PUT',
      `/rooms/${r(roomId)}/state/m.room.power_levels/`,
      { ...levels.body, users: { ...users, [bob.userId]: 50 } },
    );
    assert.equal(fromA.status, 200, JSON.stringify(fromA.body));
    const fromC = await as(c, carol)<{ event_id: string }>(
      'PUT',
      `/rooms/${r(roomId)}/state/m.room.power_levels/`,
      { ...levels.body, users: { ...users, [bob.userId]: 20 }, state_default: 60 },
    );
    assert.equal(fromC.status, 200, JSON.stringify(fromC.body));
    heal(a);
    heal(c);
    heal(b);
    const state = await sameStateEverywhere(roomId);
    const winner = state.find((e) => e.startsWith('m.room.power_levels||'));
    assert.ok(
      winner === `m.room.power_levels||${fromA.body.event_id}` ||
        winner === `m.room.power_levels||${fromC.body.event_id}`,
      String(winner),
    );
    // Every server reads the same levels (the client API's answer, from current state).
    const read = await Promise.all(
      [
        [a, alice],
        [b, bob],
        [c, carol],
      ].map(async ([server, user]) =>
        JSON.stringify(
          (
            await as(server as Federated, user as TestUser)(
              'GET',
              `/rooms/${r(roomId)}/state/m.room.power_levels/`,
            )
          ).body,
        ),
      ),
    );
    assert.equal(read[1], read[0]);
    assert.equal(read[2], read[0]);
  });

  it('a demotion racing a topic change reverts the topic to an older event; /sync sends it as state', async () => {
    const roomId = await sharedRoom('11');
    const topicUrl = `/rooms/${r(roomId)}/state/m.room.topic/`;
    const levelsUrl = `/rooms/${r(roomId)}/state/m.room.power_levels/`;
    const levels = (await as(a, alice)<Record<string, unknown>>('GET', levelsUrl)).body;
    const users = levels.users as Record<string, number>;
    const promoted = await as(a, alice)<{ event_id: string }>('PUT', levelsUrl, {
      ...levels,
      users: { ...users, [bob.userId]: 50 },
    });
    assert.equal(promoted.status, 200, JSON.stringify(promoted.body));
    const first = await as(a, alice)<{ event_id: string }>('PUT', topicUrl, { topic: 'first' });
    assert.equal(first.status, 200, JSON.stringify(first.body));
    for (const [server, user] of [
      [b, bob],
      [c, carol],
    ] as const)
      await until(
        async () => (await as(server, user)<{ topic?: string }>('GET', topicUrl)).body.topic,
        (topic) => topic === 'first',
      );
    const aliceSince = (await as(a, alice)<SyncBody>('GET', '/sync')).body.next_batch;

    await partition();
    // B's side: bob changes the topic. C's side: carol takes bob's power away.
    const second = await as(b, bob)<{ event_id: string }>('PUT', topicUrl, { topic: 'second' });
    assert.equal(second.status, 200, JSON.stringify(second.body));
    const demoted = await as(c, carol)<{ event_id: string }>('PUT', levelsUrl, {
      ...levels,
      users: { ...users, [bob.userId]: 0 },
    });
    assert.equal(demoted.status, 200, JSON.stringify(demoted.body));
    heal(b);
    await until(
      async () => (await as(a, alice)<{ topic?: string }>('GET', topicUrl)).body.topic,
      (topic) => topic === 'second',
    );
    const midSince = (await as(a, alice)<SyncBody>('GET', `/sync?since=${r(aliceSince)}`)).body
      .next_batch;
    heal(c);
    heal(a);
    const state = await sameStateEverywhere(roomId);
    assert.ok(state.includes(`m.room.topic||${first.body.event_id}`), 'the older topic is back');
    assert.ok(state.includes(`m.room.power_levels||${demoted.body.event_id}`));
    for (const [server, user] of [
      [a, alice],
      [b, bob],
      [c, carol],
    ] as const)
      assert.equal(
        (await as(server, user)<{ topic?: string }>('GET', topicUrl)).body.topic,
        'first',
        server.serverName,
      );
    // Alice's client learns of the revert: the older topic event comes as state.
    const synced = await as(a, alice)<SyncBody>('GET', `/sync?since=${r(midSince)}`);
    const room = synced.body.rooms?.join?.[roomId];
    assert.ok(
      (room?.state?.events ?? []).some((e) => e.event_id === first.body.event_id),
      JSON.stringify(room),
    );
    assert.ok((room?.timeline?.events ?? []).some((e) => e.event_id === demoted.body.event_id));
  });
});
