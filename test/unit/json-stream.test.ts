/** jsonStream: batches of serialised items, written as UTF-8 bytes with commas between. */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { jsonStream } from '../../src/http/json-stream.js';

async function text(stream: AsyncIterable<Buffer | string>): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks).toString('utf8');
}

async function* batches(...list: string[][]): AsyncGenerator<string[]> {
  for (const batch of list) yield batch;
}

it('joins the items of every batch with commas, skipping empty batches', async () => {
  const items = [
    [],
    [JSON.stringify({ a: 1 }), JSON.stringify('é ✓ 🎉')],
    [],
    [JSON.stringify({ name: 'Zoë \u2028 \ud83d\ude00' })],
    [JSON.stringify(null), JSON.stringify([1, 2])],
  ];
  const body = await text(jsonStream('{"chunk":[', batches(...items), ']}'));
  assert.deepEqual(JSON.parse(body), { chunk: items.flat().map((i) => JSON.parse(i)) });
  assert.equal(body, `{"chunk":[${items.flat().join(',')}]}`);
});

it('an empty list is the opening and the closing', async () => {
  assert.equal(await text(jsonStream('{"joined":{', batches([], []), '}}')), '{"joined":{}}');
});
