/**
 * Wakes waiting /sync requests the moment a change that concerns them commits, in this process
 * or (on PostgreSQL) any other sharing the database. Nothing polls the database: a waiter
 * names the user and rooms it cares about, and each committed change is matched against them.
 */
import type { StreamChange, Storage } from '../storage/index.js';

export interface Interest {
  userId: string;
  rooms: ReadonlySet<string>;
}

interface Waiter extends Interest {
  wake(): void;
}

const concerns = (change: StreamChange, waiter: Interest): boolean =>
  change.everyone === true ||
  (change.users?.includes(waiter.userId) ?? false) ||
  (change.rooms?.some((room) => waiter.rooms.has(room)) ?? false);

export function createNotifier(storage: Storage) {
  const waiters = new Set<Waiter>();
  let unsubscribe: (() => void) | null = null;
  let closed = false;

  function dispatch(change: StreamChange): void {
    for (const waiter of waiters) if (concerns(change, waiter)) waiter.wake();
  }

  return {
    /**
     * Resolves true when a change concerning `interest` commits after stream position `since`,
     * or false after `timeoutMs` (or when `signal` aborts) with none.
     */
    async waitForChange(
      interest: Interest,
      since: number,
      timeoutMs: number,
      signal?: AbortSignal,
    ): Promise<boolean> {
      if (closed) return false;
      unsubscribe ??= storage.changes.subscribe(dispatch);
      let waiter: Waiter | undefined;
      let timer: NodeJS.Timeout | undefined;
      let onAbort: (() => void) | undefined;
      try {
        return await new Promise<boolean>((resolve) => {
          waiter = { ...interest, wake: () => resolve(true) };
          waiters.add(waiter);
          timer = setTimeout(() => resolve(false), timeoutMs);
          onAbort = () => resolve(false);
          signal?.addEventListener('abort', onAbort, { once: true });
          // A change may have committed between the caller's read and this registration.
          storage.stores.stream.selectCurrentPosition().then(
            (position) => {
              if (position > since) resolve(true);
            },
            () => resolve(true),
          );
        });
      } finally {
        if (waiter) waiters.delete(waiter);
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
