import assert from 'node:assert/strict';
import { it } from 'node:test';
import {
  MAX_SEARCH_WORDS,
  MAX_TERM_LENGTH,
  directoryPrefixes,
  directoryTerms,
  foldText,
  prefixUpperBound,
  searchWords,
  wordsOf,
} from '../../src/core/user-directory.js';

it('folds case, accents and compatibility forms', () => {
  assert.equal(foldText('Zoë ÅNGSTRÖM'), 'zoe angstrom');
  assert.equal(foldText('ﬁne'), 'fine');
  assert.equal(foldText('Ｗide'), 'wide');
});

it('cuts text into distinct words of letters and digits', () => {
  assert.deepEqual(wordsOf('@alice.smith:example.org'), ['alice', 'smith', 'example', 'org']);
  assert.deepEqual(wordsOf('Jean-Luc  Picard, jean'), ['jean', 'luc', 'picard']);
  // Marks go even where they make a letter of their own (й → и); a search folds the same way.
  assert.deepEqual(wordsOf('Дмитрий 李小龍'), ['дмитрии', '李小龍']);
  assert.deepEqual(searchWords('ДМИТРИЙ'), wordsOf('Дмитрий'));
  assert.deepEqual(wordsOf('!!'), []);
});

it('a user is found by the words of the ID and of the display name', () => {
  assert.deepEqual(directoryTerms('@bob:test.local', 'Bob Ángel'), [
    'bob',
    'test',
    'local',
    'angel',
  ]);
  assert.deepEqual(directoryTerms('@bob:test.local', null), ['bob', 'test', 'local']);
});

it('a search keeps at most a few words, the longest first', () => {
  assert.deepEqual(searchWords('a bb ccc dddd eeeee'), ['eeeee', 'dddd', 'ccc', 'bb']);
  assert.equal(searchWords('a b c d e f').length, MAX_SEARCH_WORDS);
});

it('the prefix range holds every word starting with the prefix and no other', () => {
  const upper = prefixUpperBound('ali');
  for (const word of ['ali', 'alice', 'aliz', 'ali李'])
    assert.ok(word >= 'ali' && word < upper, word);
  for (const word of ['alh', 'alj', 'al']) assert.ok(!(word >= 'ali' && word < upper), word);
});

it('a user is keyed by every prefix of each word, whole characters only', () => {
  assert.deepEqual(directoryPrefixes('@bo:t.l', 'Bob Ángel'), [
    'b',
    'bo',
    't',
    'l',
    'bob',
    'a',
    'an',
    'ang',
    'ange',
    'angel',
  ]);
  // A character outside the BMP is one prefix step, never half of one.
  assert.deepEqual(directoryPrefixes('@x:y', '𐐨𐐩'), ['x', 'y', '𐐨', '𐐨𐐩']);
  // Each search word of a matching search is one of the keys.
  const keys = new Set(directoryPrefixes('@alice.smith:example.org', 'Zoë Ångström'));
  for (const term of ['ali', 'smith', 'exa', 'zoe', 'ANGST', 'Zoë'])
    for (const word of searchWords(term)) assert.ok(keys.has(word), term);
  for (const word of ['oe', 'lice', 'angstromx']) assert.ok(!keys.has(word), word);
});

it('a long word is cut without splitting a character', () => {
  const [word] = wordsOf(`${'a'.repeat(MAX_TERM_LENGTH - 1)}𐐨`);
  assert.equal(word, 'a'.repeat(MAX_TERM_LENGTH - 1));
  assert.equal(wordsOf('b'.repeat(MAX_TERM_LENGTH + 5))[0]?.length, MAX_TERM_LENGTH);
});
