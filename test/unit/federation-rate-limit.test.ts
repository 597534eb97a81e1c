/** The per-origin token bucket of inbound federation requests (`federation.inbound_rate_limit`). */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { originLimiter } from '../../src/api/federation/auth.js';

it('lets a burst through, then one request per 1/rate seconds, per origin', () => {
  let t = 0;
  const limiter = originLimiter({ perSecond: 2, burst: 3 }, () => t);
  assert.deepEqual(
    [1, 2, 3].map(() => limiter.take('a.test')),
    [0, 0, 0],
  );
  assert.equal(limiter.take('a.test'), 500, 'the fourth waits half a second');
  assert.equal(limiter.take('b.test'), 0, 'another origin has its own bucket');
  t = 500;
  assert.equal(limiter.take('a.test'), 0);
  assert.ok(limiter.take('a.test') > 0);
  t = 10_000;
  assert.deepEqual(
    [1, 2, 3].map(() => limiter.take('a.test')),
    [0, 0, 0],
    'refilled to the burst',
  );
  assert.ok(limiter.take('a.test') > 0);
});

it('a rate of 0 is no limit', () => {
  const limiter = originLimiter({ perSecond: 0, burst: 1 });
  for (let i = 0; i < 100; i++) assert.equal(limiter.take('a.test'), 0);
});
