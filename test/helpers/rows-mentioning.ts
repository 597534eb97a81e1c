/**
 * Every row of every table that still names something: its text columns holding one of the
 * identifiers exactly, or containing the first one (a room ID inside JSON, for example).
 * Tables are read from the database itself, so a table added later is checked too.
 */
import Sqlite from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect, sql } from 'kysely';
import pg from 'pg';
import type { TestServer } from './server.js';

const TEXT = /^(text|varchar|character varying|char|character|json|jsonb)$/i;

/** Per table, how many rows mention `ids` (tables with none are left out). */
export async function rowsMentioning(
  server: TestServer,
  ids: readonly [string, ...string[]],
): Promise<Record<string, number>> {
  const url = server.config.database.url;
  if (url === null) throw new Error('the test server has no database URL');
  // A connection of its own (read-only on SQLite, beside the server's).
  const db = new Kysely<Record<string, never>>({
    dialect: url.startsWith('sqlite:')
      ? new SqliteDialect({
          database: new Sqlite(url.slice('sqlite:'.length), { readonly: true }),
        })
      : new PostgresDialect({ pool: new pg.Pool({ connectionString: url, max: 1 }) }),
  });
  try {
    const found: Record<string, number> = {};
    const contained = `%${ids[0].replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
    for (const table of await db.introspection.getTables()) {
      const columns = table.columns.filter((c) => TEXT.test(c.dataType));
      if (columns.length === 0) continue;
      const where = sql.join(
        columns.map(
          (c) =>
            sql`(${sql.ref(c.name)} IN (${sql.join(ids)}) OR ${sql.ref(c.name)} LIKE ${contained} ESCAPE '\\')`,
        ),
        sql` OR `,
      );
      const { rows } = await sql<{
        n: number | string;
      }>`SELECT count(*) AS n FROM ${sql.table(table.name)} WHERE ${where}`.execute(db);
      const n = Number(rows[0]?.n ?? 0);
      if (n > 0) found[table.name] = n;
    }
    return found;
  } finally {
    await db.destroy();
  }
}
