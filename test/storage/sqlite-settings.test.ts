/** The settings every SQLite connection of the server runs with (src/storage/database.ts). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { sql } from 'kysely';
import { openDatabase } from '../../src/storage/database.js';
import { createTestDatabase } from '../helpers/databases.js';

describe('SQLite connection settings', () => {
  it('WAL, synchronous=FULL, foreign keys and a 64 MiB page cache', async () => {
    const database = await createTestDatabase('sqlite');
    try {
      const handle = await openDatabase(database.url);
      try {
        const read = async (pragma: string) => {
          const { rows } = await sql<
            Record<string, unknown>
          >`${sql.raw(`PRAGMA ${pragma}`)}`.execute(handle.db);
          return rows[0]?.[pragma];
        };
        assert.equal(await read('journal_mode'), 'wal');
        assert.equal(await read('synchronous'), 2);
        assert.equal(await read('foreign_keys'), 1);
        assert.equal(await read('cache_size'), -65536);
      } finally {
        await handle.close();
      }
    } finally {
      await database.drop();
    }
  });
});
