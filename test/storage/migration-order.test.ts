/**
 * A database made by an earlier release, which ran a migration numbered above one this release
 * adds (each area has its own range of numbers), is brought up to date: the new lower-numbered
 * migrations run after the higher ones that ran before, on both databases.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { Migrator, sql, type Kysely } from 'kysely';
import { openDatabase } from '../../src/storage/database.js';
import { migrations } from '../../src/storage/migrations/index.js';
import { createTestDatabase, forEachDatabase } from '../helpers/databases.js';

/** Migrations that came after the release of 2026-12-05 03:51 (stop 29), below its highest. */
const ADDED_LATER = new Set([
  '0021-room-dag',
  '0022-invite-room-state',
  '0025-remote-device-lists',
  '0032-appservice-registrations',
  '0044-remote-media-and-previews',
  '0045-dehydrated-devices',
  '0053-pushers',
  '0062-moderation',
  '0071-room-list-index',
]);

forEachDatabase('migrations added below ones already run', (dialect) => {
  it('an older database runs the new lower-numbered migrations when opened', async () => {
    const older = await createTestDatabase(dialect);
    try {
      // The older release's schema: its migrations only, as it ran them.
      const handle = await openDatabase(older.url, { migrate: false });
      try {
        const earlier = Object.fromEntries(
          Object.entries(migrations).filter(([name]) => !ADDED_LATER.has(name)),
        );
        const { error } = await new Migrator({
          db: handle.db as unknown as Kysely<unknown>,
          provider: { getMigrations: async () => earlier },
        }).migrateToLatest();
        assert.equal(error, undefined);
      } finally {
        await handle.close();
      }
      // This release opens it: every migration has run, the new ones included.
      const upgraded = await openDatabase(older.url);
      try {
        const ran = await sql<{ name: string }>`SELECT name FROM kysely_migration`.execute(
          upgraded.db,
        );
        assert.deepEqual(ran.rows.map((row) => row.name).sort(), Object.keys(migrations).sort());
        // A table from one of the added migrations is there and usable.
        assert.deepEqual(await upgraded.db.selectFrom('pushers').selectAll().execute(), []);
      } finally {
        await upgraded.close();
      }
    } finally {
      await older.drop();
    }
  });
});
