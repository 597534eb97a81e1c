import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, it } from 'node:test';
import pino from 'pino';
import { loadConfig } from '../../src/config/load.js';
import { startServer, type RunningServer } from '../../src/main.js';
import { createTestDatabase, forEachDatabase, type TestDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { registerUser } from '../helpers/client.js';
import { expectError } from '../helpers/assertions.js';

forEachDatabase('access tokens in the query string and r0 paths', (dialect) => {
  let server: TestServer;
  let strict: TestServer;
  before(async () => {
    server = await startTestServer(dialect);
    strict = await startTestServer(dialect, { COMMONS_AUTH_ALLOW_QUERY_TOKEN: 'false' });
  });
  after(async () => {
    await server.close();
    await strict.close();
  });

  it('accepts ?access_token= on v3 and r0 paths (the default)', async () => {
    const user = await registerUser(server);
    for (const prefix of ['/_matrix/client/v3', '/_matrix/client/r0']) {
      const whoami = await server.request<{ user_id: string }>(
        'GET',
        `${prefix}/account/whoami?access_token=${encodeURIComponent(user.accessToken)}`,
      );
      assert.equal(whoami.status, 200, JSON.stringify(whoami.body));
      assert.equal(whoami.body.user_id, user.userId);
    }
    const sync = await server.request<{ next_batch: string }>(
      'GET',
      `/_matrix/client/r0/sync?timeout=0&access_token=${encodeURIComponent(user.accessToken)}`,
    );
    assert.equal(sync.status, 200);
    assert.match(sync.body.next_batch, /^s\d+$/);
  });

  it('the Authorization header wins over the query string; a bad query token is refused', async () => {
    const user = await registerUser(server);
    const both = await server.request<{ user_id: string }>(
      'GET',
      '/_matrix/client/v3/account/whoami?access_token=not-a-token',
      { token: user.accessToken },
    );
    assert.equal(both.status, 200);
    expectError(
      await server.request('GET', '/_matrix/client/v3/account/whoami?access_token=not-a-token'),
      401,
      'M_UNKNOWN_TOKEN',
    );
  });

  it('with auth.allow_query_token false, a query-string token does not authenticate', async () => {
    const user = await registerUser(strict);
    expectError(
      await strict.request(
        'GET',
        `/_matrix/client/v3/account/whoami?access_token=${encodeURIComponent(user.accessToken)}`,
      ),
      401,
      'M_MISSING_TOKEN',
    );
    const header = await strict.request('GET', '/_matrix/client/v3/account/whoami', {
      token: user.accessToken,
    });
    assert.equal(header.status, 200);
  });
});

forEachDatabase('access tokens never reach the log', (dialect) => {
  let database: TestDatabase;
  let dataDir: string;
  let running: RunningServer;
  const lines: string[] = [];
  before(async () => {
    database = await createTestDatabase(dialect);
    dataDir = mkdtempSync(path.join(tmpdir(), 'commons-log-'));
    const config = loadConfig({
      env: {
        COMMONS_DATA_DIR: dataDir,
        COMMONS_DATABASE_URL: database.url,
        COMMONS_LISTEN_PORT: '0',
        COMMONS_SERVER_NAME: 'test.local',
        COMMONS_PASSWORD_HASHING_SCRYPT_LOG2_N: '10',
        COMMONS_REGISTRATION_ENABLED: 'true',
      },
    });
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    running = await startServer(config, { logger: pino({ level: 'debug' }, sink) });
  });
  after(async () => {
    await running.close();
    await database.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('logs requests with the token redacted, whether in the header or the query string', async () => {
    const post = (body: object) =>
      fetch(`${running.url}/_matrix/client/v3/register`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      }).then((r) => r.json() as Promise<Record<string, string>>);
    const first = await post({ username: 'logged', password: 'a long password' });
    const registered = await post({
      username: 'logged',
      password: 'a long password',
      auth: { type: 'm.login.dummy', session: first.session },
    });
    const token = registered.access_token as string;
    assert.ok(token);
    await fetch(`${running.url}/_matrix/client/r0/account/whoami?access_token=${token}`);
    await fetch(`${running.url}/_matrix/client/v3/account/whoami`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    await fetch(`${running.url}/_matrix/client/v3/sync?timeout=0&access_token=${token}&since=bad`);
    const log = lines.join('');
    assert.match(log, /whoami/, 'the requests were logged');
    assert.equal(log.includes(token), false, 'the token appears nowhere in the log');
  });
});
