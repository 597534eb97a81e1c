import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { issuePagingToken, readPagingToken } from '../../src/core/paging-token.js';

const key = { secret: randomBytes(32), purpose: 'mutual_rooms' };
const binding = ['@alice:example.org', '@bob:example.org'];
const NOW = 1_800_000_000_000;
const HOUR = 3_600_000;

describe('paging tokens', () => {
  it('round-trips the cursor within its lifetime', () => {
    fc.assert(
      fc.property(fc.nat({ max: Number.MAX_SAFE_INTEGER }), (cursor) => {
        const token = issuePagingToken(key, binding, cursor, NOW + HOUR);
        assert.match(token, /^[0-9a-zA-Z._~-]{1,255}$/);
        // Expiry is kept to the second, rounded up.
        assert.deepEqual(readPagingToken(key, binding, token, NOW), {
          ok: true,
          cursor,
          expiresAt: Math.ceil((NOW + HOUR) / 1000) * 1000,
        });
      }),
    );
  });

  it('expires at its expiry time', () => {
    const token = issuePagingToken(key, binding, 7, NOW + HOUR);
    assert.deepEqual(readPagingToken(key, binding, token, NOW + HOUR + 1000), {
      ok: false,
      reason: 'expired',
    });
  });

  it('refuses another binding, another purpose and another secret', () => {
    const token = issuePagingToken(key, binding, 7, NOW + HOUR);
    const refusals = [
      readPagingToken(key, ['@carol:example.org', '@bob:example.org'], token, NOW),
      readPagingToken(key, ['@alice:example.org', '@carol:example.org'], token, NOW),
      readPagingToken(key, ['@alice:example.org'], token, NOW),
      readPagingToken({ ...key, purpose: 'other' }, binding, token, NOW),
      readPagingToken({ ...key, secret: randomBytes(32) }, binding, token, NOW),
    ];
    for (const result of refusals) assert.deepEqual(result, { ok: false, reason: 'forged' });
  });

  it('does not confuse field boundaries in the binding', () => {
    const token = issuePagingToken(key, ['@a:b', 'c'], 1, NOW + HOUR);
    assert.equal(readPagingToken(key, ['@a:bc'], token, NOW).ok, false);
    assert.equal(readPagingToken(key, ['@a:b', 'c', ''], token, NOW).ok, false);
  });

  it('refuses every single-character alteration', () => {
    const token = issuePagingToken(key, binding, 12345, NOW + HOUR);
    const alphabet = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ._~-';
    for (let i = 0; i < token.length; i++) {
      for (const c of alphabet) {
        if (c === token[i]) continue;
        const altered = token.slice(0, i) + c + token.slice(i + 1);
        assert.equal(readPagingToken(key, binding, altered, NOW).ok, false, altered);
      }
    }
  });

  it('calls garbage malformed', () => {
    for (const garbage of ['', 'x', 'p1', 'p1...', 'p2.1.1.AAAAAAAAAAAAAAAAAAAAAA', 'p1.-1.1.x']) {
      assert.deepEqual(readPagingToken(key, binding, garbage, NOW), {
        ok: false,
        reason: 'malformed',
      });
    }
  });

  it('refuses cursors that are not safe non-negative integers when issuing', () => {
    assert.throws(() => issuePagingToken(key, binding, -1, NOW));
    assert.throws(() => issuePagingToken(key, binding, 1.5, NOW));
  });
});
