import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, it } from 'node:test';
import sharp from 'sharp';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { expectError, uniqueName } from '../helpers/assertions.js';

const PREVIEW = '/_matrix/client/v1/media/preview_url';
const MAX_BYTES = 4096;

/** The pages a preview fetches: a local HTTP server, allowed through config in these tests. */
async function startSite(): Promise<{ server: Server; base: string; hits: Map<string, number> }> {
  const image = await sharp({
    create: { width: 40, height: 30, channels: 3, background: { r: 10, g: 120, b: 200 } },
  })
    .png()
    .toBuffer();
  const hits = new Map<string, number>();
  let port = 0;
  const server = createServer((request, response) => {
    const url = request.url ?? '/';
    hits.set(url, (hits.get(url) ?? 0) + 1);
    const html = (body: string, type = 'text/html; charset=utf-8') => {
      response.writeHead(200, { 'Content-Type': type });
      response.end(body);
    };
    switch (url) {
      case '/og':
        return html(
          '<html><head><title>Ignored title</title>' +
            '<meta property="og:title" content="Caf&eacute; &amp; co">' +
            '<meta property="og:description" content="  A  page\n about coffee ">' +
            '<meta property="og:image" content="/image.png">' +
            '<meta property="og:type" content="website">' +
            '</head><body><img src="/other.png"></body></html>',
        );
      case '/plain':
        return html(
          '<html><head><title> Plain page </title>' +
            '<meta name="description" content="Said by the meta description"></head>' +
            '<body><p>Text</p></body></html>',
        );
      case '/latin1':
        response.writeHead(200, { 'Content-Type': 'text/html; charset=iso-8859-1' });
        return response.end(Buffer.from('<title>Gar\xe7on</title>', 'latin1'));
      case '/image.png':
        response.writeHead(200, { 'Content-Type': 'image/png' });
        return response.end(image);
      case '/broken-image':
        return html(
          '<meta property="og:title" content="No image"><meta property="og:image" content="/missing.png">',
        );
      case '/json':
        response.writeHead(200, { 'Content-Type': 'application/json' });
        return response.end('{"a":1}');
      case '/big':
        return html(`<title>big</title>${'x'.repeat(MAX_BYTES * 2)}`);
      case '/redirect':
        response.writeHead(302, { Location: '/og' });
        return response.end();
      case '/redirect-to-denied':
        // 127.0.0.2 is loopback too, and not in the allowed range 127.0.0.1/32.
        response.writeHead(302, { Location: `http://127.0.0.2:${port}/og` });
        return response.end();
      case '/redirect-loop':
        response.writeHead(302, { Location: '/redirect-loop' });
        return response.end();
      case '/slow':
        return; // never answers
      default:
        response.writeHead(404, { 'Content-Type': 'text/plain' });
        return response.end('not here');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
  return { server, base: `http://127.0.0.1:${port}`, hits };
}

forEachDatabase('URL previews', (dialect) => {
  let site: Awaited<ReturnType<typeof startSite>>;
  let allowed: TestServer; // previews on, 127.0.0.1 allowed (for the local site)
  let strict: TestServer; // previews on, nothing allowed beyond the rules
  let off: TestServer; // the default: previews off
  let alice: TestUser;
  let carol: TestUser;
  let dave: TestUser;
  before(async () => {
    site = await startSite();
    allowed = await startTestServer(dialect, {
      COMMONS_MEDIA_URL_PREVIEW_ENABLED: 'true',
      COMMONS_MEDIA_URL_PREVIEW_IP_RANGE_ALLOW: '127.0.0.1/32',
      COMMONS_MEDIA_URL_PREVIEW_MAX_BYTES: String(MAX_BYTES),
      COMMONS_MEDIA_URL_PREVIEW_TIMEOUT_SECONDS: '1',
    });
    strict = await startTestServer(dialect, {
      COMMONS_MEDIA_URL_PREVIEW_ENABLED: 'true',
      COMMONS_MEDIA_URL_PREVIEW_IP_RANGE_DENY: '93.184.215.0/24,2606:2800:21f::/48',
    });
    off = await startTestServer(dialect);
    alice = await registerUser(allowed, uniqueName('alice'));
    carol = await registerUser(strict, uniqueName('carol'));
    dave = await registerUser(off, uniqueName('dave'));
  });
  after(async () => {
    await Promise.all([allowed.close(), strict.close(), off.close()]);
    site.server.close();
  });

  const preview = (server: TestServer, user: TestUser, url: string, prefix = PREVIEW) =>
    server.request('GET', `${prefix}?url=${encodeURIComponent(url)}`, { token: user.accessToken });

  it('is off by default: 404 M_UNRECOGNIZED, and the legacy path 404 M_NOT_FOUND', async () => {
    expectError(await preview(off, dave, `${site.base}/og`), 404, 'M_UNRECOGNIZED');
    expectError(
      await preview(off, dave, `${site.base}/og`, '/_matrix/media/v3/preview_url'),
      404,
      'M_NOT_FOUND',
    );
    assert.equal(site.hits.get('/og') ?? 0, 0);
  });

  it('answers the Open Graph data, with og:image kept in the media store', async () => {
    const response = await preview(allowed, alice, `${site.base}/og`);
    assert.equal(response.status, 200, JSON.stringify(response.body));
    const body = response.body;
    assert.equal(body['og:title'], 'Café & co');
    assert.equal(body['og:description'], 'A page about coffee');
    assert.equal(body['og:type'], 'website');
    assert.equal(body['og:image:type'], 'image/png');
    assert.equal(body['og:image:width'], 40);
    assert.equal(body['og:image:height'], 30);
    assert.equal(typeof body['matrix:image:size'], 'number');
    const mxc = /^mxc:\/\/([^/]+)\/(\S+)$/.exec(String(body['og:image']));
    assert.ok(mxc, String(body['og:image']));
    const image = await fetch(
      `${allowed.url}/_matrix/client/v1/media/download/${mxc[1]}/${mxc[2]}`,
      { headers: { Authorization: `Bearer ${alice.accessToken}` } },
    );
    assert.equal(image.status, 200);
    const bytes = Buffer.from(await image.arrayBuffer());
    assert.equal(bytes.length, body['matrix:image:size']);
    assert.equal((await sharp(bytes).metadata()).width, 40);
  });

  it('is cached: asked again, the page is not fetched again', async () => {
    const url = `${site.base}/og`;
    const before = site.hits.get('/og') ?? 0;
    const again = await preview(allowed, alice, url);
    assert.equal(again.status, 200);
    assert.equal(again.body['og:title'], 'Café & co');
    assert.equal(site.hits.get('/og') ?? 0, before);
  });

  it('falls back to <title> and the meta description; decodes the declared charset', async () => {
    const plain = await preview(allowed, alice, `${site.base}/plain`);
    assert.deepEqual(plain.body, {
      'og:title': 'Plain page',
      'og:description': 'Said by the meta description',
    });
    const latin1 = await preview(allowed, alice, `${site.base}/latin1`);
    assert.deepEqual(latin1.body, { 'og:title': 'Garçon' });
  });

  it('previews an image URL as the image; other types as {}', async () => {
    const image = await preview(allowed, alice, `${site.base}/image.png`);
    assert.equal(image.status, 200);
    assert.match(String(image.body['og:image']), /^mxc:\/\//);
    assert.equal(image.body['og:image:width'], 40);
    const json = await preview(allowed, alice, `${site.base}/json`);
    assert.deepEqual(json.body, {});
  });

  it('a page whose image fails is previewed without it', async () => {
    const response = await preview(allowed, alice, `${site.base}/broken-image`);
    assert.deepEqual(response.body, { 'og:title': 'No image' });
  });

  it('follows redirects to allowed addresses', async () => {
    const response = await preview(allowed, alice, `${site.base}/redirect`);
    assert.equal(response.status, 200);
    assert.equal(response.body['og:title'], 'Café & co');
  });

  it('refuses a redirect to a denied address: 403 M_FORBIDDEN', async () => {
    const before = site.hits.get('/og') ?? 0;
    expectError(
      await preview(allowed, alice, `${site.base}/redirect-to-denied`),
      403,
      'M_FORBIDDEN',
    );
    assert.equal(site.hits.get('/og') ?? 0, before);
  });

  it('fails past the size limit, the time limit, redirect loops and errors: 502', async () => {
    for (const page of ['/big', '/slow', '/redirect-loop', '/missing']) {
      expectError(await preview(allowed, alice, `${site.base}${page}`), 502, 'M_UNKNOWN');
    }
  });

  it('denies loopback, private, link-local and configured ranges, by address or by name', async () => {
    const port = new URL(site.base).port;
    const denied = [
      `http://127.0.0.1:${port}/og`,
      `http://localhost:${port}/og`, // a name resolving to loopback
      `http://[::1]:${port}/og`,
      `http://[::ffff:127.0.0.1]:${port}/og`,
      `http://0x7f.1:${port}/og`, // 127.0.0.1 spelt otherwise
      'http://10.1.2.3/',
      'http://172.16.0.1/',
      'http://192.168.1.1/',
      'http://169.254.169.254/latest/meta-data/', // cloud metadata
      'http://100.64.0.1/',
      'http://[fd00::1]/',
      'http://[fe80::1]/',
      'http://0.0.0.0/',
      'http://93.184.215.14/', // the configured deny list
    ];
    const before = site.hits.get('/og') ?? 0;
    for (const url of denied) {
      expectError(await preview(strict, carol, url), 403, 'M_FORBIDDEN');
    }
    assert.equal(site.hits.get('/og') ?? 0, before, 'the local site was never reached');
  });

  it('rejects what is not an http(s) URL: 400', async () => {
    for (const url of [
      'ftp://example.org/',
      'file:///etc/passwd',
      'not a url',
      'javascript:alert(1)',
    ]) {
      expectError(await preview(strict, carol, url), 400, 'M_INVALID_PARAM');
    }
    expectError(
      await strict.request('GET', PREVIEW, { token: carol.accessToken }),
      400,
      'M_MISSING_PARAM',
    );
  });

  it('needs an access token', async () => {
    expectError(
      await strict.request('GET', `${PREVIEW}?url=http://a.example/`),
      401,
      'M_MISSING_TOKEN',
    );
  });
});
