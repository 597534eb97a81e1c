/**
 * Media over federation (spec v1.11, MSC3916) between two Commons servers (`127.0.0.1:<port>`,
 * TLS from a CA made for the test), and against a stand-in remote for the answers a Commons
 * never gives (the deprecated fallback, a `Location` part).
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, it } from 'node:test';
import sharp from 'sharp';
import { multipartBoundary, multipartFrame, parseMultipart } from '../../src/core/multipart.js';
import type { FederationClient } from '../../src/services/federation/client.js';
import { forEachDatabase } from '../helpers/databases.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { expectError } from '../helpers/assertions.js';
import { federationEnv, freePort, makeTestCa, type TestCa } from '../helpers/federation.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

type Federated = TestServer & { serverName: string; port: number };

async function startFederated(
  dialect: 'sqlite' | 'postgres',
  ca: TestCa,
  env: Record<string, string> = {},
): Promise<Federated> {
  const port = await freePort();
  const server = await startTestServer(dialect, { ...federationEnv(ca, port), ...env });
  return Object.assign(server, { serverName: `127.0.0.1:${port}`, port });
}

interface Fetched {
  status: number;
  headers: Headers;
  bytes: Buffer;
  json: Record<string, unknown> | undefined;
}

async function get(server: TestServer, path: string, token?: string): Promise<Fetched> {
  const response = await fetch(server.url + path, {
    headers: token !== undefined ? { Authorization: `Bearer ${token}` } : {},
  });
  const bytes = Buffer.from(await response.arrayBuffer());
  const type = response.headers.get('content-type') ?? '';
  return {
    status: response.status,
    headers: response.headers,
    bytes,
    json: type.startsWith('application/json') ? JSON.parse(bytes.toString('utf8')) : undefined,
  };
}

const asResponse = (f: Fetched) => ({ status: f.status, body: f.json ?? f.bytes.toString() });

async function upload(
  server: TestServer,
  user: TestUser,
  bytes: Buffer,
  contentType: string,
  fileName: string,
): Promise<string> {
  const response = await fetch(
    `${server.url}/_matrix/media/v3/upload?filename=${encodeURIComponent(fileName)}`,
    {
      method: 'POST',
      headers: { Authorization: `Bearer ${user.accessToken}`, 'Content-Type': contentType },
      body: bytes,
    },
  );
  assert.equal(response.status, 200);
  const uri = String(((await response.json()) as { content_uri: string }).content_uri);
  return uri.slice(uri.lastIndexOf('/') + 1);
}

/** A stand-in remote server: it knows no authenticated media, or answers with a Location. */
async function startStandIn(ca: TestCa, bytes: Buffer) {
  const seen: { path: string; authorization: string | undefined }[] = [];
  const plain: Server = createHttpServer((_request, response) => {
    response.writeHead(200, { 'Content-Type': 'image/png' });
    response.end(bytes);
  });
  await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', resolve));
  const plainPort = (plain.address() as AddressInfo).port;
  const server = createHttpsServer({ key: ca.keyPem, cert: ca.certPem }, (request, response) => {
    const path = request.url ?? '';
    seen.push({ path, authorization: request.headers.authorization });
    if (path.startsWith('/_matrix/federation/v1/media/download/legacy')) {
      response.writeHead(404, { 'Content-Type': 'application/json' });
      return response.end('{"errcode":"M_UNRECOGNIZED","error":"Unrecognized request"}');
    }
    if (path.startsWith('/_matrix/media/v3/download/')) {
      response.writeHead(200, {
        'Content-Type': 'text/plain',
        'Content-Disposition': "attachment; filename*=utf-8''r%C3%A9sum%C3%A9.txt",
      });
      return response.end('from the deprecated path');
    }
    if (path.startsWith('/_matrix/federation/v1/media/download/located')) {
      const { prefix, suffix } = multipartFrame(
        'abc123',
        {},
        {
          Location: `http://127.0.0.1:${plainPort}/media`,
        },
      );
      response.writeHead(200, { 'Content-Type': 'multipart/mixed; boundary=abc123' });
      return response.end(Buffer.concat([prefix, suffix]));
    }
    if (path.startsWith('/_matrix/federation/v1/media/download/garbled')) {
      response.writeHead(200, { 'Content-Type': 'multipart/mixed; boundary=abc123' });
      return response.end('not a multipart body');
    }
    response.writeHead(500, { 'Content-Type': 'application/json' });
    return response.end('{"errcode":"M_UNKNOWN","error":"broken"}');
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    serverName: `127.0.0.1:${port}`,
    seen,
    close() {
      server.close();
      plain.close();
    },
  };
}

forEachDatabase('media over federation', (dialect) => {
  let ca: TestCa;
  let a: Federated;
  let b: Federated;
  let alice: TestUser;
  let bob: TestUser;
  let image: Buffer;
  let imageId: string;
  let textId: string;
  let standIn: Awaited<ReturnType<typeof startStandIn>>;
  let aClient: FederationClient;
  let aClosed = false;

  before(async () => {
    ca = makeTestCa();
    a = await startFederated(dialect, ca);
    // B may follow a Location to this machine's stand-in (loopback is denied otherwise).
    b = await startFederated(dialect, ca, {
      COMMONS_MEDIA_URL_PREVIEW_IP_RANGE_ALLOW: '127.0.0.1/32',
    });
    alice = await registerUser(a, 'alice');
    bob = await registerUser(b, 'bob');
    image = await sharp({
      create: { width: 300, height: 200, channels: 3, background: { r: 250, g: 100, b: 0 } },
    })
      .png()
      .toBuffer();
    imageId = await upload(a, alice, image, 'image/png', 'sunset.png');
    textId = await upload(a, alice, Buffer.from('<b>hi</b>'), 'text/html', 'page.html');
    standIn = await startStandIn(ca, image);
    const federation = a.running.services.federation;
    assert.ok(federation);
    aClient = federation.client;
  });
  after(async () => {
    standIn?.close();
    await b?.close();
    if (!aClosed) await a?.close();
    rmSync(ca.dir, { recursive: true, force: true });
  });

  const download = (server: string, mediaId: string, query = '') =>
    get(b, `/_matrix/client/v1/media/download/${server}/${mediaId}${query}`, bob.accessToken);

  it('serves its own media to a signed request as multipart/mixed (JSON {}, then the bytes)', async () => {
    const answer = await aClient.requestRaw(
      b.serverName,
      'GET',
      `/_matrix/federation/v1/media/download/${await upload(b, bob, image, 'image/png', 'b.png')}`,
      { maxBytes: 1 << 20 },
    );
    assert.equal(answer.status, 200);
    const boundary = multipartBoundary(String(answer.headers['content-type']));
    assert.ok(boundary, String(answer.headers['content-type']));
    const parts = parseMultipart(answer.body, boundary);
    assert.ok(parts);
    assert.equal(parts.length, 2);
    assert.equal(parts[0]?.headers['content-type'], 'application/json');
    assert.deepEqual(JSON.parse(parts[0]?.body.toString() ?? ''), {});
    assert.equal(parts[1]?.headers['content-type'], 'image/png');
    assert.equal(parts[1]?.headers['content-disposition'], 'inline; filename="b.png"');
    assert.deepEqual(parts[1]?.body, image);
  });

  it('serves thumbnails of its own media the same way', async () => {
    const answer = await aClient.requestRaw(
      b.serverName,
      'GET',
      `/_matrix/federation/v1/media/thumbnail/${await upload(b, bob, image, 'image/png', 'c.png')}?width=32&height=32&method=crop`,
      { maxBytes: 1 << 20 },
    );
    assert.equal(answer.status, 200);
    const parts = parseMultipart(
      answer.body,
      multipartBoundary(String(answer.headers['content-type'])) ?? '',
    );
    assert.equal(parts?.length, 2);
    assert.equal(parts?.[1]?.headers['content-type'], 'image/png');
    const made = await sharp(parts?.[1]?.body).metadata();
    assert.deepEqual([made.width, made.height], [32, 32]);
  });

  it('refuses unsigned requests (401) and unknown media (404 M_NOT_FOUND)', async () => {
    const unsigned = await aClient.requestRaw(
      b.serverName,
      'GET',
      `/_matrix/federation/v1/media/download/${imageId}`,
      { maxBytes: 1 << 20, unsigned: true },
    );
    assert.equal(unsigned.status, 401);
    const unknown = await aClient.requestRaw(
      b.serverName,
      'GET',
      '/_matrix/federation/v1/media/download/nosuchmedia',
      { maxBytes: 1 << 20 },
    );
    assert.equal(unknown.status, 404);
    assert.equal(JSON.parse(unknown.body.toString()).errcode, 'M_NOT_FOUND');
  });

  it('a client of B downloads A’s media: fetched over federation, same bytes and headers', async () => {
    const response = await download(a.serverName, imageId);
    assert.equal(response.status, 200, response.bytes.toString());
    assert.deepEqual(response.bytes, image);
    assert.equal(response.headers.get('content-type'), 'image/png');
    assert.equal(response.headers.get('content-disposition'), 'inline; filename="sunset.png"');
    const html = await download(a.serverName, textId);
    assert.equal(html.status, 200);
    assert.equal(html.bytes.toString(), '<b>hi</b>');
    assert.equal(html.headers.get('content-disposition'), 'attachment; filename="page.html"');
  });

  it('thumbnails of A’s media are made by B from the fetched original', async () => {
    const response = await get(
      b,
      `/_matrix/client/v1/media/thumbnail/${a.serverName}/${imageId}?width=96&height=96&method=crop`,
      bob.accessToken,
    );
    assert.equal(response.status, 200);
    const made = await sharp(response.bytes).metadata();
    assert.deepEqual([made.width, made.height], [96, 96]);
  });

  it('B does not relay other servers’ media to a third server', async () => {
    const relayed = await aClient.requestRaw(
      b.serverName,
      'GET',
      `/_matrix/federation/v1/media/download/${imageId}`,
      { maxBytes: 1 << 20 },
    );
    assert.equal(relayed.status, 404);
  });

  it('unknown remote media: 404 M_NOT_FOUND; allow_remote=false: only what is cached', async () => {
    expectError(asResponse(await download(a.serverName, 'nosuchmedia')), 404, 'M_NOT_FOUND');
    const other = await upload(a, alice, Buffer.from('not fetched yet'), 'text/plain', 'n.txt');
    expectError(
      asResponse(await download(a.serverName, other, '?allow_remote=false')),
      404,
      'M_NOT_FOUND',
    );
    const cached = await download(a.serverName, imageId, '?allow_remote=false');
    assert.equal(cached.status, 200);
  });

  it('media awaiting its upload on A: 504 M_NOT_YET_UPLOADED', async () => {
    const created = await a.request<{ content_uri: string }>('POST', '/_matrix/media/v1/create', {
      token: alice.accessToken,
    });
    const mediaId = created.body.content_uri.split('/').pop() ?? '';
    expectError(
      asResponse(await download(a.serverName, mediaId, '?timeout_ms=50')),
      504,
      'M_NOT_YET_UPLOADED',
    );
  });

  it('falls back to the deprecated path, unsigned and with allow_remote=false, on M_UNRECOGNIZED', async () => {
    const response = await download(standIn.serverName, 'legacy1');
    assert.equal(response.status, 200, response.bytes.toString());
    assert.equal(response.bytes.toString(), 'from the deprecated path');
    assert.equal(response.headers.get('content-type'), 'text/plain; charset=utf-8');
    assert.equal(
      response.headers.get('content-disposition'),
      "inline; filename*=utf-8''r%C3%A9sum%C3%A9.txt",
    );
    const federated = standIn.seen.find((s) =>
      s.path.includes('/federation/v1/media/download/legacy1'),
    );
    assert.match(String(federated?.authorization), /^X-Matrix /);
    const legacy = standIn.seen.find((s) => s.path.startsWith('/_matrix/media/v3/download/'));
    assert.ok(legacy);
    assert.match(legacy.path, /allow_remote=false/);
    assert.equal(legacy.authorization, undefined);
  });

  it('follows a Location part, under the address rules', async () => {
    const response = await download(standIn.serverName, 'located1');
    assert.equal(response.status, 200, response.bytes.toString());
    assert.deepEqual(response.bytes, image);
    // A has no allow entry: the Location on loopback is refused.
    const fromA = await get(
      a,
      `/_matrix/client/v1/media/download/${standIn.serverName}/located2`,
      alice.accessToken,
    );
    expectError(asResponse(fromA), 502, 'M_UNKNOWN');
  });

  it('a garbled answer or a remote error: 502 M_UNKNOWN', async () => {
    expectError(asResponse(await download(standIn.serverName, 'garbled1')), 502, 'M_UNKNOWN');
    expectError(asResponse(await download(standIn.serverName, 'broken1')), 502, 'M_UNKNOWN');
  });

  it('once A is gone, B still serves what it fetched; the rest is 502', async () => {
    const other = await upload(a, alice, Buffer.from('never fetched'), 'text/plain', 'x.txt');
    await a.close();
    aClosed = true;
    const cached = await download(a.serverName, imageId);
    assert.equal(cached.status, 200);
    assert.deepEqual(cached.bytes, image);
    expectError(asResponse(await download(a.serverName, other)), 502, 'M_UNKNOWN');
  });
});
