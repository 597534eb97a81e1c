/**
 * The peers bench's report: its targets judged from a run's figures, and its section of
 * docs/benchmarks.md written between markers, one part per database and kind of shape (the
 * issue's or a smaller one), leaving the rest of the document (and the other parts) as it was.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { it } from 'node:test';
import { markedSectionsOfFile, sectionOf, withSection } from '../../bench/doc-sections.js';
import { ISSUE_SHAPE } from '../../bench/peers/dataset.js';
import { writePeersSection } from '../../bench/peers/docs.js';
import { targetChecks, type PeersReport } from '../../bench/peers/report.js';
import type { ScenarioResult } from '../../bench/peers/scenarios.js';

function result(id: string, latencyRatio: number, rateRatio: number): ScenarioResult {
  const timing = { p50: 1, p99: 2, rate: 100, items: 1 };
  return {
    id,
    scenario: `scenario ${id}`,
    unit: 'request',
    rateOf: 'operations',
    connections: 32,
    commons: timing,
    synapse: timing,
    latencyRatio,
    rateRatio,
  };
}

function report(
  database: 'sqlite' | 'postgres',
  results: ScenarioResult[],
  shape: Record<string, number> = { members: 10 },
): PeersReport {
  return {
    when: '2026-12-05T02:00:00.000Z',
    database,
    synapseVersion: '1.0.0',
    commonsVersion: '0.1.0',
    shape,
    runs: 3,
    answersDiffer: [],
    results,
    rssMiB: { commons: 100, synapse: 200 },
    builtSeconds: { commons: 1, synapse: 2 },
  };
}

it('judges each target from the ratios: time at most, rate at least', () => {
  const checks = targetChecks(
    report('sqlite', [result('joined_members', 0.05, 12), result('members', 0.2, 1)]),
  );
  const byName = Object.fromEntries(checks.map((c) => [c.name, c.met]));
  assert.equal(byName['scenario joined_members: time'], true);
  assert.equal(byName['scenario joined_members: rate per second'], true);
  assert.equal(byName['scenario members: time'], false);
  assert.equal(byName['resident memory after the run'], true);
  assert.ok(!checks.some((c) => c.name.startsWith('scenario members: rate')), 'no rate target');
});

it('sets a marked section in place, or appends it', () => {
  const text = '# Doc\n\nbefore\n';
  const once = withSection(text, 'x', 'first');
  assert.equal(sectionOf(once, 'x'), '<!-- x:begin -->\nfirst\n<!-- x:end -->');
  const twice = withSection(`${once}\nafter\n`, 'x', 'second $& $1');
  assert.match(twice, /before\n\n<!-- x:begin -->\nsecond \$& \$1\n<!-- x:end -->\n\nafter/);
  assert.equal(sectionOf('no markers', 'x'), null);
});

it('finds every top-level marked section of a file in order, nested ones inside theirs', () => {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'sections-')), 'doc.md');
  const a = '<!-- a:begin -->\nA\n<!-- a:end -->';
  const b = '<!-- b:begin -->\n<!-- b-inner:begin -->\nB\n<!-- b-inner:end -->\n<!-- b:end -->';
  const c = '<!-- c:begin -->\nC\n<!-- c:end -->';
  writeFileSync(file, `# Doc\n\n${a}\n\ntext\n\n${b}\n\n${c}\n`);
  assert.deepEqual(markedSectionsOfFile(file), [a, b, c]);
  assert.deepEqual(markedSectionsOfFile(file, ['a']), [b, c]);
  assert.deepEqual(markedSectionsOfFile(path.join(path.dirname(file), 'none.md')), []);
});

it('writes one part at a time, keeping the others and the rest of the document', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'peers-docs-'));
  const docs = path.join(dir, 'benchmarks.md');
  writeFileSync(docs, '# Benchmarks\n\nOther sections stay.\n');
  await writePeersSection(docs, report('sqlite', [result('members', 0.05, 1)]), 'a.json');
  await writePeersSection(docs, report('postgres', [result('members', 0.3, 1)]), 'b.json');
  const text = readFileSync(docs, 'utf8');
  assert.match(text, /Other sections stay\./);
  const peers = sectionOf(text, 'peers') ?? '';
  assert.match(sectionOf(peers, 'peers-sqlite-small') ?? '', /a\.json/);
  assert.match(sectionOf(peers, 'peers-postgres-small') ?? '', /b\.json/);
  assert.match(peers, /### SQLite, a smaller shape:/);
  await writePeersSection(docs, report('sqlite', [result('members', 0.07, 1)]), 'c.json');
  const again = sectionOf(readFileSync(docs, 'utf8'), 'peers') ?? '';
  assert.match(sectionOf(again, 'peers-sqlite-small') ?? '', /c\.json/);
  assert.doesNotMatch(again, /a\.json/);
  assert.match(sectionOf(again, 'peers-postgres-small') ?? '', /b\.json/);
  // The issue's shape has its own part, shown first; the smaller runs stay.
  await writePeersSection(
    docs,
    report('sqlite', [result('members', 0.04, 1)], { ...ISSUE_SHAPE }),
    'd.json',
  );
  const full = sectionOf(readFileSync(docs, 'utf8'), 'peers') ?? '';
  assert.match(sectionOf(full, 'peers-sqlite') ?? '', /### SQLite, the issue's shape:[^]*d\.json/);
  assert.match(sectionOf(full, 'peers-sqlite-small') ?? '', /c\.json/);
  assert.ok(full.indexOf('d.json') < full.indexOf('c.json'), "the issue's shape first");
});
