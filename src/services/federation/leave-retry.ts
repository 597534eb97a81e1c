/**
 * Sends again, with a backoff, the leaves kept here alone (an invite rejected or a knock
 * rescinded while no server of the room answered; remote-membership.ts). Each pending leave is
 * a row; a process takes a due one by moving its time forward (so two processes do not both
 * try it), tries it, and records the outcome. A restart resumes from the rows.
 */
import type { ServiceContext } from '../context.js';
import type { RemoteMembership } from './remote-membership.js';
import type { SenderLog } from './sender.js';

/** Rows written by another process (or by this one, when no timer is due sooner) are found this often. */
const SCAN_INTERVAL_MS = 30_000;
/** How long a process has to try a leave it took before another may take it. */
const CLAIM_MS = 120_000;
const BATCH = 20;

export function createLeaveRetrier(
  ctx: ServiceContext,
  membership: () => RemoteMembership,
  log?: SenderLog,
) {
  const outbox = () => ctx.storage.stores.federationOutbox;
  let started = false;
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<void> | null = null;

  function schedule(at: number): void {
    if (!started) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => void run(), Math.max(0, Math.min(at - ctx.now(), SCAN_INTERVAL_MS)));
    timer.unref();
  }

  async function once(): Promise<void> {
    for (;;) {
      const due = await outbox().selectDuePendingLeaves(ctx.now(), BATCH);
      if (due.length === 0 || !started) break;
      for (const leave of due) {
        if (!started) return;
        const taken = await outbox().updatePendingLeaveClaim(
          leave.roomId,
          leave.userId,
          leave.retryAtTs,
          ctx.now() + CLAIM_MS,
        );
        if (!taken) continue;
        const outcome = await membership()
          .retryPendingLeave(leave)
          .catch((err: unknown) => {
            log?.warn(
              { roomId: leave.roomId, err: (err as Error).message },
              'pending leave failed',
            );
            return 'error' as const;
          });
        if (outcome === 'error')
          await outbox().updatePendingLeaveFailure(
            leave.roomId,
            leave.userId,
            leave.failures + 1,
            ctx.now() + SCAN_INTERVAL_MS,
          );
        if (outcome === 'dropped')
          log?.warn({ roomId: leave.roomId, userId: leave.userId }, 'pending leave given up');
      }
    }
  }

  function run(): Promise<void> {
    running ??= once()
      .catch((err: unknown) =>
        log?.warn({ err: (err as Error).message }, 'pending leaves scan failed'),
      )
      .then(async () => {
        const next = started ? await outbox().selectNextPendingLeaveTs() : undefined;
        schedule(next ?? ctx.now() + SCAN_INTERVAL_MS);
      })
      .catch(() => schedule(ctx.now() + SCAN_INTERVAL_MS))
      .finally(() => {
        running = null;
      });
    return running;
  }

  return {
    start(): void {
      if (started) return;
      started = true;
      void run();
    },
    /** A leave was kept here alone: look at the rows again when it is due. */
    poke(): void {
      if (started && !running) void run();
    },
    async stop(): Promise<void> {
      started = false;
      if (timer) clearTimeout(timer);
      timer = null;
      await running;
    },
  };
}
