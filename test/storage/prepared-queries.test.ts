/**
 * Prepared queries (src/storage/prepared-query.ts): the same answers as their one-off form,
 * every argument bound, and on PostgreSQL a named statement that each connection prepares once
 * (pg_prepared_statements lists it on the connection that ran it), while other queries stay
 * unnamed.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { sql } from 'kysely';
import { openDatabase, type DatabaseHandle } from '../../src/storage/database.js';
import { PREPARED_MARK, prepareQuery } from '../../src/storage/prepared-query.js';
import type { Database } from '../../src/storage/schema.js';
import { forEachDatabase, createTestDatabase, type TestDatabase } from '../helpers/databases.js';

forEachDatabase('prepared queries', (dialect) => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  before(async () => {
    database = await createTestDatabase(dialect);
    handle = await openDatabase(database.url, { poolSize: 2 });
    await handle.db
      .insertInto('rooms')
      .values(
        ['!a:x', '!b:x', '!c:x'].map((roomId, i) => ({
          room_id: roomId,
          room_version: '10',
          creator: '@u:x',
          is_public: i % 2,
          created_ts: 1000 + i,
          room_nid: i + 1,
        })),
      )
      .execute();
  });
  after(async () => {
    await handle.close();
    await database.drop();
  });

  const roomsFrom = (db: DatabaseHandle['db']) =>
    prepareQuery(db, 2, (after: string, limit: number) =>
      db
        .selectFrom('rooms')
        .select('room_id')
        .where('room_id', '>', after)
        .orderBy('room_id')
        .limit(limit),
    );

  it('answers as the query run once would, with new arguments each time', async () => {
    const query = roomsFrom(handle.db);
    for (const [from, limit] of [
      ['', 2],
      ['!a:x', 5],
      ['!c:x', 1],
      ['', 2],
    ] as const) {
      const once = await handle.db
        .selectFrom('rooms')
        .select('room_id')
        .where('room_id', '>', from)
        .orderBy('room_id')
        .limit(limit)
        .execute();
      assert.deepEqual(await query(from, limit), once);
    }
  });

  it('refuses a builder that leaves an argument unbound', async () => {
    // Two arguments declared, the second (a limit) never used by the builder.
    const unbound = prepareQuery<Database, [string, number], { room_id: string }>(
      handle.db,
      2,
      (after) => handle.db.selectFrom('rooms').select('room_id').where('room_id', '>', after),
    );
    await assert.rejects(unbound('', 1), /binds 1 of its 2 arguments/);
  });

  if (dialect === 'postgres') {
    it('is a named statement on the connection that ran it; other queries are not', async () => {
      // One transaction: one connection for the query and the look at its statements.
      const statements = await handle.tx('preparedStatements', async (trx) => {
        const query = roomsFrom(trx);
        for (let i = 0; i < 7; i++) assert.equal((await query('', 3)).length, 3);
        await trx.selectFrom('rooms').select('room_id').where('room_id', '=', '!a:x').execute();
        const { rows } = await sql<{
          statement: string;
          generic_plans: string;
          custom_plans: string;
        }>`SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements`.execute(trx);
        return rows;
      });
      assert.equal(statements.length, 1, JSON.stringify(statements));
      const [prepared] = statements;
      assert.ok(prepared?.statement.startsWith(PREPARED_MARK), prepared?.statement);
      // Every run (here and, on a reused connection, in the test before) of the one statement.
      assert.ok(Number(prepared?.generic_plans) + Number(prepared?.custom_plans) >= 7);
    });
  }
});
