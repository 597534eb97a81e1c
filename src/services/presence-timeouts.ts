/**
 * Presence time-outs applied (rules in core/presence-timeouts.ts): every process writes, every
 * third of the sync time-out, the last sync time of the users with a /sync running in it or
 * just ended (one statement; nothing is written per /sync request); and a periodic pass reads
 * the users whose presence may have timed out and writes each change through the presence
 * service, as any other change (stream position, /sync, application services, federation).
 *
 * With several processes on one database, one makes each pass: the `presence-timeouts` job
 * lease marks when the next pass is due, and a process takes it only once it has lapsed (as
 * the federation presence refresh does). Each process looks every half interval.
 */
import { createDuePass } from './background/due-pass.js';
import { DEFAULT_PRESENCE_TIMERS } from '../core/presence-timeouts.js';
import type { ServiceContext } from './context.js';
import type { PresenceService } from './presence.js';

/** Users read per page of a pass. */
const USER_PAGE = 100;
const LEASE_JOB = 'presence-timeouts';

export function createPresenceTimeouts(ctx: ServiceContext, presence: PresenceService) {
  const { serverName } = ctx.settings;
  const timers = ctx.settings.presenceTimers ?? DEFAULT_PRESENCE_TIMERS;
  const stores = ctx.storage.stores;
  /** How often syncing users' times are written; a pass every 5 s or a third of the shortest timer. */
  const flushMs = Math.max(50, Math.floor(timers.syncTimeoutMs / 3));
  const shortest = Math.min(
    timers.syncTimeoutMs,
    timers.idleMs,
    timers.activeMs,
    timers.remoteTimeoutMs,
  );
  const intervalMs = Math.max(50, Math.min(5_000, Math.floor(shortest / 3)));
  const tickMs = Math.max(20, Math.floor(intervalMs / 2));
  let passTimer: NodeJS.Timeout | null = null;
  let flushTimer: NodeJS.Timeout | null = null;
  let flushing: Promise<unknown> | null = null;
  let stopping = false;

  /** Applies every time-out due now; resolves with how many users' presence changed. */
  async function pass(): Promise<number> {
    const now = ctx.now();
    const bounds = {
      syncBefore: now - timers.syncTimeoutMs,
      idleBefore: now - timers.idleMs,
      activeBefore: now - timers.activeMs,
      remoteBefore: now - timers.remoteTimeoutMs,
    };
    let after = '';
    let changed = 0;
    for (;;) {
      if (stopping) return changed;
      const rows = await stores.presence.selectTimeoutCandidates(
        serverName,
        bounds,
        after,
        USER_PAGE,
      );
      for (const row of rows) if (await presence.applyTimeout(row.userId)) changed++;
      if (rows.length < USER_PAGE) return changed;
      after = rows[rows.length - 1]?.userId ?? after;
    }
  }

  const due = createDuePass(ctx, LEASE_JOB, intervalMs, tickMs, pass);

  return {
    /**
     * A pass if one is due; resolves with how many users' presence timed out, or null when
     * no pass was due (the last one, by any process, is not an interval old).
     */
    runIfDue(): Promise<number | null> {
      return due.runIfDue();
    },

    /** Starts the sync-time writes and the passes; `onError` hears of a failed one. */
    start(onError: (err: unknown) => void): void {
      if (passTimer || stopping) return;
      flushTimer = setInterval(() => {
        if (flushing) return;
        flushing = presence
          .flushSyncs()
          .catch(onError)
          .finally(() => {
            flushing = null;
          });
      }, flushMs);
      flushTimer.unref();
      passTimer = setInterval(() => {
        if (due.isRunning()) return;
        this.runIfDue().catch(onError);
      }, tickMs);
      passTimer.unref();
    },

    async stop(): Promise<void> {
      stopping = true;
      if (passTimer) clearInterval(passTimer);
      if (flushTimer) clearInterval(flushTimer);
      passTimer = null;
      flushTimer = null;
      await due.settled();
      await flushing;
      // The last sync times of this process, so that a restart does not time them out early.
      await presence.flushSyncs().catch(() => undefined);
    },
  };
}

export type PresenceTimeouts = ReturnType<typeof createPresenceTimeouts>;
