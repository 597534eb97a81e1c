/**
 * A leased worker (leased-worker.ts) that works through a backlog of durable rows, a page at
 * a time: each round takes the pending rows, oldest first, and runs each one's pages until it
 * is done, letting the event loop go between pages and checking the lease before each. A page
 * is the caller's short transaction that moves the row's cursor on, so a process stopped
 * part-way resumes where it was.
 */
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { ServiceContext } from '../context.js';
import { createLeasedWorker, type LeasedWorkerSpec, type WorkerLog } from './leased-worker.js';

export interface PagedBacklogSpec<Row> extends Pick<
  LeasedWorkerSpec,
  'lease' | 'what' | 'leaseMs' | 'pollMs' | 'roundFailed'
> {
  /** Pending rows read at a time. */
  scan: number;
  selectPending(limit: number): Promise<Row[]>;
  countPending(): Promise<number>;
  /** Runs the row's next page; true when the row is done. */
  page(row: Row): Promise<boolean>;
  /** After a round that found nothing more pending. */
  roundDone?(): void;
}

export interface PagedBacklogOptions {
  log: WorkerLog;
}

export function createPagedBacklog<Row>(ctx: ServiceContext, spec: PagedBacklogSpec<Row>) {
  const idleWaiters = new Set<() => void>();

  function resolveIdle(): void {
    for (const resolve of idleWaiters) resolve();
    idleWaiters.clear();
  }

  const worker = createLeasedWorker(ctx, {
    ...spec,
    takeOverOnSqlite: true,
    // A committed change (here, or on PostgreSQL in any process) may have left a row.
    wakeOn: (change) => (change.rooms?.length ?? 0) > 0 || change.everyone === true,
    round,
    afterLoop: resolveIdle,
  });

  /** One round: every pending row, a page at a time. */
  async function round(): Promise<void> {
    if (!(await worker.keepLease())) return;
    for (;;) {
      const pending = await spec.selectPending(spec.scan);
      if (pending.length === 0) break;
      for (const row of pending) {
        for (;;) {
          if (worker.isStopped() || !(await worker.keepLease())) return;
          const done = await spec.page(row);
          await yieldToEventLoop();
          if (done) break;
        }
      }
    }
    spec.roundDone?.();
    resolveIdle();
  }

  return {
    /** Starts (what earlier runs left pending first); may be called again after `stop`. */
    start(opts: PagedBacklogOptions): void {
      worker.start(opts.log);
    },

    /** Resolves once nothing is pending (tests and the bench wait for convergence). */
    async idle(): Promise<void> {
      for (;;) {
        if ((await spec.countPending()) === 0) return;
        await new Promise<void>((resolve) => {
          idleWaiters.add(resolve);
          worker.wake();
        });
      }
    },

    /** Stops after the page under way (the rest stays pending) and gives the lease up. */
    stop: worker.stop,
  };
}
