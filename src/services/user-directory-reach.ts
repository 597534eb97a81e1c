/**
 * User-directory reach after the event: a join rule change of a room bigger than
 * `user_directory.inline_reach_max_members` leaves a `user_directory_pending` row in its own
 * transaction (migration 0047) instead of moving every joined member's keys there (seconds
 * for thousands of members, with SQLite's one writer held). This worker takes the rows and
 * recomputes the members' reach a page at a time, each page one short transaction that moves
 * the row's cursor on (or deletes it after the last page), letting the event loop go between
 * pages. A process stopped part-way resumes from the cursor.
 *
 * Privacy while it converges (docs/api.md, user directory): a room that stopped being
 * public leaves a restrictive row, and a search does not show a member after its cursor by
 * their public reach (storage: `ungated`), so the restrictive direction takes effect with the
 * event; the permissive one (a room made public) shows its members to strangers only once
 * their page has run.
 *
 * With several processes on one database, one holds the lease (`push_sender_lease`, name
 * `user-directory-reach`); on SQLite one process owns the file and always holds it.
 */
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { randomString } from '../core/secrets.js';
import type { ServiceContext } from './context.js';

const LEASE = 'user-directory-reach';
const LEASE_MS = 15_000;
/** How often the worker looks for work other processes left (and renews the lease). */
const POLL_MS = 1000;
/** Members recomputed per transaction. */
const PAGE = 200;
const PENDING_SCAN = 20;

export interface DirectoryReachOptions {
  log: { warn(fields: Record<string, unknown>, message: string): void };
}

export function createDirectoryReachWorker(ctx: ServiceContext) {
  const owner = randomString(16);
  let stopped = false;
  let started = false;
  let leaseUntil = 0;
  let woken = false;
  let wakeLoop: () => void = () => undefined;
  let loop: Promise<void> = Promise.resolve();
  let unsubscribe: (() => void) | null = null;
  let options: DirectoryReachOptions | null = null;
  const idleWaiters = new Set<() => void>();

  async function keepLease(): Promise<boolean> {
    const now = ctx.now();
    if (leaseUntil - now >= LEASE_MS / 2) return true;
    // SQLite: one process owns the file, so a lease left by a killed one is free at once.
    const free = ctx.storage.dialect === 'sqlite' ? Number.MAX_SAFE_INTEGER : now;
    if (!(await ctx.storage.stores.pushers.claimLease(LEASE, owner, free, now + LEASE_MS))) {
      leaseUntil = 0;
      return false;
    }
    leaseUntil = now + LEASE_MS;
    return true;
  }

  /** One round: every pending room, a page at a time. */
  async function round(): Promise<void> {
    if (!(await keepLease())) return;
    for (;;) {
      const pending = await ctx.storage.stores.userDirectory.selectReachPending(PENDING_SCAN);
      if (pending.length === 0) break;
      for (const { roomId } of pending) {
        for (;;) {
          if (stopped || !(await keepLease())) return;
          const done = await ctx.storage.tx('userDirectoryReach', (tx) =>
            tx.userDirectory.refreshReachPage(roomId, PAGE),
          );
          await yieldToEventLoop();
          if (done) break;
        }
      }
    }
    for (const resolve of idleWaiters) resolve();
    idleWaiters.clear();
  }

  function wake(): void {
    woken = true;
    wakeLoop();
  }

  async function schedule(): Promise<void> {
    while (!stopped) {
      try {
        await round();
      } catch (err) {
        if (!stopped)
          options?.log.warn({ err: (err as Error).message }, 'user directory reach round failed');
      }
      if (woken) {
        woken = false;
        continue;
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, POLL_MS);
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
    /** Starts (what earlier runs left pending first). */
    start(opts: DirectoryReachOptions): void {
      if (started) return;
      started = true;
      stopped = false;
      options = opts;
      loop = schedule();
      // A committed join rule change (here, or on PostgreSQL in any process) may have left a row.
      unsubscribe = ctx.storage.changes.subscribe((change) => {
        if ((change.rooms?.length ?? 0) > 0 || change.everyone === true) wake();
      });
    },

    /** Resolves once nothing is pending (tests and the bench wait for convergence). */
    async idle(): Promise<void> {
      for (;;) {
        if ((await ctx.storage.stores.userDirectory.countReachPending()) === 0) return;
        await new Promise<void>((resolve) => {
          idleWaiters.add(resolve);
          wake();
        });
      }
    },

    /** Stops after the page under way (the rest stays pending) and gives the lease up. */
    async stop(): Promise<void> {
      stopped = true;
      unsubscribe?.();
      unsubscribe = null;
      wake();
      await loop;
      for (const resolve of idleWaiters) resolve();
      idleWaiters.clear();
      if (started) {
        started = false;
        leaseUntil = 0;
        await ctx.storage.stores.pushers.releaseLease(LEASE, owner).catch(() => undefined);
      }
    },
  };
}

export type DirectoryReachWorker = ReturnType<typeof createDirectoryReachWorker>;
