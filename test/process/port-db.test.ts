/**
 * `commons port-db`: a SQLite database with users, rooms, events, profiles and a
 * deactivated account moves to PostgreSQL through the command, and Commons then serves it
 * from there as it did from SQLite (tokens, rooms, history, stream positions). A target that
 * holds data, a SQLite file a server is running on, and bad arguments are refused.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { createTestDatabase, testDialects, type TestDatabase } from '../helpers/databases.js';
import { startServerOn, type TestServer } from '../helpers/server.js';
import { passwordAuth, registerUser, type TestUser } from '../helpers/client.js';
import { expectError } from '../helpers/assertions.js';
import { runPortDb } from '../../src/port-db.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const V3 = '/_matrix/client/v3';

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** `commons port-db …` as its own process. */
function portDb(args: string[]): Promise<Run> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(ROOT, 'src/cli.ts'), 'port-db', ...args],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve) =>
    child.on('close', (status) => resolve({ status, stdout, stderr })),
  );
}

interface Snapshot {
  user: TestUser;
  gone: TestUser;
  roomId: string;
  messages: unknown[];
  since: string;
}

async function sendText(
  server: TestServer,
  user: TestUser,
  roomId: string,
  body: string,
  txn: string,
) {
  const res = await server.request<{ event_id: string }>(
    'PUT',
    `${V3}/rooms/${encodeURIComponent(roomId)}/send/m.room.message/${txn}`,
    { token: user.accessToken, body: { msgtype: 'm.text', body } },
  );
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body.event_id;
}

async function history(server: TestServer, user: TestUser, roomId: string): Promise<unknown[]> {
  const res = await server.request<{ chunk: unknown[] }>(
    'GET',
    `${V3}/rooms/${encodeURIComponent(roomId)}/messages?dir=f&limit=100`,
    { token: user.accessToken },
  );
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body.chunk;
}

describe(
  'commons port-db [sqlite → postgres]',
  { skip: !testDialects().includes('postgres') && 'PostgreSQL is not configured' },
  () => {
    let source: TestDatabase;
    let target: TestDatabase;
    let dataDir: string;
    let snapshot: Snapshot;
    before(async () => {
      source = await createTestDatabase('sqlite');
      target = await createTestDatabase('postgres');
      dataDir = mkdtempSync(path.join(tmpdir(), 'commons-port-'));
      const server = await startServerOn(source, dataDir);
      try {
        const user = await registerUser(server);
        const gone = await registerUser(server);
        const name = await server.request(
          'PUT',
          `${V3}/profile/${encodeURIComponent(user.userId)}/displayname`,
          { token: user.accessToken, body: { displayname: 'Porter' } },
        );
        assert.equal(name.status, 200);
        const created = await server.request<{ room_id: string }>('POST', `${V3}/createRoom`, {
          token: user.accessToken,
          body: { preset: 'public_chat', name: 'Before the move', room_version: '12' },
        });
        const roomId = created.body.room_id;
        await server.request('POST', `${V3}/join/${encodeURIComponent(roomId)}`, {
          token: gone.accessToken,
          body: {},
        });
        for (let i = 0; i < 5; i++) await sendText(server, user, roomId, `message ${i}`, `t${i}`);
        const deactivated = await server.request('POST', `${V3}/account/deactivate`, {
          token: gone.accessToken,
          body: { auth: passwordAuth(gone.userId, gone.password) },
        });
        assert.equal(deactivated.status, 200, JSON.stringify(deactivated.body));
        const sync = await server.request<{ next_batch: string }>('GET', `${V3}/sync`, {
          token: user.accessToken,
        });
        assert.equal(sync.status, 200);
        snapshot = {
          user,
          gone,
          roomId,
          messages: await history(server, user, roomId),
          since: sync.body.next_batch,
        };
      } finally {
        await server.close();
      }
    });
    after(async () => {
      await source?.drop();
      await target?.drop();
      if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    });

    it('refuses missing or wrong arguments with status 2 and the usage', async () => {
      for (const args of [
        [],
        ['--from', source.url],
        ['--from', target.url, '--to', target.url],
        ['--from', source.url, '--to', source.url],
        ['--from', source.url, '--to', target.url, '--bogus'],
      ]) {
        const errors: string[] = [];
        const status = await runPortDb(
          args,
          () => {},
          (line) => errors.push(line),
        );
        assert.equal(status, 2, `${args.join(' ')}: ${errors.join('\n')}`);
        assert.match(errors.join('\n'), /^port-db: /);
      }
    });

    it('refuses a SQLite database a server is running on', async () => {
      const server = await startServerOn(source, dataDir);
      try {
        const run = await portDb(['--from', source.url, '--to', target.url]);
        assert.equal(run.status, 1, run.stdout + run.stderr);
        assert.match(run.stderr, /in use by another process/);
      } finally {
        await server.close();
      }
    });

    it('copies every table, saying so table by table, and Commons serves the copy', async () => {
      const run = await portDb(['--from', source.url, '--to', target.url]);
      assert.equal(run.status, 0, run.stdout + run.stderr);
      for (const table of [
        'users',
        'profiles',
        'rooms',
        'events',
        'room_memberships',
        'stream_positions',
      ]) {
        assert.match(run.stdout, new RegExp(`^copied \\d+ rows of ${table}$`, 'm'), run.stdout);
      }
      assert.match(run.stdout, /^done: \d+ rows in \d+ tables$/m);
      assert.doesNotMatch(run.stdout + run.stderr, /postgres:postgres@/, 'no password is printed');

      const server = await startServerOn(target, dataDir);
      try {
        assert.equal(server.running.storage.dialect, 'postgres');
        const { user, gone, roomId } = snapshot;
        const whoami = await server.request<{ user_id: string }>('GET', `${V3}/account/whoami`, {
          token: user.accessToken,
        });
        assert.equal(whoami.status, 200, JSON.stringify(whoami.body));
        assert.equal(whoami.body.user_id, user.userId);
        assert.deepEqual(await history(server, user, roomId), snapshot.messages);
        const profile = await server.request<{ displayname: string }>(
          'GET',
          `${V3}/profile/${encodeURIComponent(user.userId)}`,
        );
        assert.equal(profile.body.displayname, 'Porter');
        const login = await server.request('POST', `${V3}/login`, {
          body: {
            type: 'm.login.password',
            identifier: { type: 'm.id.user', user: gone.userId },
            password: gone.password,
          },
        });
        expectError(login, 403, 'M_USER_DEACTIVATED');

        // Positions carry on from the SQLite ones: the old sync token sees only the new event.
        const eventId = await sendText(server, user, roomId, 'after the move', 'after');
        const sync = await server.request<{
          rooms: { join: Record<string, { timeline: { events: { event_id: string }[] } }> };
        }>('GET', `${V3}/sync?since=${encodeURIComponent(snapshot.since)}&timeout=0`, {
          token: user.accessToken,
        });
        assert.equal(sync.status, 200, JSON.stringify(sync.body));
        assert.deepEqual(
          sync.body.rooms.join[roomId]?.timeline.events.map((e) => e.event_id),
          [eventId],
        );
        const another = await server.request('POST', `${V3}/createRoom`, {
          token: user.accessToken,
          body: {},
        });
        assert.equal(another.status, 200, JSON.stringify(another.body));
      } finally {
        await server.close();
      }
    });

    it('refuses a target that holds data, and leaves it as it was', async () => {
      const count = async () => {
        const client = new pg.Client({ connectionString: target.url });
        await client.connect();
        try {
          const { rows } = await client.query<{ n: string }>('SELECT count(*) AS n FROM events');
          return Number(rows[0]?.n);
        } finally {
          await client.end();
        }
      };
      const before = await count();
      const run = await portDb(['--from', source.url, '--to', target.url]);
      assert.equal(run.status, 1, run.stdout + run.stderr);
      assert.match(run.stderr, /already holds data .*new, empty database/);
      assert.equal(await count(), before);
    });
  },
);
