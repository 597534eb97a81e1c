/**
 * A display-name change and its rooms' member events end consistent after a crash at any
 * point (issue #19: a change killed mid-way left /profile new and the member events old).
 *
 * The crash is simulated at the storage boundary: from the k-th transaction on, every
 * transaction of the server fails before it begins, as if the process had died there — the
 * database is real, and what was committed stays. Then a new server starts on the same
 * database (as after a restart), or the user changes their name again.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, it } from 'node:test';
import { createTestDatabase, forEachDatabase, type TestDatabase } from '../helpers/databases.js';
import { startServerOn, type TestServer } from '../helpers/server.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { eventually } from '../helpers/eventually.js';
import type { Storage, Stores } from '../../src/storage/index.js';

const C = '/_matrix/client/v3';
const ROOMS = 4;

/**
 * The process "dies" after `steps` writes: from then on every transaction, and the last
 * statement of a change (dropping its pending record), fails before it starts. Returns the
 * undo.
 */
function dieAfter(storage: Storage, steps: number): () => void {
  const realTx = storage.tx;
  const updates = storage.stores.profileUpdates;
  const realDelete = updates.deletePending;
  let left = steps;
  const step = (what: string) => {
    if (left <= 0) throw new Error(`simulated crash before ${what}`);
    left--;
  };
  storage.tx = async <T>(name: string, fn: (stores: Stores) => Promise<T>): Promise<T> => {
    step(name);
    return realTx.call(storage, name, fn) as Promise<T>;
  };
  updates.deletePending = async (userId, revision) => {
    step('deletePending');
    return realDelete.call(updates, userId, revision);
  };
  return () => {
    storage.tx = realTx;
    updates.deletePending = realDelete;
  };
}

forEachDatabase('profile changes after a crash (issue #19)', (dialect) => {
  let database: TestDatabase;
  let dataDir: string;
  let server: TestServer;
  let alice: TestUser;
  const roomIds: string[] = [];
  before(async () => {
    database = await createTestDatabase(dialect);
    dataDir = mkdtempSync(path.join(tmpdir(), 'commons-data-'));
    server = await startServerOn(database, dataDir);
    alice = await registerUser(server);
    const bob = await registerUser(server);
    for (let i = 0; i < ROOMS; i++) {
      const created = await server.request<{ room_id: string }>('POST', `${C}/createRoom`, {
        token: bob.accessToken,
        body: { preset: 'public_chat' },
      });
      assert.equal(created.status, 200);
      const joined = await server.request('POST', `${C}/rooms/${r(created.body.room_id)}/join`, {
        token: alice.accessToken,
      });
      assert.equal(joined.status, 200);
      roomIds.push(created.body.room_id);
    }
  });
  after(async () => {
    await server.close();
    await database.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const r = encodeURIComponent;
  const setName = (name: string) =>
    server.request('PUT', `${C}/profile/${r(alice.userId)}/displayname`, {
      token: alice.accessToken,
      body: { displayname: name },
    });
  const profileName = async () =>
    (
      await server.request<{ displayname?: string }>(
        'GET',
        `${C}/profile/${r(alice.userId)}/displayname`,
      )
    ).body.displayname;
  /** The display name of alice's member event in each room. */
  const memberNames = () =>
    Promise.all(
      roomIds.map(
        async (roomId) =>
          (
            await server.request<{ displayname?: string }>(
              'GET',
              `${C}/rooms/${r(roomId)}/state/m.room.member/${r(alice.userId)}`,
              { token: alice.accessToken },
            )
          ).body.displayname,
      ),
    );
  /** How many of alice's member events in the room carry `name`. */
  const eventsNaming = async (roomId: string, name: string) => {
    const filter = JSON.stringify({ types: ['m.room.member'], senders: [alice.userId] });
    const page = await server.request<{ chunk: { content: { displayname?: string } }[] }>(
      'GET',
      `${C}/rooms/${r(roomId)}/messages?dir=b&limit=100&filter=${r(filter)}`,
      { token: alice.accessToken },
    );
    assert.equal(page.status, 200);
    return page.body.chunk.filter((e) => e.content.displayname === name).length;
  };
  /** Profile and rooms agree, and no room got the same change twice. */
  const assertConsistent = async (what: string) => {
    const expected = await profileName();
    const names = await eventually(memberNames, (all) => all.every((n) => n === expected));
    assert.deepEqual(
      names,
      roomIds.map(() => expected),
      `${what}: profile says ${expected}`,
    );
    for (const roomId of roomIds) {
      assert.ok(
        (await eventually(
          () => eventsNaming(roomId, expected ?? ''),
          (n) => n >= 1,
        )) <= 1,
      );
    }
    const pending = await eventually(
      () => server.running.storage.stores.profileUpdates.selectPending('', 10),
      (rows) => rows.length === 0,
    );
    assert.deepEqual(pending, [], `${what}: a change still recorded as pending`);
  };

  // The writes of a change: the profile's transaction (with its pending record), one
  // transaction per room, and dropping the record.
  const STEPS = ROOMS + 2;
  for (let steps = 0; steps < STEPS; steps++) {
    it(`a crash after ${steps} of a change's ${STEPS} writes is finished at the next start`, async () => {
      const before = await profileName();
      const name = `restart ${steps}`;
      const undo = dieAfter(server.running.storage, steps);
      const answer = await setName(name);
      undo();
      assert.equal(answer.status, 500, JSON.stringify(answer.body));
      const changedRooms = (await memberNames()).filter((n) => n === name).length;
      assert.equal(changedRooms, Math.max(0, Math.min(steps - 1, ROOMS)));
      // The process dies; another starts on the same database.
      await server.close();
      server = await startServerOn(database, dataDir);
      assert.equal(await profileName(), steps === 0 ? before : name);
      await assertConsistent(name);
    });
  }

  it('a crash mid-way is finished by the next change, without a restart', async () => {
    const undo = dieAfter(server.running.storage, 2);
    assert.equal((await setName('interrupted')).status, 500);
    undo();
    assert.equal((await setName('next')).status, 200);
    assert.equal(await profileName(), 'next');
    await assertConsistent('the next change');
  });

  it('an unchanged profile sends no member events', async () => {
    const before = await eventsNaming(roomIds[0] as string, 'next');
    assert.equal((await setName('next')).status, 200);
    assert.equal(await eventsNaming(roomIds[0] as string, 'next'), before);
  });
});
