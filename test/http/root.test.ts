/** GET / (what this server is, for a person with a browser) and GET /health. */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import pg from 'pg';
import { createTestDatabase, forEachDatabase, type TestDatabase } from '../helpers/databases.js';
import { startServerOn, type TestServer } from '../helpers/server.js';
import { VERSION } from '../../src/version.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

forEachDatabase('GET / and GET /health', (dialect) => {
  let database: TestDatabase;
  let dataDir: string;
  let server: TestServer;
  before(async () => {
    database = await createTestDatabase(dialect);
    dataDir = mkdtempSync(path.join(tmpdir(), 'commons-data-'));
    server = await startServerOn(database, dataDir, {
      COMMONS_SERVER_NAME: 'chat.example.org',
    });
  });
  after(async () => {
    await server.close();
    await database.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('GET / is a small HTML page naming the server, its version and the client API', async () => {
    const response = await fetch(`${server.url}/`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-type'), 'text/html; charset=utf-8');
    const html = await response.text();
    assert.match(html, /^<!DOCTYPE html>/);
    assert.match(html, /<h1>chat\.example\.org<\/h1>/);
    assert.match(html, /Matrix<\/a> homeserver/);
    assert.ok(html.includes(`Commons ${VERSION}`), html);
    assert.match(html, /href="\/_matrix\/client\/versions"/);
    assert.ok(html.length < 4096, `${html.length} bytes`);
    const head = await fetch(`${server.url}/`, { method: 'HEAD' });
    assert.equal(head.status, 200);
  });

  it('GET /health answers 200 {"status":"ok"} while the database answers', async () => {
    const response = await server.request('GET', '/health');
    assert.equal(response.status, 200);
    assert.deepEqual(response.body, { status: 'ok' });
    assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
  });

  if (dialect === 'postgres') {
    it('GET /health answers 503 while PostgreSQL refuses connections, and 200 again after', async () => {
      const name = new URL(database.url).pathname.slice(1);
      const admin = new pg.Client({ connectionString: process.env.COMMONS_TEST_DATABASE_URL });
      await admin.connect();
      try {
        await admin.query(`ALTER DATABASE ${name} ALLOW_CONNECTIONS false`);
        await admin.query(
          'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1',
          [name],
        );
        const down = await server.request<{ status: string; error: string }>('GET', '/health');
        assert.equal(down.status, 503, JSON.stringify(down.body));
        assert.equal(down.body.status, 'unavailable');
        assert.match(down.body.error, /^the database did not answer/);
      } finally {
        await admin.query(`ALTER DATABASE ${name} ALLOW_CONNECTIONS true`);
        await admin.end();
      }
      const up = await server.request('GET', '/health');
      assert.equal(up.status, 200, JSON.stringify(up.body));
    });
  }
});

forEachDatabase('GET /health with the database gone', (dialect) => {
  it('answers 503 naming the problem once the database is closed', async () => {
    const database = await createTestDatabase(dialect);
    const dataDir = mkdtempSync(path.join(tmpdir(), 'commons-data-'));
    const server = await startServerOn(database, dataDir);
    try {
      await server.running.storage.close();
      const response = await server.request<{ status: string; error: string }>('GET', '/health');
      assert.equal(response.status, 503);
      assert.equal(response.body.status, 'unavailable');
      assert.match(response.body.error, /^the database did not answer: /);
    } finally {
      await server.close();
      await database.drop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
