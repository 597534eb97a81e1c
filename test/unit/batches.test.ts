/**
 * forEachBatch: every item once, in batches of the size given and in the list's order; no more
 * batches running at once than allowed; once a batch fails, no further batch starts and the
 * failure is what it rejects with.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { forEachBatch } from '../../src/services/batches.js';

const ITEMS = Array.from({ length: 23 }, (_, i) => i);

describe('forEachBatch', () => {
  it('runs one batch after another with one in flight', async () => {
    const batches: number[][] = [];
    let running = 0;
    let most = 0;
    await forEachBatch(ITEMS, 5, 1, async (batch) => {
      running++;
      most = Math.max(most, running);
      await nextTurn();
      batches.push(batch);
      running--;
    });
    assert.deepEqual(batches, [
      [0, 1, 2, 3, 4],
      [5, 6, 7, 8, 9],
      [10, 11, 12, 13, 14],
      [15, 16, 17, 18, 19],
      [20, 21, 22],
    ]);
    assert.equal(most, 1);
  });

  it('keeps up to the given number of batches in flight, each item once', async () => {
    const started: number[][] = [];
    const seen: number[] = [];
    let running = 0;
    let most = 0;
    await forEachBatch(ITEMS, 4, 3, async (batch) => {
      started.push(batch);
      running++;
      most = Math.max(most, running);
      // Batches take different times, so they finish out of order.
      for (let i = 0; i < ((batch[0] ?? 0) % 3) + 1; i++) await nextTurn();
      seen.push(...batch);
      running--;
    });
    assert.equal(most, 3);
    assert.deepEqual(
      started.map((b) => b[0]),
      [0, 4, 8, 12, 16, 20],
    );
    assert.deepEqual(
      [...seen].sort((a, b) => a - b),
      ITEMS,
    );
  });

  it('starts no more lanes than there are batches, and none for no items', async () => {
    let calls = 0;
    await forEachBatch([], 10, 4, async () => {
      calls++;
    });
    assert.equal(calls, 0);
    const batches: number[][] = [];
    await forEachBatch([1, 2, 3], 10, 4, async (batch) => {
      batches.push(batch);
    });
    assert.deepEqual(batches, [[1, 2, 3]]);
  });

  it('starts no batch after one fails, and rejects with that failure', async () => {
    const started: number[] = [];
    const failure = new Error('batch 2 failed');
    await assert.rejects(
      forEachBatch(ITEMS, 2, 2, async (batch) => {
        const first = batch[0] ?? -1;
        started.push(first);
        await nextTurn();
        if (first === 2) throw failure;
        await nextTurn();
      }),
      (error) => error === failure,
    );
    // Batches 0 and 2 ran side by side; 2 failed while 0 was still running, so when 0
    // finished its lane started nothing more.
    assert.deepEqual(started, [0, 2]);
  });

  it('refuses a batch size that is not a positive whole number', async () => {
    for (const size of [0, -1, 1.5, Number.NaN])
      await assert.rejects(
        forEachBatch(ITEMS, size, 1, async () => {}),
        RangeError,
      );
  });
});
