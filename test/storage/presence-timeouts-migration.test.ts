/**
 * Migration 0078 (presence time-outs) on a database holding presence rows of the release
 * before: each row counts as seen at the upgrade (its sync and update times are then), so that
 * nobody is timed out at once, and online users are currently active.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { sql, type Kysely } from 'kysely';
import { openDatabase } from '../../src/storage/database.js';
import { migrateTo, migrateToLatest, migrations } from '../../src/storage/migrations/index.js';
import { createTestDatabase, forEachDatabase } from '../helpers/databases.js';

const NAME = '0078-presence-timeouts';

forEachDatabase('presence time-outs migration', (dialect) => {
  it('rows already there count as seen at the upgrade; online ones are currently active', async () => {
    const database = await createTestDatabase(dialect);
    try {
      const handle = await openDatabase(database.url);
      try {
        const db = handle.db as unknown as Kysely<unknown>;
        const names = Object.keys(migrations).sort();
        const before = names[names.indexOf(NAME) - 1];
        assert.ok(before);
        await migrateTo(db, before);
        await sql`INSERT INTO presence (user_id, presence, status_msg, last_active_ts, stream_ordering)
          VALUES ('@on:example.org', 'online', 'hi', 5, 1), ('@off:example.org', 'offline', NULL, 7, 2)`.execute(
          db,
        );
        const upgradedAfter = Date.now();
        await migrateToLatest(db);
        const rows = await handle.db
          .selectFrom('presence')
          .selectAll()
          .orderBy('user_id')
          .execute();
        assert.deepEqual(
          rows.map((row) => [row.user_id, row.presence, Number(row.currently_active)]),
          [
            ['@off:example.org', 'offline', 0],
            ['@on:example.org', 'online', 1],
          ],
        );
        for (const row of rows) {
          assert.ok(Number(row.last_sync_ts) >= upgradedAfter, String(row.last_sync_ts));
          assert.ok(Number(row.last_update_ts) >= upgradedAfter, String(row.last_update_ts));
        }
        // The columns go again on the way down.
        await migrateTo(db, before);
        const [row] = (
          await sql<
            Record<string, unknown>
          >`SELECT * FROM presence WHERE user_id = '@on:example.org'`.execute(db)
        ).rows;
        assert.deepEqual(Object.keys(row ?? {}).sort(), [
          'last_active_ts',
          'presence',
          'status_msg',
          'stream_ordering',
          'user_id',
        ]);
      } finally {
        await handle.close();
      }
    } finally {
      await database.drop();
    }
  });
});
