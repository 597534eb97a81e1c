/**
 * A process's CPU time from /proc (Linux), and a wait until some processes are idle: between
 * the parts of a run, so that work a server is still doing for the last part (a backlog of
 * requests a load test left in flight, a cache filled after answering) is not timed in the next.
 */
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/** Linux's clock ticks per second for /proc/<pid>/stat's times. */
const TICKS_PER_SECOND = 100;

/** The process's CPU time so far (user and system), in ms; NaN where /proc cannot tell. */
export function processCpuMs(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ');
    const ticks = Number(fields?.[11]) + Number(fields?.[12]);
    return (ticks * 1000) / TICKS_PER_SECOND;
  } catch {
    return NaN;
  }
}

export interface QuietOptions {
  /** How long each look lasts. */
  windowMs?: number;
  /** Idle: each process used at most this share of one core over a window. */
  maxShare?: number;
  /** Gives up after this long (and says so). */
  timeoutMs?: number;
}

/**
 * Resolves once every process used at most `maxShare` of a core over one window (or the time
 * runs out); how long it waited, in ms.
 */
export async function waitUntilQuiet(
  pids: readonly number[],
  { windowMs = 500, maxShare = 0.05, timeoutMs = 120_000 }: QuietOptions = {},
): Promise<{ waitedMs: number; quiet: boolean }> {
  const started = performance.now();
  for (;;) {
    const before = pids.map(processCpuMs);
    await sleep(windowMs);
    const busy = pids.some((pid, i) => processCpuMs(pid) - before[i]! > windowMs * maxShare);
    const waitedMs = performance.now() - started;
    if (!busy) return { waitedMs, quiet: true };
    if (waitedMs > timeoutMs) return { waitedMs, quiet: false };
  }
}
