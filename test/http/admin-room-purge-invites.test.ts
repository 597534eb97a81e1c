/**
 * Deleting a room this server holds only an invite of (a remote room's invite to a local
 * user): the invite's stripped state and every other row naming the room go, and the
 * invitee no longer sees the invite.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, it } from 'node:test';
import { registerAdmin, ADMIN_SECRET } from '../helpers/admin.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { forEachDatabase } from '../helpers/databases.js';
import { eventually } from '../helpers/eventually.js';
import { startFakeRemote, type FakeRemote } from '../helpers/fake-remote.js';
import { federationEnv, freePort, makeTestCa, type TestCa } from '../helpers/federation.js';
import { rowsMentioning } from '../helpers/rows-mentioning.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const C = '/_matrix/client/v3';
const e = encodeURIComponent;

forEachDatabase('admin API: deleting a room held only as an invite', (dialect) => {
  let ca: TestCa;
  let a: TestServer & { serverName: string };
  let remote: FakeRemote;
  let admin: TestUser;
  let alice: TestUser;

  before(async () => {
    ca = makeTestCa();
    const port = await freePort();
    a = Object.assign(
      await startTestServer(dialect, {
        ...federationEnv(ca, port),
        COMMONS_REGISTRATION_SHARED_SECRET: ADMIN_SECRET,
      }),
      { serverName: `127.0.0.1:${port}` },
    );
    remote = await startFakeRemote(ca);
    admin = await registerAdmin(a);
    alice = await registerUser(a, 'alice');
  });
  after(async () => {
    await a?.close();
    await remote?.close();
    rmSync(ca.dir, { recursive: true, force: true });
  });

  // The invitee cannot leave through the event path (no state here to build a leave on), so
  // the purge is forced, as an operator does for a room that is not ours.
  it('leaves no row of the invite behind, invite_room_state included', async () => {
    const roomId = `!afar:${remote.serverName}`;
    const bob = `@bob:${remote.serverName}`;
    const invite = remote.event('11', {
      roomId,
      type: 'm.room.member',
      sender: bob,
      stateKey: alice.userId,
      content: { membership: 'invite' },
      authEvents: [],
      prevEvents: [],
      depth: 5,
    });
    const put = await remote.request(
      a.serverName,
      'PUT',
      `/_matrix/federation/v2/invite/${e(roomId)}/${e(invite.eventId)}`,
      {
        room_version: '11',
        event: invite.pdu,
        invite_room_state: [
          { type: 'm.room.name', state_key: '', content: { name: 'Afar' }, sender: bob },
        ],
      },
    );
    assert.equal(put.status, 200, JSON.stringify(put.body));
    const ids = [roomId, invite.eventId] as const;
    assert.ok(((await rowsMentioning(a, ids)).invite_room_state ?? 0) > 0);

    const res = await a.request<{ delete_id: string }>(
      'DELETE',
      `/_synapse/admin/v2/rooms/${e(roomId)}`,
      { token: admin.accessToken, body: { purge: true, force_purge: true } },
    );
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const status = await eventually(
      async () =>
        (
          await a.request<{ status: string }>(
            'GET',
            `/_synapse/admin/v2/rooms/delete_status/${res.body.delete_id}`,
            { token: admin.accessToken },
          )
        ).body.status,
      (s) => s === 'complete' || s === 'failed',
      20_000,
    );
    assert.equal(
      status,
      'complete',
      JSON.stringify(
        (
          await a.request('GET', `/_synapse/admin/v2/rooms/delete_status/${res.body.delete_id}`, {
            token: admin.accessToken,
          })
        ).body,
      ),
    );
    assert.deepEqual(await rowsMentioning(a, ids), { room_purges: 1 });
    const sync = await a.request<{ rooms?: { invite?: Record<string, unknown> } }>(
      'GET',
      `${C}/sync?timeout=0`,
      { token: alice.accessToken },
    );
    assert.ok(!(roomId in (sync.body.rooms?.invite ?? {})));
  });
});
