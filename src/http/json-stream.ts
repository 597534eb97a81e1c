/**
 * Streams a large JSON answer in pieces: an opening, batches of already-serialised items
 * joined by commas, and a closing. Memory stays at one batch, and the event loop is free
 * between batches.
 */
import { Readable } from 'node:stream';

export function jsonStream(
  open: string,
  batches: AsyncIterable<readonly string[]>,
  close: string,
): Readable {
  return Readable.from(
    (async function* pieces() {
      yield open;
      let first = true;
      for await (const batch of batches) {
        if (batch.length === 0) continue;
        yield (first ? '' : ',') + batch.join(',');
        first = false;
      }
      yield close;
    })(),
    { objectMode: false },
  );
}
