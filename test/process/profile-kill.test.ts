/**
 * Issue #19: a display-name change killed mid-way left /profile new and the member events of
 * the user's 24 rooms old, until the next change. Here a real Commons process is killed
 * (SIGKILL) while it sends a change's member events, a new one starts on the same database,
 * and the profile and every room must end agreeing, with the change sent once per room.
 * When exactly the kill lands varies from run to run; the outcome must not.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, it } from 'node:test';
import Sqlite from 'better-sqlite3';
import pg from 'pg';
import { createTestDatabase, forEachDatabase, type TestDatabase } from '../helpers/databases.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { eventually } from '../helpers/eventually.js';
import type { RequestOptions, TestResponse, TestServer } from '../helpers/server.js';
import { startWorker, type Worker } from '../helpers/worker.js';

const C = '/_matrix/client/v3';
const ROOMS = 24;
const KILLS = 2;

forEachDatabase('a profile change killed mid-way (issue #19)', (dialect) => {
  let database: TestDatabase;
  let dataDir: string;
  let worker: Worker | undefined;
  let alice: TestUser;
  const roomIds: string[] = [];

  const start = async () => {
    worker = await startWorker({
      COMMONS_DATA_DIR: dataDir,
      COMMONS_DATABASE_URL: database.url,
      COMMONS_LISTEN_HOST: '127.0.0.1',
      COMMONS_LISTEN_PORT: '0',
      COMMONS_SERVER_NAME: 'test.local',
      COMMONS_RATE_LIMITS_ENABLED: 'false',
      COMMONS_PASSWORD_HASHING_SCRYPT_LOG2_N: '10',
      COMMONS_LOG_LEVEL: 'info',
    });
  };
  const kill = async () => {
    const child = worker?.child;
    worker = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    await exited;
  };
  const request = async <T>(
    method: string,
    urlPath: string,
    options: RequestOptions = {},
  ): Promise<TestResponse<T>> => {
    if (!worker) throw new Error('no process running');
    const headers: Record<string, string> = { 'Content-Type': 'application/json' };
    if (options.token) headers.Authorization = `Bearer ${options.token}`;
    const body = options.body === undefined ? undefined : JSON.stringify(options.body);
    const response = await fetch(worker.url + urlPath, { method, headers, body });
    const text = await response.text();
    return {
      status: response.status,
      headers: response.headers,
      body: (text === '' ? undefined : JSON.parse(text)) as T,
    };
  };
  const server = { request } as unknown as TestServer;

  /** How many of alice's rooms have a member event naming her `name`, read from the database. */
  let roomsNamed: (name: string) => Promise<number>;
  let closeReader = async () => {};
  const openReader = async () => {
    const query =
      'SELECT count(*) AS n FROM room_memberships WHERE user_id = $1 AND displayname = $2';
    if (dialect === 'sqlite') {
      const reader = new Sqlite(database.url.slice('sqlite:'.length), { readonly: true });
      const statement = reader.prepare<[string, string], { n: number }>(
        query.replace(/\$\d/g, '?'),
      );
      roomsNamed = async (name) => statement.get(alice.userId, name)?.n ?? 0;
      closeReader = async () => void reader.close();
    } else {
      const reader = new pg.Client({ connectionString: database.url });
      await reader.connect();
      roomsNamed = async (name) =>
        Number((await reader.query<{ n: string }>(query, [alice.userId, name])).rows[0]?.n);
      closeReader = () => reader.end();
    }
  };
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
    await openReader();
  });
  after(async () => {
    await closeReader();
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
