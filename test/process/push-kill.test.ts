/**
 * Issue #24: a Commons process SIGKILLed (no graceful stop) with push evaluations pending
 * (events into a room evaluated after their transaction: an inline limit of 0 here) and
 * notifications queued for a push gateway that is down. A new process on the same database
 * must evaluate what was left and deliver every notification of every message that committed
 * (acknowledged or cut off by the kill) to the test's gateway, the bodies right, and the
 * members' unread counts must be right.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, it } from 'node:test';
import { openStorage } from '../../src/storage/index.js';
import { createTestDatabase, forEachDatabase, type TestDatabase } from '../helpers/databases.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { eventually } from '../helpers/eventually.js';
import { TestPushGateway, type Notification } from '../helpers/push-gateway.js';
import { killableCommons } from '../helpers/kill-process.js';

const C = '/_matrix/client/v3';
const BURST = 30;
const ATTEMPTS = 4;
const WAIT_MS = 60_000;
const r = encodeURIComponent;

forEachDatabase('a Commons killed with push evaluations pending (issue #24)', (dialect) => {
  let database: TestDatabase;
  let dataDir: string;
  const gateway = new TestPushGateway();
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  let roomId: string;

  const commons = killableCommons(() => ({
    COMMONS_DATA_DIR: dataDir,
    COMMONS_DATABASE_URL: database.url,
    COMMONS_PUSH_RETRY_MAX_SECONDS: '1',
    COMMONS_PUSH_INLINE_EVALUATION_MAX_MEMBERS: '0',
  }));
  const { request, server } = commons;
  const start = () => commons.start();
  const kill = () => commons.kill();
  let txn = 0;
  const send = async (text: string): Promise<string | null> => {
    const sent = await request<{ event_id: string }>(
      'PUT',
      `${C}/rooms/${r(roomId)}/send/m.room.message/k${++txn}`,
      { token: alice.accessToken, body: { msgtype: 'm.text', body: text } },
    );
    return sent.status === 200 ? sent.body.event_id : null;
  };
  /** What the database holds while no process runs: evaluations pending, pushes queued. */
  const leftOver = async () => {
    const storage = await openStorage(database.url, { poolSize: 1 });
    try {
      return {
        pending: await storage.stores.push.countPending(),
        queued: await storage.stores.pushers.countQueued(),
      };
    } finally {
      await storage.close();
    }
  };

  before(async () => {
    await gateway.start();
    database = await createTestDatabase(dialect);
    dataDir = mkdtempSync(path.join(tmpdir(), 'commons-push-kill-'));
    await start();
    [alice, bob, carol] = [
      await registerUser(server),
      await registerUser(server),
      await registerUser(server),
    ];
    const created = await request<{ room_id: string }>('POST', `${C}/createRoom`, {
      token: alice.accessToken,
      body: { preset: 'public_chat', name: 'Killed' },
    });
    roomId = created.body.room_id;
    for (const [user, pushkey] of [
      [bob, 'bob-key'],
      [carol, 'carol-key'],
    ] as const) {
      const joined = await request('POST', `${C}/join/${r(roomId)}`, {
        token: user.accessToken,
        body: {},
      });
      assert.equal(joined.status, 200);
      const set = await request('POST', `${C}/pushers/set`, {
        token: user.accessToken,
        body: {
          kind: 'http',
          app_id: 'org.example.kill',
          pushkey,
          app_display_name: 'Kill',
          device_display_name: 'phone',
          lang: 'en',
          data: { url: gateway.url },
        },
      });
      assert.equal(set.status, 200);
    }
  });
  after(async () => {
    await kill();
    await gateway.stop();
    await database?.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('evaluates and delivers every notification after a SIGKILL; counts are right', async () => {
    // The gateway is down: every notification stays queued. A burst of messages, and the
    // process killed as soon as most are acknowledged, until a kill leaves evaluations
    // pending (each page is a transaction of its own, so one usually does at once).
    await gateway.stop();
    const acknowledged = new Map<string, string>();
    let pendingAtKill = 0;
    let queuedAtKill = 0;
    for (
      let attempt = 0;
      attempt < ATTEMPTS && (pendingAtKill === 0 || queuedAtKill === 0);
      attempt++
    ) {
      if (!commons.running) await start();
      const texts = Array.from({ length: BURST }, (_, i) => `burst ${attempt}.${i}`);
      let answered = 0;
      const all = texts.map((text) =>
        send(text)
          .then((id) => {
            answered++;
            if (id !== null) acknowledged.set(id, text);
          })
          .catch(() => undefined),
      );
      await eventually(
        async () => answered,
        (n) => n >= BURST - 5,
        WAIT_MS,
      );
      await kill();
      await Promise.all(all);
      ({ pending: pendingAtKill, queued: queuedAtKill } = await leftOver());
    }
    assert.ok(pendingAtKill > 0, 'a kill left evaluations pending');
    assert.ok(queuedAtKill > 0, 'a kill left notifications queued');
    assert.ok(acknowledged.size >= BURST - 5);

    await gateway.start();
    await start();
    // Every message that committed (acknowledged or not), read back from the room.
    const messages = await request<{
      chunk: Array<{ event_id: string; type: string; sender: string; content: { body?: string } }>;
    }>('GET', `${C}/rooms/${r(roomId)}/messages?dir=b&limit=1000`, { token: bob.accessToken });
    assert.equal(messages.status, 200);
    const committed = messages.body.chunk.filter(
      (e) => e.type === 'm.room.message' && e.sender === alice.userId,
    );
    for (const id of acknowledged.keys())
      assert.ok(
        committed.some((e) => e.event_id === id),
        'an acknowledged message is in the room',
      );
    const reached = (pushkey: string, eventId: string) =>
      gateway.delivered.find(
        (n) => n.event_id === eventId && n.devices.some((d) => d.pushkey === pushkey),
      );
    await eventually(
      async () => gateway.delivered.length,
      () =>
        committed.every((e) => reached('bob-key', e.event_id) && reached('carol-key', e.event_id)),
      WAIT_MS,
    );
    for (const event of committed)
      for (const pushkey of ['bob-key', 'carol-key']) {
        const notification = reached(pushkey, event.event_id) as Notification;
        assert.ok(notification, `${pushkey} got ${event.event_id}`);
        assert.equal(notification.room_id, roomId);
        assert.equal(notification.type, 'm.room.message');
        assert.equal(notification.sender, alice.userId);
        assert.equal(notification.room_name, 'Killed');
        assert.deepEqual(notification.content, { msgtype: 'm.text', body: event.content.body });
        assert.equal(notification.prio, 'low', 'a plain message (no sound tweak)');
        assert.equal(typeof notification.counts?.unread, 'number');
        assert.deepEqual(
          notification.devices.map((d) => [d.app_id, d.pushkey]),
          [['org.example.kill', pushkey]],
        );
      }
    assert.deepEqual(gateway.invalid, []);
    // Each member's count: every message of Alice's, none read.
    for (const user of [bob, carol]) {
      const synced = await request<{
        rooms: { join: Record<string, { unread_notifications: Record<string, number> }> };
      }>('GET', `${C}/sync`, { token: user.accessToken });
      assert.deepEqual(synced.body.rooms.join[roomId]?.unread_notifications, {
        notification_count: committed.length,
        highlight_count: 0,
      });
    }
  });
});
