/**
 * Long lists read in keyset pages, with the event loop free between pages. A page's size
 * follows how long the last read took: on SQLite a read holds the process, and a page of
 * 1,000 member rows that are not in the page cache (after a restart, or when the machine is
 * short of memory) took 100-300 ms where a cached one takes 5-10 ms. So a slow read halves
 * the next page, a fast one doubles it, between `minSize` and `maxSize`. Where reads do not
 * hold the process (PostgreSQL), pages are `maxSize`: smaller ones would only add round trips.
 */
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';

export interface KeysetPaging {
  /** The largest page, and the first page's size is a quarter of it (at least `minSize`). */
  maxSize: number;
  minSize: number;
  /** Rows in all (no limit: every row). */
  limit?: number | undefined;
  /** A read slower than this halves the next page; one under a quarter of it doubles it. */
  slowReadMs: number;
  /** The clock reads are timed with (milliseconds). */
  now?: () => number;
  /** False: every page is `maxSize` (reads do not hold the process). */
  adaptive?: boolean;
}

/** How reads of member lists are paged: reads of about 25 ms at most hold the event loop. */
export const LIST_PAGING: KeysetPaging = { maxSize: 1000, minSize: 100, slowReadMs: 25 };

/**
 * Pages of `read(after, size)`, each after the key of the last row before. The first page
 * is read before this resolves, so a failure becomes an error answer rather than a streamed
 * 200 cut short.
 */
export async function keysetPages<T>(
  read: (after: string, size: number) => Promise<T[]>,
  keyOf: (row: T) => string,
  paging: KeysetPaging,
): Promise<AsyncGenerator<T[]>> {
  const now = paging.now ?? (() => performance.now());
  let remaining = paging.limit ?? Number.POSITIVE_INFINITY;
  const adaptive = paging.adaptive ?? true;
  let size = adaptive ? Math.max(paging.minSize, Math.floor(paging.maxSize / 4)) : paging.maxSize;
  const timedRead = async (after: string): Promise<T[]> => {
    const asked = Math.min(size, remaining);
    if (asked <= 0) return [];
    const started = now();
    const rows = await read(after, asked);
    const took = now() - started;
    // A short page is the last.
    if (rows.length < asked) remaining = 0;
    else remaining -= rows.length;
    if (!adaptive) return rows;
    if (took > paging.slowReadMs) size = Math.max(paging.minSize, Math.floor(size / 2));
    else if (took < paging.slowReadMs / 4) size = Math.min(paging.maxSize, size * 2);
    return rows;
  };
  let rows = await timedRead('');
  return (async function* pages() {
    for (;;) {
      const last = rows[rows.length - 1];
      if (!last) return;
      yield rows;
      if (remaining <= 0) return;
      await yieldToEventLoop();
      rows = await timedRead(keyOf(last));
    }
  })();
}
