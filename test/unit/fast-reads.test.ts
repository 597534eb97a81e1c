/**
 * FastReads in front of a real node:http server: which requests it answers itself and which
 * it hands to the next handler (here one that answers 299 and says so), rate limits, closing,
 * and the request log line.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { after, before, beforeEach, describe, it } from 'node:test';
import { unknownToken } from '../../src/core/errors.js';
import { FastReads, type FastRead } from '../../src/http/fast-reads.js';
import { RateLimiter } from '../../src/http/rate-limit.js';
import type { Requester } from '../../src/services/index.js';

const alice = { userId: '@alice:test.local', deviceId: 'D' } as Requester;
const PATH = '/_matrix/client/v1/mutual_rooms';

describe('FastReads', () => {
  let server: Server;
  let base = '';
  let reads: FastReads;
  let logged: { fields: Record<string, unknown>; reqId: string }[] = [];
  let readResult: (query: Record<string, unknown>) => Promise<Buffer | null> = async (query) =>
    Buffer.from(JSON.stringify({ query }));
  let accept: boolean | 'throw' = true;
  let sessions: Record<string, Requester | Promise<Requester> | Error> = {};
  let limiter: RateLimiter | null = null;
  let ids = 0;

  const read: FastRead = ({ requester, query }) => {
    assert.equal(requester, alice);
    if (accept === 'throw') throw new Error('a bug in the route');
    return accept ? () => readResult(query) : null;
  };

  before(async () => {
    server = createServer((request, response) =>
      reads.handle(request, response, (_req, res) => {
        res.writeHead(299, { 'content-type': 'text/plain' });
        res.end('fallback');
      }),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  beforeEach(() => {
    accept = true;
    readResult = async (query) => Buffer.from(JSON.stringify({ query }));
    sessions = { good: alice };
    limiter = null;
    logged = [];
    const make = (trustProxy: boolean) =>
      new FastReads({
        authenticate(token) {
          const found = sessions[token];
          if (found === undefined) throw unknownToken();
          if (found instanceof Error) throw found;
          return found;
        },
        get rateLimiter() {
          return limiter;
        },
        trustProxy,
        requestId: () => `r${++ids}`,
        log: { enabled: true, line: (fields, reqId) => logged.push({ fields, reqId }) },
      });
    reads = make(false);
    reads.add({ path: PATH, rateLimit: 'mutual_rooms', contentType: 'application/json', read });
  });

  const get = (url: string, headers: Record<string, string> = { authorization: 'Bearer good' }) =>
    fetch(base + url, { headers }).then(async (res) => ({
      status: res.status,
      headers: res.headers,
      text: await res.text(),
    }));

  it('answers a registered GET with the read body, the CORS header and its content type', async () => {
    const res = await get(`${PATH}?user_id=%40bob%3Ax&from=t`);
    assert.equal(res.status, 200);
    assert.deepEqual(JSON.parse(res.text), { query: { user_id: '@bob:x', from: 't' } });
    assert.equal(res.headers.get('content-type'), 'application/json');
    assert.equal(res.headers.get('access-control-allow-origin'), '*');
    assert.equal(res.headers.get('content-length'), String(Buffer.byteLength(res.text)));
    assert.equal(logged.length, 1);
    const [line] = logged;
    assert.equal(line?.reqId, `r${ids}`);
    assert.equal(line?.fields.status, 200);
    assert.equal(line?.fields.user, alice.userId);
    assert.equal(line?.fields.ip, '127.0.0.1');
    assert.equal(line?.fields.path, `${PATH}?user_id=%40bob%3Ax&from=t`);
  });

  it('hands everything else to the next handler, having sent nothing', async () => {
    const cases: [string, string, Record<string, string>][] = [
      ['another path', '/_matrix/client/v1/other', { authorization: 'Bearer good' }],
      ['a path with a trailing slash', `${PATH}/`, { authorization: 'Bearer good' }],
      ['no token', PATH, {}],
      ['not a Bearer header', PATH, { authorization: 'Basic abc' }],
      ['an unknown token', PATH, { authorization: 'Bearer nope' }],
      ['a query token', `${PATH}?access_token=good`, { authorization: 'Bearer good' }],
      ['an undecodable value', `${PATH}?user_id=%zz`, { authorization: 'Bearer good' }],
    ];
    for (const [name, url, headers] of cases) {
      const res = await get(url, headers);
      assert.equal(res.status, 299, name);
      assert.equal(res.text, 'fallback', name);
    }
    assert.equal(logged.length, 0, 'the next handler logs its own answers');
  });

  it('hands over a session that is not cached, and a route that declines or fails', async () => {
    sessions.pending = Promise.resolve(alice);
    assert.equal((await get(PATH, { authorization: 'Bearer pending' })).status, 299);
    accept = false;
    assert.equal((await get(PATH)).status, 299, 'the route declines the request');
    accept = 'throw';
    assert.equal((await get(PATH)).status, 299, 'the route throws');
    accept = true;
    readResult = async () => null;
    assert.equal((await get(PATH)).status, 299, 'the read declines');
    readResult = async () => {
      throw new Error('boom');
    };
    assert.equal((await get(PATH)).status, 299, 'the read rejects');
  });

  it('takes a rate-limit token per answer; once refused, the next handler answers', async () => {
    limiter = new RateLimiter(
      {
        default: { per_second: 1, burst: 1 },
        login: { per_second: 1, burst: 1 },
        registration: { per_second: 1, burst: 1 },
        message: { per_second: 1, burst: 1 },
        membership: { per_second: 1, burst: 1 },
        query: { per_second: 1, burst: 1 },
        mutual_rooms: { per_second: 0.001, burst: 2 },
        media_upload: { per_second: 1, burst: 1 },
      },
      () => 1_000,
    );
    accept = false;
    assert.equal((await get(PATH)).status, 299, 'a declined request takes no token');
    accept = true;
    assert.equal((await get(PATH)).status, 200);
    assert.equal((await get(PATH)).status, 200);
    assert.equal((await get(PATH)).status, 299);
    assert.throws(() => limiter?.take('mutual_rooms', alice.userId), /Too many requests/i);
  });

  it('after close(), every request goes to the next handler', async () => {
    reads.close();
    assert.equal((await get(PATH)).status, 299);
  });

  it('with trust_proxy, logs the client address from X-Forwarded-For as Fastify does', async () => {
    reads = new FastReads({
      authenticate: () => alice,
      rateLimiter: null,
      trustProxy: true,
      requestId: () => 'x',
      log: { enabled: true, line: (fields, reqId) => logged.push({ fields, reqId }) },
    });
    reads.add({ path: PATH, rateLimit: 'mutual_rooms', contentType: 'application/json', read });
    const res = await get(PATH, {
      authorization: 'Bearer good',
      'x-forwarded-for': '203.0.113.9, 198.51.100.2',
    });
    assert.equal(res.status, 200);
    assert.equal(logged[0]?.fields.ip, '203.0.113.9');
  });
});
