/**
 * Two Commons servers: a user of A joins rooms of B (room versions 10, 11, 12) by ID with
 * `via` and by alias (B's /query/directory), through make_join/send_join; messages both ways,
 * typing from A seen on B (EDUs through /send), `/joined_members` agreeing on both sides, and
 * a leave reaching B.
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

interface SyncBody {
  next_batch: string;
  rooms?: {
    join?: Record<
      string,
      {
        timeline?: { events: { sender: string; content: Record<string, unknown> }[] };
        ephemeral?: { events: { type: string; content: Record<string, unknown> }[] };
      }
    >;
  };
}

forEachDatabase('joining rooms between two Commons servers', (dialect) => {
  let ca: TestCa;
  let a: Federated;
  let b: Federated;
  let alice: TestUser;
  let bob: TestUser;
  const rooms: Record<string, string> = {};

  const as =
    (server: Federated, user: TestUser) =>
    <T = Record<string, unknown>>(method: string, path: string, body?: unknown) =>
      server.request<T>(method, `/_matrix/client/v3${path}`, {
        token: user.accessToken,
        ...(body !== undefined ? { body } : {}),
      });
  const joinedOn = async (server: Federated, user: TestUser, roomId: string) =>
    Object.keys(
      (
        await as(server, user)<{ joined: Record<string, unknown> }>(
          'GET',
          `/rooms/${r(roomId)}/joined_members`,
        )
      ).body.joined ?? {},
    ).sort();
  /** Waits until `user`'s /sync on `server` shows something in the room. */
  async function sees(
    server: Federated,
    user: TestUser,
    roomId: string,
    found: (room: NonNullable<NonNullable<SyncBody['rooms']>['join']>[string]) => boolean,
  ): Promise<void> {
    let since = (await as(server, user)<SyncBody>('GET', '/sync')).body.next_batch;
    let seen = false;
    await eventually(
      async () => {
        const answer = await as(server, user)<SyncBody>(
          'GET',
          `/sync?timeout=500&since=${r(since)}`,
        );
        since = answer.body.next_batch;
        const room = answer.body.rooms?.join?.[roomId];
        seen ||= room !== undefined && found(room);
        return seen;
      },
      (ok) => ok,
      20_000,
    );
  }

  before(async () => {
    ca = makeTestCa();
    a = await startFederatedServer(dialect, ca);
    b = await startFederatedServer(dialect, ca);
    alice = await registerUser(a, 'alice');
    bob = await registerUser(b, 'bob');
    for (const version of ['10', '11', '12']) {
      const created = await as(b, bob)<{ room_id: string }>('POST', '/createRoom', {
        preset: 'public_chat',
        room_version: version,
        room_alias_name: `v${version}`,
        name: `B's room v${version}`,
      });
      assert.equal(created.status, 200, JSON.stringify(created.body));
      rooms[version] = created.body.room_id;
    }
  });
  after(async () => {
    await a?.close();
    await b?.close();
    rmSync(ca.dir, { recursive: true, force: true });
  });

  for (const version of ['10', '11', '12']) {
    it(`Alice joins B's room of version ${version} by ID; both sides agree`, async () => {
      const roomId = rooms[version] as string;
      const joined = await as(a, alice)<{ room_id: string }>(
        'POST',
        `/join/${r(roomId)}?via=${r(b.serverName)}`,
        {},
      );
      assert.equal(joined.status, 200, JSON.stringify(joined.body));
      const both = [alice.userId, bob.userId].sort();
      assert.deepEqual(await joinedOn(a, alice, roomId), both);
      await eventually(
        () => joinedOn(b, bob, roomId),
        (list) => list.includes(alice.userId),
        20_000,
      );
      assert.deepEqual(await joinedOn(b, bob, roomId), both);
    });
  }

  it('messages both ways and typing from A reach the other side', async () => {
    const roomId = rooms['11'] as string;
    const fromA = await as(a, alice)('PUT', `/rooms/${r(roomId)}/send/m.room.message/a1`, {
      msgtype: 'm.text',
      body: 'hello from A',
    });
    assert.equal(fromA.status, 200);
    await sees(b, bob, roomId, (room) =>
      (room.timeline?.events ?? []).some((e) => e.content.body === 'hello from A'),
    );
    const fromB = await as(b, bob)('PUT', `/rooms/${r(roomId)}/send/m.room.message/b1`, {
      msgtype: 'm.text',
      body: 'hello from B',
    });
    assert.equal(fromB.status, 200);
    await sees(a, alice, roomId, (room) =>
      (room.timeline?.events ?? []).some((e) => e.content.body === 'hello from B'),
    );
    const typed = await as(a, alice)('PUT', `/rooms/${r(roomId)}/typing/${r(alice.userId)}`, {
      typing: true,
      timeout: 30000,
    });
    assert.equal(typed.status, 200);
    await sees(b, bob, roomId, (room) =>
      (room.ephemeral?.events ?? []).some(
        (e) => e.type === 'm.typing' && (e.content.user_ids as string[]).includes(alice.userId),
      ),
    );
  });

  it('Alice leaves; B sees it; she joins again by alias', async () => {
    const roomId = rooms['10'] as string;
    const left = await as(a, alice)('POST', `/rooms/${r(roomId)}/leave`, {});
    assert.equal(left.status, 200, JSON.stringify(left.body));
    await eventually(
      () => joinedOn(b, bob, roomId),
      (list) => !list.includes(alice.userId),
      20_000,
    );
    const again = await as(a, alice)<{ room_id: string }>(
      'POST',
      `/join/${r(`#v10:${b.serverName}`)}`,
      {},
    );
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.equal(again.body.room_id, roomId);
    await eventually(
      () => joinedOn(b, bob, roomId),
      (list) => list.includes(alice.userId),
      20_000,
    );
  });
});
