import assert from 'node:assert/strict';
import { it } from 'node:test';
import { searchableText, searchWords } from '../../src/core/search.js';

it('splits a search term into distinct lower-case words, operators being separators', () => {
  assert.deepEqual(searchWords('Quick  brown FOX quick'), ['quick', 'brown', 'fox']);
  assert.deepEqual(searchWords('"a" OR b* NEAR(c)'), ['a', 'or', 'b', 'near', 'c']);
  assert.deepEqual(searchWords('café naïve 東京 42'), ['café', 'naïve', '東京', '42']);
  assert.deepEqual(searchWords('!!! ...'), []);
  assert.equal(
    searchWords('w '.repeat(100) + Array.from({ length: 50 }, (_, i) => `x${i}`).join(' ')).length,
    32,
  );
});

it('finds the searchable text of messages, names and topics only', () => {
  assert.deepEqual(searchableText('m.room.message', { body: 'hi' }), {
    key: 'content.body',
    value: 'hi',
  });
  assert.deepEqual(searchableText('m.room.name', { name: 'N' }), {
    key: 'content.name',
    value: 'N',
  });
  assert.deepEqual(searchableText('m.room.topic', { topic: 'T' }), {
    key: 'content.topic',
    value: 'T',
  });
  assert.equal(searchableText('m.room.message', { body: 7 }), null);
  assert.equal(searchableText('m.room.message', { body: '   ' }), null);
  assert.equal(searchableText('m.reaction', { body: 'x' }), null);
  assert.deepEqual(searchableText('m.room.message', { body: 'a\u0000b' })?.value, 'a b');
  assert.equal(
    searchableText('m.room.message', { body: 'x'.repeat(100_000) })?.value.length,
    65_536,
  );
});
