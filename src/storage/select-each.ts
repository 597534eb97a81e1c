/**
 * One statement for many small reads of the same shape, each with its own `ORDER BY … LIMIT`
 * (the latest events of each room, a sample of each room's members): the reads are joined
 * with `UNION ALL`, each wrapped as a subquery so its own ordering and limit hold on both
 * databases. On PostgreSQL that is one round trip and one plan for a whole batch of rooms
 * instead of one per room; on SQLite it saves building and compiling a query per room.
 */
import type { AliasedSelectQueryBuilder, Kysely, SelectQueryBuilder } from 'kysely';

/**
 * Reads per statement: SQLite allows at most 500 terms in a compound select, and a plan for
 * a hundred index scans is still quick to make.
 */
export const SELECT_EACH_BATCH = 100;

/** What `build` returns: a select whose rows are `Row`. */
interface SelectOf<Row> {
  as<A extends string>(alias: A): AliasedSelectQueryBuilder<Row, A>;
  execute(): Promise<Row[]>;
}

/** The rows of `build(item)` for every item; no statement for no items. */
export async function selectEach<DB, Item, Row>(
  db: Kysely<DB>,
  items: readonly Item[],
  build: (item: Item) => SelectOf<Row>,
): Promise<Row[]> {
  const rows: Row[] = [];
  for (let i = 0; i < items.length; i += SELECT_EACH_BATCH) {
    const part = items.slice(i, i + SELECT_EACH_BATCH).map(build);
    const [first, ...rest] = part;
    if (!first) continue;
    if (rest.length === 0) {
      // One read is sent as it is (the same SQL text, so the same cached statement).
      rows.push(...(await first.execute()));
      continue;
    }
    const wrap = (query: SelectOf<Row>) =>
      db.selectFrom(query.as('one')).selectAll() as unknown as SelectQueryBuilder<DB, never, Row>;
    const union = rest.reduce<SelectQueryBuilder<DB, never, Row>>(
      (all, next) => all.unionAll(wrap(next)),
      wrap(first),
    );
    rows.push(...(await union.execute()));
  }
  return rows;
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
