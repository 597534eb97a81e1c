/**
 * The loop of a background worker that one process at a time runs: it holds a named lease
 * (`push_sender_lease`), runs a round now and then (every `pollMs`, or at once when woken by
 * a committed change or a poke) and gives the lease up when stopped. What a round does is the
 * worker's own; a failed round is logged and the next one tries again.
 */
import { randomString } from '../../core/secrets.js';
import type { StreamChange } from '../../storage/index.js';
import type { ServiceContext } from '../context.js';

export interface WorkerLog {
  warn(fields: Record<string, unknown>, message: string): void;
}

export interface LeasedWorkerSpec {
  /** The lease's name; also names the worker in the log (`<what> round failed`). */
  lease: string;
  what: string;
  /** How long the lease is held without renewing it (renewed once half has gone). */
  leaseMs: number;
  /** How often a round runs when nothing wakes the worker. */
  pollMs: number;
  /**
   * Takes the lease at once on SQLite: one process owns the file, so a lease left by a
   * killed one is free.
   */
  takeOverOnSqlite: boolean;
  /** Committed changes that wake the worker. */
  wakeOn(change: StreamChange): boolean;
  round(): Promise<void>;
  /** After a round that threw (before it is logged). */
  roundFailed?(): void;
  /** When stopping, after the last round and before the lease is given up. */
  afterLoop?(): Promise<void> | void;
}

export function createLeasedWorker(ctx: ServiceContext, spec: LeasedWorkerSpec) {
  const owner = randomString(16);
  let stopped = false;
  let started = false;
  let leaseUntil = 0;
  let woken = false;
  let wakeLoop: () => void = () => undefined;
  let loop: Promise<void> = Promise.resolve();
  let unsubscribe: (() => void) | null = null;
  let log: WorkerLog | null = null;

  /** Takes or renews the lease when half its time has gone; false when another holds it. */
  async function keepLease(): Promise<boolean> {
    const now = ctx.now();
    if (leaseUntil - now >= spec.leaseMs / 2) return true;
    const free =
      spec.takeOverOnSqlite && ctx.storage.dialect === 'sqlite' ? Number.MAX_SAFE_INTEGER : now;
    const until = now + spec.leaseMs;
    if (!(await ctx.storage.stores.pushers.claimLease(spec.lease, owner, free, until))) {
      leaseUntil = 0;
      return false;
    }
    leaseUntil = until;
    return true;
  }

  function wake(): void {
    woken = true;
    wakeLoop();
  }

  async function schedule(): Promise<void> {
    while (!stopped) {
      try {
        await spec.round();
      } catch (err) {
        spec.roundFailed?.();
        if (!stopped) log?.warn({ err: (err as Error).message }, `${spec.what} round failed`);
      }
      if (woken) {
        woken = false;
        continue;
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, spec.pollMs);
        wakeLoop = () => {
          clearTimeout(timer);
          resolve();
        };
        if (stopped) wakeLoop();
      });
      wakeLoop = () => undefined;
      woken = false;
    }
  }

  return {
    keepLease,
    wake,
    /** Still running and the lease not run out. */
    holding: (): boolean => !stopped && leaseUntil > ctx.now(),
    isStopped: (): boolean => stopped,
    isStarted: (): boolean => started,

    /** Starts the rounds (no-op when started); `start` may be called again after `stop`. */
    start(to: WorkerLog): void {
      if (started) return;
      started = true;
      log = to;
      stopped = false;
      loop = schedule();
      unsubscribe = ctx.storage.changes.subscribe((change) => {
        if (spec.wakeOn(change)) wake();
      });
    },

    /** Stops after the round under way and gives the lease up. */
    async stop(): Promise<void> {
      stopped = true;
      unsubscribe?.();
      unsubscribe = null;
      wake();
      await loop;
      await spec.afterLoop?.();
      if (started) {
        started = false;
        leaseUntil = 0;
        await ctx.storage.stores.pushers.releaseLease(spec.lease, owner).catch(() => undefined);
      }
    },
  };
}

export type LeasedWorker = ReturnType<typeof createLeasedWorker>;
