/**
 * The peers bench's report: its targets (issue #20), the Markdown table, and the "Commons and
 * Synapse" section of docs/benchmarks.md, kept between its markers when the main report is
 * written again.
 */
import { isIssueShape } from './dataset.js';
import type { ScenarioResult } from './scenarios.js';

export interface PeersReport {
  when: string;
  database: 'sqlite' | 'postgres';
  synapseVersion: string;
  commonsVersion: string;
  shape: Record<string, number>;
  runs: number;
  /** Untimed runs of each request on both servers before the timed ones (0: none). */
  warmup?: number;
  /** The machine's 1-minute load average when the timing began and when it ended. */
  loadAverage?: { start: number; end: number };
  answersDiffer: string[];
  results: ScenarioResult[];
  rssMiB: { commons: number; synapse: number };
  /** Each server's RSS after each scenario (MiB), in the order run: where memory grew. */
  rssAfter?: { id: string; commons: number; synapse: number }[];
  /**
   * What Commons' RSS at the end is made of (process.memoryUsage in the server, MiB), and
   * its RSS once a full garbage collection has run.
   */
  commonsMemory?: {
    heapUsed: number;
    heapTotal: number;
    external: number;
    rest: number;
    rssAfterGc: number;
    heapTotalAfterGc: number;
  };
  builtSeconds: { commons: number; synapse: number };
}

export interface TargetCheck {
  name: string;
  goal: string;
  figure: string;
  met: boolean;
}

interface Target {
  id: string;
  kind: 'latency' | 'rate';
  goal: number;
}

const TARGETS: Target[] = [
  { id: 'joined_members', kind: 'latency', goal: 0.1 },
  { id: 'joined_members', kind: 'rate', goal: 10 },
  { id: 'bot_start', kind: 'latency', goal: 0.1 },
  { id: 'members', kind: 'latency', goal: 0.1 },
  { id: 'members_join', kind: 'latency', goal: 0.1 },
  { id: 'members_at', kind: 'latency', goal: 0.1 },
  { id: 'joined_rooms', kind: 'latency', goal: 0.2 },
  { id: 'mutual_walk', kind: 'latency', goal: 0.2 },
  { id: 'mutual_walk', kind: 'rate', goal: 10 },
  { id: 'initial_sync', kind: 'latency', goal: 0.1 },
  { id: 'incremental_sync', kind: 'latency', goal: 0.5 },
  { id: 'write_messages', kind: 'rate', goal: 3 },
  { id: 'write_joins', kind: 'rate', goal: 3 },
];

const fmt = (n: number, digits = 2) =>
  Number.isFinite(n)
    ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 })
    : '–';

export function targetChecks(report: PeersReport): TargetCheck[] {
  const checks: TargetCheck[] = [];
  for (const target of TARGETS) {
    const result = report.results.find((r) => r.id === target.id);
    if (!result) continue;
    if (target.kind === 'latency') {
      checks.push({
        name: `${result.scenario}: time`,
        goal: `≤ ${target.goal} of Synapse's`,
        figure: fmt(result.latencyRatio, 3),
        met: result.latencyRatio <= target.goal,
      });
    } else {
      checks.push({
        name: `${result.scenario}: ${result.rateOf === 'items' ? 'items listed' : 'rate'} per second`,
        goal: `≥ ${target.goal}× Synapse's`,
        figure: `${fmt(result.rateRatio, 1)}×`,
        met: result.rateRatio >= target.goal,
      });
    }
  }
  checks.push({
    name: 'resident memory after the run',
    goal: "≤ Synapse's",
    figure: `${fmt(report.rssMiB.commons, 0)} against ${fmt(report.rssMiB.synapse, 0)} MiB`,
    met: report.rssMiB.commons <= report.rssMiB.synapse,
  });
  return checks;
}

const DATABASE_NAMES = { sqlite: 'SQLite', postgres: 'PostgreSQL' } as const;

/** The run's tables, as Markdown. */
export function renderRun(report: PeersReport, source: string): string {
  const lines: string[] = [];
  lines.push(
    `### ${DATABASE_NAMES[report.database]}${isIssueShape(report.shape) ? ", the issue's shape" : ', a smaller shape'}: Commons ${report.commonsVersion} and Synapse ${report.synapseVersion}`,
    '',
    `Run of ${report.when.slice(0, 16).replace('T', ' ')} UTC (\`${source}\`), both servers on ${DATABASE_NAMES[report.database]}; ${report.runs} timed runs of each request (fewer of the long ones) at one connection, interleaved${report.warmup ? ` (each after ${report.warmup === report.runs ? 'as many' : report.warmup} untimed on both servers: a warm-up)` : ''}, then 32 connections at once.${report.loadAverage ? ` Load average ${fmt(report.loadAverage.start, 1)} when the timing began, ${fmt(report.loadAverage.end, 1)} when it ended (two cores, other jobs running).` : ''}` +
      (report.answersDiffer.length === 0
        ? ' Both servers gave the same answers before anything was timed.'
        : ` **Where the answers differ:** ${report.answersDiffer.join('; ')}.`),
    '',
    `Data, built through each server's client API: a room of ${fmt(report.shape.members ?? NaN, 0)} joined members and ${fmt(report.shape.left ?? NaN, 0)} who left; a pair sharing ${fmt(report.shape.shared ?? NaN, 0)} rooms, each in ${fmt(report.shape.own ?? NaN, 0)} more; a bot in ${fmt(report.shape.botRooms ?? NaN, 0)} rooms of ${fmt(report.shape.botRoomSize ?? NaN, 0)}. Built in ${fmt(report.builtSeconds.commons, 0)} s on Commons and ${fmt(report.builtSeconds.synapse, 0)} s on Synapse.`,
    '',
    '| scenario | Commons p50 / p99 ms | Synapse p50 / p99 ms | Commons ÷ Synapse | at 32 connections (Commons / Synapse, per second) | rate ratio |',
    '| --- | --- | --- | --- | --- | --- |',
  );
  for (const r of report.results) {
    const per = r.rateOf === 'items' ? 'items' : `${r.unit}s`;
    const timed = Number.isFinite(r.commons.p50);
    lines.push(
      `| ${r.scenario} | ${timed ? `${fmt(r.commons.p50)} / ${fmt(r.commons.p99)}` : '–'} | ${timed ? `${fmt(r.synapse.p50)} / ${fmt(r.synapse.p99)}` : '–'} | ${timed ? fmt(r.latencyRatio, 3) : '–'} | ${fmt(r.commons.rate, 0)} / ${fmt(r.synapse.rate, 0)} ${per} (${r.connections} at once) | ${fmt(r.rateRatio, 1)}× |`,
    );
  }
  lines.push(
    `| resident memory after the run | ${fmt(report.rssMiB.commons, 0)} MiB | ${fmt(report.rssMiB.synapse, 0)} MiB | ${fmt(report.rssMiB.commons / report.rssMiB.synapse, 2)} | | |`,
    '',
    ...(report.commonsMemory
      ? [
          `Commons' memory at the end: V8 heap ${fmt(report.commonsMemory.heapTotal, 0)} MiB reserved (${fmt(report.commonsMemory.heapUsed, 0)} in use), ${fmt(report.commonsMemory.external, 0)} MiB outside it (buffers), ${fmt(report.commonsMemory.rest, 0)} MiB the rest (code, SQLite's page cache, native allocations); after a full garbage collection RSS ${fmt(report.commonsMemory.rssAfterGc, 0)} MiB, heap ${fmt(report.commonsMemory.heapTotalAfterGc, 0)} MiB reserved.` +
            (report.rssAfter
              ? ` RSS after each scenario (Commons / Synapse, MiB): ${report.rssAfter.map((x) => `${x.id} ${fmt(x.commons, 0)} / ${fmt(x.synapse, 0)}`).join(', ')}.`
              : ''),
          '',
        ]
      : []),
    '| target (issue #20) | goal | figure | |',
    '| --- | --- | --- | --- |',
  );
  for (const t of targetChecks(report))
    lines.push(`| ${t.name} | ${t.goal} | ${t.figure} | ${t.met ? '**met**' : '**missed**'} |`);
  lines.push('');
  return lines.join('\n');
}
