import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { it } from 'node:test';
import { configLeaves } from '../../src/config/load.js';
import { generateConfigTable } from '../../src/config/generate.js';
import { CONFIG_DOCS, configTableIn } from '../../scripts/update-config-docs.js';

const FIX =
  'run `node --import tsx scripts/update-config-docs.ts` and commit docs/configuration.md';

it('docs/configuration.md holds the key table generated from the schema', () => {
  const documented = configTableIn(readFileSync(CONFIG_DOCS, 'utf8'));
  assert.ok(
    documented === generateConfigTable(),
    `docs/configuration.md's key table differs from the config schema: ${FIX}`,
  );
});

it('the key table has one row per configuration key, in schema order', () => {
  const rows = generateConfigTable().split('\n').slice(2);
  const keys = rows.map((row) => /^\| `([^`]+)` \|/.exec(row)?.[1]);
  assert.deepEqual(
    keys,
    configLeaves().map((leaf) => leaf.path.join('.')),
  );
  for (const row of rows) {
    // Key, variable, default, meaning: four cells, none empty.
    const cells = row.split(/(?<!\\)\|/).slice(1, -1);
    assert.equal(cells.length, 4, row);
    for (const value of cells) assert.notEqual(value.trim(), '', row);
  }
});
