/**
 * Queries built and compiled once, then run with new parameter values: for the few queries
 * every request makes (the access-token lookup, the mutual-rooms pair row, a membership), where
 * Kysely's building and compiling cost more than SQLite takes to answer. Their SQL starts with
 * PREPARED_MARK, so that on PostgreSQL each connection prepares it once, by name, and runs it
 * without parsing and planning it again (database.ts); SQLite prepares every text once anyway.
 *
 * The builder is called once with placeholder objects in place of its arguments; each
 * placeholder becomes a bound parameter of the compiled SQL, which later calls fill in. So
 * arguments must be plain values bound as parameters (in comparisons, `limit`), never lists,
 * identifiers or anything that changes the SQL text.
 */
import type { Compilable, CompiledQuery, Kysely } from 'kysely';

/** The comment a prepared query's SQL starts with. */
export const PREPARED_MARK = '/* prepared */ ';

/** Stands for the builder's argument number `index` in the compiled parameters. */
class Placeholder {
  constructor(readonly index: number) {}
}

export type PreparedQuery<Args extends readonly unknown[], Row> = (...args: Args) => Promise<Row[]>;

export function prepareQuery<DB, Args extends readonly unknown[], Row>(
  db: Kysely<DB>,
  arity: Args['length'],
  build: (...args: Args) => Compilable<Row>,
): PreparedQuery<Args, Row> {
  let compiled: CompiledQuery<Row> | undefined;
  return async (...args) => {
    if (!compiled) {
      const placeholders = Array.from({ length: arity }, (_, i) => new Placeholder(i));
      const built = build(...(placeholders as unknown as Args)).compile();
      // An argument may be bound more than once (a union's parts); each must be bound.
      const used = new Set(
        built.parameters.flatMap((p) => (p instanceof Placeholder ? [p.index] : [])),
      ).size;
      if (used !== arity)
        throw new Error(`prepared query binds ${used} of its ${arity} arguments: ${built.sql}`);
      compiled = { ...built, sql: `${PREPARED_MARK}${built.sql}` };
    }
    const parameters = compiled.parameters.map((p) =>
      p instanceof Placeholder ? args[p.index] : p,
    );
    const result = await db.executeQuery<Row>({ ...compiled, parameters });
    return result.rows;
  };
}
