/**
 * Memberships of rooms on another Commons that A is not in (outbound make_leave/send_leave v2
 * and make_knock/send_knock v1): an invite rejected (rooms of versions 11 and 12, then
 * forgotten), an invite rejected while the inviting server is down (kept here alone), a knock
 * with `via` seen in /sync with the room's stripped state, rescinded, made again and accepted
 * with an invite, and joins after an invite through the inviter's server (a version 12 room
 * joined by ID without `via`); an account deactivated leaves its invites and knocks there.
 * Refusals and unreachable servers.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { passwordAuth, registerUser, type TestUser } from '../helpers/client.js';
import { eventually } from '../helpers/eventually.js';
import { makeTestCa, startFederatedServer, type TestCa } from '../helpers/federation.js';
import type { TestServer } from '../helpers/server.js';

type Federated = TestServer & { serverName: string; port: number };
const r = encodeURIComponent;

interface StrippedEvent {
  type: string;
  state_key: string;
  sender: string;
  content: Record<string, unknown>;
}
interface SyncBody {
  next_batch: string;
  rooms?: {
    invite?: Record<string, { invite_state: { events: StrippedEvent[] } }>;
    knock?: Record<string, { knock_state: { events: StrippedEvent[] } }>;
    leave?: Record<
      string,
      {
        timeline: {
          events: { type: string; state_key?: string; content: { membership?: string } }[];
        };
      }
    >;
    join?: Record<string, unknown>;
  };
}

forEachDatabase('memberships of rooms on another Commons', (dialect) => {
  let ca: TestCa;
  let a: Federated;
  let b: Federated;
  let alice: TestUser;
  let bob: TestUser;

  const as =
    (server: Federated, user: TestUser) =>
    <T = Record<string, unknown>>(method: string, path: string, body?: unknown) =>
      server.request<T>(method, `/_matrix/client/v3${path}`, {
        token: user.accessToken,
        ...(body !== undefined ? { body } : {}),
      });
  /** The membership B's room state gives a user (once it has reached B). */
  const membershipOnB = async (roomId: string, userId: string) =>
    (
      await as(b, bob)<{ membership?: string }>(
        'GET',
        `/rooms/${r(roomId)}/state/m.room.member/${r(userId)}`,
      )
    ).body.membership;
  const waitMembershipOnB = (roomId: string, userId: string, wanted: string) =>
    eventually(
      () => membershipOnB(roomId, userId),
      (m) => m === wanted,
      20_000,
    );
  /** Alice's full /sync (with left rooms). */
  const aliceSync = async () =>
    (
      await as(a, alice)<SyncBody>(
        'GET',
        `/sync?filter=${r(JSON.stringify({ room: { include_leave: true } }))}`,
      )
    ).body;
  async function createOnB(version: string, joinRule: string, name: string): Promise<string> {
    const created = await as(b, bob)<{ room_id: string }>('POST', '/createRoom', {
      room_version: version,
      name,
      initial_state: [
        { type: 'm.room.join_rules', state_key: '', content: { join_rule: joinRule } },
      ],
    });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    return created.body.room_id;
  }
  async function inviteAlice(roomId: string): Promise<void> {
    const invited = await as(b, bob)('POST', `/rooms/${r(roomId)}/invite`, {
      user_id: alice.userId,
    });
    assert.equal(invited.status, 200, JSON.stringify(invited.body));
    const sync = await aliceSync();
    assert.ok(sync.rooms?.invite?.[roomId], 'the invite is in /sync');
  }

  before(async () => {
    ca = makeTestCa();
    a = await startFederatedServer(dialect, ca);
    b = await startFederatedServer(dialect, ca);
    alice = await registerUser(a, 'alice');
    bob = await registerUser(b, 'bob');
  });
  after(async () => {
    await a?.close();
    await b?.close();
    rmSync(ca.dir, { recursive: true, force: true });
  });

  for (const version of ['11', '12']) {
    it(`rejecting an invite to B's room of version ${version}: the leave goes through B; /sync shows it left; forget`, async () => {
      const roomId = await createOnB(version, 'invite', `Reject me v${version}`);
      await inviteAlice(roomId);
      const left = await as(a, alice)('POST', `/rooms/${r(roomId)}/leave`, { reason: 'no thanks' });
      assert.equal(left.status, 200, JSON.stringify(left.body));
      // B has the leave at once (send_leave stored it before answering).
      assert.equal(await membershipOnB(roomId, alice.userId), 'leave');
      const sync = await aliceSync();
      assert.equal(sync.rooms?.invite?.[roomId], undefined);
      const leave = sync.rooms?.leave?.[roomId];
      assert.ok(leave, 'the room is under leave');
      assert.ok(
        leave.timeline.events.some(
          (e) =>
            e.type === 'm.room.member' &&
            e.state_key === alice.userId &&
            e.content.membership === 'leave',
        ),
      );
      // Leaving again is refused; forgetting works.
      const again = await as(a, alice)<{ errcode: string }>(
        'POST',
        `/rooms/${r(roomId)}/leave`,
        {},
      );
      assert.equal(again.status, 403);
      const forgot = await as(a, alice)('POST', `/rooms/${r(roomId)}/forget`, {});
      assert.equal(forgot.status, 200, JSON.stringify(forgot.body));
      assert.equal((await aliceSync()).rooms?.leave?.[roomId], undefined);
      // Invited again later, she can still accept.
      await inviteAlice(roomId);
      const joined = await as(a, alice)('POST', `/rooms/${r(roomId)}/join`, {});
      assert.equal(joined.status, 200, JSON.stringify(joined.body));
      await waitMembershipOnB(roomId, alice.userId, 'join');
    });
  }

  it('a version 12 room joined by ID after an invite, with no via: through the inviter’s server', async () => {
    const roomId = await createOnB('12', 'invite', 'Invite only v12');
    assert.ok(!roomId.includes(':'), 'a version 12 room ID names no server');
    await inviteAlice(roomId);
    const joined = await as(a, alice)<{ room_id: string }>('POST', `/join/${r(roomId)}`, {});
    assert.equal(joined.status, 200, JSON.stringify(joined.body));
    await waitMembershipOnB(roomId, alice.userId, 'join');
    const members = await as(a, alice)<{ joined: Record<string, unknown> }>(
      'GET',
      `/rooms/${r(roomId)}/joined_members`,
    );
    assert.deepEqual(Object.keys(members.body.joined).sort(), [alice.userId, bob.userId].sort());
  });

  it('rejecting an invite while the inviting server is down: dropped here alone', async () => {
    const c = await startFederatedServer(dialect, ca);
    let closed = false;
    try {
      const carol = await registerUser(c, 'carol');
      const created = await c.request<{ room_id: string }>(
        'POST',
        '/_matrix/client/v3/createRoom',
        {
          token: carol.accessToken,
          body: { room_version: '12', name: 'Gone soon' },
        },
      );
      assert.equal(created.status, 200);
      const roomId = created.body.room_id;
      const invited = await c.request('POST', `/_matrix/client/v3/rooms/${r(roomId)}/invite`, {
        token: carol.accessToken,
        body: { user_id: alice.userId },
      });
      assert.equal(invited.status, 200, JSON.stringify(invited.body));
      await c.close();
      closed = true;
      const left = await as(a, alice)('POST', `/rooms/${r(roomId)}/leave`, {});
      assert.equal(left.status, 200, JSON.stringify(left.body));
      const sync = await aliceSync();
      assert.equal(sync.rooms?.invite?.[roomId], undefined);
      assert.ok(sync.rooms?.leave?.[roomId], 'the room is under leave');
      const forgot = await as(a, alice)('POST', `/rooms/${r(roomId)}/forget`, {});
      assert.equal(forgot.status, 200);
    } finally {
      if (!closed) await c.close();
    }
  });

  it('knocking with via: seen in /sync with the stripped state; rescinded; knocked again and let in', async () => {
    const roomId = await createOnB('11', 'knock', 'Knock here');
    const knocked = await as(a, alice)<{ room_id: string }>(
      'POST',
      `/knock/${r(roomId)}?via=${r(b.serverName)}`,
      { reason: 'let me in' },
    );
    assert.equal(knocked.status, 200, JSON.stringify(knocked.body));
    assert.equal(knocked.body.room_id, roomId);
    assert.equal(await membershipOnB(roomId, alice.userId), 'knock');
    const knock = (await aliceSync()).rooms?.knock?.[roomId];
    assert.ok(knock, 'the knock is in /sync');
    const events = knock.knock_state.events;
    assert.equal(events.find((e) => e.type === 'm.room.name')?.content.name, 'Knock here');
    assert.equal(events.find((e) => e.type === 'm.room.join_rules')?.content.join_rule, 'knock');
    assert.equal(
      events.find((e) => e.type === 'm.room.member' && e.state_key === alice.userId)?.content
        .membership,
      'knock',
    );

    // The server the knock went through is kept with it, and asked first to rescind it.
    const stores = a.running.storage.stores;
    const [knockEvent] = await stores.rooms.selectStateEvents(roomId, [
      ['m.room.member', alice.userId],
    ]);
    assert.ok(knockEvent);
    assert.equal(
      await stores.roomDag.selectKnockViaServer(roomId, alice.userId, knockEvent.eventId),
      b.serverName,
    );
    const servers = await a.running.services.federation?.leavesAndKnocks.serversFor(
      stores,
      roomId,
      alice.userId,
    );
    assert.equal(servers?.[0], b.serverName);

    // Rescinded: the leave goes through B.
    const rescinded = await as(a, alice)('POST', `/rooms/${r(roomId)}/leave`, {});
    assert.equal(rescinded.status, 200, JSON.stringify(rescinded.body));
    assert.equal(await membershipOnB(roomId, alice.userId), 'leave');
    const afterRescind = await aliceSync();
    assert.equal(afterRescind.rooms?.knock?.[roomId], undefined);
    assert.ok(afterRescind.rooms?.leave?.[roomId]);

    // Knocked again (through the room's alias-less ID and via), then let in by Bob.
    const again = await as(a, alice)(
      'POST',
      `/knock/${r(roomId)}?server_name=${r(b.serverName)}`,
      {},
    );
    assert.equal(again.status, 200, JSON.stringify(again.body));
    await waitMembershipOnB(roomId, alice.userId, 'knock');
    await inviteAlice(roomId);
    const joined = await as(a, alice)('POST', `/join/${r(roomId)}`, {});
    assert.equal(joined.status, 200, JSON.stringify(joined.body));
    await waitMembershipOnB(roomId, alice.userId, 'join');
  });

  it('deactivating an account rejects its invites and rescinds its knocks on other servers', async () => {
    const dora = await registerUser(a, 'dora');
    const inviteRoom = await createOnB('12', 'invite', 'Dora invited');
    const invited = await as(b, bob)('POST', `/rooms/${r(inviteRoom)}/invite`, {
      user_id: dora.userId,
    });
    assert.equal(invited.status, 200, JSON.stringify(invited.body));
    const knockRoom = await createOnB('11', 'knock', 'Dora knocks');
    const knocked = await as(a, dora)('POST', `/knock/${r(knockRoom)}?via=${r(b.serverName)}`, {});
    assert.equal(knocked.status, 200, JSON.stringify(knocked.body));
    const first = await as(a, dora)<{ session: string }>('POST', '/account/deactivate', {});
    const gone = await as(a, dora)('POST', '/account/deactivate', {
      auth: passwordAuth(dora.userId, dora.password, first.body.session),
    });
    assert.equal(gone.status, 200, JSON.stringify(gone.body));
    await eventually(
      async () => [
        await membershipOnB(inviteRoom, dora.userId),
        await membershipOnB(knockRoom, dora.userId),
      ],
      (both) => both.every((m) => m === 'leave'),
      20_000,
    );
    assert.equal(await membershipOnB(inviteRoom, dora.userId), 'leave');
    assert.equal(await membershipOnB(knockRoom, dora.userId), 'leave');
  });

  it('a knock on a version 12 room by alias; refusals passed on; unreachable servers 502', async () => {
    const created = await as(b, bob)<{ room_id: string }>('POST', '/createRoom', {
      room_version: '12',
      room_alias_name: 'knock12',
      initial_state: [
        { type: 'm.room.join_rules', state_key: '', content: { join_rule: 'knock' } },
      ],
    });
    assert.equal(created.status, 200);
    const roomId = created.body.room_id;
    const byAlias = await as(a, alice)<{ room_id: string }>(
      'POST',
      `/knock/${r(`#knock12:${b.serverName}`)}`,
      {},
    );
    assert.equal(byAlias.status, 200, JSON.stringify(byAlias.body));
    assert.equal(byAlias.body.room_id, roomId);
    assert.ok((await aliceSync()).rooms?.knock?.[roomId]);
    await waitMembershipOnB(roomId, alice.userId, 'knock');

    // A room that does not allow knocking: B's 403 is passed on, nothing kept.
    const closedRoom = await createOnB('11', 'invite', 'No knocking');
    const refused = await as(a, alice)<{ errcode: string }>(
      'POST',
      `/knock/${r(closedRoom)}?via=${r(b.serverName)}`,
      {},
    );
    assert.equal(refused.status, 403, JSON.stringify(refused.body));
    assert.equal(refused.body.errcode, 'M_FORBIDDEN');
    assert.equal((await aliceSync()).rooms?.knock?.[closedRoom], undefined);
    // Unknown to B: 404.
    const unknownRoom = await as(a, alice)<{ errcode: string }>(
      'POST',
      `/knock/${r(`!nothing:${b.serverName}`)}`,
      {},
    );
    assert.equal(unknownRoom.status, 404, JSON.stringify(unknownRoom.body));
    // Nobody answers: 502.
    const down = await as(a, alice)<{ errcode: string }>(
      'POST',
      `/knock/${r('!nobody:127.0.0.1:1')}`,
      {},
    );
    assert.equal(down.status, 502, JSON.stringify(down.body));
    // A bad via: 400.
    const badVia = await as(a, alice)<{ errcode: string }>(
      'POST',
      `/knock/${r(closedRoom)}?via=${r('not a server')}`,
      {},
    );
    assert.equal(badVia.status, 400);
    assert.equal(badVia.body.errcode, 'M_INVALID_PARAM');
  });
});
