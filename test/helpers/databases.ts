/**
 * forEachDatabase(): runs a suite on SQLite always, and on PostgreSQL when
 * COMMONS_TEST_DATABASE_URL names a server (scripts/run-tests.ts sets it when one is
 * reachable; CI requires it). Each database is created fresh with a unique name and dropped.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe } from 'node:test';
import pg from 'pg';

export type TestDialect = 'sqlite' | 'postgres';

export interface TestDatabase {
  dialect: TestDialect;
  url: string;
  drop(): Promise<void>;
}

const adminUrl = process.env.COMMONS_TEST_DATABASE_URL;

export function testDialects(): TestDialect[] {
  return adminUrl ? ['sqlite', 'postgres'] : ['sqlite'];
}

/** Creates a new, empty database of the dialect. */
export async function createTestDatabase(dialect: TestDialect): Promise<TestDatabase> {
  if (dialect === 'sqlite') {
    const dir = mkdtempSync(path.join(tmpdir(), 'commons-test-'));
    return {
      dialect,
      url: `sqlite:${path.join(dir, 'commons.db')}`,
      drop: async () => rmSync(dir, { recursive: true, force: true }),
    };
  }
  if (!adminUrl) throw new Error('COMMONS_TEST_DATABASE_URL is not set');
  const name = `commons_test_${process.pid}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    dialect,
    url: url.toString(),
    async drop() {
      const client = new pg.Client({ connectionString: adminUrl });
      await client.connect();
      try {
        // pg's pool.end() resolves once each connection has been told to end, not when it
        // has: wait for them to go, so the forced drop kills nothing still closing.
        const deadline = Date.now() + 5000;
        while (Date.now() < deadline) {
          const { rows } = await client.query<{ n: string }>(
            'SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1',
            [name],
          );
          if (Number(rows[0]?.n) === 0) break;
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await client.end();
      }
    },
  };
}

/**
 * Declares `suite` once per available database, named `<name> [<dialect>]`; `options.skip`
 * (a reason) skips it on every database, as for a suite whose requirement is missing.
 */
export function forEachDatabase(
  name: string,
  suite: (dialect: TestDialect) => void,
  options: { skip?: string | undefined } = {},
): void {
  for (const dialect of testDialects()) {
    describe(`${name} [${dialect}]`, { skip: options.skip }, () => suite(dialect));
  }
}
