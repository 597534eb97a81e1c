/**
 * Issue #19: a display-name change killed mid-way left /profile new and the member events of
 * the user's 24 rooms old, until the next change. Here a real Commons process is killed
 * (SIGKILL) while it sends a change's member events, a new one starts on the same database,
 * and the profile and every room must end agreeing, with the change sent once per room.
 * When exactly the kill lands varies from run to run; the outcome must not.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, it } from 'node:test';
import { createTestDatabase, forEachDatabase, type TestDatabase } from '../helpers/databases.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { eventually } from '../helpers/eventually.js';
import { killableCommons, openCounter, type DatabaseCounter } from '../helpers/kill-process.js';

const C = '/_matrix/client/v3';
const ROOMS = 24;
const KILLS = 2;

forEachDatabase('a profile change killed mid-way (issue #19)', (dialect) => {
  let database: TestDatabase;
  let dataDir: string;
  let alice: TestUser;
  const roomIds: string[] = [];

  const commons = killableCommons(() => ({
    COMMONS_DATA_DIR: dataDir,
    COMMONS_DATABASE_URL: database.url,
  }));
  const { request, server } = commons;
  const start = () => commons.start();
  const kill = () => commons.kill();

  /** How many of alice's rooms have a member event naming her `name`, read from the database. */
  let counter: DatabaseCounter | undefined;
  const roomsNamed = (name: string) =>
    (counter as DatabaseCounter).count(
      'SELECT count(*) AS n FROM room_memberships WHERE user_id = $1 AND displayname = $2',
      [alice.userId, name],
    );
  const r = encodeURIComponent;

  before(async () => {
    database = await createTestDatabase(dialect);
    dataDir = mkdtempSync(path.join(tmpdir(), 'commons-kill-'));
    await start();
    alice = await registerUser(server);
    const bob = await registerUser(server);
    for (let i = 0; i < ROOMS; i++) {
      const created = await request<{ room_id: string }>('POST', `${C}/createRoom`, {
        token: bob.accessToken,
        body: { preset: 'public_chat' },
      });
      assert.equal(created.status, 200);
      const joined = await request('POST', `${C}/rooms/${r(created.body.room_id)}/join`, {
        token: alice.accessToken,
      });
      assert.equal(joined.status, 200);
      roomIds.push(created.body.room_id);
    }
    counter = await openCounter(database);
  });
  after(async () => {
    await counter?.close();
    await kill();
    await database?.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const memberNames = () =>
    Promise.all(
      roomIds.map(
        async (roomId) =>
          (
            await request<{ displayname?: string }>(
              'GET',
              `${C}/rooms/${r(roomId)}/state/m.room.member/${r(alice.userId)}`,
              { token: alice.accessToken },
            )
          ).body.displayname,
      ),
    );
  const eventsNaming = async (roomId: string, name: string) => {
    const filter = JSON.stringify({ types: ['m.room.member'], senders: [alice.userId] });
    const page = await request<{ chunk: { content: { displayname?: string } }[] }>(
      'GET',
      `${C}/rooms/${r(roomId)}/messages?dir=b&limit=200&filter=${r(filter)}`,
      { token: alice.accessToken },
    );
    assert.equal(page.status, 200);
    return page.body.chunk.filter((e) => e.content.displayname === name).length;
  };

  for (let round = 1; round <= KILLS; round++) {
    it(`kill ${round}: the profile and all ${ROOMS} rooms agree after a restart`, async (t) => {
      const name = `killed ${round}`;
      const change = request('PUT', `${C}/profile/${r(alice.userId)}/displayname`, {
        token: alice.accessToken,
        body: { displayname: name },
      }).catch(() => undefined);
      // Kill as soon as the database holds the first room's new member event (read there
      // directly: asking the process itself would wait behind its own work).
      let finished = false;
      void change.then((answer) => (finished = answer?.status === 200));
      let updated = 0;
      const deadline = Date.now() + 30_000;
      while (!finished && updated === 0 && Date.now() < deadline) {
        updated = await roomsNamed(name);
        await new Promise((resolve) => setImmediate(resolve));
      }
      await kill();
      const done = finished;
      t.diagnostic(
        done
          ? 'the change was done before the kill'
          : `killed with ${updated} or more of ${ROOMS} rooms updated`,
      );
      await start();
      const profile = await request<{ displayname?: string }>(
        'GET',
        `${C}/profile/${r(alice.userId)}/displayname`,
      );
      assert.equal(profile.body.displayname, name);
      const names = await eventually(memberNames, (all) => all.every((n) => n === name), 30_000);
      assert.deepEqual(
        names,
        roomIds.map(() => name),
      );
      for (const roomId of roomIds) assert.equal(await eventsNaming(roomId, name), 1, roomId);
    });
  }
});
