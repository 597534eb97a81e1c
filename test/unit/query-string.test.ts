import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseQueryString, queryStringProblem } from '../../src/http/query-string.js';

describe('strict query strings', () => {
  it('decodes values, turns repeated keys into arrays, and keeps + as a space', () => {
    const query = parseQueryString(
      'membership=join&membership=invite&user_id=%40a%3Ab&q=a+b&both=a+b%2Bc%20d&flag',
    );
    assert.deepEqual(
      { ...query },
      {
        membership: ['join', 'invite'],
        user_id: '@a:b',
        q: 'a b',
        both: 'a b+c d',
        flag: '',
      },
    );
    assert.equal(queryStringProblem(query, new Set(['membership', 'user_id'])), null);
  });

  it('notes undecodable or NUL values of declared parameters, keeping them undecoded', () => {
    for (const raw of ['%zz', '%', '%C0%AF', '%ED%A0%80', 'a%00b']) {
      const query = parseQueryString(`user_id=${raw}&other=1`);
      assert.equal(query.user_id, raw);
      const problem = queryStringProblem(query, new Set(['user_id']));
      assert.equal(problem?.errcode, 'M_INVALID_PARAM', raw);
      assert.equal(queryStringProblem(query, new Set(['other'])), null, raw);
    }
  });

  it('drops parameters whose names cannot be decoded, and cannot be polluted', () => {
    const query = parseQueryString('%zz=1&__proto__=x&constructor=y');
    assert.deepEqual(Object.keys(query).sort(), ['__proto__', 'constructor']);
    assert.equal(Object.getPrototypeOf(query), null);
  });
});
