/**
 * Invite blocking (spec v1.18, MSC4380): `m.invite_permission_config` with
 * `default_action: "block"` makes invites of the user 403 `M_INVITE_BLOCKED` on `/invite`,
 * on `PUT /state/m.room.member/…`, and leaves them out of `createRoom` (the room is created);
 * pending invites are not served by `/sync` nor sliding sync while blocking is on. Any other
 * value blocks nothing. (Invites from other servers: test/http/federation-remote-members.test.ts.)
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const r = encodeURIComponent;

forEachDatabase('invite blocking (m.invite_permission_config)', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  let roomId: string;

  const as =
    (user: TestUser) =>
    <T = Record<string, unknown>>(method: string, path: string, body?: unknown) =>
      server.request<T>(method, `/_matrix/client/v3${path}`, {
        token: user.accessToken,
        ...(body !== undefined ? { body } : {}),
      });
  const setPermission = async (
    user: TestUser,
    content: unknown,
    type = 'm.invite_permission_config',
  ) => {
    const put = await as(user)('PUT', `/user/${r(user.userId)}/account_data/${type}`, content);
    assert.equal(put.status, 200, JSON.stringify(put.body));
  };
  const membershipOf = async (room: string, userId: string) => {
    const members = await as(alice)<{
      chunk: { state_key: string; content: { membership: string } }[];
    }>('GET', `/rooms/${r(room)}/members`);
    assert.equal(members.status, 200);
    return members.body.chunk.find((e) => e.state_key === userId)?.content.membership;
  };
  const invitesInSync = async (user: TestUser) => {
    const sync = await as(user)<{ rooms?: { invite?: Record<string, unknown> } }>('GET', '/sync');
    assert.equal(sync.status, 200);
    return Object.keys(sync.body.rooms?.invite ?? {});
  };
  const blocked = (answer: { status: number; body: unknown }) => {
    assert.equal(answer.status, 403, JSON.stringify(answer.body));
    assert.equal((answer.body as { errcode: string }).errcode, 'M_INVITE_BLOCKED');
  };

  before(async () => {
    server = await startTestServer(dialect);
    alice = await registerUser(server, 'alice');
    bob = await registerUser(server, 'bob');
    carol = await registerUser(server, 'carol');
    const created = await as(alice)<{ room_id: string }>('POST', '/createRoom', {
      preset: 'private_chat',
    });
    assert.equal(created.status, 200);
    roomId = created.body.room_id;
  });
  after(() => server?.close());

  it('refuses /invite and an invite through /state with M_INVITE_BLOCKED', async () => {
    await setPermission(bob, { default_action: 'block' });
    blocked(await as(alice)('POST', `/rooms/${r(roomId)}/invite`, { user_id: bob.userId }));
    blocked(
      await as(alice)('PUT', `/rooms/${r(roomId)}/state/m.room.member/${r(bob.userId)}`, {
        membership: 'invite',
      }),
    );
    assert.equal(await membershipOf(roomId, bob.userId), undefined);
    // Carol, who blocks nothing, is invited as usual.
    const invited = await as(alice)('POST', `/rooms/${r(roomId)}/invite`, {
      user_id: carol.userId,
    });
    assert.equal(invited.status, 200);
  });

  it('createRoom leaves a blocking invitee out and creates the room', async () => {
    const created = await as(alice)<{ room_id: string }>('POST', '/createRoom', {
      preset: 'private_chat',
      invite: [bob.userId, carol.userId],
    });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    assert.equal(await membershipOf(created.body.room_id, bob.userId), undefined);
    assert.equal(await membershipOf(created.body.room_id, carol.userId), 'invite');
  });

  it('values other than "block" block nothing; the unstable name blocks too', async () => {
    for (const content of [{}, { default_action: 'allow' }, { default_action: 42 }]) {
      await setPermission(bob, content);
      const room = await as(alice)<{ room_id: string }>('POST', '/createRoom', {
        preset: 'private_chat',
      });
      const invited = await as(alice)('POST', `/rooms/${r(room.body.room_id)}/invite`, {
        user_id: bob.userId,
      });
      assert.equal(invited.status, 200, JSON.stringify(content));
    }
    await setPermission(
      bob,
      { default_action: 'block' },
      'org.matrix.msc4380.invite_permission_config',
    );
    blocked(await as(alice)('POST', `/rooms/${r(roomId)}/invite`, { user_id: bob.userId }));
    await setPermission(bob, {}, 'org.matrix.msc4380.invite_permission_config');
  });

  it('/sync leaves out pending invites while blocking is on, and shows them after', async () => {
    const room = await as(alice)<{ room_id: string }>('POST', '/createRoom', {
      preset: 'private_chat',
      invite: [carol.userId],
    });
    assert.ok((await invitesInSync(carol)).includes(room.body.room_id));
    await setPermission(carol, { default_action: 'block' });
    assert.deepEqual(await invitesInSync(carol), []);
    // Sliding sync lists none either, nor shows it when subscribed to.
    const slide = async (filters: Record<string, unknown>) => {
      const answer = await server.request<{
        lists: Record<string, { count: number }>;
        rooms: Record<string, unknown>;
      }>('POST', '/_matrix/client/unstable/org.matrix.simplified_msc3575/sync', {
        token: carol.accessToken,
        body: {
          lists: { all: { ranges: [[0, 99]], timeline_limit: 1, filters } },
          room_subscriptions: { [room.body.room_id]: { timeline_limit: 1 } },
        },
      });
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      return answer.body;
    };
    for (const filters of [{}, { is_invite: true }]) {
      const answer = await slide(filters);
      assert.equal(answer.rooms[room.body.room_id], undefined, JSON.stringify(filters));
    }
    assert.equal((await slide({ is_invite: true })).lists.all?.count, 0);
    // The invite itself stands: Carol can still accept it.
    assert.equal(await membershipOf(room.body.room_id, carol.userId), 'invite');
    await setPermission(carol, {});
    assert.ok((await invitesInSync(carol)).includes(room.body.room_id));
    assert.ok((await slide({ is_invite: true })).rooms[room.body.room_id]);
    const joined = await as(carol)('POST', `/rooms/${r(room.body.room_id)}/join`, {});
    assert.equal(joined.status, 200);
  });
});
