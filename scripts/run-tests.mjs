// npm test: runs every test file with node's test runner, on SQLite and, when a PostgreSQL
// server is reachable, on PostgreSQL too. COMMONS_TEST_DATABASE_URL names the server
// (CI sets it and COMMONS_TEST_REQUIRE_POSTGRES=1, so an unreachable server fails the run);
// without it, postgres://postgres@127.0.0.1:5432/postgres is tried and a skip is announced.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';

const DEFAULT_URL = 'postgres://postgres@127.0.0.1:5432/postgres';
const required = process.env.COMMONS_TEST_REQUIRE_POSTGRES === '1';
const url = process.env.COMMONS_TEST_DATABASE_URL ?? DEFAULT_URL;

async function reachable(connectionString) {
  const client = new pg.Client({ connectionString, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return null;
  } catch (err) {
    return err.message;
  } finally {
    await client.end().catch(() => {});
  }
}

function testFiles(dir) {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory())
      return name === 'helpers' || name === 'fixtures' ? [] : testFiles(full);
    return name.endsWith('.test.ts') ? [full] : [];
  });
}

const problem = await reachable(url);
const env = { ...process.env };
if (problem === null) {
  env.COMMONS_TEST_DATABASE_URL = url;
  console.log(
    `npm test: running the suite on SQLite and on PostgreSQL (${url.replace(/:[^:@/]*@/, ':***@')})`,
  );
} else if (required) {
  console.error(
    `npm test: PostgreSQL is required (COMMONS_TEST_REQUIRE_POSTGRES=1) but ${url} is unreachable: ${problem}`,
  );
  process.exit(1);
} else {
  delete env.COMMONS_TEST_DATABASE_URL;
  console.log('='.repeat(78));
  console.log(`npm test: PostgreSQL SKIPPED — ${url} is unreachable (${problem}).`);
  console.log('Only the SQLite run happens. Set COMMONS_TEST_DATABASE_URL to test PostgreSQL.');
  console.log('='.repeat(78));
}

const only = process.argv.slice(2);
const files = only.length > 0 ? only : testFiles('test').sort();
const result = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-concurrency=2', '--test-reporter=spec', ...files],
  { stdio: 'inherit', env },
);
process.exit(result.status ?? 1);
