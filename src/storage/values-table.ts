/**
 * Reads that answer for many rooms (or many state keys) in one statement with one plan: the
 * keys are a `VALUES` list joined to the table, so the database probes its index once per
 * row of the list. The list's columns are named `column1`, `column2`, … on both SQLite and
 * PostgreSQL; numeric columns are cast, since PostgreSQL takes an untyped parameter in a
 * `VALUES` list as text. (A `UNION ALL` of per-room reads did the same in one round trip, but
 * PostgreSQL plans each of its parts: 11–17 ms per hundred rooms before it read a row.)
 */
import { sql, type AliasedRawBuilder } from 'kysely';

/** Rows per statement: well under both databases' limits on bound parameters. */
export const VALUES_BATCH = 500;

export type ValueKind = 'text' | 'bigint';

/**
 * `(VALUES (…), …) AS k` for these rows, whose columns are of the kinds given. Built as one raw
 * SQL node (its text around the values, and the values as its parameters) rather than a node
 * for each row and value joined together: Kysely then builds and compiles a list of 500 rows
 * in about a quarter of the time, which was a quarter of an initial /sync's CPU in 2,000 rooms.
 * The SQL and the parameters are the same either way.
 */
export function valuesTable<Row>(
  rows: ReadonlyArray<ReadonlyArray<string | number>>,
  kinds: readonly ValueKind[],
): AliasedRawBuilder<Row, 'k'> {
  // The text between parameters: fragments[i] comes before parameter i, and one more ends it.
  const fragments: string[] = [];
  const parameters: Array<string | number> = [];
  let text = '(VALUES ';
  rows.forEach((row, r) => {
    row.forEach((value, i) => {
      text += i === 0 ? (r === 0 ? '(' : ', (') : ', ';
      if (kinds[i] === 'bigint') text += 'CAST(';
      fragments.push(text);
      parameters.push(value);
      text = kinds[i] === 'bigint' ? ' AS BIGINT)' : '';
    });
    text += ')';
  });
  fragments.push(`${text})`);
  const template = Object.assign(fragments, { raw: fragments });
  return sql<Row>(template, ...parameters).as('k');
}

/** The rows `read` gives for each slice of `items`, one statement per slice; none for no items. */
export async function readInSlices<T, Row>(
  items: readonly T[],
  read: (slice: T[]) => Promise<Row[]>,
): Promise<Row[]> {
  const rows: Row[] = [];
  for (const slice of slices(items)) rows.push(...(await read(slice)));
  return rows;
}

/** `items` in slices of at most `size`. */
export function slices<T>(items: readonly T[], size = VALUES_BATCH): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Rows by their room, each room's in the order given. */
export function groupByRoom<Row extends { roomId: string }>(
  rows: readonly Row[],
): Map<string, Row[]> {
  const byRoom = new Map<string, Row[]>();
  for (const row of rows) {
    const list = byRoom.get(row.roomId);
    if (list) list.push(row);
    else byRoom.set(row.roomId, [row]);
  }
  return byRoom;
}
