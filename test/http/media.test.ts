import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, it } from 'node:test';
import sharp from 'sharp';
import { createTestDatabase, forEachDatabase, type TestDatabase } from '../helpers/databases.js';
import { startServerOn, startTestServer, type TestServer } from '../helpers/server.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { expectError, uniqueName } from '../helpers/assertions.js';
import { assertMatchesSpec } from '../helpers/spec-contract.js';
import { MEDIA_CSP } from '../../src/core/media.js';

const CLIENT = '/_matrix/client/v1/media';
const UPLOAD = '/_matrix/media/v3/upload';
const MAX_UPLOAD = 64 * 1024;

interface Fetched {
  status: number;
  headers: Headers;
  bytes: Buffer;
  json: Record<string, unknown> | undefined;
}

/** A request whose answer is kept as bytes (and parsed when it is JSON). */
async function fetchRaw(
  server: TestServer,
  method: string,
  urlPath: string,
  options: {
    token?: string;
    body?: Buffer | ReadableStream<Uint8Array>;
    headers?: Record<string, string>;
  } = {},
): Promise<Fetched> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token !== undefined) headers.Authorization = `Bearer ${options.token}`;
  const init: RequestInit & { duplex?: 'half' } = { method, headers, body: options.body };
  if (options.body instanceof ReadableStream) init.duplex = 'half';
  const response = await fetch(server.url + urlPath, init);
  const bytes = Buffer.from(await response.arrayBuffer());
  const type = response.headers.get('content-type') ?? '';
  return {
    status: response.status,
    headers: response.headers,
    bytes,
    json: type.startsWith('application/json') ? JSON.parse(bytes.toString('utf8')) : undefined,
  };
}

async function upload(
  server: TestServer,
  user: TestUser,
  bytes: Buffer,
  contentType?: string,
  fileName?: string,
): Promise<{ serverName: string; mediaId: string; uri: string }> {
  const query = fileName !== undefined ? `?filename=${encodeURIComponent(fileName)}` : '';
  const response = await fetchRaw(server, 'POST', `${UPLOAD}${query}`, {
    token: user.accessToken,
    body: bytes,
    headers: contentType !== undefined ? { 'Content-Type': contentType } : {},
  });
  assert.equal(response.status, 200, response.bytes.toString());
  assertMatchesSpec('content-repo.yaml', 'post', '/media/v3/upload', 200, response.json);
  const uri = String(response.json?.content_uri);
  const match = /^mxc:\/\/([^/]+)\/([A-Za-z0-9_-]+)$/.exec(uri);
  assert.ok(match, uri);
  return { serverName: match[1] as string, mediaId: match[2] as string, uri };
}

/** Files kept in the media store (its temporary directory aside). */
function storedFiles(dataDir: string): string[] {
  const root = path.join(dataDir, 'media');
  const found: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const full = path.join(dir, name);
      if (statSync(full).isDirectory()) {
        if (full !== path.join(root, 'tmp')) walk(full);
      } else found.push(full);
    }
  };
  walk(root);
  return found;
}

const tempFiles = (dataDir: string) => readdirSync(path.join(dataDir, 'media', 'tmp'));

const png = (width: number, height: number) =>
  sharp({ create: { width, height, channels: 3, background: { r: 200, g: 20, b: 90 } } })
    .png()
    .toBuffer();

forEachDatabase('media repository', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  before(async () => {
    server = await startTestServer(dialect, {
      COMMONS_MEDIA_MAX_UPLOAD_BYTES: String(MAX_UPLOAD),
      COMMONS_MEDIA_MAX_AWAITED_UPLOADS: '3',
    });
    alice = await registerUser(server, uniqueName('alice'));
    bob = await registerUser(server, uniqueName('bob'));
  });
  after(async () => server.close());

  const download = (mxc: { serverName: string; mediaId: string }, extra = '', headers = {}) =>
    fetchRaw(server, 'GET', `${CLIENT}/download/${mxc.serverName}/${mxc.mediaId}${extra}`, {
      token: bob.accessToken,
      headers,
    });

  it('GET /config answers m.upload.size, and needs a token', async () => {
    const response = await fetchRaw(server, 'GET', `${CLIENT}/config`, {
      token: alice.accessToken,
    });
    assert.equal(response.status, 200);
    assert.deepEqual(response.json, { 'm.upload.size': MAX_UPLOAD });
    expectError(
      await fetchRaw(server, 'GET', `${CLIENT}/config`).then(asResponse),
      401,
      'M_MISSING_TOKEN',
    );
  });

  it('uploads and downloads the same bytes, with the spec security headers', async () => {
    const bytes = Buffer.from('hello, media\n');
    const mxc = await upload(server, alice, bytes, 'text/plain', 'hello.txt');
    assert.equal(mxc.serverName, 'test.local');
    const response = await download(mxc);
    assert.equal(response.status, 200);
    assert.deepEqual(response.bytes, bytes);
    assert.equal(response.headers.get('content-type'), 'text/plain; charset=utf-8');
    assert.equal(response.headers.get('content-disposition'), 'inline; filename="hello.txt"');
    assert.equal(response.headers.get('content-security-policy'), MEDIA_CSP);
    assert.equal(response.headers.get('cross-origin-resource-policy'), 'cross-origin');
    assert.equal(response.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(response.headers.get('accept-ranges'), 'bytes');
    // The name in the path wins over the uploaded one.
    const named = await download(mxc, '/other%20name.txt');
    assert.equal(named.status, 200);
    assert.equal(named.headers.get('content-disposition'), 'inline; filename="other name.txt"');
  });

  it('serves types outside the safe list as attachments, and names outside ASCII in RFC 8187 form', async () => {
    const cases: [string | undefined, string | undefined, string][] = [
      ['text/html', 'page.html', 'attachment; filename="page.html"'],
      ['image/svg+xml', undefined, 'attachment'],
      ['application/javascript', 'a.js', 'attachment; filename="a.js"'],
      [undefined, undefined, 'attachment'],
      ['image/png', 'été.png', "inline; filename*=utf-8''%C3%A9t%C3%A9.png"],
      ['not a type', 'x', 'attachment; filename="x"'],
    ];
    for (const [type, name, disposition] of cases) {
      const mxc = await upload(server, alice, Buffer.from('<script>alert(1)</script>'), type, name);
      const response = await download(mxc);
      assert.equal(response.status, 200);
      assert.equal(response.headers.get('content-disposition'), disposition, `${type} ${name}`);
      if (type === undefined || type === 'not a type')
        assert.equal(response.headers.get('content-type'), 'application/octet-stream');
      assert.equal(response.headers.get('content-security-policy'), MEDIA_CSP);
    }
  });

  it('stores content uploaded twice once (content-addressed), under two media IDs', async () => {
    const bytes = Buffer.from(`same bytes ${uniqueName('dedup')}`);
    const before = storedFiles(server.config.data_dir).length;
    const first = await upload(server, alice, bytes, 'application/octet-stream');
    const second = await upload(server, bob, bytes, 'text/plain');
    assert.notEqual(first.mediaId, second.mediaId);
    assert.equal(storedFiles(server.config.data_dir).length, before + 1);
    assert.equal((await download(second)).headers.get('content-type'), 'text/plain; charset=utf-8');
    assert.deepEqual(tempFiles(server.config.data_dir), []);
  });

  it('answers byte ranges with 206, and 416 to a range past the end', async () => {
    const mxc = await upload(server, alice, Buffer.from('0123456789'), 'text/plain');
    const part = await download(mxc, '', { Range: 'bytes=2-5' });
    assert.equal(part.status, 206);
    assert.equal(part.bytes.toString(), '2345');
    assert.equal(part.headers.get('content-range'), 'bytes 2-5/10');
    const suffix = await download(mxc, '', { Range: 'bytes=-3' });
    assert.equal(suffix.status, 206);
    assert.equal(suffix.bytes.toString(), '789');
    const open = await download(mxc, '', { Range: 'bytes=7-' });
    assert.equal(open.bytes.toString(), '789');
    const past = await download(mxc, '', { Range: 'bytes=10-' });
    expectError(asResponse(past), 416, 'M_UNKNOWN');
    assert.equal(past.headers.get('content-range'), 'bytes */10');
    // Another unit, or a malformed header: the whole content.
    const whole = await download(mxc, '', { Range: 'lines=1-2' });
    assert.equal(whole.status, 200);
    assert.equal(whole.bytes.toString(), '0123456789');
    // A matching ETag: 304.
    const etag = whole.headers.get('etag') ?? '';
    assert.equal((await download(mxc, '', { 'If-None-Match': etag })).status, 304);
  });

  it('refuses uploads over m.upload.size with 413 M_TOO_LARGE, declared or streamed, keeping nothing', async () => {
    const big = Buffer.alloc(MAX_UPLOAD + 1, 7);
    const before = storedFiles(server.config.data_dir).length;
    const declared = await fetchRaw(server, 'POST', UPLOAD, {
      token: alice.accessToken,
      body: big,
      headers: { 'Content-Type': 'application/octet-stream' },
    });
    expectError(asResponse(declared), 413, 'M_TOO_LARGE');
    // Chunked, with no Content-Length: counted as it comes.
    const streamed = await fetchRaw(server, 'POST', UPLOAD, {
      token: alice.accessToken,
      body: new ReadableStream({
        start(controller) {
          for (let i = 0; i < 8; i++) controller.enqueue(new Uint8Array(MAX_UPLOAD / 4));
          controller.close();
        },
      }),
      headers: { 'Content-Type': 'application/octet-stream' },
    });
    expectError(asResponse(streamed), 413, 'M_TOO_LARGE');
    assert.equal(storedFiles(server.config.data_dir).length, before);
    assert.deepEqual(tempFiles(server.config.data_dir), []);
    // Exactly the limit is accepted; so is an empty file.
    await upload(server, alice, Buffer.alloc(MAX_UPLOAD, 1), 'application/octet-stream');
    const empty = await upload(server, alice, Buffer.alloc(0), 'text/plain');
    const got = await download(empty);
    assert.equal(got.status, 200);
    assert.equal(got.bytes.length, 0);
  });

  it('refuses an upload without a token, and a bad filename', async () => {
    const anonymous = await fetchRaw(server, 'POST', UPLOAD, { body: Buffer.from('x') });
    expectError(asResponse(anonymous), 401, 'M_MISSING_TOKEN');
    const control = await fetchRaw(server, 'POST', `${UPLOAD}?filename=a%0Ab`, {
      token: alice.accessToken,
      body: Buffer.from('x'),
    });
    expectError(asResponse(control), 400, 'M_INVALID_PARAM');
  });

  it('answers 404 M_NOT_FOUND for unknown, malformed and remote media, and 401 without a token', async () => {
    for (const where of [
      'test.local/doesnotexist',
      'test.local/bad.id',
      'other.example/abcdef',
      'test.local/a%2F..%2F..%2Fetc',
    ]) {
      const response = await fetchRaw(server, 'GET', `${CLIENT}/download/${where}`, {
        token: alice.accessToken,
      });
      expectError(asResponse(response), 404, 'M_NOT_FOUND');
    }
    const mxc = await upload(server, alice, Buffer.from('private'), 'text/plain');
    const anonymous = await fetchRaw(server, 'GET', `${CLIENT}/download/test.local/${mxc.mediaId}`);
    expectError(asResponse(anonymous), 401, 'M_MISSING_TOKEN');
  });

  it('create then PUT: 504 before the upload, 403 to another user, 409 once uploaded', async () => {
    const created = await fetchRaw(server, 'POST', '/_matrix/media/v1/create', {
      token: alice.accessToken,
    });
    assert.equal(created.status, 200);
    assertMatchesSpec('content-repo.yaml', 'post', '/media/v1/create', 200, created.json);
    const uri = String(created.json?.content_uri);
    assert.ok(Number(created.json?.unused_expires_at) > Date.now());
    const mediaId = uri.slice(uri.lastIndexOf('/') + 1);
    const target = `/_matrix/media/v3/upload/test.local/${mediaId}`;

    const early = await download({ serverName: 'test.local', mediaId }, '?timeout_ms=0');
    expectError(asResponse(early), 504, 'M_NOT_YET_UPLOADED');

    // A download that waits, answered once the upload lands.
    const waiting = download({ serverName: 'test.local', mediaId }, '?timeout_ms=10000');
    const stranger = await fetchRaw(server, 'PUT', target, {
      token: bob.accessToken,
      body: Buffer.from('not yours'),
    });
    expectError(asResponse(stranger), 403, 'M_FORBIDDEN');
    const put = await fetchRaw(server, 'PUT', `${target}?filename=later.txt`, {
      token: alice.accessToken,
      body: Buffer.from('arrived'),
      headers: { 'Content-Type': 'text/plain' },
    });
    assert.equal(put.status, 200);
    assert.deepEqual(put.json, {});
    const waited = await waiting;
    assert.equal(waited.status, 200);
    assert.equal(waited.bytes.toString(), 'arrived');
    assert.equal(waited.headers.get('content-disposition'), 'inline; filename="later.txt"');

    const again = await fetchRaw(server, 'PUT', target, {
      token: alice.accessToken,
      body: Buffer.from('again'),
    });
    expectError(asResponse(again), 409, 'M_CANNOT_OVERWRITE_MEDIA');
    const unknown = await fetchRaw(server, 'PUT', '/_matrix/media/v3/upload/test.local/nope', {
      token: alice.accessToken,
      body: Buffer.from('x'),
    });
    expectError(asResponse(unknown), 404, 'M_NOT_FOUND');
  });

  it('limits the IDs awaiting an upload per user with 429 M_LIMIT_EXCEEDED', async () => {
    const carol = await registerUser(server, uniqueName('carol'));
    const create = () =>
      fetchRaw(server, 'POST', '/_matrix/media/v1/create', { token: carol.accessToken });
    for (let i = 0; i < 3; i++) assert.equal((await create()).status, 200);
    const refused = expectError(asResponse(await create()), 429, 'M_LIMIT_EXCEEDED');
    assert.ok((refused.retry_after_ms ?? 0) > 0);
  });

  it('thumbnails: crop and scale at the standard sizes, made once and kept', async () => {
    const mxc = await upload(server, alice, await png(1000, 500), 'image/png', 'wide.png');
    const thumb = (query: string) =>
      fetchRaw(server, 'GET', `${CLIENT}/thumbnail/test.local/${mxc.mediaId}?${query}`, {
        token: bob.accessToken,
      });
    const cases: [string, number, number][] = [
      ['width=32&height=32&method=crop', 32, 32],
      ['width=90&height=90&method=crop', 96, 96],
      ['width=320&height=240&method=scale', 320, 160],
      ['width=100&height=100', 320, 160],
      ['width=700&height=500&method=scale', 800, 400],
      ['width=2000&height=2000&method=scale', 800, 400],
    ];
    for (const [query, width, height] of cases) {
      const response = await thumb(query);
      assert.equal(response.status, 200, response.bytes.toString());
      assert.equal(response.headers.get('content-type'), 'image/png');
      assert.equal(response.headers.get('content-disposition'), 'inline; filename="thumbnail.png"');
      assert.equal(response.headers.get('content-security-policy'), MEDIA_CSP);
      const meta = await sharp(response.bytes).metadata();
      assert.deepEqual([meta.width, meta.height], [width, height], query);
    }
    const files = storedFiles(server.config.data_dir).length;
    const first = await thumb('width=32&height=32&method=crop');
    const second = await thumb('width=30&height=20&method=crop');
    assert.equal(first.headers.get('etag'), second.headers.get('etag'));
    assert.equal(storedFiles(server.config.data_dir).length, files, 'nothing made again');
  });

  it('thumbnails: a JPEG stays JPEG, a small image is answered as it is, an animation on request', async () => {
    const jpeg = await sharp({
      create: { width: 800, height: 800, channels: 3, background: { r: 1, g: 2, b: 3 } },
    })
      .jpeg()
      .toBuffer();
    const jpegMxc = await upload(server, alice, jpeg, 'image/jpeg');
    const jpegThumb = await fetchRaw(
      server,
      'GET',
      `${CLIENT}/thumbnail/test.local/${jpegMxc.mediaId}?width=96&height=96&method=crop`,
      { token: bob.accessToken },
    );
    assert.equal(jpegThumb.headers.get('content-type'), 'image/jpeg');
    assert.equal(jpegThumb.headers.get('content-disposition'), 'inline; filename="thumbnail.jpg"');

    const small = await png(20, 10);
    const smallMxc = await upload(server, alice, small, 'image/png');
    const smallThumb = await fetchRaw(
      server,
      'GET',
      `${CLIENT}/thumbnail/test.local/${smallMxc.mediaId}?width=96&height=96&method=crop`,
      { token: bob.accessToken },
    );
    assert.equal(smallThumb.status, 200);
    assert.deepEqual(smallThumb.bytes, small, 'the original, never upscaled');

    const frame = (background: string) =>
      sharp({ create: { width: 300, height: 200, channels: 3, background } })
        .png()
        .toBuffer();
    const gif = await sharp([await frame('red'), await frame('blue')], {
      join: { animated: true },
    })
      .gif({ loop: 0 })
      .toBuffer();
    const gifMxc = await upload(server, alice, gif, 'image/gif');
    const gifThumb = (animated: string) =>
      fetchRaw(
        server,
        'GET',
        `${CLIENT}/thumbnail/test.local/${gifMxc.mediaId}?width=96&height=96&method=crop${animated}`,
        { token: bob.accessToken },
      );
    const still = await gifThumb('');
    assert.equal(still.status, 200, still.bytes.toString());
    assert.equal(still.headers.get('content-type'), 'image/png');
    assert.equal((await sharp(still.bytes).metadata()).pages ?? 1, 1);
    const moving = await gifThumb('&animated=true');
    assert.equal(moving.status, 200, moving.bytes.toString());
    assert.equal(moving.headers.get('content-type'), 'image/webp');
    const movingMeta = await sharp(moving.bytes).metadata();
    assert.equal(movingMeta.pages, 2);
    assert.deepEqual([movingMeta.width, movingMeta.pageHeight ?? movingMeta.height], [96, 96]);
  });

  it('thumbnails: 400 M_UNKNOWN for content that cannot be thumbnailed or decoded, schema errors for bad sizes', async () => {
    const text = await upload(server, alice, Buffer.from('just text'), 'text/plain');
    const broken = await upload(server, alice, Buffer.from('\x89PNG\r\n\x1a\nbroken'), 'image/png');
    for (const mxc of [text, broken]) {
      const response = await fetchRaw(
        server,
        'GET',
        `${CLIENT}/thumbnail/test.local/${mxc.mediaId}?width=32&height=32`,
        { token: bob.accessToken },
      );
      expectError(asResponse(response), 400, 'M_UNKNOWN');
    }
    const image = await upload(server, alice, await png(100, 100), 'image/png');
    const at = `${CLIENT}/thumbnail/test.local/${image.mediaId}`;
    const bad: [string, number, string][] = [
      ['?height=32', 400, 'M_MISSING_PARAM'],
      ['?width=-1&height=32', 400, 'M_INVALID_PARAM'],
      ['?width=a&height=32', 400, 'M_INVALID_PARAM'],
      ['?width=32&height=32&method=stretch', 400, 'M_INVALID_PARAM'],
    ];
    for (const [query, status, errcode] of bad) {
      const response = await fetchRaw(server, 'GET', at + query, { token: bob.accessToken });
      expectError(asResponse(response), status, errcode);
    }
    const missing = await fetchRaw(
      server,
      'GET',
      `${CLIENT}/thumbnail/test.local/nothing?width=1&height=1`,
      {
        token: bob.accessToken,
      },
    );
    expectError(asResponse(missing), 404, 'M_NOT_FOUND');
  });

  it('the legacy unauthenticated paths are frozen by default; preview_url is off', async () => {
    const mxc = await upload(server, alice, Buffer.from('legacy'), 'text/plain');
    for (const where of [
      `/_matrix/media/v3/download/test.local/${mxc.mediaId}`,
      `/_matrix/media/r0/download/test.local/${mxc.mediaId}/x.txt`,
      `/_matrix/media/v3/thumbnail/test.local/${mxc.mediaId}?width=32&height=32`,
    ]) {
      expectError(asResponse(await fetchRaw(server, 'GET', where)), 404, 'M_NOT_FOUND');
    }
    const preview = await fetchRaw(
      server,
      'GET',
      `${CLIENT}/preview_url?url=https://example.org/`,
      {
        token: alice.accessToken,
      },
    );
    expectError(asResponse(preview), 404, 'M_UNRECOGNIZED');
  });

  it('/versions advertises v1.11 (authenticated media)', async () => {
    const response = await server.request<{ versions: string[] }>(
      'GET',
      '/_matrix/client/versions',
    );
    assert.ok(response.body.versions.includes('v1.11'));
  });
});

forEachDatabase('media repository: two workers, legacy paths, upload rate limit', (dialect) => {
  let database: TestDatabase;
  let dataDir: string;
  let first: TestServer;
  let second: TestServer;
  const env = {
    COMMONS_MEDIA_LEGACY_UNAUTHENTICATED: 'true',
    COMMONS_RATE_LIMITS_ENABLED: 'true',
    COMMONS_RATE_LIMITS_CLASSES_MEDIA_UPLOAD_BURST: '3',
    COMMONS_RATE_LIMITS_CLASSES_MEDIA_UPLOAD_PER_SECOND: '0.001',
    COMMONS_RATE_LIMITS_CLASSES_REGISTRATION_BURST: '1000',
  };
  // SQLite serves one process: there the second worker is the first one again.
  const severalWorkers = dialect === 'postgres';
  before(async () => {
    database = await createTestDatabase(dialect);
    dataDir = mkdtempSync(path.join(tmpdir(), 'commons-media-'));
    first = await startServerOn(database, dataDir, env);
    second = severalWorkers ? await startServerOn(database, dataDir, env) : first;
  });
  after(async () => {
    await first.close();
    if (severalWorkers) await second.close();
    await database.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it(
    'media uploaded through one worker is served, and thumbnailed, by another',
    {
      skip: severalWorkersSkip(dialect),
    },
    async () => {
      const user = await registerUser(first, uniqueName('worker'));
      const image = await png(640, 640);
      const mxc = await upload(first, user, image, 'image/png', 'square.png');
      const got = await fetchRaw(second, 'GET', `${CLIENT}/download/test.local/${mxc.mediaId}`, {
        token: user.accessToken,
      });
      assert.deepEqual(got.bytes, image);
      const thumbs = await Promise.all(
        [first, second].map((server) =>
          fetchRaw(
            server,
            'GET',
            `${CLIENT}/thumbnail/test.local/${mxc.mediaId}?width=96&height=96&method=crop`,
            {
              token: user.accessToken,
            },
          ),
        ),
      );
      for (const thumb of thumbs) assert.equal(thumb.status, 200);
      assert.deepEqual(thumbs[0]?.bytes, thumbs[1]?.bytes);
    },
  );

  it('takes uploads larger than http.max_body_bytes (the JSON body limit) up to m.upload.size', async () => {
    const user = await registerUser(first, uniqueName('big'));
    const big = Buffer.alloc(3 * 1024 * 1024 + 17, 9);
    const mxc = await upload(first, user, big, 'application/octet-stream');
    const got = await fetchRaw(second, 'GET', `${CLIENT}/download/test.local/${mxc.mediaId}`, {
      token: user.accessToken,
    });
    assert.equal(got.status, 200);
    assert.equal(got.headers.get('content-length'), String(big.length));
    assert.ok(got.bytes.equals(big));
  });

  it('serves the legacy unauthenticated paths when switched on', async () => {
    const user = await registerUser(first, uniqueName('legacy'));
    const mxc = await upload(first, user, await png(200, 100), 'image/png', 'l.png');
    const got = await fetchRaw(
      second,
      'GET',
      `/_matrix/media/v3/download/test.local/${mxc.mediaId}`,
    );
    assert.equal(got.status, 200);
    assert.equal(got.headers.get('content-disposition'), 'inline; filename="l.png"');
    const thumb = await fetchRaw(
      second,
      'GET',
      `/_matrix/media/r0/thumbnail/test.local/${mxc.mediaId}?width=32&height=32&method=crop`,
    );
    assert.equal(thumb.status, 200);
    const config = await fetchRaw(second, 'GET', '/_matrix/media/v3/config', {
      token: user.accessToken,
    });
    assert.equal(config.status, 200);
    assertMatchesSpec('content-repo.yaml', 'get', '/media/v3/config', 200, config.json);
  });

  it('rate-limits uploads per user with 429 M_LIMIT_EXCEEDED', async () => {
    const user = await registerUser(first, uniqueName('limited'));
    const other = await registerUser(first, uniqueName('unlimited'));
    for (let i = 0; i < 3; i++) await upload(first, user, Buffer.from(`n${i}`), 'text/plain');
    const refused = await fetchRaw(first, 'POST', UPLOAD, {
      token: user.accessToken,
      body: Buffer.from('one too many'),
    });
    expectError(asResponse(refused), 429, 'M_LIMIT_EXCEEDED');
    await upload(first, other, Buffer.from('another user'), 'text/plain');
  });
});

function asResponse(fetched: Fetched): { status: number; body: unknown } {
  return { status: fetched.status, body: fetched.json ?? fetched.bytes.toString() };
}

function severalWorkersSkip(dialect: string): string | false {
  return dialect === 'sqlite'
    ? 'SQLite serves one process; several workers need PostgreSQL'
    : false;
}
