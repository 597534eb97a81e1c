/**
 * keysetPages: every row once, in order, within the limit; a page's size halves after a slow
 * read and doubles after a fast one, within its bounds, unless paging is not adaptive. Reads are timed on a fake clock that
 * each read advances by what the test says it cost.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { keysetPages, type KeysetPaging } from '../../src/services/keyset-pages.js';

const ROWS = Array.from({ length: 5000 }, (_, i) => `k${String(i).padStart(5, '0')}`);

/** A sorted list read after a key, each read costing `msFor(size)` on the fake clock. */
function source(msFor: (size: number, call: number) => number) {
  let clock = 0;
  const sizes: number[] = [];
  const read = async (after: string, size: number) => {
    sizes.push(size);
    clock += msFor(size, sizes.length);
    return ROWS.filter((k) => k > after).slice(0, size);
  };
  return { read, sizes, now: () => clock };
}

async function collect(pages: AsyncIterable<string[]>): Promise<string[]> {
  const out: string[] = [];
  for await (const page of pages) out.push(...page);
  return out;
}

const paging = (now: () => number, limit?: number): KeysetPaging => ({
  maxSize: 1000,
  minSize: 100,
  slowReadMs: 25,
  now,
  limit,
});

describe('keysetPages', () => {
  it('grows from a quarter of the largest page while reads are fast, and reads everything', async () => {
    const src = source(() => 1);
    const rows = await collect(await keysetPages(src.read, (k) => k, paging(src.now)));
    assert.deepEqual(rows, ROWS);
    assert.deepEqual(src.sizes.slice(0, 4), [250, 500, 1000, 1000]);
  });

  it('halves the page after a slow read, down to the smallest, and grows back', async () => {
    // Reads 2 to 5 are slow (a cold cache), the rest fast.
    const src = source((_, call) => (call >= 2 && call <= 5 ? 200 : 1));
    const rows = await collect(await keysetPages(src.read, (k) => k, paging(src.now)));
    assert.deepEqual(rows, ROWS);
    assert.deepEqual(src.sizes.slice(0, 9), [250, 500, 250, 125, 100, 100, 200, 400, 800]);
  });

  it('keeps the size between a quarter of the slow time and the slow time', async () => {
    const src = source(() => 10);
    await collect(await keysetPages(src.read, (k) => k, paging(src.now)));
    assert.ok(src.sizes.every((size) => size === 250));
  });

  it('keeps every page at the largest size when not adaptive, however slow the reads', async () => {
    const src = source(() => 200);
    const rows = await collect(
      await keysetPages(src.read, (k) => k, { ...paging(src.now), adaptive: false }),
    );
    assert.deepEqual(rows, ROWS);
    assert.deepEqual(src.sizes, [1000, 1000, 1000, 1000, 1000, 1000]);
  });

  it('stops at the limit, asking for no more than is left', async () => {
    const src = source(() => 1);
    const rows = await collect(await keysetPages(src.read, (k) => k, paging(src.now, 1200)));
    assert.deepEqual(rows, ROWS.slice(0, 1200));
    assert.deepEqual(src.sizes, [250, 500, 450]);
  });

  it('reads nothing for a limit of 0, and stops after a short page', async () => {
    const none = source(() => 1);
    assert.deepEqual(
      await collect(await keysetPages(none.read, (k) => k, paging(none.now, 0))),
      [],
    );
    assert.deepEqual(none.sizes, []);
    const short = source(() => 1);
    const after = ROWS[4899] as string;
    const tail = await collect(
      await keysetPages(
        (a, size) => short.read(a === '' ? after : a, size),
        (k) => k,
        paging(short.now),
      ),
    );
    assert.deepEqual(tail, ROWS.slice(4900));
    assert.deepEqual(short.sizes, [250], 'one short page, and no read after it');
  });

  it('reads the first page before it resolves, so its failure is the caller’s error', async () => {
    await assert.rejects(
      keysetPages(
        async () => {
          throw new Error('no database');
        },
        (k: string) => k,
        paging(() => 0),
      ),
      /no database/,
    );
  });
});
