/**
 * Two Commons processes on one PostgreSQL database. Changes travel between them by
 * LISTEN/NOTIFY: a /sync long-polling on one is woken by a message written through the other
 * (not by polling or its timeout), and what one process caches (sessions, mutual-rooms pairs)
 * is dropped when the other changes it. SQLite serves one process by design, so this runs on
 * PostgreSQL only; CI requires it.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { createTestDatabase, testDialects, type TestDatabase } from '../helpers/databases.js';
import { startServerOn, type TestServer } from '../helpers/server.js';
import { registerUser } from '../helpers/client.js';
import { startWorker, type Worker } from '../helpers/worker.js';
import { eventually } from '../helpers/eventually.js';

const V3 = '/_matrix/client/v3';

describe(
  'worker processes on one database [postgres]',
  { skip: !testDialects().includes('postgres') && 'PostgreSQL is not configured' },
  () => {
    let database: TestDatabase;
    let dataDir: string;
    let writer: TestServer;
    let worker: Worker;
    before(async () => {
      database = await createTestDatabase('postgres');
      dataDir = mkdtempSync(path.join(tmpdir(), 'commons-workers-'));
      writer = await startServerOn(database, dataDir);
      worker = await startWorker({
        COMMONS_DATA_DIR: dataDir,
        COMMONS_DATABASE_URL: database.url,
        COMMONS_LISTEN_HOST: '127.0.0.1',
        COMMONS_LISTEN_PORT: '0',
        COMMONS_SERVER_NAME: 'test.local',
        COMMONS_RATE_LIMITS_ENABLED: 'false',
        COMMONS_LOG_LEVEL: 'info',
      });
    });
    after(async () => {
      worker?.child.kill('SIGTERM');
      await writer?.close();
      await database?.drop();
      rmSync(dataDir, { recursive: true, force: true });
    });

    it("a long-poll on one process is woken by the other process's write", async () => {
      const alice = await registerUser(writer);
      const bob = await registerUser(writer);
      const created = await writer.request<{ room_id: string }>('POST', `${V3}/createRoom`, {
        token: alice.accessToken,
        body: { invite: [bob.userId] },
      });
      const roomId = created.body.room_id;
      const joined = await writer.request('POST', `${V3}/rooms/${roomId}/join`, {
        token: bob.accessToken,
        body: {},
      });
      assert.equal(joined.status, 200);
      const syncOnWorker = (query: string) =>
        fetch(`${worker.url}${V3}/sync?${query}`, {
          headers: { Authorization: `Bearer ${bob.accessToken}` },
        }).then(async (r) => ({ status: r.status, body: (await r.json()) as unknown }));
      const first = await syncOnWorker('timeout=0');
      assert.equal(first.status, 200);
      const since = (first.body as { next_batch: string }).next_batch;
      // A long timeout: only the notification can end this request in time for the test.
      const waiting = syncOnWorker(`since=${since}&timeout=100000`);
      await new Promise((resolve) => setTimeout(resolve, 300));
      const sent = await writer.request<{ event_id: string }>(
        'PUT',
        `${V3}/rooms/${roomId}/send/m.room.message/cross1`,
        { token: alice.accessToken, body: { msgtype: 'm.text', body: 'across processes' } },
      );
      assert.equal(sent.status, 200);
      const woken = await waiting;
      assert.equal(woken.status, 200);
      const events = (
        woken.body as {
          rooms: { join: Record<string, { timeline: { events: { event_id: string }[] } }> };
        }
      ).rooms.join[roomId]?.timeline.events;
      assert.deepEqual(
        events?.map((e) => e.event_id),
        [sent.body.event_id],
      );
    });

    const onWorker = (path: string, token: string, init: RequestInit = {}) =>
      fetch(`${worker.url}${path}`, {
        ...init,
        headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      }).then(async (r) => ({
        status: r.status,
        body: (await r.json()) as Record<string, unknown>,
      }));

    // Issue #19: right after a logout answered, the other process accepted the token 1 time
    // in 20. The logout now answers once every other process has dropped the session
    // (docs/architecture.md, "Caches kept by the change feed"), so the very next request is
    // refused, every time.
    it('a token logged out through one process is refused by the other at once, every time', async () => {
      const carol = await registerUser(writer);
      const refusedAfter: number[] = [];
      for (let round = 0; round < 30; round++) {
        const login = await writer.request<{ access_token: string }>('POST', `${V3}/login`, {
          body: {
            type: 'm.login.password',
            identifier: { type: 'm.id.user', user: carol.userId },
            password: carol.password,
          },
        });
        assert.equal(login.status, 200);
        const token = login.body.access_token;
        for (let i = 0; i < 2; i++)
          assert.equal((await onWorker(`${V3}/account/whoami`, token)).status, 200);
        const out = await writer.request('POST', `${V3}/logout`, { token });
        assert.equal(out.status, 200);
        const after = await onWorker(`${V3}/account/whoami`, token);
        if (after.status !== 401) refusedAfter.push(round);
        else assert.equal(after.body.errcode, 'M_UNKNOWN_TOKEN');
      }
      assert.deepEqual(refusedAfter, [], 'rounds where the other process still took the token');
    });

    it('a listener that never acknowledges delays a logout by the bound at most, not forever', async () => {
      // A connection that looks like a third process's change feed but never answers.
      const stuck = new pg.Client({
        connectionString: database.url,
        application_name: 'commons-feed-stuck0000000',
      });
      await stuck.connect();
      try {
        await stuck.query('LISTEN commons_barrier');
        const dave = await registerUser(writer);
        assert.equal((await onWorker(`${V3}/account/whoami`, dave.accessToken)).status, 200);
        const out = await writer.request('POST', `${V3}/logout`, { token: dave.accessToken });
        assert.equal(out.status, 200, JSON.stringify(out.body));
        const after = await onWorker(`${V3}/account/whoami`, dave.accessToken);
        assert.equal(after.status, 401, 'the real process acknowledged, so it refuses at once');
      } finally {
        await stuck.end();
      }
    });

    it('mutual rooms cached by one process follow membership changes made through the other', async () => {
      const alice = await registerUser(writer);
      const bob = await registerUser(writer);
      const rooms: string[] = [];
      for (let i = 0; i < 3; i++) {
        const created = await writer.request<{ room_id: string }>('POST', `${V3}/createRoom`, {
          token: alice.accessToken,
          body: { preset: 'public_chat' },
        });
        rooms.push(created.body.room_id);
      }
      const [r1, r2, r3] = rooms as [string, string, string];
      for (const room of [r1, r2]) {
        const joined = await writer.request('POST', `${V3}/rooms/${room}/join`, {
          token: bob.accessToken,
          body: {},
        });
        assert.equal(joined.status, 200);
      }
      const mutual = () =>
        onWorker(
          `/_matrix/client/v1/mutual_rooms?user_id=${encodeURIComponent(bob.userId)}`,
          alice.accessToken,
        );
      const joinedOf = (r: { body: Record<string, unknown> }) => r.body.joined as string[];
      for (let i = 0; i < 2; i++) assert.deepEqual(joinedOf(await mutual()), [r1, r2]);

      const left = await writer.request('POST', `${V3}/rooms/${r1}/leave`, {
        token: bob.accessToken,
        body: {},
      });
      assert.equal(left.status, 200);
      assert.deepEqual(joinedOf(await eventually(mutual, (r) => joinedOf(r).length !== 2)), [r2]);
      const joined = await writer.request('POST', `${V3}/rooms/${r3}/join`, {
        token: bob.accessToken,
        body: {},
      });
      assert.equal(joined.status, 200);
      assert.deepEqual(joinedOf(await eventually(mutual, (r) => joinedOf(r).length !== 1)), [
        r2,
        r3,
      ]);
    });

    it('/joined_members kept by one process follows member events made through the other', async () => {
      const alice = await registerUser(writer);
      const bob = await registerUser(writer);
      const created = await writer.request<{ room_id: string }>('POST', `${V3}/createRoom`, {
        token: alice.accessToken,
        body: { preset: 'public_chat' },
      });
      const room = created.body.room_id;
      const joinedMembers = async () =>
        (
          await onWorker(
            `${V3}/rooms/${encodeURIComponent(room)}/joined_members`,
            alice.accessToken,
          )
        ).body.joined as Record<string, { display_name?: string }>;
      // Asked twice, so the worker answers from what it kept.
      for (let i = 0; i < 2; i++)
        assert.deepEqual(Object.keys(await joinedMembers()), [alice.userId]);

      const joined = await writer.request('POST', `${V3}/rooms/${room}/join`, {
        token: bob.accessToken,
        body: {},
      });
      assert.equal(joined.status, 200);
      assert.ok(bob.userId in (await eventually(joinedMembers, (j) => bob.userId in j)));
      await joinedMembers();

      const renamed = await writer.request(
        'PUT',
        `${V3}/profile/${encodeURIComponent(bob.userId)}/displayname`,
        { token: bob.accessToken, body: { displayname: 'Bob Elsewhere' } },
      );
      assert.equal(renamed.status, 200);
      const after = await eventually(
        joinedMembers,
        (j) => j[bob.userId]?.display_name === 'Bob Elsewhere',
      );
      assert.equal(after[bob.userId]?.display_name, 'Bob Elsewhere');
    });

    it('/joined_rooms kept by one process follows joins and leaves made through the other', async () => {
      const alice = await registerUser(writer);
      const bob = await registerUser(writer);
      const created = await writer.request<{ room_id: string }>('POST', `${V3}/createRoom`, {
        token: alice.accessToken,
        body: { preset: 'public_chat' },
      });
      const room = created.body.room_id;
      const bobRooms = async () =>
        (await onWorker(`${V3}/joined_rooms`, bob.accessToken)).body.joined_rooms as string[];
      // Asked twice, so the worker answers from what it kept.
      for (let i = 0; i < 2; i++) assert.deepEqual(await bobRooms(), []);
      const joined = await writer.request('POST', `${V3}/rooms/${room}/join`, {
        token: bob.accessToken,
        body: {},
      });
      assert.equal(joined.status, 200);
      assert.deepEqual(await eventually(bobRooms, (rooms) => rooms.length === 1), [room]);
      await bobRooms();
      const left = await writer.request('POST', `${V3}/rooms/${room}/leave`, {
        token: bob.accessToken,
        body: {},
      });
      assert.equal(left.status, 200);
      assert.deepEqual(await eventually(bobRooms, (rooms) => rooms.length === 0), []);
    });

    it('a member who leaves through one process is refused /joined_members by the other', async () => {
      const alice = await registerUser(writer);
      const bob = await registerUser(writer);
      const created = await writer.request<{ room_id: string }>('POST', `${V3}/createRoom`, {
        token: alice.accessToken,
        body: { preset: 'public_chat' },
      });
      const room = created.body.room_id;
      const path = `${V3}/rooms/${encodeURIComponent(room)}/joined_members`;
      assert.equal(
        (
          await writer.request('POST', `${V3}/rooms/${room}/join`, {
            token: bob.accessToken,
            body: {},
          })
        ).status,
        200,
      );
      // Bob's list is kept by the worker, with him in it.
      await eventually(
        () => onWorker(path, bob.accessToken),
        (r) => bob.userId in (r.body.joined as object),
      );
      await onWorker(path, bob.accessToken);
      assert.equal(
        (
          await writer.request('POST', `${V3}/rooms/${room}/leave`, {
            token: bob.accessToken,
            body: {},
          })
        ).status,
        200,
      );
      const refused = await eventually(
        () => onWorker(path, bob.accessToken),
        (r) => r.status !== 200,
      );
      assert.equal(refused.status, 403);
      assert.equal(refused.body.errcode, 'M_FORBIDDEN');
    });
  },
);
