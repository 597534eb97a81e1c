/**
 * The "Commons and Synapse" section of docs/benchmarks.md: an introduction, then one part per
 * database and shape (the issue's, or a smaller one), each replaced only by a run on that
 * database at that kind of shape.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import prettier from 'prettier';
import { sectionOf, withSection } from '../doc-sections.js';
import { isIssueShape } from './dataset.js';
import { renderRun, type PeersReport } from './report.js';

export const PEERS_SECTION = 'peers';

const INTRO = `## Commons and Synapse (issue #20)

\`npm run bench:peers\` builds the same data on Commons and on the newest Synapse from PyPI
through each server's client API, checks that both answer the same, then times both in one
run, interleaved with the order alternating. The data (issue #20's): a room of 10,000 joined
members (each with a display name) and 1,000 who left; a pair sharing 1,000 rooms and each in
1,000 more (the pair's first user is also "the user in 2,000 rooms"); a bot in 2,000 rooms of 50
members; eight writers. Each built data directory (and PostgreSQL database) is kept under
\`bench/.cache/peers/<database>-<hash of the shape>\`, so a rerun starts in seconds. Rate limits are
raised and password hashing made cheap on both.

The build is resumable: each step (an account registered and named, a room made, a join, a
leave) is appended to a journal beside each server's data (\`commons-journal.jsonl\`,
\`synapse-journal.jsonl\`) as it succeeds, and a run of the same shape that finds a journal carries
on from it; the data counts as built only once the journal ends with \`done\`. A room the server
made while the answer was lost (the build stopped in between) is found and left on resuming, so
the counts stay the shape's. A build stopped with Ctrl-C or SIGTERM stops both servers first (one
killed outright leaves its Synapse running, to be stopped before resuming). Requests (a step is
one request) are spread over the big room, the bot's rooms (many at once: Synapse takes one join
at a time per room, not per server, so the big room's requests go first) and the pair's, at most \`--build-parallel\` (32) in flight.
While building, Synapse's SQLite commits do not wait for the disk (\`synchronous = NORMAL\` in WAL
mode, for the build only; it is restarted as configured before anything is timed): a profile
(py-spy) of its build showed its one SQLite connection's thread in commits 72% of its time and
idle 9%; with fast commits, 12% and idle half of it. Measured on the issue's shape, a minute for each setting, load average 9–18 (two cores,
other jobs running), steps a second:

| in flight | Synapse, commits wait for the disk | Synapse, fast commits | Commons (commits wait) |
| --------- | ---------------------------------- | --------------------- | ---------------------- |
| 8         | 8.1                                | 8.6                   | 38.0, 30.8             |
| 16        | 6.6                                | 8.0                   | 32.2, 32.5             |
| 32        | 6.8                                | 9.6                   | 29.0, 32.2             |
| 64        | 7.5                                | –                     | 26.5                   |

Both servers are short of CPU here, not of requests: Synapse's own log of the niced build (load
average 13) has a join taking 16 database transactions and 3.8 s, of which 7 ms of CPU in the
request and 23 ms running SQL, the rest waiting for its one SQLite connection's thread and for
the CPU; a room creation 28 transactions and 5.8 s. At \`nice -n 10\` beside those jobs Synapse
built 1.1–2.5 steps a second with its commits waiting for the disk and 4–7 with fast ones. Later
in that build, with the pair's rooms made and the load average down to 4–8, Synapse ran at 30–43
steps a second (mostly joins into the bot's rooms) and Commons at 50–230; the issue's shape was
built after 2,855 s on Commons and 5,659 s on Synapse (its build stopped and resumed twice). The
issue's whole shape is about 138,000 steps on each server (11,000 accounts at two steps each,
5,000 rooms, 110,000 joins, 1,000 leaves).

**Which runs are below.** A run at the issue's shape comes first for each database it was made
on ("the issue's shape"), then the runs at a smaller shape ("a smaller shape";
\`--members 2000 --left 200 --shared 200 --own 200 --bot-rooms 200 --bot-room-size 5 --load-seconds 8\`).
Both databases have both. PostgreSQL's build of the issue's shape, made afresh on 2026-12-05,
took 6,267 s on Commons and 7,371 s on Synapse, both servers building at once, niced, beside a
whole CI run (\`bash .ci/run\`, its Rust build included) that held the machine's two cores
(\`bench/.cache/peers/full-build-pg.log\`: 8.6–67 steps a second on Commons, 5.4–34 on
Synapse, whose account registrations were the slowest part at the end). To build
a shape, or carry on with it, without timing anything:
\`nohup nice -n 10 npm run bench:peers -- --build-only >> bench/.cache/peers/full-build.log 2>&1 &\`
(add \`--postgres URL\` for PostgreSQL; one run at a time: a second run of the same shape refuses
while the first holds the directory's \`build.pid\`); once it is done, \`npm run bench:peers -- --docs\`
times it. The ratio is Commons' median time ÷ Synapse's, the rate ratio Commons' rate ÷
Synapse's. Before its timed runs each request is made as many times untimed on both servers
(\`--warmup N\` changes that; runs before 2026-12-05 07:00 UTC had none), so that what is timed is
a running server rather than its first answers. Before a scenario's timed runs, and before each
server's part at 32 connections, the run waits until both servers are idle (each under 5% of a
core over half a second; runs before 2026-12-05 19:10 UTC did not), so that neither is timed while
either is still working for the scenario before. \`--only id,…\` times some scenarios alone (not with \`--docs\`).
Reproduce: \`npm run bench:peers -- --docs\` (SQLite) and
\`npm run bench:peers -- --postgres postgres://user:password@host/postgres --docs\`; \`--help\` lists
the options (smaller shapes for a quick look).`;

/** The parts in the order they are shown: the issue's shape first, then the smaller runs. */
const PARTS = ['sqlite', 'postgres', 'sqlite-small', 'postgres-small'].map(
  (part) => `${PEERS_SECTION}-${part}`,
);

function partOf(report: PeersReport): string {
  return `${PEERS_SECTION}-${report.database}${isIssueShape(report.shape) ? '' : '-small'}`;
}

export async function writePeersSection(
  docsPath: string,
  report: PeersReport,
  source: string,
): Promise<void> {
  const text = existsSync(docsPath) ? readFileSync(docsPath, 'utf8') : '# Benchmarks\n';
  const current = sectionOf(text, PEERS_SECTION) ?? '';
  const runPart = partOf(report);
  const parts = PARTS.map((name) => {
    const kept = sectionOf(current, name);
    return name === runPart
      ? withSection('', name, renderRun(report, source)).trim()
      : (kept ?? '');
  });
  const body = [INTRO, ...parts.filter((p) => p !== '')].join('\n\n');
  const updated = withSection(text, PEERS_SECTION, body);
  const options = (await prettier.resolveConfig(docsPath)) ?? {};
  writeFileSync(docsPath, await prettier.format(updated, { ...options, filepath: docsPath }));
}
