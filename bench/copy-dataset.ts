/**
 * Loads a built SQLite dataset into an empty PostgreSQL database, row for row: the full
 * profile's PostgreSQL dataset. Building it through the services on PostgreSQL takes well over
 * an hour on this machine (a dozen round trips per event, 1.5 million events), while the rows
 * are the same the SQLite build wrote through the same code: real events, auth checks and
 * stream positions, signed with the key the runs then use. The schema comes from Commons' own
 * migrations; only the rows are copied, in one transaction.
 */
import SqliteDatabase from 'better-sqlite3';
import pg from 'pg';
import { openDatabase } from '../src/storage/database.js';
import type { Progress } from './generate.js';

/** Bound parameters per INSERT, under PostgreSQL's limit of 65,535. */
const MAX_PARAMETERS = 30_000;
/** Tables of the migration tool itself, which the schema migration already filled. */
const SKIPPED = /^(sqlite_|kysely_)/;

const quote = (name: string) => `"${name.replace(/"/g, '""')}"`;

export async function copySqliteToPostgres(
  sqliteFile: string,
  postgresUrl: string,
  progress: Progress,
): Promise<void> {
  const started = performance.now();
  // The schema, at the same migration as the source (both are migrated to the latest).
  await (await openDatabase(postgresUrl)).close();
  const source = new SqliteDatabase(sqliteFile, { readonly: true });
  const target = new pg.Client({ connectionString: postgresUrl });
  await target.connect();
  try {
    const tables = source
      .prepare<[], string>("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
      .pluck()
      .all()
      .filter((name) => !SKIPPED.test(name));
    await target.query('BEGIN');
    // Tables are copied in name order, not in foreign-key order: foreign-key triggers are off
    // for the copy (the source kept them, with SQLite's foreign_keys on). Needs a superuser,
    // as creating the bench databases does.
    await target.query('SET LOCAL session_replication_role = replica');
    for (const table of tables) {
      const columns = source
        .prepare<[string], string>('SELECT name FROM pragma_table_info(?)')
        .pluck()
        .all(table);
      const rowsPerInsert = Math.max(1, Math.floor(MAX_PARAMETERS / columns.length));
      const insertHead = `INSERT INTO ${quote(table)} (${columns.map(quote).join(', ')}) VALUES `;
      // Rows a migration seeded (stream counters) are replaced by the source's.
      await target.query(`DELETE FROM ${quote(table)}`);
      let batch: unknown[][] = [];
      let copied = 0;
      const flush = async () => {
        if (batch.length === 0) return;
        const values: unknown[] = [];
        const tuples = batch.map((row) => {
          const start = values.length;
          values.push(...row);
          return `(${row.map((_, i) => `$${start + i + 1}`).join(', ')})`;
        });
        await target.query(insertHead + tuples.join(', '), values);
        copied += batch.length;
        batch = [];
      };
      const rows = source
        .prepare(`SELECT * FROM ${quote(table)}`)
        .raw()
        .iterate() as Iterable<unknown[]>;
      for (const row of rows) {
        batch.push(row);
        if (batch.length === rowsPerInsert) await flush();
      }
      await flush();
      if (copied > 0) progress(`  copied ${copied} rows of ${table}`);
    }
    await target.query('COMMIT');
    await target.query('ANALYZE');
  } catch (err) {
    await target.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    source.close();
    await target.end();
  }
  progress(`  loaded from SQLite in ${((performance.now() - started) / 1000).toFixed(0)} s`);
}
