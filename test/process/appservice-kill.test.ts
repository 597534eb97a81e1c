/**
 * Issue #22: a Commons process SIGKILLed (no graceful stop) with events and ephemeral events
 * queued for a bridge, and a transaction received by the bridge but not yet answered. A new
 * process on the same database must deliver everything that was acknowledged to clients;
 * the only repeats allowed are a transaction sent again with the same ID and the same body.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, it } from 'node:test';
import { createTestDatabase, forEachDatabase, type TestDatabase } from '../helpers/databases.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { eventually } from '../helpers/eventually.js';
import { TestBridge, writeRegistrations } from '../helpers/appservice.js';
import { killableCommons } from '../helpers/kill-process.js';

const C = '/_matrix/client/v3';
const AS_TOKEN = 'as_kill_0123456789';
const QUEUED = 30;
const WAIT_MS = 30_000;
const r = encodeURIComponent;

forEachDatabase('a Commons killed with transactions queued for a bridge (issue #22)', (dialect) => {
  let database: TestDatabase;
  let dataDir: string;
  const bridge = new TestBridge();
  let human: TestUser;
  let roomId: string;
  let registrations: string;

  const commons = killableCommons(() => ({
    COMMONS_DATA_DIR: dataDir,
    COMMONS_DATABASE_URL: database.url,
    COMMONS_APP_SERVICES_CONFIG_FILES: registrations,
    COMMONS_APP_SERVICES_RETRY_MAX_SECONDS: '1',
  }));
  const { request, server } = commons;
  const start = () => commons.start();
  const kill = () => commons.kill();
  const send = async (text: string): Promise<string | null> => {
    const sent = await request<{ event_id: string }>(
      'PUT',
      `${C}/rooms/${r(roomId)}/send/m.room.message/${r(text)}`,
      { token: human.accessToken, body: { msgtype: 'm.text', body: text } },
    );
    return sent.status === 200 ? sent.body.event_id : null;
  };

  before(async () => {
    await bridge.start();
    registrations = writeRegistrations([
      {
        id: 'kill',
        url: bridge.url,
        as_token: AS_TOKEN,
        hs_token: 'hs_kill_0123456789',
        sender_localpart: 'killbot',
        namespaces: { users: [{ exclusive: true, regex: '@_k_.*:test\\.local' }] },
        receive_ephemeral: true,
      },
    ]);
    database = await createTestDatabase(dialect);
    dataDir = mkdtempSync(path.join(tmpdir(), 'commons-as-kill-'));
    await start();
    human = await registerUser(server);
    const created = await request<{ room_id: string }>('POST', `${C}/createRoom`, {
      token: human.accessToken,
      body: { preset: 'public_chat' },
    });
    roomId = created.body.room_id;
    const registered = await request('POST', `${C}/register`, {
      token: AS_TOKEN,
      body: { type: 'm.login.application_service', username: '_k_v', inhibit_login: true },
    });
    assert.equal(registered.status, 200);
    const joined = await request(
      'POST',
      `${C}/rooms/${r(roomId)}/join?user_id=${r('@_k_v:test.local')}`,
      { token: AS_TOKEN },
    );
    assert.equal(joined.status, 200);
  });
  after(async () => {
    await kill();
    await bridge.stop();
    await database?.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('delivers everything queued after a SIGKILL; repeats only under the same txnId', async () => {
    // The bridge is down: everything queues.
    bridge.failWith = 500;
    const acknowledged: string[] = [];
    for (let i = 0; i < QUEUED; i++) {
      const id = await send(`queued ${i}`);
      assert.ok(id !== null);
      acknowledged.push(id);
    }
    const typing = await request('PUT', `${C}/rooms/${r(roomId)}/typing/${r(human.userId)}`, {
      token: human.accessToken,
      body: { typing: true, timeout: 60_000 },
    });
    assert.equal(typing.status, 200);
    // The bridge comes back but answers late: the process dies with a transaction received
    // and unanswered, and sends still arriving.
    bridge.delayMs = 60_000;
    bridge.failWith = null;
    await eventually(
      async () => bridge.transactions.length,
      (n) => n > 0,
      WAIT_MS,
    );
    const cutOff = Array.from({ length: 5 }, (_, i) => send(`at the kill ${i}`).catch(() => null));
    const first = await cutOff[0];
    if (first) acknowledged.push(first);
    await kill();
    const answered = (await Promise.all(cutOff.slice(1))).filter((id): id is string => id !== null);
    acknowledged.push(...answered);
    const unanswered = bridge.transactions[0];
    assert.ok(unanswered);

    bridge.delayMs = 0;
    await start();
    await eventually(
      async () => bridge.events.map((e) => e.event_id),
      (ids) => acknowledged.every((id) => ids.includes(id)),
      WAIT_MS,
    );

    // The transaction in flight at the kill was sent again, with the same ID and body.
    const again = bridge.transactions.filter((t) => t.txnId === unanswered.txnId);
    assert.ok(again.length >= 2, 'the unanswered transaction is sent again');
    for (const t of again) assert.deepEqual(t.body, unanswered.body);
    // Otherwise no event twice, and in the order they were acknowledged.
    const ids = bridge.events.map((e) => e.event_id);
    assert.equal(new Set(ids).size, ids.length, 'no event under two transaction IDs');
    const positions = acknowledged.slice(0, QUEUED).map((id) => ids.indexOf(id));
    assert.deepEqual(
      positions,
      [...positions].sort((a, b) => a - b),
    );
    // The typing notification queued before the kill arrived too.
    const seen = new Set<string>();
    const ephemeral = bridge.transactions
      .filter((t) => (seen.has(t.txnId) ? false : (seen.add(t.txnId), true)))
      .flatMap(
        (t) => (t.body.ephemeral ?? []) as { type: string; content: { user_ids?: string[] } }[],
      );
    assert.ok(
      ephemeral.some((e) => e.type === 'm.typing' && e.content.user_ids?.includes(human.userId)),
    );
  });
});
