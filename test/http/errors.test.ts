import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestResponse, type TestServer } from '../helpers/server.js';
import { registerUser } from '../helpers/client.js';
import { assertMatchesSpec } from '../helpers/spec-contract.js';
import { expectError, type ErrorBody } from '../helpers/assertions.js';

const V3 = '/_matrix/client/v3';
const MAX_BODY_BYTES = 2048;

/**
 * Every error answer: the status, the errcode, a JSON body of errcode + error, the JSON
 * content type, and the CORS header (browsers drop responses without it).
 */
function expectMatrixError(
  response: TestResponse<unknown>,
  status: number,
  errcode: string,
): ErrorBody {
  assert.equal(response.status, status, JSON.stringify(response.body));
  assert.match(response.headers.get('content-type') ?? '', /^application\/json\b/);
  assert.equal(response.headers.get('access-control-allow-origin'), '*');
  assert.equal(
    typeof response.body,
    'object',
    `a JSON object body: ${JSON.stringify(response.body)}`,
  );
  const body = expectError(response, status, errcode);
  assert.ok(body.error.length > 0);
  return body;
}

forEachDatabase('error answers, CORS and limits', (dialect) => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer(dialect, {
      COMMONS_HTTP_MAX_BODY_BYTES: String(MAX_BODY_BYTES),
    });
  });
  after(async () => server.close());

  const unknownPaths = [
    `${V3}/no/such/endpoint`,
    '/_matrix/client/v1/nothing',
    '/_matrix/client/v3/login/',
    '/index.html',
    '/favicon.ico',
    '/_matrix/federation/v1/version',
  ];
  for (const path of unknownPaths) {
    it(`an unknown path (${path}) answers 404 M_UNRECOGNIZED`, async () => {
      for (const method of ['GET', 'POST', 'PUT', 'DELETE']) {
        const response = await server.request(
          method,
          path,
          method === 'GET' || method === 'DELETE' ? {} : { body: {} },
        );
        expectMatrixError(response, 404, 'M_UNRECOGNIZED');
      }
    });
  }

  const wrongMethods: [string, string, string[]][] = [
    ['DELETE', `${V3}/login`, ['GET', 'POST']],
    ['PUT', `${V3}/register`, ['POST']],
    ['POST', `${V3}/account/whoami`, ['GET']],
    ['PATCH', `${V3}/devices/SOMEDEVICE`, ['GET', 'PUT', 'DELETE']],
    ['POST', `${V3}/profile/@alice:test.local/displayname`, ['GET', 'PUT']],
    ['DELETE', '/_matrix/client/versions', ['GET']],
    ['PUT', '/_matrix/client/r0/login', ['GET', 'POST']],
    ['POST', '/', ['GET']],
  ];
  for (const [method, path, allowed] of wrongMethods) {
    it(`${method} on ${path} answers 405 M_UNRECOGNIZED with Allow`, async () => {
      const response = await server.request(method, path, method === 'DELETE' ? {} : { body: {} });
      expectMatrixError(response, 405, 'M_UNRECOGNIZED');
      const allow = (response.headers.get('allow') ?? '').split(/,\s*/);
      for (const name of allowed)
        assert.ok(allow.includes(name), `Allow: ${allow.join(', ')} lacks ${name}`);
      assert.ok(!allow.includes(method), `Allow: ${allow.join(', ')} includes ${method}`);
    });
  }

  const notJsonBodies: [string, string][] = [
    ['plain text', 'not json at all'],
    ['truncated JSON', '{"username": "alice", '],
    ['single-quoted JSON', "{'username': 'alice'}"],
    ['a trailing comma', '{"username": "alice",}'],
  ];
  for (const [what, rawBody] of notJsonBodies) {
    it(`a body of ${what} answers 400 M_NOT_JSON`, async () => {
      const response = await server.request('POST', `${V3}/register`, {
        rawBody,
        headers: { 'Content-Type': 'application/json' },
      });
      expectMatrixError(response, 400, 'M_NOT_JSON');
      assertMatchesSpec('registration.yaml', 'post', '/register', 400, response.body);
    });
  }

  it('a missing body where one is required answers 400 M_NOT_JSON', async () => {
    const response = await server.request('POST', `${V3}/login`);
    expectMatrixError(response, 400, 'M_NOT_JSON');
  });

  it('a JSON body is read whatever the Content-Type says', async () => {
    const response = await server.request('POST', `${V3}/login`, {
      rawBody: JSON.stringify({ type: 'm.login.password', user: 'nobody', password: 'pw' }),
      headers: { 'Content-Type': 'text/plain' },
    });
    expectMatrixError(response, 403, 'M_FORBIDDEN');
  });

  const wrongShapes: [string, string][] = [
    ['an array', '["m.login.password"]'],
    ['a string', '"m.login.password"'],
    ['a number', '42'],
    ['null', 'null'],
    ['an object with a field of the wrong type', '{"type": ["m.login.password"]}'],
  ];
  for (const [what, rawBody] of wrongShapes) {
    it(`a JSON body that is ${what} answers 400 M_BAD_JSON`, async () => {
      const response = await server.request('POST', `${V3}/login`, {
        rawBody,
        headers: { 'Content-Type': 'application/json' },
      });
      expectMatrixError(response, 400, 'M_BAD_JSON');
      assertMatchesSpec('login.yaml', 'post', '/login', 400, response.body);
    });
  }

  it('a body over the limit answers 413 M_TOO_LARGE', async () => {
    const response = await server.request('POST', `${V3}/register`, {
      body: { username: 'a', password: 'x'.repeat(MAX_BODY_BYTES) },
    });
    expectMatrixError(response, 413, 'M_TOO_LARGE');
  });

  it('a body just under the limit is read', async () => {
    const body = JSON.stringify({ type: 'm.login.password', user: 'nobody', password: 'x' });
    const padded =
      body.slice(0, -1) + ',"pad":"' + 'p'.repeat(MAX_BODY_BYTES - body.length - 10) + '"}';
    assert.ok(Buffer.byteLength(padded) <= MAX_BODY_BYTES);
    const response = await server.request('POST', `${V3}/login`, { rawBody: padded });
    expectMatrixError(response, 403, 'M_FORBIDDEN');
  });

  it('a streamed body (no Content-Length) over the limit answers 413 M_TOO_LARGE', async () => {
    const chunk = new TextEncoder().encode('x'.repeat(512));
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('{"password":"'));
        for (let i = 0; i < 8; i++) controller.enqueue(chunk);
        controller.enqueue(new TextEncoder().encode('"}'));
        controller.close();
      },
    });
    const init: RequestInit & { duplex: 'half' } = { method: 'POST', body: stream, duplex: 'half' };
    const raw = await fetch(`${server.url}${V3}/register`, init);
    const response: TestResponse<unknown> = {
      status: raw.status,
      headers: raw.headers,
      body: JSON.parse(await raw.text()) as unknown,
    };
    expectMatrixError(response, 413, 'M_TOO_LARGE');
  });

  const poisoned: [string, string, string][] = [
    ['__proto__', 'proto', '{"username": "proto", "__proto__": {"isAdmin": true}}'],
    [
      'a nested __proto__',
      'nested',
      '{"username": "nested", "auth": {"type": "m.login.dummy", "__proto__": {}}}',
    ],
    [
      'constructor.prototype',
      'ctor',
      '{"username": "ctor", "constructor": {"prototype": {"isAdmin": true}}}',
    ],
  ];
  for (const [what, username, rawBody] of poisoned) {
    it(`a body with ${what} answers 400 M_BAD_JSON`, async () => {
      const response = await server.request('POST', `${V3}/register`, {
        rawBody,
        headers: { 'Content-Type': 'application/json' },
      });
      expectMatrixError(response, 400, 'M_BAD_JSON');
      const available = await server.request(
        'GET',
        `${V3}/register/available?username=${username}`,
      );
      assert.equal(available.status, 200, 'no user was registered');
    });
  }

  it('a "constructor" key that is not an object is accepted', async () => {
    const response = await server.request('POST', `${V3}/register`, {
      rawBody: '{"username": "ctorok", "constructor": "fine"}',
    });
    assert.equal(response.status, 401, JSON.stringify(response.body));
  });

  it('authentication errors are Matrix errors with CORS headers', async () => {
    expectMatrixError(await server.request('GET', `${V3}/account/whoami`), 401, 'M_MISSING_TOKEN');
    expectMatrixError(
      await server.request('GET', `${V3}/account/whoami`, { token: 'mct_unknown' }),
      401,
      'M_UNKNOWN_TOKEN',
    );
    expectMatrixError(
      await server.request('GET', `${V3}/account/whoami`, {
        headers: { Authorization: 'Basic abc' },
      }),
      401,
      'M_MISSING_TOKEN',
    );
  });

  it('service errors are Matrix errors with CORS headers', async () => {
    const user = await registerUser(server);
    expectMatrixError(
      await server.request('GET', `${V3}/devices/NOSUCHDEVICE`, { token: user.accessToken }),
      404,
      'M_NOT_FOUND',
    );
    expectMatrixError(
      await server.request('PUT', `${V3}/profile/@someone:test.local/displayname`, {
        token: user.accessToken,
        body: { displayname: 'x' },
      }),
      403,
      'M_FORBIDDEN',
    );
    expectMatrixError(
      await server.request('GET', `${V3}/register/available`),
      400,
      'M_MISSING_PARAM',
    );
    expectMatrixError(
      await server.request('GET', `${V3}/profile/not-a-user-id`),
      400,
      'M_INVALID_PARAM',
    );
  });

  it('successful answers carry the CORS header too', async () => {
    for (const path of ['/_matrix/client/versions', `${V3}/login`]) {
      const response = await server.request('GET', path);
      assert.equal(response.status, 200);
      assert.equal(response.headers.get('access-control-allow-origin'), '*');
      assert.match(response.headers.get('content-type') ?? '', /^application\/json\b/);
    }
  });

  const preflightPaths = [
    `${V3}/login`,
    `${V3}/account/whoami`,
    `${V3}/profile/@alice:test.local/displayname`,
    `${V3}/devices/ABCDEF`,
    '/_matrix/client/r0/register',
    '/_matrix/client/versions',
    `${V3}/rooms/!room:test.local/send/m.room.message/txn1`,
    '/_synapse/admin/v1/register',
  ];
  for (const path of preflightPaths) {
    it(`OPTIONS preflight on ${path} allows the methods and the Authorization header`, async () => {
      const response = await server.request('OPTIONS', path, {
        headers: {
          Origin: 'https://app.element.io',
          'Access-Control-Request-Method': 'PUT',
          'Access-Control-Request-Headers': 'authorization, content-type',
        },
      });
      assert.ok(response.status === 204 || response.status === 200, `status ${response.status}`);
      assert.equal(response.headers.get('access-control-allow-origin'), '*');
      const methods = (response.headers.get('access-control-allow-methods') ?? '').split(/,\s*/);
      for (const method of ['GET', 'POST', 'PUT', 'DELETE', 'OPTIONS']) {
        assert.ok(methods.includes(method), `Allow-Methods ${methods.join(', ')} lacks ${method}`);
      }
      const headers = (response.headers.get('access-control-allow-headers') ?? '')
        .toLowerCase()
        .split(/,\s*/);
      for (const header of ['authorization', 'content-type', 'x-requested-with']) {
        assert.ok(headers.includes(header), `Allow-Headers ${headers.join(', ')} lacks ${header}`);
      }
    });
  }

  it('OPTIONS without preflight headers still answers with the CORS headers', async () => {
    const response = await server.request('OPTIONS', `${V3}/login`);
    assert.ok(response.status === 204 || response.status === 200, `status ${response.status}`);
    assert.equal(response.headers.get('access-control-allow-origin'), '*');
    assert.match(response.headers.get('access-control-allow-headers') ?? '', /Authorization/i);
  });

  it('a malformed percent-encoding in the path is a Matrix error', async () => {
    // Fastify rejects a malformed URL before routing; src/app.ts's frameworkErrors answers.
    for (const path of [`${V3}/profile/%zz`, `${V3}/profile/%E0%A4%A/displayname`]) {
      const response = await server.request('GET', path);
      const errcode = (response.body as Partial<ErrorBody> | undefined)?.errcode ?? '(none)';
      assert.ok(
        ['M_UNRECOGNIZED', 'M_INVALID_PARAM'].includes(errcode),
        JSON.stringify(response.body),
      );
      expectMatrixError(response, 400, errcode);
    }
  });

  it('an internal error answers 500 M_UNKNOWN without showing what went wrong', async () => {
    const user = await registerUser(server);
    const devices = server.running.storage.stores.devices;
    const original = devices.selectTokenOwner;
    devices.selectTokenOwner = () =>
      Promise.reject(
        new Error('relation "access_tokens" broke at /var/lib/secret-path password=hunter2'),
      );
    let response: TestResponse<unknown>;
    try {
      response = await server.request('GET', `${V3}/account/whoami`, { token: user.accessToken });
    } finally {
      devices.selectTokenOwner = original;
    }
    const body = expectMatrixError(response, 500, 'M_UNKNOWN');
    assert.deepEqual(Object.keys(body).sort(), ['errcode', 'error']);
    for (const secret of ['relation', 'access_tokens', 'secret-path', 'hunter2']) {
      assert.ok(!body.error.includes(secret), `the answer shows "${secret}": ${body.error}`);
    }
    const after = await server.request('GET', `${V3}/account/whoami`, { token: user.accessToken });
    assert.equal(after.status, 200, 'the server carries on');
  });
});

forEachDatabase('rate limiting', (dialect) => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer(dialect, {
      COMMONS_RATE_LIMITS_ENABLED: 'true',
      COMMONS_RATE_LIMITS_CLASSES_LOGIN_PER_SECOND: '0.1',
      COMMONS_RATE_LIMITS_CLASSES_LOGIN_BURST: '2',
    });
  });
  after(async () => server.close());

  it('answers 429 M_LIMIT_EXCEEDED with retry_after_ms and Retry-After once the burst is spent', async () => {
    for (let i = 0; i < 2; i++) {
      const ok = await server.request('GET', `${V3}/login`);
      assert.equal(ok.status, 200, `request ${i + 1} of the burst`);
    }
    const limited = await server.request('GET', `${V3}/login`);
    const body = expectMatrixError(limited, 429, 'M_LIMIT_EXCEEDED');
    assertMatchesSpec('login.yaml', 'get', '/login', 429, body);
    assert.equal(typeof body.retry_after_ms, 'number');
    const retryMs = body.retry_after_ms ?? 0;
    assert.ok(retryMs > 0 && retryMs <= 10_000, `retry_after_ms ${retryMs}`);
    const retryAfter = limited.headers.get('retry-after');
    assert.ok(retryAfter !== null, 'a Retry-After header');
    assert.match(retryAfter, /^\d+$/);
    assert.equal(Number(retryAfter), Math.max(1, Math.ceil(retryMs / 1000)));

    // The same class (POST /login) is spent too …
    const post = await server.request('POST', `${V3}/login`, {
      body: { type: 'm.login.password', user: 'nobody', password: 'pw' },
    });
    expectMatrixError(post, 429, 'M_LIMIT_EXCEEDED');
    assertMatchesSpec('login.yaml', 'post', '/login', 429, post.body);
    // … other classes are not.
    const versions = await server.request('GET', '/_matrix/client/versions');
    assert.equal(versions.status, 200);
    const register = await server.request('POST', `${V3}/register`, {
      body: { username: 'limitless' },
    });
    assert.equal(register.status, 401, JSON.stringify(register.body));
  });
});
