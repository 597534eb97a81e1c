import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, it } from 'node:test';
import { createTestDatabase, forEachDatabase, type TestDatabase } from '../helpers/databases.js';
import { startServerOn, type ConfigEnv, type TestServer } from '../helpers/server.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { eventually } from '../helpers/eventually.js';
import { TestBridge, writeRegistrations, type RegistrationSpec } from '../helpers/appservice.js';

const V3 = '/_matrix/client/v3';
const r = encodeURIComponent;
const WAIT_MS = 20_000;

/** A bridge registered (or widened) after its users joined rooms is pushed those rooms' events. */
forEachDatabase('application services added to a server with existing memberships', (dialect) => {
  let database: TestDatabase;
  let dataDir: string;
  let server: TestServer;
  const bridge = new TestBridge();
  let human: TestUser;
  let roomA: string;
  let roomB: string;

  const registration = (userRegex: string): RegistrationSpec => ({
    id: 'late',
    url: bridge.url,
    as_token: 'as_late_0123456789',
    hs_token: 'hs_late_0123456789',
    sender_localpart: 'latebot',
    namespaces: { users: [{ exclusive: false, regex: userRegex }] },
  });
  const restart = async (env: ConfigEnv) => {
    await server.close();
    server = await startServerOn(database, dataDir, {
      COMMONS_APP_SERVICES_RETRY_MAX_SECONDS: '1',
      ...env,
    });
  };
  const send = async (roomId: string, body: string): Promise<string> => {
    const sent = await server.request<{ event_id: string }>(
      'PUT',
      `${V3}/rooms/${r(roomId)}/send/m.room.message/${r(body)}`,
      { token: human.accessToken, body: { msgtype: 'm.text', body } },
    );
    assert.equal(sent.status, 200);
    return sent.body.event_id;
  };
  const delivered = () => bridge.events.map((e) => e.event_id);

  before(async () => {
    await bridge.start();
    database = await createTestDatabase(dialect);
    dataDir = mkdtempSync(path.join(tmpdir(), 'commons-data-'));
    // No bridge yet: users join rooms.
    server = await startServerOn(database, dataDir);
    human = await registerUser(server);
    const alice = await registerUser(server, 'irc_alice');
    const bob = await registerUser(server, 'slack_bob');
    const room = async (member: TestUser) => {
      const created = await server.request<{ room_id: string }>('POST', `${V3}/createRoom`, {
        token: human.accessToken,
        body: { preset: 'public_chat' },
      });
      const joined = await server.request('POST', `${V3}/join/${r(created.body.room_id)}`, {
        token: member.accessToken,
        body: {},
      });
      assert.equal(joined.status, 200);
      return created.body.room_id;
    };
    roomA = await room(alice);
    roomB = await room(bob);
  });
  after(async () => {
    await server.close();
    await bridge.stop();
    await database.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('a bridge registered after its users joined gets those rooms’ events', async () => {
    await restart({
      COMMONS_APP_SERVICES_CONFIG_FILES: writeRegistrations([registration('@irc_.*:test\\.local')]),
    });
    const inA = await send(roomA, 'a1');
    const inB = await send(roomB, 'b1');
    await eventually(
      async () => delivered(),
      (ids) => ids.includes(inA),
      WAIT_MS,
    );
    // Room B has no user of the namespace: a later event there proves B's was never queued.
    const later = await send(roomA, 'a2');
    await eventually(
      async () => delivered(),
      (ids) => ids.includes(later),
      WAIT_MS,
    );
    assert.ok(!delivered().includes(inB));
  });

  it('restarting with the same registration changes nothing: each event once', async () => {
    const file = writeRegistrations([registration('@irc_.*:test\\.local')]);
    await restart({ COMMONS_APP_SERVICES_CONFIG_FILES: file });
    await restart({ COMMONS_APP_SERVICES_CONFIG_FILES: file });
    const inA = await send(roomA, 'a3');
    await eventually(
      async () => delivered(),
      (ids) => ids.includes(inA),
      WAIT_MS,
    );
    const ids = delivered();
    assert.equal(new Set(ids).size, ids.length, 'no event twice');
  });

  it('widened namespaces take in the new users’ rooms; narrowed ones drop the old', async () => {
    await restart({
      COMMONS_APP_SERVICES_CONFIG_FILES: writeRegistrations([
        registration('@slack_.*:test\\.local'),
      ]),
    });
    const inA = await send(roomA, 'a4');
    const inB = await send(roomB, 'b2');
    await eventually(
      async () => delivered(),
      (ids) => ids.includes(inB),
      WAIT_MS,
    );
    const later = await send(roomB, 'b3');
    await eventually(
      async () => delivered(),
      (ids) => ids.includes(later),
      WAIT_MS,
    );
    assert.ok(!delivered().includes(inA), 'room A is no longer of interest');
  });
});
