/**
 * Wakes waiting /sync requests the moment a change that concerns them commits, in this process
 * or (on PostgreSQL) any other sharing the database. Nothing polls the database, not even once
 * per wait: a waiter names the user and rooms it cares about, each committed change is matched
 * against them through an index by user and by room, and a change that committed while the
 * waiter was building its answer is found in a short log of the latest changes.
 *
 * How a request waits without missing a change: it takes a `mark()` before it reads the
 * stream position its answer is built up to, then `waitForChange(interest, mark, …)`. Every
 * change committed after that read reaches this process's listeners after the mark (at commit
 * here, by notification from another process), so it is either in the log since the mark or
 * arrives once the waiter is registered. Changes in the log that do not concern the waiter
 * are skipped; one that committed before the read and was delivered after the mark can only
 * wake it once more for nothing.
 */
import type { StreamChange, Storage } from '../storage/index.js';

export interface Interest {
  userId: string;
  rooms: ReadonlySet<string>;
}

interface Waiter extends Interest {
  wake(): void;
}

/** Changes kept for waiters still building their answer: enough for a burst of writes. */
const LOG_SIZE = 16_384;

const concerns = (change: StreamChange, waiter: Interest): boolean =>
  change.everyone === true ||
  (change.users?.includes(waiter.userId) ?? false) ||
  (change.rooms?.some((room) => waiter.rooms.has(room)) ?? false);

function addTo(index: Map<string, Set<Waiter>>, key: string, waiter: Waiter): void {
  let set = index.get(key);
  if (!set) index.set(key, (set = new Set()));
  set.add(waiter);
}

function removeFrom(index: Map<string, Set<Waiter>>, key: string, waiter: Waiter): void {
  const set = index.get(key);
  if (!set) return;
  set.delete(waiter);
  if (set.size === 0) index.delete(key);
}

export function createNotifier(storage: Storage) {
  const waiters = new Set<Waiter>();
  const byUser = new Map<string, Set<Waiter>>();
  const byRoom = new Map<string, Set<Waiter>>();
  /** The latest changes, by sequence number: log[seq % LOG_SIZE]. */
  const log: (StreamChange | undefined)[] = new Array<StreamChange | undefined>(LOG_SIZE);
  /** How many changes have reached this notifier. */
  let seq = 0;
  let unsubscribe: (() => void) | null = null;
  let closed = false;

  function dispatch(change: StreamChange): void {
    log[seq % LOG_SIZE] = change;
    seq += 1;
    if (change.everyone === true) {
      for (const waiter of waiters) waiter.wake();
      return;
    }
    for (const user of change.users ?? []) byUser.get(user)?.forEach((w) => w.wake());
    for (const room of change.rooms ?? []) byRoom.get(room)?.forEach((w) => w.wake());
  }

  function subscribe(): void {
    if (!closed) unsubscribe ??= storage.changes.subscribe(dispatch);
  }

  /** Whether a change after `mark` concerns `interest` (or the log no longer reaches back). */
  function changedSince(interest: Interest, mark: number): boolean {
    if (seq - mark > LOG_SIZE) return true;
    for (let s = mark; s < seq; s++)
      if (concerns(log[s % LOG_SIZE] as StreamChange, interest)) return true;
    return false;
  }

  return {
    /**
     * A point in this process's sequence of changes. Take it before reading the stream
     * position an answer is built up to, and wait from it.
     */
    mark(): number {
      subscribe();
      return seq;
    },

    /** Whether a change concerning `interest` has reached this process since `mark`. */
    changedSince(interest: Interest, mark: number): boolean {
      return closed || changedSince(interest, mark);
    },

    /**
     * Resolves true when a change concerning `interest` reaches this process after `mark`
     * (at once if one already has), or false after `timeoutMs` (or when `signal` aborts)
     * with none. Unrelated changes, however many, do not wake it.
     */
    async waitForChange(
      interest: Interest,
      mark: number,
      timeoutMs: number,
      signal?: AbortSignal,
    ): Promise<boolean> {
      if (closed) return false;
      subscribe();
      if (changedSince(interest, mark)) return true;
      let waiter: Waiter | undefined;
      let timer: NodeJS.Timeout | undefined;
      let onAbort: (() => void) | undefined;
      try {
        return await new Promise<boolean>((resolve) => {
          waiter = { ...interest, wake: () => resolve(true) };
          waiters.add(waiter);
          addTo(byUser, waiter.userId, waiter);
          for (const room of waiter.rooms) addTo(byRoom, room, waiter);
          timer = setTimeout(() => resolve(false), timeoutMs);
          onAbort = () => resolve(false);
          signal?.addEventListener('abort', onAbort, { once: true });
        });
      } finally {
        if (waiter) {
          waiters.delete(waiter);
          removeFrom(byUser, waiter.userId, waiter);
          for (const room of waiter.rooms) removeFrom(byRoom, room, waiter);
        }
        clearTimeout(timer);
        if (onAbort) signal?.removeEventListener('abort', onAbort);
      }
    },

    /** Ends every wait (shutting down) and refuses new ones. */
    close(): void {
      closed = true;
      for (const waiter of waiters) waiter.wake();
      unsubscribe?.();
    },

    get closed(): boolean {
      return closed;
    },

    /** How many requests are waiting (for tests and metrics). */
    get waiting(): number {
      return waiters.size;
    },
  };
}

export type Notifier = ReturnType<typeof createNotifier>;
