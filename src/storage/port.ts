/**
 * Moving a SQLite database to PostgreSQL, row for row (`commons port-db`, and the bench's
 * PostgreSQL dataset). Both schemas come from Commons' own migrations, brought to the latest
 * first, so the tables and columns are the same; only the rows are copied, in one PostgreSQL
 * transaction, parents before children (foreign keys stay checked: no superuser needed).
 *
 * The source is read in one read transaction (one snapshot) while this process holds its
 * lock file, so no server can start on it meanwhile, and a server already running on it makes
 * the port refuse. The target must be empty: a database no Commons has written to.
 */
import { existsSync } from 'node:fs';
import SqliteDatabase from 'better-sqlite3';
import pg from 'pg';
import { dialectOf, openDatabase } from './database.js';

export type PortProgress = (message: string) => void;

export interface PortResult {
  /** Rows copied per table, in the order the tables were copied. */
  tables: { table: string; rows: number }[];
  ms: number;
}

/** Bound parameters per INSERT, under PostgreSQL's limit of 65,535. */
const MAX_PARAMETERS = 30_000;
/**
 * Tables of SQLite and of the migration tool itself (the target's migrations filled its own),
 * and SQLite's full-text index of event_search (PostgreSQL indexes the copied rows itself).
 */
const SKIPPED = /^(sqlite_|kysely_|event_search_fts)/;
/** Tables whose rows a migration seeds (stream counters): the source's replace them. */
const SEEDED = new Set(['stream_positions']);

const quote = (name: string) => `"${name.replace(/"/g, '""')}"`;

/** The refusal of a target that already holds data. */
export class PortTargetNotEmptyError extends Error {}

/** The source's tables, each after the tables its foreign keys refer to. */
function tablesInDependencyOrder(source: SqliteDatabase.Database): string[] {
  const names = source
    .prepare<[], string>("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
    .pluck()
    .all()
    .filter((name) => !SKIPPED.test(name));
  const parents = new Map<string, string[]>();
  for (const name of names) {
    const referred = source
      .prepare<[string], string>('SELECT DISTINCT "table" FROM pragma_foreign_key_list(?)')
      .pluck()
      .all(name)
      .filter((parent) => parent !== name);
    parents.set(name, referred);
  }
  const ordered: string[] = [];
  const placed = new Set<string>();
  const visiting = new Set<string>();
  const place = (name: string) => {
    if (placed.has(name)) return;
    if (visiting.has(name)) throw new Error(`foreign keys form a cycle through ${name}`);
    visiting.add(name);
    for (const parent of parents.get(name) ?? []) if (parents.has(parent)) place(parent);
    visiting.delete(name);
    placed.add(name);
    ordered.push(name);
  };
  for (const name of names) place(name);
  return ordered;
}

/**
 * Copies every row of the SQLite database at `sqliteUrl` (`sqlite:<path>`, or a bare path)
 * into the PostgreSQL database at `postgresUrl`, which must hold no data yet.
 */
export async function portSqliteToPostgres(
  sqliteUrl: string,
  postgresUrl: string,
  progress: PortProgress = () => {},
): Promise<PortResult> {
  const sourceUrl = sqliteUrl.startsWith('sqlite:') ? sqliteUrl : `sqlite:${sqliteUrl}`;
  if (dialectOf(postgresUrl) !== 'postgres') {
    throw new Error(`the target must be a PostgreSQL URL (postgres://…), not ${postgresUrl}`);
  }
  const file = sourceUrl.slice('sqlite:'.length);
  if (!existsSync(file)) throw new Error(`there is no SQLite database at ${file}`);
  const started = performance.now();
  // Migrates the source to the latest schema and holds its lock file until the end.
  const owner = await openDatabase(sourceUrl);
  try {
    // The target's schema, at the same migration.
    await (await openDatabase(postgresUrl, { poolSize: 1 })).close();
    const source = new SqliteDatabase(file, { readonly: true, fileMustExist: true });
    const target = new pg.Client({ connectionString: postgresUrl });
    await target.connect();
    try {
      // One snapshot of the source for every table.
      source.exec('BEGIN');
      const tables = tablesInDependencyOrder(source);
      await target.query('BEGIN');
      for (const table of tables) {
        if (SEEDED.has(table)) continue;
        const { rows } = await target.query(`SELECT 1 FROM ${quote(table)} LIMIT 1`);
        if (rows.length > 0) {
          throw new PortTargetNotEmptyError(
            `the target database already holds data (table ${table} has rows): port into a new, empty database`,
          );
        }
      }
      const copied: PortResult['tables'] = [];
      for (const table of tables) {
        const rows = await copyTable(source, target, table);
        copied.push({ table, rows });
        progress(`copied ${rows} rows of ${table}`);
      }
      await target.query('COMMIT');
      source.exec('COMMIT');
      progress('analyzing the PostgreSQL database');
      await target.query('ANALYZE');
      const ms = performance.now() - started;
      progress(`ported in ${(ms / 1000).toFixed(1)} s`);
      return { tables: copied, ms };
    } catch (err) {
      await target.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      if (source.inTransaction) source.exec('ROLLBACK');
      source.close();
      await target.end();
    }
  } finally {
    await owner.close();
  }
}

async function copyTable(
  source: SqliteDatabase.Database,
  target: pg.Client,
  table: string,
): Promise<number> {
  const columns = source
    .prepare<[string], string>('SELECT name FROM pragma_table_info(?)')
    .pluck()
    .all(table);
  const rowsPerInsert = Math.max(1, Math.floor(MAX_PARAMETERS / columns.length));
  const insertHead = `INSERT INTO ${quote(table)} (${columns.map(quote).join(', ')}) VALUES `;
  if (SEEDED.has(table)) await target.query(`DELETE FROM ${quote(table)}`);
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
    .prepare(`SELECT ${columns.map(quote).join(', ')} FROM ${quote(table)}`)
    .raw()
    .iterate() as Iterable<unknown[]>;
  for (const row of rows) {
    batch.push(row);
    if (batch.length === rowsPerInsert) await flush();
  }
  await flush();
  return copied;
}
