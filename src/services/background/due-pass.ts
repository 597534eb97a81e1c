/**
 * A periodic pass made by one process at a time among all those sharing the database: a
 * `job_leases` row says when the next pass is due. Each attempt takes the lease under a name
 * of its own, so it is won only once the last pass's (by any process) has lapsed; it is kept,
 * not released, so passes stay about `intervalMs` apart while any process runs, and a restart
 * does not make one early. One attempt at a time per process.
 */
import { randomString } from '../../core/secrets.js';
import type { ServiceContext } from '../context.js';

export function createDuePass(
  ctx: ServiceContext,
  job: string,
  /** How far apart passes are. */
  intervalMs: number,
  /** How often a process looks (the lease lapses this much before the interval is over). */
  tickMs: number,
  /** The pass itself; resolves with how many items it handled. */
  pass: () => Promise<number>,
) {
  let running: Promise<number | null> | null = null;

  async function attempt(): Promise<number | null> {
    const now = ctx.now();
    const due = await ctx.storage.stores.moderation.takeLease(
      job,
      randomString(16),
      now,
      now + intervalMs - tickMs,
    );
    return due ? pass() : null;
  }

  return {
    /** A pass if one is due (null when none was); the attempt under way if there is one. */
    runIfDue(): Promise<number | null> {
      running ??= attempt().finally(() => {
        running = null;
      });
      return running;
    },
    /** Whether an attempt is under way in this process. */
    isRunning: (): boolean => running !== null,
    /** Once the attempt under way (if any) has ended, whatever its outcome. */
    async settled(): Promise<void> {
      await running?.catch(() => undefined);
    },
  };
}
