/**
 * A per-process cache of values that belong to users (a session to its user, a mutual-rooms
 * pair to its two users), kept true by the change feed: a committed change that names one of
 * a value's users drops it, in every process sharing the database, and a change that may
 * concern anyone drops everything.
 *
 * What that guarantees:
 * - This process sees its own changes at once: they reach the feed when they commit, before
 *   the writer's request is answered.
 * - Another process's change is seen once its notification arrives (PostgreSQL delivers it at
 *   commit; on loopback, well under a millisecond later). Revoked sessions are waited for:
 *   the revoking write is answered once every other process has handled it (storage's
 *   barrier, bounded at 1 s; docs/architecture.md).
 * - The cache is not read while the feed may be missing changes (PostgreSQL's LISTEN
 *   connection down; reconnecting drops everything). On SQLite one process owns the file.
 * - A value read from the database is kept only if no change naming anyone has come since the
 *   read began (`ticket`), so a read that raced a write never stores the older value.
 */
import { LRUCache } from 'lru-cache';
import type { ChangeFeed, StreamChange } from '../storage/index.js';
import type { CacheCounts } from './cache-stats.js';

export interface UserCache<V> {
  /** The value, unless dropped, evicted, or the feed cannot vouch for it. */
  get(key: string): V | undefined;
  /** Taken before reading a value from the database; hand it to `set`. */
  ticket(): number;
  /** Keeps the value unless a change has come since `ticket` was taken. */
  set(key: string, value: V, users: readonly string[], ticket: number): void;
  delete(key: string): void;
  /** Stops following the feed (the cache stays empty). */
  close(): void;
}

export interface UserCacheOptions<V> {
  /** Entries kept; the least recently used go first. */
  max: number;
  /** With `sizeOf`: the most the entries may add up to (the least recently used go first). */
  maxSize?: number;
  /** An entry's size, for `maxSize`; an entry larger than `maxSize` is not kept. */
  sizeOf?: (value: V) => number;
  /** The users a change names for this cache (a change naming none leaves it untouched). */
  usersNamedBy(change: StreamChange): readonly string[] | undefined;
  /** Counts each get as a hit or a miss. */
  stats?: CacheCounts | undefined;
}

interface Entry<V> {
  value: V;
  users: readonly string[];
}

export function createUserCache<V>(feed: ChangeFeed, options: UserCacheOptions<V>): UserCache<V> {
  /** The keys of each user's entries. */
  const byUser = new Map<string, Set<string>>();
  const { sizeOf, maxSize } = options;
  const entries = new LRUCache<string, Entry<V>>({
    max: options.max,
    ...(sizeOf && maxSize ? { maxSize, sizeCalculation: (entry) => sizeOf(entry.value) } : {}),
    dispose: (entry, key) => {
      for (const user of entry.users) {
        const keys = byUser.get(user);
        keys?.delete(key);
        if (keys?.size === 0) byUser.delete(user);
      }
    },
  });
  /** Counts the changes that dropped something (or could have). */
  let generation = 0;
  let closed = false;
  const stats = options.stats ?? { hits: 0, misses: 0 };

  const unsubscribe = feed.subscribe((change) => {
    if (change.everyone) {
      generation++;
      entries.clear();
      return;
    }
    const users = options.usersNamedBy(change);
    if (!users || users.length === 0) return;
    generation++;
    for (const user of users) {
      const keys = byUser.get(user);
      if (!keys) continue;
      for (const key of [...keys]) entries.delete(key);
    }
  });

  return {
    get(key) {
      const value = closed || !feed.current() ? undefined : entries.get(key)?.value;
      if (value === undefined) stats.misses++;
      else stats.hits++;
      return value;
    },
    ticket: () => generation,
    set(key, value, users, ticket) {
      if (closed || ticket !== generation || !feed.current()) return;
      if (sizeOf && maxSize && sizeOf(value) > maxSize) return;
      entries.set(key, { value, users });
      for (const user of users) {
        let keys = byUser.get(user);
        if (!keys) byUser.set(user, (keys = new Set()));
        keys.add(key);
      }
    },
    delete(key) {
      entries.delete(key);
    },
    close() {
      closed = true;
      unsubscribe();
      entries.clear();
    },
  };
}
