/**
 * Room deletion (DELETE /v2/rooms/{roomId}, and the older /v1 form), room blocks and history
 * purges through the admin API, on both databases: the background job's status, what
 * members and clients see afterwards, and that no row of a purged room is left behind.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { expectError, uniqueName } from '../helpers/assertions.js';
import { eventually } from '../helpers/eventually.js';
import { ADMIN_SECRET as SECRET, registerAdmin } from '../helpers/admin.js';
import { rowsMentioning } from '../helpers/rows-mentioning.js';

const A1 = '/_synapse/admin/v1';
const A2 = '/_synapse/admin/v2';
const C = '/_matrix/client/v3';
const MUTUAL = '/_matrix/client/v1/user/mutual_rooms';
const e = encodeURIComponent;

interface DeleteStatus {
  delete_id: string;
  status: string;
  error?: string;
  shutdown_room: {
    kicked_users: string[];
    failed_to_kick_users: string[];
    local_aliases: string[];
  };
}

forEachDatabase('admin API: room deletion and history purges', (dialect) => {
  let server: TestServer;
  let admin: TestUser;
  let alice: TestUser;
  let bob: TestUser;
  before(async () => {
    server = await startTestServer(dialect, { COMMONS_REGISTRATION_SHARED_SECRET: SECRET });
    admin = await registerAdmin(server);
    alice = await registerUser(server, uniqueName('alice'));
    bob = await registerUser(server, uniqueName('bob'));
  });
  after(async () => server.close());

  const call = <T = Record<string, unknown>>(
    user: TestUser,
    method: string,
    path: string,
    body?: unknown,
  ) => server.request<T>(method, path, { token: user.accessToken, body });

  /** A room of alice's that bob joined, with `messages` messages from each. */
  async function roomWithHistory(messages: number, alias?: string): Promise<string> {
    const created = await call<{ room_id: string }>(alice, 'POST', `${C}/createRoom`, {
      preset: 'public_chat',
      name: 'To go',
      ...(alias ? { room_alias_name: alias } : {}),
    });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    const roomId = created.body.room_id;
    assert.equal((await call(bob, 'POST', `${C}/join/${e(roomId)}`, {})).status, 200);
    for (let i = 0; i < messages; i++) {
      for (const user of [alice, bob]) {
        const sent = await call(
          user,
          'PUT',
          `${C}/rooms/${e(roomId)}/send/m.room.message/${uniqueName('t')}`,
          {
            msgtype: 'm.text',
            body: `message ${i}`,
          },
        );
        assert.equal(sent.status, 200);
      }
    }
    return roomId;
  }

  const mutualRooms = async (user: TestUser, other: TestUser) =>
    (await call<{ joined: string[] }>(user, 'GET', `${MUTUAL}?user_id=${e(other.userId)}`)).body
      .joined;

  async function finished(deleteId: string): Promise<DeleteStatus> {
    const status = await eventually(
      async () =>
        (
          await call<Omit<DeleteStatus, 'delete_id'>>(
            admin,
            'GET',
            `${A2}/rooms/delete_status/${deleteId}`,
          )
        ).body,
      (s) => s.status === 'complete' || s.status === 'failed',
      20_000,
    );
    assert.equal(status.status, 'complete', JSON.stringify(status));
    return { delete_id: deleteId, ...status };
  }

  it('deletes a room in the background: members leave, its rows go, the mutual-rooms index follows', async () => {
    const alias = uniqueName('togo');
    const kept = await roomWithHistory(1);
    const roomId = await roomWithHistory(30, alias);
    assert.deepEqual((await mutualRooms(alice, bob)).sort(), [kept, roomId].sort());
    const syncBefore = await call<{ next_batch: string }>(bob, 'GET', `${C}/sync?timeout=0`);
    // The room DAG's rows without a room ID: its state groups' entries, its events' auth edges.
    const dag = server.running.storage.stores.roomDag;
    const group = (await dag.selectCurrentGroup(roomId))?.groupId;
    assert.ok(group !== undefined && (await dag.selectStateGroup(group)).size > 0);
    const latest = await server.running.storage.stores.rooms.selectRoomEvents(roomId, {
      after: 0,
      upTo: Number.MAX_SAFE_INTEGER,
      direction: 'backward',
      limit: 1,
    });
    const latestIds = latest.map((row) => row.eventId);
    assert.ok((await dag.selectAuthChainIds(latestIds)).length > 0);

    const res = await call<{ delete_id: string }>(admin, 'DELETE', `${A2}/rooms/${e(roomId)}`, {
      block: true,
      purge: true,
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const status = await finished(res.body.delete_id);
    assert.deepEqual(status.shutdown_room.kicked_users.sort(), [alice.userId, bob.userId].sort());
    assert.deepEqual(status.shutdown_room.failed_to_kick_users, []);
    assert.deepEqual(status.shutdown_room.local_aliases, [`#${alias}:test.local`]);
    const byRoom = await call<{ results: DeleteStatus[] }>(
      admin,
      'GET',
      `${A2}/rooms/${e(roomId)}/delete_status`,
    );
    assert.deepEqual(
      byRoom.body.results.map((r) => [r.delete_id, r.status]),
      [[res.body.delete_id, 'complete']],
    );

    // Members: no longer in it, nor sharing it.
    const joined = await call<{ joined_rooms: string[] }>(bob, 'GET', `${C}/joined_rooms`);
    assert.deepEqual(joined.body.joined_rooms, [kept]);
    assert.deepEqual(await mutualRooms(alice, bob), [kept]);
    assert.deepEqual(await mutualRooms(bob, alice), [kept]);
    // /sync after the deletion answers, and no longer lists the room as joined.
    const sync = await call<{ rooms?: { join?: Record<string, unknown> } }>(
      bob,
      'GET',
      `${C}/sync?timeout=0&since=${e(syncBefore.body.next_batch)}`,
    );
    assert.equal(sync.status, 200, JSON.stringify(sync.body));
    assert.ok(!(roomId in (sync.body.rooms?.join ?? {})));
    const initial = await call<{ rooms?: { join?: Record<string, unknown> } }>(
      bob,
      'GET',
      `${C}/sync?timeout=0`,
    );
    assert.deepEqual(Object.keys(initial.body.rooms?.join ?? {}), [kept]);

    // The admin API: gone from the list and the details.
    expectError(await call(admin, 'GET', `${A1}/rooms/${e(roomId)}`), 404, 'M_NOT_FOUND');
    const list = await call<{ rooms: Array<{ room_id: string }> }>(admin, 'GET', `${A1}/rooms`);
    assert.ok(!list.body.rooms.some((r) => r.room_id === roomId));
    // The alias is free, the room blocked, and nothing of it is left in the database.
    expectError(
      await call(bob, 'GET', `${C}/directory/room/${e(`#${alias}:test.local`)}`),
      404,
      'M_NOT_FOUND',
    );
    assert.deepEqual((await call(admin, 'GET', `${A1}/rooms/${e(roomId)}/block`)).body, {
      blocked: true,
      user_id: admin.userId,
    });
    const stores = server.running.storage.stores;
    assert.equal(await stores.rooms.selectRoom(roomId), undefined);
    assert.deepEqual(await stores.rooms.selectAllStateEvents(roomId), []);
    assert.deepEqual(await stores.rooms.selectMembersOfRoom(roomId, 'leave'), []);
    assert.deepEqual(
      await stores.rooms.selectRoomEvents(roomId, {
        after: 0,
        upTo: Number.MAX_SAFE_INTEGER,
        direction: 'forward',
        limit: 10,
      }),
      [],
    );
    assert.equal((await dag.selectStateGroup(group)).size, 0);
    assert.deepEqual(await dag.selectAuthChainIds(latestIds), []);
    assert.equal(await dag.selectCurrentGroup(roomId), undefined);
    // A join is refused.
    const join = await call(bob, 'POST', `${C}/join/${e(roomId)}`, {});
    assert.ok(join.status === 403 || join.status === 404, JSON.stringify(join.body));
  });

  it('a purged room leaves no row in any table naming it or its events', async () => {
    const carol = await registerUser(server, uniqueName('carol'));
    const roomId = await roomWithHistory(3, uniqueName('every'));
    const R = e(roomId);
    const ok = async (
      user: TestUser,
      method: string,
      path: string,
      body: unknown = {},
    ): Promise<Record<string, unknown>> => {
      const res = await call(user, method, path, body);
      assert.equal(res.status, 200, `${method} ${path}: ${JSON.stringify(res.body)}`);
      return res.body;
    };
    // Something of the room in every area: a thread and a reply, receipts, typing, room account
    // data, a pending invite (with its stripped state), the public directory,
    // a key backup, a report, a sliding sync connection, notifications.
    const root = (await ok(alice, 'PUT', `${C}/rooms/${R}/send/m.room.message/root`, {
      msgtype: 'm.text',
      body: `hello @${bob.userId} everyone`,
    })) as { event_id: string };
    await ok(bob, 'PUT', `${C}/rooms/${R}/send/m.room.message/reply`, {
      msgtype: 'm.text',
      body: 'in the thread',
      'm.relates_to': { rel_type: 'm.thread', event_id: root.event_id },
    });
    await ok(bob, 'POST', `${C}/rooms/${R}/receipt/m.read/${e(root.event_id)}`);
    await ok(bob, 'PUT', `${C}/rooms/${R}/typing/${e(bob.userId)}`, {
      typing: true,
      timeout: 30_000,
    });
    await ok(bob, 'PUT', `${C}/user/${e(bob.userId)}/rooms/${R}/account_data/org.example`, {
      a: 1,
    });
    await ok(alice, 'POST', `${C}/rooms/${R}/invite`, { user_id: carol.userId });
    await ok(alice, 'PUT', `${C}/directory/list/room/${R}`, { visibility: 'public' });
    const backup = (await ok(bob, 'POST', `${C}/room_keys/version`, {
      algorithm: 'm.megolm_backup.v1.curve25519-aes-sha2',
      auth_data: { public_key: 'abc' },
    })) as { version: string };
    await ok(bob, 'PUT', `${C}/room_keys/keys/${R}/s1?version=${backup.version}`, {
      first_message_index: 0,
      forwarded_count: 0,
      is_verified: false,
      session_data: { ephemeral: 'e', ciphertext: 'c', mac: 'm' },
    });
    await ok(bob, 'POST', `${C}/rooms/${R}/report/${e(root.event_id)}`, { reason: 'spam' });
    await ok(bob, 'POST', '/_matrix/client/unstable/org.matrix.simplified_msc3575/sync?timeout=0', {
      conn_id: 'c',
      lists: { all: { ranges: [[0, 10]], timeline_limit: 5 } },
    });
    const stores = server.running.storage.stores;
    const events = await stores.rooms.selectRoomEvents(roomId, {
      after: Number.MIN_SAFE_INTEGER,
      upTo: Number.MAX_SAFE_INTEGER,
      direction: 'forward',
      limit: 1000,
    });
    const eventIds = events.map((row) => row.eventId);
    const ids = [roomId, ...eventIds] as const;
    const before = await rowsMentioning(server, ids);
    for (const table of ['event_search', 'event_relations', 'receipts', 'key_backup_keys'])
      assert.ok((before[table] ?? 0) > 0, `${table} holds rows of the room before the purge`);

    const res = await call<{ delete_id: string }>(admin, 'DELETE', `${A2}/rooms/${R}`, {
      purge: true,
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    await finished(res.body.delete_id);
    // The purge's own record is all that names the room (with block: true, the block too).
    assert.deepEqual(await rowsMentioning(server, ids), { room_purges: 1 });
    // Carol's invite went with it.
    const sync = await call<{ rooms?: { invite?: Record<string, unknown> } }>(
      carol,
      'GET',
      `${C}/sync?timeout=0`,
    );
    assert.ok(!(roomId in (sync.body.rooms?.invite ?? {})));
  });

  it('blocks without purging: members are removed, the room stays, no one can join', async () => {
    const roomId = await roomWithHistory(2);
    const res = await call<{ delete_id: string }>(admin, 'DELETE', `${A2}/rooms/${e(roomId)}`, {
      block: true,
      purge: false,
    });
    await finished(res.body.delete_id);
    const details = await call<{ joined_members: number }>(
      admin,
      'GET',
      `${A1}/rooms/${e(roomId)}`,
    );
    assert.equal(details.body.joined_members, 0);
    expectError(await call(bob, 'POST', `${C}/join/${e(roomId)}`, {}), 403, 'M_FORBIDDEN');
    // Unblocked: joining works again.
    assert.deepEqual(
      (await call(admin, 'PUT', `${A1}/rooms/${e(roomId)}/block`, { block: false })).body,
      { block: false },
    );
    assert.deepEqual((await call(admin, 'GET', `${A1}/rooms/${e(roomId)}/block`)).body, {
      blocked: false,
    });
    assert.equal((await call(alice, 'POST', `${C}/join/${e(roomId)}`, {})).status, 200);
  });

  it('the older DELETE /v1/rooms answers once the room is deleted', async () => {
    const roomId = await roomWithHistory(1);
    const res = await call<{ kicked_users: string[]; new_room_id: null }>(
      admin,
      'DELETE',
      `${A1}/rooms/${e(roomId)}`,
      {},
    );
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(res.body.kicked_users.sort(), [alice.userId, bob.userId].sort());
    assert.equal(res.body.new_room_id, null);
    expectError(await call(admin, 'GET', `${A1}/rooms/${e(roomId)}`), 404, 'M_NOT_FOUND');
    // Not blocked (block defaults to false): nothing is left to block either.
    assert.deepEqual((await call(admin, 'GET', `${A1}/rooms/${e(roomId)}/block`)).body, {
      blocked: false,
    });
  });

  it('refuses what it cannot do', async () => {
    const roomId = await roomWithHistory(0);
    expectError(
      await call(admin, 'DELETE', `${A2}/rooms/${e('!nope:test.local')}`, {}),
      404,
      'M_NOT_FOUND',
    );
    expectError(await call(admin, 'DELETE', `${A2}/rooms/not-a-room`, {}), 400, 'M_INVALID_PARAM');
    expectError(
      await call(admin, 'DELETE', `${A2}/rooms/${e(roomId)}`, { new_room_user_id: admin.userId }),
      400,
      'M_INVALID_PARAM',
    );
    expectError(
      await call(admin, 'DELETE', `${A2}/rooms/${e(roomId)}`, { block: 'yes' }),
      400,
      'M_BAD_JSON',
    );
    expectError(await call(admin, 'GET', `${A2}/rooms/delete_status/nope`), 404, 'M_NOT_FOUND');
    expectError(
      await call(admin, 'GET', `${A2}/rooms/${e(roomId)}/delete_status`),
      404,
      'M_NOT_FOUND',
    );
    expectError(await call(admin, 'GET', `${A1}/purge_history_status/nope`), 404, 'M_NOT_FOUND');
    expectError(
      await call(admin, 'POST', `${A1}/purge_history/${e(roomId)}`, {}),
      400,
      'M_INVALID_PARAM',
    );
    expectError(
      await call(admin, 'POST', `${A1}/purge_history/${e(roomId)}/${e('$nope')}`, {}),
      404,
      'M_NOT_FOUND',
    );
    expectError(
      await call(admin, 'POST', `${A1}/purge_history/${e('!nope:test.local')}`, {
        purge_up_to_ts: 1,
      }),
      404,
      'M_NOT_FOUND',
    );
    // A room unknown here can still be blocked.
    assert.equal(
      (await call(admin, 'PUT', `${A1}/rooms/${e('!later:test.local')}/block`, { block: true }))
        .status,
      200,
    );
  });

  it('purges history before an event: older messages go, state and newer messages stay', async () => {
    const roomId = await roomWithHistory(6);
    const messages = async () =>
      (
        await call<{
          chunk: Array<{ type: string; event_id: string; content: { body?: string } }>;
        }>(bob, 'GET', `${C}/rooms/${e(roomId)}/messages?dir=b&limit=100`)
      ).body.chunk;
    const before = await messages();
    const texts = before.filter((ev) => ev.type === 'm.room.message');
    assert.equal(texts.length, 12);
    // Newest first: the 6th newest message is the point; the 6 older ones go.
    const point = texts[5]!.event_id;

    // Bob's unread count in the room, which the server then keeps for his next syncs.
    const unread = async () => {
      const filter = e(JSON.stringify({ room: { rooms: [roomId], timeline: { limit: 1 } } }));
      const sync = await call<{
        rooms: { join: Record<string, { unread_notifications: { notification_count: number } }> };
      }>(bob, 'GET', `${C}/sync?timeout=0&filter=${filter}`);
      assert.equal(sync.status, 200);
      return sync.body.rooms.join[roomId]?.unread_notifications.notification_count;
    };
    const unreadBefore = await unread();
    assert.ok(unreadBefore !== undefined && unreadBefore >= 6, String(unreadBefore));

    // Without delete_local_events, local users' events stay (as Synapse).
    const kept = await call<{ purge_id: string }>(
      admin,
      'POST',
      `${A1}/purge_history/${e(roomId)}/${e(point)}`,
      {},
    );
    assert.equal(kept.status, 200, JSON.stringify(kept.body));
    const keptStatus = await eventually(
      async () =>
        (
          await call<{ status: string }>(
            admin,
            'GET',
            `${A1}/purge_history_status/${kept.body.purge_id}`,
          )
        ).body,
      (s) => s.status !== 'active' && s.status !== 'scheduled',
      20_000,
    );
    assert.deepEqual(keptStatus, { status: 'complete' });
    assert.equal((await messages()).length, before.length);

    const purged = await call<{ purge_id: string }>(
      admin,
      'POST',
      `${A1}/purge_history/${e(roomId)}`,
      {
        purge_up_to_event_id: point,
        delete_local_events: true,
      },
    );
    const status = await eventually(
      async () =>
        (
          await call<{ status: string }>(
            admin,
            'GET',
            `${A1}/purge_history_status/${purged.body.purge_id}`,
          )
        ).body,
      (s) => s.status !== 'active' && s.status !== 'scheduled',
      20_000,
    );
    assert.deepEqual(status, { status: 'complete' });
    const after = await messages();
    assert.deepEqual(
      after.filter((ev) => ev.type === 'm.room.message').map((ev) => ev.event_id),
      texts.slice(0, 6).map((ev) => ev.event_id),
    );
    // State is untouched: both still joined, the name kept, and the room still works.
    assert.ok(after.some((ev) => ev.type === 'm.room.create'));
    const details = await call<{ joined_members: number; name: string }>(
      admin,
      'GET',
      `${A1}/rooms/${e(roomId)}`,
    );
    assert.equal(details.body.joined_members, 2);
    assert.equal(details.body.name, 'To go');
    assert.equal(
      (
        await call(alice, 'PUT', `${C}/rooms/${e(roomId)}/send/m.room.message/${uniqueName('t')}`, {
          msgtype: 'm.text',
          body: 'after',
        })
      ).status,
      200,
    );
    const sync = await call(bob, 'GET', `${C}/sync?timeout=0`);
    assert.equal(sync.status, 200);
    // The count kept before the purge is not brought up to date but counted again: alice's
    // three purged messages no longer count, her new one does.
    assert.equal(await unread(), unreadBefore - 3 + 1);
  });

  it('purges history up to a time (purge_up_to_ts)', async () => {
    const roomId = await roomWithHistory(3);
    const purged = await call<{ purge_id: string }>(
      admin,
      'POST',
      `${A1}/purge_history/${e(roomId)}`,
      {
        purge_up_to_ts: Date.now() + 60_000,
        delete_local_events: true,
      },
    );
    await eventually(
      async () =>
        (
          await call<{ status: string }>(
            admin,
            'GET',
            `${A1}/purge_history_status/${purged.body.purge_id}`,
          )
        ).body,
      (s) => s.status === 'complete',
      20_000,
    );
    const chunk = (
      await call<{ chunk: Array<{ type: string }> }>(
        bob,
        'GET',
        `${C}/rooms/${e(roomId)}/messages?dir=b&limit=100`,
      )
    ).body.chunk;
    // Every message but the latest (a forward extremity, which stays).
    assert.equal(chunk.filter((ev) => ev.type === 'm.room.message').length, 1);
  });
  it('a purge that takes a thread leaves no thread row behind: /threads lists it no more', async () => {
    const roomId = await roomWithHistory(0);
    const send = async (user: TestUser, content: Record<string, unknown>) => {
      const sent = await call<{ event_id: string }>(
        user,
        'PUT',
        `${C}/rooms/${e(roomId)}/send/m.room.message/${uniqueName('t')}`,
        content,
      );
      assert.equal(sent.status, 200, JSON.stringify(sent.body));
      return sent.body.event_id;
    };
    const rootId = await send(alice, { msgtype: 'm.text', body: 'root' });
    for (const user of [bob, alice]) {
      await send(user, {
        msgtype: 'm.text',
        body: 'in the thread',
        'm.relates_to': { rel_type: 'm.thread', event_id: rootId },
      });
    }
    const threads = async () =>
      (
        await call<{ chunk: Array<{ event_id: string }> }>(
          bob,
          'GET',
          `/_matrix/client/v1/rooms/${e(roomId)}/threads`,
        )
      ).body.chunk.map((ev) => ev.event_id);
    assert.deepEqual(await threads(), [rootId]);
    const point = await send(alice, { msgtype: 'm.text', body: 'after the thread' });
    await send(bob, { msgtype: 'm.text', body: 'the latest' });

    const purged = await call<{ purge_id: string }>(
      admin,
      'POST',
      `${A1}/purge_history/${e(roomId)}`,
      { purge_up_to_event_id: point, delete_local_events: true },
    );
    assert.equal(purged.status, 200, JSON.stringify(purged.body));
    await eventually(
      async () =>
        (
          await call<{ status: string }>(
            admin,
            'GET',
            `${A1}/purge_history_status/${purged.body.purge_id}`,
          )
        ).body,
      (s) => s.status === 'complete',
      20_000,
    );
    assert.deepEqual(await threads(), []);
    assert.equal((await rowsMentioning(server, [rootId])).event_threads, undefined);
  });
});
