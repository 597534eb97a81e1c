/**
 * `PUT /rooms/{roomId}/state/m.room.member/{userId}`: a member event sent as state, as clients
 * do for a per-room display name (Element's /myroomnick) and some bots for every membership.
 * The auth rules judge it as any member event; a user's own event and an invite are filled in
 * with the profile where the content names none. Bodies are checked against room_state.yaml.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { expectError } from '../helpers/assertions.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { assertMatchesSpec } from '../helpers/spec-contract.js';

const C = '/_matrix/client/v3';
const SPEC = {
  file: 'room_state.yaml',
  method: 'put',
  path: '/rooms/{roomId}/state/{eventType}/{stateKey}',
} as const;

forEachDatabase('member events sent as state', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  before(async () => {
    server = await startTestServer(dialect);
    [alice, bob, carol] = [
      await registerUser(server),
      await registerUser(server),
      await registerUser(server),
    ];
    for (const [user, name] of [
      [alice, 'Alice'],
      [bob, 'Bob'],
      [carol, 'Carol'],
    ] as const) {
      const res = await server.request(
        'PUT',
        `${C}/profile/${encodeURIComponent(user.userId)}/displayname`,
        { token: user.accessToken, body: { displayname: name } },
      );
      assert.equal(res.status, 200, JSON.stringify(res.body));
    }
    const avatar = await server.request(
      'PUT',
      `${C}/profile/${encodeURIComponent(alice.userId)}/avatar_url`,
      { token: alice.accessToken, body: { avatar_url: 'mxc://test.local/alice' } },
    );
    assert.equal(avatar.status, 200, JSON.stringify(avatar.body));
  });
  after(async () => server.close());

  const room = (roomId: string) => `${C}/rooms/${encodeURIComponent(roomId)}`;
  const memberPath = (roomId: string, userId: string) =>
    `${room(roomId)}/state/m.room.member/${encodeURIComponent(userId)}`;
  const createRoom = async (preset: 'public_chat' | 'private_chat'): Promise<string> => {
    const res = await server.request<{ room_id: string }>('POST', `${C}/createRoom`, {
      token: alice.accessToken,
      body: { preset },
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body.room_id;
  };
  const putMember = (user: TestUser, roomId: string, stateKey: string, body: unknown) =>
    server.request<Record<string, unknown>>('PUT', memberPath(roomId, stateKey), {
      token: user.accessToken,
      body,
    });
  const sent = async (user: TestUser, roomId: string, stateKey: string, body: unknown) => {
    const res = await putMember(user, roomId, stateKey, body);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assertMatchesSpec(SPEC.file, SPEC.method, SPEC.path, 200, res.body);
    assert.match(String(res.body.event_id), /^\$/);
    return String(res.body.event_id);
  };
  const memberContent = async (roomId: string, userId: string) => {
    const res = await server.request<Record<string, unknown>>('GET', memberPath(roomId, userId), {
      token: alice.accessToken,
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body;
  };

  it('sets a per-room display name: the member list shows it, the profile keeps its own', async () => {
    const roomId = await createRoom('public_chat');
    await sent(alice, roomId, alice.userId, { membership: 'join', displayname: 'Alice here' });
    // The avatar the content did not name comes from the profile.
    assert.deepEqual(await memberContent(roomId, alice.userId), {
      membership: 'join',
      displayname: 'Alice here',
      avatar_url: 'mxc://test.local/alice',
    });
    const joined = await server.request<{ joined: Record<string, unknown> }>(
      'GET',
      `${room(roomId)}/joined_members`,
      { token: alice.accessToken },
    );
    assert.equal(joined.status, 200);
    assert.deepEqual(joined.body.joined, {
      [alice.userId]: { display_name: 'Alice here', avatar_url: 'mxc://test.local/alice' },
    });
    const profile = await server.request<Record<string, unknown>>(
      'GET',
      `${C}/profile/${encodeURIComponent(alice.userId)}`,
    );
    assert.equal(profile.body.displayname, 'Alice');
  });

  it('joins, invites, kicks and bans through the state endpoint, as the auth rules allow', async () => {
    const roomId = await createRoom('public_chat');
    await sent(bob, roomId, bob.userId, { membership: 'join' });
    assert.deepEqual(await memberContent(roomId, bob.userId), {
      membership: 'join',
      displayname: 'Bob',
    });
    await sent(alice, roomId, carol.userId, { membership: 'invite', reason: 'come along' });
    assert.deepEqual(await memberContent(roomId, carol.userId), {
      membership: 'invite',
      displayname: 'Carol',
      reason: 'come along',
    });
    await sent(alice, roomId, bob.userId, { membership: 'leave', reason: 'out' });
    assert.deepEqual(await memberContent(roomId, bob.userId), {
      membership: 'leave',
      reason: 'out',
    });
    await sent(alice, roomId, bob.userId, { membership: 'ban' });
    assert.equal((await memberContent(roomId, bob.userId)).membership, 'ban');
    // Banned: his own join is refused by the auth rules.
    expectError(
      await putMember(bob, roomId, bob.userId, { membership: 'join' }),
      403,
      'M_FORBIDDEN',
      SPEC,
    );
  });

  it('refuses what the auth rules refuse: 403 M_FORBIDDEN', async () => {
    const privateRoom = await createRoom('private_chat');
    const cases: Array<[string, TestUser, string, string, unknown]> = [
      [
        'joining an invite-only room uninvited',
        bob,
        privateRoom,
        bob.userId,
        { membership: 'join' },
      ],
      ['joining for someone else', alice, privateRoom, bob.userId, { membership: 'join' }],
      ['a non-member inviting', bob, privateRoom, carol.userId, { membership: 'invite' }],
      ['a non-member kicking', bob, privateRoom, alice.userId, { membership: 'leave' }],
      ['an unknown room', bob, '!nowhere:test.local', bob.userId, { membership: 'join' }],
    ];
    for (const [what, user, roomId, target, body] of cases) {
      const res = await putMember(user, roomId, target, body);
      assert.equal(res.status, 403, `${what}: ${JSON.stringify(res.body)}`);
      expectError(res, 403, 'M_FORBIDDEN', SPEC);
    }
  });

  it('refuses bad content with 400 M_BAD_JSON and a state key that is no user ID with 400 M_INVALID_PARAM', async () => {
    const roomId = await createRoom('public_chat');
    const bad: Array<[string, unknown]> = [
      ['no membership', { displayname: 'x' }],
      ['an unknown membership', { membership: 'joined' }],
      ['a membership of the wrong type', { membership: 1 }],
      ['a display name of the wrong type', { membership: 'join', displayname: 7 }],
      ['a display name over 256 characters', { membership: 'join', displayname: 'n'.repeat(257) }],
      ['an avatar of the wrong type', { membership: 'join', avatar_url: ['mxc://x/y'] }],
      [
        'an avatar over 1,000 characters',
        { membership: 'join', avatar_url: `mxc://x/${'a'.repeat(993)}` },
      ],
      ['a reason of the wrong type', { membership: 'leave', reason: {} }],
      // Kept in a column of its own, where PostgreSQL cannot store NUL.
      ['a NUL in the display name', { membership: 'join', displayname: 'a\u0000b' }],
      ['a NUL in the avatar', { membership: 'join', avatar_url: 'mxc://x/a\u0000b' }],
    ];
    for (const [what, body] of bad) {
      const res = await putMember(alice, roomId, alice.userId, body);
      assert.equal(res.status, 400, `${what}: ${JSON.stringify(res.body)}`);
      expectError(res, 400, 'M_BAD_JSON', SPEC);
    }
    expectError(
      await putMember(alice, roomId, 'alice', { membership: 'join' }),
      400,
      'M_INVALID_PARAM',
      SPEC,
    );
    // No state key at all (PUT …/state/m.room.member): not a user ID either.
    expectError(
      await server.request('PUT', `${room(roomId)}/state/m.room.member`, {
        token: alice.accessToken,
        body: { membership: 'join' },
      }),
      400,
      'M_INVALID_PARAM',
      SPEC,
    );
    // Nothing was sent: Alice is joined under her profile's name still.
    assert.equal((await memberContent(roomId, alice.userId)).displayname, 'Alice');
  });
});
