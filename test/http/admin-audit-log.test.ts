/**
 * Every admin request is logged with the admin who made it (docs/admin.md): a change as
 * `admin action` at info, a read as `admin read` at debug, each with the route, its
 * parameters and the status — checked for an endpoint of each admin route module, the new
 * moderation, notice and media ones included, on both databases. Bodies (passwords) are not
 * logged.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, it } from 'node:test';
import pino from 'pino';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { uniqueName } from '../helpers/assertions.js';
import { ADMIN_SECRET, registerAdmin } from '../helpers/admin.js';

const A1 = '/_synapse/admin/v1';
const A2 = '/_synapse/admin/v2';
const e = encodeURIComponent;

interface LogLine {
  level: number;
  msg: string;
  admin?: string;
  action?: string;
  params?: Record<string, string>;
  status?: number;
}

forEachDatabase('admin audit log', (dialect) => {
  let server: TestServer;
  let admin: TestUser;
  let alice: TestUser;
  const lines: LogLine[] = [];
  before(async () => {
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const text of chunk.toString().split('\n')) {
          if (text.trim() !== '') lines.push(JSON.parse(text) as LogLine);
        }
        done();
      },
    });
    server = await startTestServer(
      dialect,
      {
        COMMONS_REGISTRATION_SHARED_SECRET: ADMIN_SECRET,
        COMMONS_SERVER_NOTICES_SYSTEM_MXID_LOCALPART: 'notices',
      },
      pino({ level: 'debug' }, sink),
    );
    admin = await registerAdmin(server);
    alice = await registerUser(server, uniqueName('alice'));
  });
  after(async () => server.close());

  it('logs each admin request with the admin, the route, its parameters and the status', async () => {
    const calls: Array<[string, string, string, unknown?]> = [
      ['GET', `${A2}/users`, `GET ${A2}/users`],
      [
        'PUT',
        `${A2}/users/${e(alice.userId)}`,
        `PUT ${A2}/users/:userId`,
        { password: 'a new password' },
      ],
      ['GET', `${A1}/rooms`, `GET ${A1}/rooms`],
      ['POST', `${A1}/registration_tokens/new`, `POST ${A1}/registration_tokens/new`, {}],
      ['GET', `${A1}/event_reports`, `GET ${A1}/event_reports`],
      [
        'POST',
        `${A1}/purge_history/${e('!nope:test.local')}`,
        `POST ${A1}/purge_history/:roomId`,
        { purge_up_to_ts: 1 },
      ],
      ['POST', `${A1}/users/${e(alice.userId)}/shadow_ban`, `POST ${A1}/users/:userId/shadow_ban`],
      [
        'POST',
        `${A1}/users/${e(alice.userId)}/override_ratelimit`,
        `POST ${A1}/users/:userId/override_ratelimit`,
        {},
      ],
      [
        'POST',
        `${A1}/send_server_notice`,
        `POST ${A1}/send_server_notice`,
        { user_id: alice.userId, content: { msgtype: 'm.text', body: 'hi' } },
      ],
      ['GET', `${A1}/users/${e(alice.userId)}/media`, `GET ${A1}/users/:userId/media`],
      [
        'POST',
        `${A1}/media/quarantine/test.local/nothing`,
        `POST ${A1}/media/quarantine/:serverName/:mediaId`,
      ],
    ];
    for (const [method, path, route, body] of calls) {
      const res = await server.request(method, path, { token: admin.accessToken, body });
      const reads = method === 'GET';
      const line = lines.find((l) => l.action === route);
      assert.ok(line, `a log line for ${route}`);
      assert.equal(line.msg, reads ? 'admin read' : 'admin action');
      assert.equal(line.level, reads ? 20 : 30);
      assert.equal(line.admin, admin.userId);
      assert.equal(line.status, res.status);
      if (route.includes(':userId')) assert.equal(line.params?.userId, alice.userId);
    }
    // Nothing of a body is logged.
    assert.ok(!lines.some((l) => JSON.stringify(l).includes('a new password')));
  });
});
