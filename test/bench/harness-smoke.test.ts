/**
 * The benchmark harness end to end on a tiny SQLite dataset: the generator, Commons in its
 * own process, the sample check through the HTTP API, every scenario, the raw results and
 * the Markdown report. No timing is asserted; only that everything ran and fits together.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runBenchmarks, type BenchReport } from '../../bench/run.js';
import { SCENARIOS } from '../../bench/scenarios.js';

describe('benchmark harness (tiny dataset, SQLite)', () => {
  let dir: string;
  let report: BenchReport;
  const lines: string[] = [];

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'commons-bench-'));
    report = await runBenchmarks({
      profile: 'tiny',
      dialects: ['sqlite'],
      seed: 3,
      scale: 1,
      scenarios: [...SCENARIOS],
      cacheDir: null,
      workDir: path.join(dir, 'work'),
      resultsDir: path.join(dir, 'results'),
      docsPath: path.join(dir, 'docs', 'benchmarks.md'),
      postgresUrl: 'postgres://unused',
      serverEntry: 'tsx',
      cpuProfile: false,
      buildOnly: false,
      log: (line) => lines.push(line),
      load: { warmupSeconds: 0.05, durationSeconds: 0.1, runs: 1, writeSeconds: 0.2 },
    });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('builds the dataset and passes the sample check through the HTTP API', () => {
    const [sqlite] = report.databases;
    assert.equal(sqlite?.dialect, 'sqlite');
    assert.equal(sqlite.error, undefined, lines.join('\n'));
    assert.ok((sqlite.dataset?.events ?? 0) > 0);
    const failed = sqlite.sampleCheck?.checks.filter((c) => !c.ok) ?? [];
    assert.deepEqual(failed, []);
    assert.equal(sqlite.sampleCheck?.passed, true);
  });

  it('measures every scenario without failures', () => {
    const s = report.databases[0]?.scenarios;
    assert.ok(s, lines.join('\n'));
    const cases = s.mutual?.cases ?? [];
    assert.equal(cases.length, 4);
    for (const c of cases) {
      assert.equal(c.error, undefined, `${c.name}: ${c.error}`);
      assert.ok((c.c1?.runs[0]?.ok ?? 0) > 0, `${c.name}: no successful response`);
      assert.equal(c.c1?.failures, 0, c.name);
      assert.ok((c.ceiling?.cN.rps.median ?? 0) > 0, `${c.name}: ceiling not measured`);
      assert.ok(Number.isFinite(c.rpsRatio));
    }
    assert.equal(s.mutual?.walk?.rooms, report.dataset.sharingPair.shared);
    assert.equal(s.workaround?.error, undefined);
    assert.equal(s.workaround?.rooms, report.dataset.sharingPair.shared);
    assert.deepEqual(
      s.growth?.points.map((p) => [p.roomsPerUser, p.error]),
      report.dataset.growth.map((n) => [n, undefined]),
    );
    assert.ok(Number.isFinite(s.growth?.ratio));
    for (const r of s.bigRoom?.requests ?? []) {
      assert.equal(r.error, undefined, `${r.name}: ${r.error}`);
      assert.equal(r.items, r.expectedItems, r.name);
      assert.ok((r.peakRssMiB ?? 0) > 0, `${r.name}: no memory reading`);
    }
    // Six member and room lists, and the initial lazy-loading /sync of issue #5.
    assert.equal(s.bigRoom?.requests.length, 7);
    assert.ok(s.bigRoom?.requests.some((r) => r.name.startsWith('initial lazy-loading /sync')));
    assert.equal(s.writes?.length, 2);
    for (const w of s.writes ?? []) {
      assert.equal(w.error, undefined, `${w.name}: ${w.error}`);
      assert.ok(w.joins > 0, `${w.name}: no joins`);
    }
  });

  it('writes the raw results, the report and its charts, and judges every target', () => {
    const raw = JSON.parse(
      readFileSync(path.join(dir, 'results', path.basename(report.resultsFile)), 'utf8'),
    ) as BenchReport;
    assert.equal(raw.profile, 'tiny');
    assert.equal(raw.databases.length, 1);
    const markdown = readFileSync(path.join(dir, 'docs', 'benchmarks.md'), 'utf8');
    for (const heading of ['## Targets', '## 1–2. `mutual_rooms` and the ceiling', '## 4. Growth'])
      assert.ok(markdown.includes(heading), heading);
    for (const chart of ['bench-growth.svg', 'bench-comparison.svg']) {
      const svg = readFileSync(path.join(dir, 'docs', chart), 'utf8');
      assert.match(svg, /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
      assert.match(svg, /<\/svg>\n$/);
    }
    assert.ok(report.targets.length >= 10);
    for (const t of report.targets) assert.ok(['met', 'missed', 'not measured'].includes(t.status));
  });
});
