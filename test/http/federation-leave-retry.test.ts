/**
 * A leave kept here alone is not forgotten: an invite rejected on A while the inviting server
 * C is down is kept on A (the user is out at once) and queued; once C is back, A sends it
 * through C (make_leave / send_leave) and C's room shows the user left.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { eventually } from '../helpers/eventually.js';
import { makeTestCa, restartable, type Restartable, type TestCa } from '../helpers/federation.js';

const C = '/_matrix/client/v3';
const r = encodeURIComponent;
const WAIT_MS = 60_000;

forEachDatabase('a leave kept here alone is sent later', (dialect) => {
  let ca: TestCa;
  let a: Restartable;
  let c: Restartable;
  let alice: TestUser;
  let carol: TestUser;

  const pendingLeaves = () =>
    a.server.running.storage.stores.federationOutbox.selectDuePendingLeaves(
      Number.MAX_SAFE_INTEGER,
      100,
    );
  /** Alice's membership as C's room state has it. */
  const membershipOnC = async (roomId: string) => {
    const got = await c.server.request<{ membership?: string }>(
      'GET',
      `${C}/rooms/${r(roomId)}/state/m.room.member/${r(alice.userId)}`,
      { token: carol.accessToken },
    );
    return got.body.membership;
  };
  const roomWithInvite = async (name: string) => {
    const created = await c.server.request<{ room_id: string }>('POST', `${C}/createRoom`, {
      token: carol.accessToken,
      body: { room_version: '11', name },
    });
    assert.equal(created.status, 200);
    const roomId = created.body.room_id;
    const invited = await c.server.request('POST', `${C}/rooms/${r(roomId)}/invite`, {
      token: carol.accessToken,
      body: { user_id: alice.userId },
    });
    assert.equal(invited.status, 200, JSON.stringify(invited.body));
    return roomId;
  };
  const rejectWhileCIsDown = async (roomId: string) => {
    await c.stop();
    const left = await a.server.request('POST', `${C}/rooms/${r(roomId)}/leave`, {
      token: alice.accessToken,
      body: { reason: 'no thanks' },
    });
    assert.equal(left.status, 200, JSON.stringify(left.body));
  };

  before(async () => {
    ca = makeTestCa();
    a = await restartable(dialect, ca, { COMMONS_FEDERATION_RETRY_MAX_SECONDS: '1' });
    c = await restartable(dialect, ca);
    alice = await registerUser(a.server, 'alice');
    carol = await registerUser(c.server, 'carol');
  });
  after(async () => {
    await a?.destroy();
    await c?.destroy();
    if (ca) rmSync(ca.dir, { recursive: true, force: true });
  });

  it('an invite rejected while the inviter’s server is down reaches it once it is back', async () => {
    const roomId = await roomWithInvite('Rejected later');
    await rejectWhileCIsDown(roomId);
    const queued = await pendingLeaves();
    assert.deepEqual(
      queued.map((l) => [l.roomId, l.userId, l.servers]),
      [[roomId, alice.userId, [c.serverName]]],
    );
    assert.deepEqual(queued[0]?.content, { reason: 'no thanks' });
    // Down still: the attempts fail and the leave waits, with a growing count of failures.
    await eventually(
      async () => (await pendingLeaves())[0]?.failures ?? 0,
      (failures) => failures >= 1,
      WAIT_MS,
    );
    await c.start();
    assert.equal(await membershipOnC(roomId), 'invite');
    const seen = await eventually(
      () => membershipOnC(roomId),
      (m) => m === 'leave',
      WAIT_MS,
    );
    assert.equal(seen, 'leave');
    assert.deepEqual(await eventually(pendingLeaves, (rows) => rows.length === 0), []);
    // Alice's own view did not change: the room is left.
    const state = await a.server.request<{ membership?: string }>(
      'GET',
      `${C}/rooms/${r(roomId)}/state/m.room.member/${r(alice.userId)}`,
      { token: alice.accessToken },
    );
    assert.notEqual(state.body.membership, 'invite');
  });
});
