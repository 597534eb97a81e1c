/**
 * A pair's mutual-rooms index is built and dropped in parts (on SQLite, BUILD_PART_ROOMS
 * rooms of one user per statement, the event loop free between them; the store does it on
 * both databases, and PostgreSQL builds in one part). Here the parts are two rooms, so
 * a small pair spans several: the index must be the same as the rooms both have joined,
 * in room order, and dropping it in parts must leave nothing. A pair unused for
 * `cache_idle_seconds` is dropped by the service when another pair is built.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import type { Stores } from '../../src/storage/index.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const C = '/_matrix/client/v3';
const ROOMS = 9;
/** Bob joins these of Alice's rooms (by creation order), and leaves one again. */
const JOINED = [0, 2, 3, 5, 7, 8];
const LEFT = 5;
const PART = 2;

forEachDatabase('mutual-rooms index built in parts', (dialect) => {
  let server: TestServer;
  let stores: Stores;
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  const shared: string[] = [];

  const post = async (user: TestUser, path: string, body: unknown = {}) => {
    const res = await server.request<{ room_id?: string }>('POST', path, {
      token: user.accessToken,
      body,
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body;
  };
  const pair = () => [alice.userId, bob.userId].sort() as [string, string];

  before(async () => {
    server = await startTestServer(dialect);
    stores = server.running.storage.stores;
    alice = await registerUser(server);
    bob = await registerUser(server);
    carol = await registerUser(server);
    for (let i = 0; i < ROOMS; i++) {
      const { room_id: roomId } = await post(alice, `${C}/createRoom`, { preset: 'public_chat' });
      if (!roomId) throw new Error('no room ID');
      if (i === 0) await post(carol, `${C}/join/${encodeURIComponent(roomId)}`);
      if (!JOINED.includes(i)) continue;
      await post(bob, `${C}/join/${encodeURIComponent(roomId)}`);
      if (i === LEFT) await post(bob, `${C}/rooms/${encodeURIComponent(roomId)}/leave`);
      else shared.push(roomId);
    }
  });

  after(async () => {
    await server?.close();
  });

  it('builds the same index in parts of two rooms as the rooms both joined', async () => {
    const [low, high] = pair();
    let parts = 0;
    const built = await server.running.storage.tx('test', async (tx) => {
      for (let afterRoom = ''; ;) {
        parts++;
        const last = await tx.mutualRooms.insertEntries(low, high, afterRoom, PART);
        if (last === null) break;
        assert.ok(last > afterRoom, 'each part ends after the one before');
        afterRoom = last;
      }
      return tx.mutualRooms.insertPair(low, high, Date.now());
    });
    // Alice (low or high) is in nine rooms: four full parts and an empty or short last one.
    const lowRooms = low === alice.userId ? ROOMS : JOINED.length - 1;
    assert.equal(parts, Math.floor(lowRooms / PART) + 1);
    assert.equal(built.roomCount, shared.length);
    const entries = await stores.mutualRooms.selectEntries(low, high, 0, 100);
    assert.deepEqual(
      entries.map((e) => e.roomId),
      shared,
      'the shared rooms, in creation order, the one left out',
    );

    // The endpoint answers from this index (the pair exists, so nothing is built again).
    const res = await server.request<{ joined: string[]; count: number }>(
      'GET',
      `/_matrix/client/v1/mutual_rooms?user_id=${encodeURIComponent(bob.userId)}`,
      { token: alice.accessToken },
    );
    assert.equal(res.status, 200);
    assert.deepEqual(res.body.joined, shared);
    assert.equal(res.body.count, shared.length);
  });

  it('drops the pair and its entries in parts', async () => {
    const [low, high] = pair();
    const deleted: number[] = [];
    await server.running.storage.tx('test', async (tx) => {
      await tx.mutualRooms.deletePair(low, high);
      for (;;) {
        const n = await tx.mutualRooms.deleteEntries(low, high, PART);
        deleted.push(n);
        if (n < PART) break;
      }
    });
    // Five entries: two, two, then the last one alone.
    assert.deepEqual(deleted, [2, 2, 1]);
    assert.equal(await stores.mutualRooms.selectPair(low, high), undefined);
    assert.deepEqual(await stores.mutualRooms.selectEntries(low, high, 0, 100), []);
  });

  it('drops a pair unused for cache_idle_seconds when another pair is built', async () => {
    const [low, high] = pair();
    await server.running.storage.tx('test', async (tx) => {
      for (let afterRoom: string | null = ''; afterRoom !== null;)
        afterRoom = await tx.mutualRooms.insertEntries(low, high, afterRoom, PART);
      await tx.mutualRooms.insertPair(low, high, Date.now());
      await tx.mutualRooms.updatePairUsed(low, high, 0);
    });
    const res = await server.request<{ joined: string[] }>(
      'GET',
      `/_matrix/client/v1/mutual_rooms?user_id=${encodeURIComponent(carol.userId)}`,
      { token: alice.accessToken },
    );
    assert.equal(res.status, 200);
    assert.equal(res.body.joined.length, 1);
    assert.equal(await stores.mutualRooms.selectPair(low, high), undefined);
    assert.deepEqual(await stores.mutualRooms.selectEntries(low, high, 0, 100), []);
  });
});
