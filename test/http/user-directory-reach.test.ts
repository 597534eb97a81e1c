/**
 * Join rule changes of rooms over `user_directory.inline_reach_max_members` (here 2): the
 * send answers with the members' reach left to the worker (a `user_directory_pending` row),
 * and while it converges no search shows a member to someone not allowed to find them — a
 * room made private hides its members from strangers at once, a room made public shows them
 * once their page has run — and room-mates find each other throughout.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { registerUser, type TestUser } from '../helpers/client.js';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const C = '/_matrix/client/v3';
const e = encodeURIComponent;

forEachDatabase('user directory: reach moved after a big room’s join rule change', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  let dave: TestUser;
  before(async () => {
    server = await startTestServer(dialect, {
      COMMONS_USER_DIRECTORY_INLINE_REACH_MAX_MEMBERS: '2',
    });
    alice = await registerUser(server, 'alice');
    bob = await registerUser(server, 'reachbob');
    carol = await registerUser(server, 'reachcarol');
    dave = await registerUser(server, 'dave');
  });
  after(async () => server?.close());

  const call = async (user: TestUser, method: string, path: string, body: unknown = {}) => {
    const res = await server.request<Record<string, unknown>>(method, `${C}${path}`, {
      token: user.accessToken,
      body,
    });
    assert.equal(res.status, 200, `${method} ${path}: ${JSON.stringify(res.body)}`);
    return res.body;
  };
  const found = async (user: TestUser, term: string) =>
    (
      (await call(user, 'POST', '/user_directory/search', { search_term: term })) as {
        results: { user_id: string }[];
      }
    ).results.map((r) => r.user_id);
  const joinRule = (roomId: string, rule: string) =>
    call(alice, 'PUT', `/rooms/${e(roomId)}/state/m.room.join_rules/`, { join_rule: rule });
  const worker = () => server.running.services.userDirectoryReach;
  const pending = () => server.running.storage.stores.userDirectory.countReachPending();

  it('private at once for strangers, public once moved; room-mates throughout', async () => {
    const { room_id: roomId } = (await call(alice, 'POST', '/createRoom', {
      preset: 'public_chat',
    })) as { room_id: string };
    for (const user of [bob, carol]) await call(user, 'POST', `/join/${e(roomId)}`);
    const members = [bob.userId, carol.userId];
    assert.deepEqual(await found(dave, 'reach'), members, 'public room: strangers find them');

    // The worker held: what a search sees before any page has run.
    await worker().stop();
    await joinRule(roomId, 'invite');
    assert.equal(await pending(), 1, 'the send left the members to the worker');
    assert.deepEqual(await found(dave, 'reach'), [], 'made private: hidden from strangers at once');
    assert.deepEqual(await found(alice, 'reach'), members, 'room-mates still find them');
    assert.deepEqual(await found(bob, 'reachcarol'), [carol.userId]);
    assert.deepEqual(await found(bob, 'reachbob'), [bob.userId], 'themselves');
    worker().start({ log: { warn: () => undefined } });
    await worker().idle();
    assert.equal(await pending(), 0);
    assert.deepEqual(await found(dave, 'reach'), []);
    assert.deepEqual(await found(alice, 'reach'), members);

    await worker().stop();
    await joinRule(roomId, 'public');
    assert.equal(await pending(), 1);
    assert.deepEqual(await found(dave, 'reach'), [], 'made public: not shown before moved');
    assert.deepEqual(await found(alice, 'reach'), members, 'room-mates still find them');
    worker().start({ log: { warn: () => undefined } });
    await worker().idle();
    assert.deepEqual(await found(dave, 'reach'), members, 'converged: strangers find them');

    // Private then public again before the worker ran: hidden until moved, then found.
    await worker().stop();
    await joinRule(roomId, 'invite');
    await joinRule(roomId, 'public');
    assert.equal(await pending(), 1, 'one row per room');
    assert.deepEqual(await found(dave, 'reach'), [], 'the restrictive change still gates');
    worker().start({ log: { warn: () => undefined } });
    await worker().idle();
    assert.deepEqual(await found(dave, 'reach'), members);
  });

  it('a member who is also in another public room keeps their public reach', async () => {
    const erin = await registerUser(server, 'movederin');
    const frank = await registerUser(server, 'movedfrank');
    const { room_id: big } = (await call(alice, 'POST', '/createRoom', {
      preset: 'public_chat',
    })) as { room_id: string };
    const { room_id: other } = (await call(erin, 'POST', '/createRoom', {
      preset: 'public_chat',
    })) as { room_id: string };
    for (const user of [erin, frank]) await call(user, 'POST', `/join/${e(big)}`);
    await joinRule(big, 'invite');
    await worker().idle();
    // Erin is still public through her own room; frank is not.
    assert.deepEqual(await found(dave, 'moved'), [erin.userId]);
    await call(erin, 'POST', `/rooms/${e(other)}/leave`);
    assert.deepEqual(await found(dave, 'moved'), []);
    assert.deepEqual(await found(alice, 'moved'), [erin.userId, frank.userId]);
  });
});
