// npm test: runs every test file with node's test runner, on SQLite and, when a PostgreSQL
// server is reachable, on PostgreSQL too. COMMONS_TEST_DATABASE_URL names the server; without
// it, postgres://postgres@127.0.0.1:5432/postgres is tried.
//
// Whatever a fresh clone cannot carry (a PostgreSQL server, the Matrix spec's data beside the
// repository, Chromium; test/helpers/requirements.ts) is checked first, and one SKIPPED banner
// names each suite that will not run for want of it. CI sets the COMMONS_TEST_REQUIRE_…
// variables, so there a missing one fails the run before any test starts.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { postgresProblem } from '../bench/cache.js';
import { REQUIREMENTS, isRequired } from '../test/helpers/requirements.js';

const DEFAULT_URL = 'postgres://postgres@127.0.0.1:5432/postgres';
const POSTGRES_REQUIRE_VARIABLE = 'COMMONS_TEST_REQUIRE_POSTGRES';
const url = process.env.COMMONS_TEST_DATABASE_URL ?? DEFAULT_URL;
const shownUrl = url.replace(/:[^:@/]*@/, ':***@');

function testFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory())
      return name === 'helpers' || name === 'fixtures' ? [] : testFiles(full);
    return name.endsWith('.test.ts') ? [full] : [];
  });
}

const skipped: string[] = [];
const refused: string[] = [];
const env = { ...process.env };

const unreachable = await postgresProblem(url);
if (unreachable === null) {
  env.COMMONS_TEST_DATABASE_URL = url;
  console.log(`npm test: running the suite on SQLite and on PostgreSQL (${shownUrl})`);
} else {
  delete env.COMMONS_TEST_DATABASE_URL;
  const problem = `${shownUrl} is unreachable (${unreachable})`;
  if (process.env[POSTGRES_REQUIRE_VARIABLE] === '1')
    refused.push(`${POSTGRES_REQUIRE_VARIABLE}=1 but ${problem}`);
  else skipped.push(`the PostgreSQL run: ${problem}; set COMMONS_TEST_DATABASE_URL`);
}
for (const requirement of REQUIREMENTS) {
  const problem = requirement.missing();
  if (problem === null) continue;
  if (isRequired(requirement)) refused.push(`${requirement.requireVariable}=1 but ${problem}`);
  else skipped.push(`${requirement.suites}: ${problem}`);
}

if (refused.length > 0) {
  for (const line of refused) console.error(`npm test: required, and missing: ${line}`);
  process.exit(1);
}
if (skipped.length > 0) {
  console.log('='.repeat(78));
  console.log('npm test: SKIPPED, for want of what this machine lacks:');
  for (const line of skipped) console.log(`  - ${line}`);
  console.log('Everything else runs. CI requires them all (COMMONS_TEST_REQUIRE_…=1).');
  console.log('='.repeat(78));
}

const only = process.argv.slice(2);
const files = only.length > 0 ? only : testFiles('test').sort();
const result = spawnSync(
  process.execPath,
  [
    '--import',
    'tsx',
    '--test',
    '--test-concurrency=2',
    '--test-force-exit',
    '--test-reporter=spec',
    ...files,
  ],
  { stdio: 'inherit', env },
);
process.exit(result.status ?? 1);
