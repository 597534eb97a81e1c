import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { assertMatchesSpec } from '../helpers/spec-contract.js';
import { computeEventId } from '../../src/core/event-hashing.js';
import type { Pdu } from '../../src/core/pdu.js';

const C = '/_matrix/client/v3';

forEachDatabase('rooms and membership transitions', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  before(async () => {
    server = await startTestServer(dialect);
    alice = await registerUser(server);
    bob = await registerUser(server);
  });
  after(async () => server.close());

  const createRoom = async (user: TestUser, body: Record<string, unknown>): Promise<string> => {
    const res = await server.request<{ room_id: string }>('POST', `${C}/createRoom`, {
      token: user.accessToken,
      body,
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assertMatchesSpec('create_room.yaml', 'post', '/createRoom', 200, res.body);
    return res.body.room_id;
  };
  const post = (user: TestUser, path: string, body: unknown = {}) =>
    server.request<Record<string, unknown>>('POST', `${C}${path}`, {
      token: user.accessToken,
      body,
    });
  const membershipOf = async (
    viewer: TestUser,
    roomId: string,
    userId: string,
  ): Promise<string | undefined> => {
    const res = await server.request<Record<string, unknown>>(
      'GET',
      `${C}/rooms/${encodeURIComponent(roomId)}/state/m.room.member/${encodeURIComponent(userId)}`,
      {
        token: viewer.accessToken,
      },
    );
    return res.status === 200 ? (res.body.membership as string) : undefined;
  };

  for (const version of ['10', '11', '12']) {
    it(`room version ${version}: public room, join, message, leave, with valid reference-hash event IDs`, async () => {
      const roomId = await createRoom(alice, {
        preset: 'public_chat',
        room_version: version,
        name: 'Lobby',
      });
      if (version === '12') assert.match(roomId, /^![A-Za-z0-9_-]{43}$/);
      else assert.match(roomId, /^![A-Za-z0-9]+:test\.local$/);

      const join = await post(bob, `/join/${encodeURIComponent(roomId)}`);
      assert.equal(join.status, 200);
      assert.equal(join.body.room_id, roomId);
      assert.equal(await membershipOf(alice, roomId, bob.userId), 'join');

      const sent = await server.request<{ event_id: string }>(
        'PUT',
        `${C}/rooms/${encodeURIComponent(roomId)}/send/m.room.message/t1`,
        {
          token: bob.accessToken,
          body: { msgtype: 'm.text', body: 'hello' },
        },
      );
      assert.equal(sent.status, 200);
      const again = await server.request<{ event_id: string }>(
        'PUT',
        `${C}/rooms/${encodeURIComponent(roomId)}/send/m.room.message/t1`,
        {
          token: bob.accessToken,
          body: { msgtype: 'm.text', body: 'hello' },
        },
      );
      assert.equal(again.body.event_id, sent.body.event_id, 'same txnId, same event');

      // The stored event's ID is its reference hash.
      const stored = await server.running.storage.stores.rooms.selectEvent(sent.body.event_id);
      assert.ok(stored);
      assert.equal(
        computeEventId(stored.pdu as Pdu, version as '10' | '11' | '12'),
        sent.body.event_id,
      );

      const event = await server.request(
        'GET',
        `${C}/rooms/${encodeURIComponent(roomId)}/event/${encodeURIComponent(sent.body.event_id)}`,
        {
          token: alice.accessToken,
        },
      );
      assert.equal(event.status, 200);
      assert.equal(event.body.sender, bob.userId);
      assert.deepEqual(event.body.content, { msgtype: 'm.text', body: 'hello' });

      const state = await server.request<Record<string, unknown>[]>(
        'GET',
        `${C}/rooms/${encodeURIComponent(roomId)}/state`,
        { token: alice.accessToken },
      );
      assert.equal(state.status, 200);
      const types = state.body.map((e) => e.type);
      for (const t of [
        'm.room.create',
        'm.room.member',
        'm.room.power_levels',
        'm.room.join_rules',
        'm.room.history_visibility',
        'm.room.name',
      ]) {
        assert.ok(types.includes(t), `state has ${t}`);
      }

      assert.equal((await post(bob, `/rooms/${encodeURIComponent(roomId)}/leave`)).status, 200);
      assert.equal(await membershipOf(alice, roomId, bob.userId), 'leave');
    });
  }

  it('private room: join refused without invite; invite, reject, re-invite, accept', async () => {
    const roomId = await createRoom(alice, { preset: 'private_chat' });
    const refused = await post(bob, `/rooms/${encodeURIComponent(roomId)}/join`);
    assert.equal(refused.status, 403);
    assert.equal(refused.body.errcode, 'M_FORBIDDEN');

    assert.equal(
      (await post(alice, `/rooms/${encodeURIComponent(roomId)}/invite`, { user_id: bob.userId }))
        .status,
      200,
    );
    assert.equal(await membershipOf(alice, roomId, bob.userId), 'invite');
    assert.equal(
      (await post(bob, `/rooms/${encodeURIComponent(roomId)}/leave`)).status,
      200,
      'reject invite',
    );
    assert.equal(await membershipOf(alice, roomId, bob.userId), 'leave');
    assert.equal(
      (await post(alice, `/rooms/${encodeURIComponent(roomId)}/invite`, { user_id: bob.userId }))
        .status,
      200,
    );
    assert.equal((await post(bob, `/rooms/${encodeURIComponent(roomId)}/join`)).status, 200);
    assert.equal(await membershipOf(alice, roomId, bob.userId), 'join');
  });

  it('kick, ban, unban, and the power rules that refuse them', async () => {
    const roomId = await createRoom(alice, { preset: 'public_chat' });
    const r = encodeURIComponent(roomId);
    assert.equal((await post(bob, `/rooms/${r}/join`)).status, 200);
    const bobKicks = await post(bob, `/rooms/${r}/kick`, { user_id: alice.userId });
    assert.equal(bobKicks.status, 403);
    assert.equal(bobKicks.body.errcode, 'M_FORBIDDEN');

    assert.equal(
      (await post(alice, `/rooms/${r}/kick`, { user_id: bob.userId, reason: 'bye' })).status,
      200,
    );
    assert.equal(await membershipOf(alice, roomId, bob.userId), 'leave');
    assert.equal((await post(bob, `/rooms/${r}/join`)).status, 200);
    assert.equal((await post(alice, `/rooms/${r}/ban`, { user_id: bob.userId })).status, 200);
    assert.equal(await membershipOf(alice, roomId, bob.userId), 'ban');
    const bannedJoin = await post(bob, `/rooms/${r}/join`);
    assert.equal(bannedJoin.status, 403);
    assert.equal((await post(alice, `/rooms/${r}/unban`, { user_id: bob.userId })).status, 200);
    assert.equal(await membershipOf(alice, roomId, bob.userId), 'leave');
    assert.equal((await post(bob, `/rooms/${r}/join`)).status, 200);
  });

  it('knock: refused where the join rule is not knock; accepted by invite; refused by kick', async () => {
    const closed = await createRoom(alice, { preset: 'private_chat' });
    const refused = await post(bob, `/knock/${encodeURIComponent(closed)}`);
    assert.equal(refused.status, 403);

    const roomId = await createRoom(alice, {
      preset: 'private_chat',
      initial_state: [{ type: 'm.room.join_rules', content: { join_rule: 'knock' } }],
    });
    const r = encodeURIComponent(roomId);
    assert.equal((await post(bob, `/knock/${r}`, { reason: 'let me in' })).status, 200);
    assert.equal(await membershipOf(alice, roomId, bob.userId), 'knock');
    assert.equal(
      (await post(alice, `/rooms/${r}/kick`, { user_id: bob.userId })).status,
      200,
      'refuse knock',
    );
    assert.equal(await membershipOf(alice, roomId, bob.userId), 'leave');
    assert.equal((await post(bob, `/knock/${r}`)).status, 200);
    assert.equal(
      (await post(alice, `/rooms/${r}/invite`, { user_id: bob.userId })).status,
      200,
      'accept knock',
    );
    assert.equal((await post(bob, `/rooms/${r}/join`)).status, 200);
  });

  it('restricted join via membership of another room', async () => {
    const space = await createRoom(alice, { preset: 'private_chat' });
    const roomId = await createRoom(alice, {
      preset: 'private_chat',
      initial_state: [
        {
          type: 'm.room.join_rules',
          content: {
            join_rule: 'restricted',
            allow: [{ type: 'm.room_membership', room_id: space }],
          },
        },
      ],
    });
    assert.equal((await post(bob, `/rooms/${encodeURIComponent(roomId)}/join`)).status, 403);
    assert.equal(
      (await post(alice, `/rooms/${encodeURIComponent(space)}/invite`, { user_id: bob.userId }))
        .status,
      200,
    );
    assert.equal((await post(bob, `/rooms/${encodeURIComponent(space)}/join`)).status, 200);
    assert.equal((await post(bob, `/rooms/${encodeURIComponent(roomId)}/join`)).status, 200);
  });

  it('forget needs leaving first; errors for bad input', async () => {
    const roomId = await createRoom(alice, { preset: 'public_chat' });
    const r = encodeURIComponent(roomId);
    assert.equal((await post(bob, `/rooms/${r}/join`)).status, 200);
    const early = await post(bob, `/rooms/${r}/forget`);
    assert.equal(early.status, 400);
    assert.equal((await post(bob, `/rooms/${r}/leave`)).status, 200);
    assert.equal((await post(bob, `/rooms/${r}/forget`)).status, 200);

    const badVersion = await server.request('POST', `${C}/createRoom`, {
      token: alice.accessToken,
      body: { room_version: '999' },
    });
    assert.equal(badVersion.status, 400);
    assert.equal(badVersion.body.errcode, 'M_UNSUPPORTED_ROOM_VERSION');
    const badInvitee = await post(alice, `/rooms/${r}/invite`, { user_id: 'not-a-user' });
    assert.equal(badInvitee.status, 400);
    assert.equal(badInvitee.body.errcode, 'M_INVALID_PARAM');
    const unknownJoin = await post(bob, `/join/${encodeURIComponent('#nowhere:test.local')}`);
    assert.equal(unknownJoin.status, 404);
    const badRoomId = await post(bob, `/rooms/${encodeURIComponent('nonsense')}/leave`);
    assert.equal(badRoomId.status, 400);
    const noToken = await server.request('POST', `${C}/createRoom`, { body: {} });
    assert.equal(noToken.status, 401);
  });

  it('alias: created with the room, joinable by alias, taken twice is M_ROOM_IN_USE', async () => {
    const alias = `lobby${dialect}`;
    const roomId = await createRoom(alice, { preset: 'public_chat', room_alias_name: alias });
    const join = await post(bob, `/join/${encodeURIComponent(`#${alias}:test.local`)}`);
    assert.equal(join.status, 200);
    assert.equal(join.body.room_id, roomId);
    const taken = await server.request('POST', `${C}/createRoom`, {
      token: alice.accessToken,
      body: { room_alias_name: alias },
    });
    assert.equal(taken.status, 400);
    assert.equal(taken.body.errcode, 'M_ROOM_IN_USE');
  });

  it('display name changes update member events in joined rooms', async () => {
    const roomId = await createRoom(alice, { preset: 'public_chat' });
    const put = await server.request(
      'PUT',
      `${C}/profile/${encodeURIComponent(alice.userId)}/displayname`,
      {
        token: alice.accessToken,
        body: { displayname: 'Alice Liddell' },
      },
    );
    assert.equal(put.status, 200);
    const member = await server.request(
      'GET',
      `${C}/rooms/${encodeURIComponent(roomId)}/state/m.room.member/${encodeURIComponent(alice.userId)}`,
      {
        token: alice.accessToken,
      },
    );
    assert.equal(member.body.displayname, 'Alice Liddell');
  });

  it('capabilities advertise room versions 10-12 with 10 the default (the spec suggestion)', async () => {
    const res = await server.request<{
      capabilities: { 'm.room_versions': { default: string; available: Record<string, string> } };
    }>('GET', `${C}/capabilities`, {
      token: alice.accessToken,
    });
    assert.equal(res.status, 200);
    assertMatchesSpec('capabilities.yaml', 'get', '/capabilities', 200, res.body);
    assert.equal(res.body.capabilities['m.room_versions'].default, '10');
    assert.deepEqual(Object.keys(res.body.capabilities['m.room_versions'].available).sort(), [
      '10',
      '11',
      '12',
    ]);
  });
});
