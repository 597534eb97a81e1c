/**
 * Work over a long list in batches, a few batches at a time, with the event loop freed before
 * each: /sync reads a user's rooms this way (one statement per kind of read for a whole batch).
 */
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';

/**
 * Runs `fn` for each batch of `size` items, in order of the list, with up to `inFlight`
 * batches running at once (1: one after another). Resolves when every batch has finished;
 * once a batch fails no further batch starts, and the first failure is what it rejects with.
 */
export async function forEachBatch<T>(
  items: readonly T[],
  size: number,
  inFlight: number,
  fn: (batch: T[]) => Promise<void>,
): Promise<void> {
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`batch size ${size}`);
  let next = 0;
  let failed = false;
  const lane = async () => {
    while (next < items.length && !failed) {
      const start = next;
      next += size;
      await yieldToEventLoop();
      if (failed) return;
      try {
        await fn(items.slice(start, start + size));
      } catch (error) {
        failed = true;
        throw error;
      }
    }
  };
  const lanes = Math.max(1, Math.min(inFlight, Math.ceil(items.length / size)));
  await Promise.all(Array.from({ length: lanes }, lane));
}
