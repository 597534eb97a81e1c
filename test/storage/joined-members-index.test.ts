/**
 * Migration 0008: on SQLite `/joined_members` reads the by-room index alone (it carries the
 * display name and avatar), and what it lists follows profile changes; PostgreSQL keeps the
 * narrow index.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { it } from 'node:test';
import { sql } from 'kysely';
import { openDatabase } from '../../src/storage/database.js';
import { migrateTo, migrateToLatest } from '../../src/storage/migrations/index.js';
import { registerUser } from '../helpers/client.js';
import { createTestDatabase, forEachDatabase } from '../helpers/databases.js';
import { startServerOn } from '../helpers/server.js';

const C = '/_matrix/client/v3';

/** SQLite's plan for the store's joined-members page (member-list-store.ts). */
async function joinedMembersPlan(url: string): Promise<string[]> {
  const handle = await openDatabase(url);
  try {
    const { rows } = await sql<{ detail: string }>`EXPLAIN QUERY PLAN
      SELECT user_id, displayname, avatar_url FROM room_memberships
      WHERE room_id = ${'!r:x'} AND membership = ${'join'} AND user_id > ${''}
      ORDER BY user_id LIMIT 1000`.execute(handle.db);
    return rows.map((r) => r.detail);
  } finally {
    await handle.close();
  }
}

forEachDatabase('the joined-members index (migration 0008)', (dialect) => {
  it('is applied, undone and applied again; on SQLite the page is read from the index alone', async () => {
    const database = await createTestDatabase(dialect);
    try {
      const handle = await openDatabase(database.url);
      try {
        await migrateTo(handle.db as never, '0007-membership-client-json');
        await migrateToLatest(handle.db as never);
      } finally {
        await handle.close();
      }
      if (dialect === 'sqlite') {
        const plan = await joinedMembersPlan(database.url);
        assert.ok(
          plan.some((step) => step.includes('COVERING INDEX room_memberships_by_room')),
          plan.join('\n'),
        );
      }
    } finally {
      await database.drop();
    }
  });

  it('/joined_members lists the longest display name and avatar the API allows, after a profile change', async () => {
    const database = await createTestDatabase(dialect);
    const dataDir = mkdtempSync(path.join(tmpdir(), 'commons-joined-index-'));
    const server = await startServerOn(database, dataDir);
    try {
      const alice = await registerUser(server);
      const created = await server.request<{ room_id: string }>('POST', `${C}/createRoom`, {
        token: alice.accessToken,
        body: {},
      });
      const roomId = created.body.room_id;
      const name = 'n'.repeat(256);
      const avatar = `mxc://example.org/${'a'.repeat(900)}`;
      const profile = `${C}/profile/${encodeURIComponent(alice.userId)}`;
      for (const [field, value] of [
        ['displayname', name],
        ['avatar_url', avatar],
      ] as const) {
        const put = await server.request('PUT', `${profile}/${field}`, {
          token: alice.accessToken,
          body: { [field]: value },
        });
        assert.equal(put.status, 200, JSON.stringify(put.body));
      }
      const joined = await server.request<{
        joined: Record<string, { display_name?: string; avatar_url?: string }>;
      }>('GET', `${C}/rooms/${roomId}/joined_members`, { token: alice.accessToken });
      assert.equal(joined.status, 200);
      assert.deepEqual(joined.body.joined[alice.userId], {
        display_name: name,
        avatar_url: avatar,
      });
    } finally {
      await server.close();
      await database.drop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
