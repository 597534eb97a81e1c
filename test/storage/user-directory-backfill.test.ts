/**
 * Migrations 0043 and 0046 fill the user directory from what a database already holds: every
 * local user under their profile, the rooms whose join rule is public, and who may find whom
 * (0046 runs down and up again here too).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { it } from 'node:test';
import type { Kysely } from 'kysely';
import { openDatabase } from '../../src/storage/database.js';
import { migrateTo, migrateToLatest } from '../../src/storage/migrations/index.js';
import { registerUser } from '../helpers/client.js';
import { createTestDatabase, forEachDatabase } from '../helpers/databases.js';
import { startServerOn } from '../helpers/server.js';

const C = '/_matrix/client/v3';

forEachDatabase('user directory backfill (migrations 0043, 0046)', (dialect) => {
  it('finds users and public-room members written before the migration', async () => {
    const database = await createTestDatabase(dialect);
    const dataDir = mkdtempSync(path.join(tmpdir(), 'commons-directory-'));
    try {
      let server = await startServerOn(database, dataDir);
      const seeker = await registerUser(server, 'seeker');
      const named = await registerUser(server, 'named');
      const hidden = await registerUser(server, 'hidden');
      const rename = await server.request('PUT', `${C}/profile/${named.userId}/displayname`, {
        token: named.accessToken,
        body: { displayname: 'Zoë Public' },
      });
      assert.equal(rename.status, 200);
      const created = await server.request('POST', `${C}/createRoom`, {
        token: named.accessToken,
        body: { preset: 'public_chat' },
      });
      assert.equal(created.status, 200);
      await server.request('POST', `${C}/createRoom`, {
        token: hidden.accessToken,
        body: { preset: 'private_chat' },
      });
      await server.close();

      const handle = await openDatabase(database.url);
      try {
        const db = handle.db as unknown as Kysely<unknown>;
        await migrateTo(db, '0042-key-backup');
        await migrateToLatest(db);
      } finally {
        await handle.close();
      }

      server = await startServerOn(database, dataDir);
      try {
        const search = async (term: string) =>
          (
            await server.request<{ results: { user_id: string }[] }>(
              'POST',
              `${C}/user_directory/search`,
              { token: seeker.accessToken, body: { search_term: term } },
            )
          ).body.results.map((result) => result.user_id);
        assert.deepEqual(await search('zoe'), [named.userId]);
        assert.deepEqual(await search('named'), [named.userId]);
        assert.deepEqual(await search('hidden'), []);
      } finally {
        await server.close();
      }
    } finally {
      await database.drop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
