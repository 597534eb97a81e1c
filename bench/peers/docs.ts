/**
 * The "Commons and Synapse" section of docs/benchmarks.md: an introduction, then one part per
 * database, each replaced only by a run on that database.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import prettier from 'prettier';
import { sectionOf, withSection } from '../doc-sections.js';
import { renderRun, type PeersReport } from './report.js';

export const PEERS_SECTION = 'peers';

const INTRO = `## Commons and Synapse (issue #20)

\`npm run bench:peers\` builds the same data on Commons and on the newest Synapse from PyPI
through each server's client API, checks that both answer the same, then times both in one
run, interleaved with the order alternating. The data (issue #20's): a room of 10,000 joined
members (each with a display name) and 1,000 who left; a pair sharing 1,000 rooms and each in
1,000 more (the pair's first user is also "the user in 2,000 rooms"); a bot in 2,000 rooms of 50
members; eight writers. Each built data directory (and PostgreSQL database) is kept under
\`bench/.cache/peers/\`, so a rerun starts in seconds. Rate limits are raised and password hashing
made cheap on both. **The runs below use a smaller shape than the issue's** (each states its
own): on this two-core machine, with seven other jobs running, Synapse took 904 s for the first
1,000 members of a room (each registered, named and joined; PostgreSQL) and 986 s for the whole
shape below on SQLite, so the issue's shape — 11,000 joins into one room and 98,000 into the
bot's rooms — would take it most of a day. The options take the shape (the defaults are the
issue's); the runs below are
\`npm run bench:peers -- --members 2000 --left 200 --shared 200 --own 200 --bot-rooms 200 --bot-room-size 5 --load-seconds 8 --docs\`
(and the same with \`--postgres URL\`). The ratio is Commons' median time ÷ Synapse's, the rate ratio Commons'
rate ÷ Synapse's. Before its timed runs each request is made as many times untimed on both
servers (\`--warmup N\` changes that; runs before 2026-12-05 07:00 UTC had none), so that what is
timed is a running server rather than its first answers. Reproduce: \`npm run bench:peers -- --docs\` (SQLite) and
\`npm run bench:peers -- --postgres postgres://user:password@host/postgres --docs\`; \`--help\` lists
the options (smaller shapes for a quick look).`;

export async function writePeersSection(
  docsPath: string,
  report: PeersReport,
  source: string,
): Promise<void> {
  const text = existsSync(docsPath) ? readFileSync(docsPath, 'utf8') : '# Benchmarks\n';
  const current = sectionOf(text, PEERS_SECTION) ?? '';
  const parts = ['sqlite', 'postgres'].map((database) => {
    const name = `${PEERS_SECTION}-${database}`;
    const kept = sectionOf(current, name);
    return database === report.database
      ? withSection('', name, renderRun(report, source)).trim()
      : (kept ?? '');
  });
  const body = [INTRO, ...parts.filter((p) => p !== '')].join('\n\n');
  const updated = withSection(text, PEERS_SECTION, body);
  const options = (await prettier.resolveConfig(docsPath)) ?? {};
  writeFileSync(docsPath, await prettier.format(updated, { ...options, filepath: docsPath }));
}
