/**
 * A PostgreSQL connection the server loses while it holds it (an administrator's
 * pg_terminate_backend between two statements of a transaction): the transaction fails, the
 * process goes on, and the pool opens a new connection for the next query.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import pg from 'pg';
import { openDatabase } from '../../src/storage/database.js';
import { createTestDatabase, testDialects } from '../helpers/databases.js';

describe(
  'PostgreSQL connection lost while in use',
  { skip: !testDialects().includes('postgres') && 'PostgreSQL is not configured' },
  () => {
    it('fails the transaction, warns, does not end the process, and the next query runs', async () => {
      const database = await createTestDatabase('postgres');
      const warnings: string[] = [];
      const uncaught: unknown[] = [];
      const onUncaught = (err: unknown) => uncaught.push(err);
      process.on('uncaughtException', onUncaught);
      const handle = await openDatabase(database.url, {
        logger: { debug: () => {}, warn: (_obj, msg) => warnings.push(msg) },
      });
      const admin = new pg.Client({ connectionString: process.env.COMMONS_TEST_DATABASE_URL });
      await admin.connect();
      let terminated: number | undefined;
      try {
        const outcome = handle.tx('terminated', async (trx) => {
          const { rows } = await sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`.execute(trx);
          const pid = rows[0]?.pid;
          assert.ok(pid);
          terminated = pid;
          await admin.query('SELECT pg_terminate_backend($1)', [pid]);
          // The server's notice reaches the connection while no statement of it is running.
          const deadline = Date.now() + 5000;
          while (!warnings.includes('PostgreSQL connection lost while in use')) {
            assert.ok(Date.now() < deadline, `no warning; saw ${JSON.stringify(warnings)}`);
            await sleep(10);
          }
          await sql`SELECT 1`.execute(trx);
        });
        await assert.rejects(outcome);
        assert.deepEqual(uncaught, []);
        const { rows } = await sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`.execute(
          handle.db,
        );
        // The broken connection was dropped, not handed out again.
        assert.ok(rows[0]?.pid);
        assert.notEqual(rows[0].pid, terminated);
        const stats = handle.poolStats();
        assert.ok(stats && stats.total >= 1);
      } finally {
        process.off('uncaughtException', onUncaught);
        await admin.end();
        await handle.close();
        await database.drop();
      }
    });
  },
);
