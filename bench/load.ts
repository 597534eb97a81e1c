/**
 * Load runs with autocannon (in this process; the server under test is another process):
 * a warm-up, then repeated runs at a fixed concurrency and duration. Latencies come from
 * autocannon's per-response timings (its own histogram rounds to whole milliseconds), so
 * sub-millisecond p50s stay visible. Each summary gives the median run with min and max.
 */
import autocannon, { type Result } from 'autocannon';

export interface Stat {
  median: number;
  min: number;
  max: number;
}

export interface RunResult {
  p50: number;
  p99: number;
  rps: number;
  ok: number;
  failed: number;
  errors: number;
  seconds: number;
}

export interface LoadSummary {
  connections: number;
  runs: RunResult[];
  p50: Stat;
  p99: Stat;
  rps: Stat;
  /** Non-2xx responses and socket errors over all runs. */
  failures: number;
}

export interface LoadOptions {
  base: string;
  path: string;
  token?: string | undefined;
  connections: number;
  warmupSeconds: number;
  durationSeconds: number;
  runs: number;
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index] as number;
}

export function stat(values: readonly number[]): Stat {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return { median: NaN, min: NaN, max: NaN };
  const mid = Math.floor(sorted.length / 2);
  const median =
    sorted.length % 2 === 1
      ? (sorted[mid] as number)
      : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
  return { median, min: sorted[0] as number, max: sorted[sorted.length - 1] as number };
}

async function oneRun(options: LoadOptions, seconds: number): Promise<RunResult> {
  const latencies: number[] = [];
  let failed = 0;
  const headers: Record<string, string> = {};
  if (options.token) headers.Authorization = `Bearer ${options.token}`;
  const result = await new Promise<Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url: options.base + options.path,
        connections: options.connections,
        duration: seconds,
        headers,
        timeout: 30,
        sampleInt: 100,
      },
      (err, res) => (err ? reject(err) : resolve(res)),
    );
    instance.on('response', (_client, statusCode, _bytes, responseTime) => {
      if (statusCode >= 200 && statusCode < 300) latencies.push(responseTime);
      else failed += 1;
    });
  });
  latencies.sort((a, b) => a - b);
  const elapsed = result.duration > 0 ? result.duration : seconds;
  return {
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    rps: latencies.length / elapsed,
    ok: latencies.length,
    failed,
    errors: result.errors + result.timeouts,
    seconds: elapsed,
  };
}

export async function loadTest(options: LoadOptions): Promise<LoadSummary> {
  if (options.warmupSeconds > 0) await oneRun(options, options.warmupSeconds);
  const runs: RunResult[] = [];
  for (let i = 0; i < options.runs; i++) runs.push(await oneRun(options, options.durationSeconds));
  return summariseRuns(options.connections, runs);
}

/** The median run with min and max, over runs measured at one concurrency. */
export function summariseRuns(connections: number, runs: RunResult[]): LoadSummary {
  return {
    connections,
    runs,
    p50: stat(runs.map((r) => r.p50)),
    p99: stat(runs.map((r) => r.p99)),
    rps: stat(runs.map((r) => r.rps)),
    failures: runs.reduce((sum, r) => sum + r.failed + r.errors, 0),
  };
}
