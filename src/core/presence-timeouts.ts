/**
 * When a user's presence times out, from the times kept with it (pure; the clock is passed in).
 *
 * - A local user with no /sync running or ended within `syncTimeoutMs`, and no activity in that
 *   span either, goes offline: their client has stopped.
 * - A local user online with no activity (a sent event, a /sync with `set_presence=online`, a
 *   PUT of `online`) for `idleMs` goes unavailable; `currently_active` turns false once the last
 *   activity is `activeMs` old.
 * - Another server's user of whom nothing was heard for `remoteTimeoutMs` goes offline (their
 *   server is expected to send their presence again well before: Synapse every 25 minutes).
 *
 * The defaults are Synapse's.
 */

export interface PresenceTimers {
  syncTimeoutMs: number;
  idleMs: number;
  activeMs: number;
  remoteTimeoutMs: number;
}

export const DEFAULT_PRESENCE_TIMERS: PresenceTimers = {
  syncTimeoutMs: 30_000,
  idleMs: 5 * 60_000,
  activeMs: 60_000,
  remoteTimeoutMs: 30 * 60_000,
};

export interface PresenceTimes {
  presence: string;
  currentlyActive: boolean;
  /** The user's last activity. */
  lastActiveTs: number;
  /** (Local users) when a /sync of theirs was last seen running or ending. */
  lastSyncTs: number;
  /** (Remote users) when their server last told us their presence. */
  lastUpdateTs: number;
}

export interface PresenceTimeout {
  presence: 'offline' | 'unavailable' | 'online';
  currentlyActive: boolean;
}

/** Whether activity at `lastActiveTs` still counts as the user being active at `now`. */
export const isCurrentlyActive = (lastActiveTs: number, now: number, timers: PresenceTimers) =>
  now - lastActiveTs < timers.activeMs;

/** The presence a user's times out to at `now`, or null when nothing has timed out. */
export function timedOutPresence(
  row: PresenceTimes,
  local: boolean,
  now: number,
  timers: PresenceTimers,
): PresenceTimeout | null {
  if (row.presence === 'offline') return null;
  if (!local)
    return now - row.lastUpdateTs > timers.remoteTimeoutMs
      ? { presence: 'offline', currentlyActive: false }
      : null;
  if (now - Math.max(row.lastSyncTs, row.lastActiveTs) > timers.syncTimeoutMs)
    return { presence: 'offline', currentlyActive: false };
  if (row.presence === 'online' && now - row.lastActiveTs > timers.idleMs)
    return { presence: 'unavailable', currentlyActive: false };
  if (row.currentlyActive && !isCurrentlyActive(row.lastActiveTs, now, timers))
    return {
      presence: row.presence === 'online' ? 'online' : 'unavailable',
      currentlyActive: false,
    };
  return null;
}
