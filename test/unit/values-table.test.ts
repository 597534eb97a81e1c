/**
 * The VALUES list of the many-room reads (storage/values-table.ts), compiled for both
 * databases: the SQL text around its values and the values as bound parameters, in order.
 * (Its results on each database: test/storage/batched-reads.test.ts.)
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import {
  DummyDriver,
  Kysely,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  SqliteAdapter,
  SqliteIntrospector,
  SqliteQueryCompiler,
  type Dialect,
} from 'kysely';
import { valuesTable } from '../../src/storage/values-table.js';

function compilerOnly(dialect: 'sqlite' | 'postgres'): Kysely<object> {
  const parts: Dialect =
    dialect === 'sqlite'
      ? {
          createAdapter: () => new SqliteAdapter(),
          createDriver: () => new DummyDriver(),
          createIntrospector: (db) => new SqliteIntrospector(db),
          createQueryCompiler: () => new SqliteQueryCompiler(),
        }
      : {
          createAdapter: () => new PostgresAdapter(),
          createDriver: () => new DummyDriver(),
          createIntrospector: (db) => new PostgresIntrospector(db),
          createQueryCompiler: () => new PostgresQueryCompiler(),
        };
  return new Kysely({ dialect: parts });
}

type Key = { column1: string; column2: number; column3: string };
const rows = [
  ['!a:x', 5, '@u:x'],
  ['!b:x', 7, ''],
] as const;

it('compiles to one VALUES list with text and cast numeric columns, on SQLite', () => {
  const query = compilerOnly('sqlite')
    .selectFrom(valuesTable<Key>(rows, ['text', 'bigint', 'text']))
    .selectAll()
    .compile();
  assert.equal(
    query.sql,
    'select * from (VALUES (?, CAST(? AS BIGINT), ?), (?, CAST(? AS BIGINT), ?)) as "k"',
  );
  assert.deepEqual(query.parameters, ['!a:x', 5, '@u:x', '!b:x', 7, '']);
});

it('numbers its parameters after those before it, on PostgreSQL', () => {
  const query = compilerOnly('postgres')
    .selectFrom(valuesTable<Key>(rows, ['text', 'bigint', 'text']))
    .where('k.column3', '!=', '@skip:x')
    .selectAll()
    .compile();
  assert.equal(
    query.sql,
    'select * from (VALUES ($1, CAST($2 AS BIGINT), $3), ($4, CAST($5 AS BIGINT), $6)) as "k" where "k"."column3" != $7',
  );
  assert.deepEqual(query.parameters, ['!a:x', 5, '@u:x', '!b:x', 7, '', '@skip:x']);
});

it('a single row and column', () => {
  const query = compilerOnly('sqlite')
    .selectFrom(valuesTable<{ column1: string }>([['!only:x']], ['text']))
    .selectAll()
    .compile();
  assert.equal(query.sql, 'select * from (VALUES (?)) as "k"');
  assert.deepEqual(query.parameters, ['!only:x']);
});
