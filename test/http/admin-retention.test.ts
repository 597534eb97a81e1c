/**
 * Room retention (config `retention`, `m.room.retention`): a pass purges each room's history
 * older than its lifetime, state and the latest event kept, on both databases. The pass is run
 * by a second set of services over the server's storage, with a clock two days ahead.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { uniqueName } from '../helpers/assertions.js';
import { servicesOf } from '../helpers/services.js';

const C = '/_matrix/client/v3';
const DAY_MS = 86_400_000;
const e = encodeURIComponent;

forEachDatabase('room retention', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  before(async () => {
    server = await startTestServer(dialect, {
      COMMONS_RETENTION_ENABLED: 'true',
      COMMONS_RETENTION_DEFAULT_MAX_LIFETIME_SECONDS: String(DAY_MS / 1000),
    });
    alice = await registerUser(server, uniqueName('alice'));
  });
  after(async () => server.close());

  const call = <T = Record<string, unknown>>(method: string, path: string, body?: unknown) =>
    server.request<T>(method, path, { token: alice.accessToken, body });

  async function roomWith(messages: number, retention?: Record<string, unknown>): Promise<string> {
    const created = await call<{ room_id: string }>('POST', `${C}/createRoom`, {
      initial_state: retention
        ? [{ type: 'm.room.retention', state_key: '', content: retention }]
        : [],
    });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    for (let i = 0; i < messages; i++) {
      const sent = await call(
        'PUT',
        `${C}/rooms/${e(created.body.room_id)}/send/m.room.message/${uniqueName('t')}`,
        {
          msgtype: 'm.text',
          body: `m${i}`,
        },
      );
      assert.equal(sent.status, 200);
    }
    return created.body.room_id;
  }

  const messageCount = async (roomId: string) =>
    (
      await call<{ chunk: Array<{ type: string }> }>(
        'GET',
        `${C}/rooms/${e(roomId)}/messages?dir=b&limit=100`,
      )
    ).body.chunk.filter((ev) => ev.type === 'm.room.message').length;

  it('purges rooms past their lifetime (the default, or their own), and keeps the rest', async () => {
    const byDefault = await roomWith(5);
    const longLived = await roomWith(5, { max_lifetime: 30 * DAY_MS });
    const shortLived = await roomWith(5, { max_lifetime: 3_600_000 });

    // Now: nothing is old enough.
    assert.equal(await servicesOf(server).admin.retention.runOnce(), 0);
    assert.equal(await messageCount(byDefault), 5);

    const later = servicesOf(server, () => Date.now() + 2 * DAY_MS);
    assert.equal(await later.admin.retention.runOnce(), 8);
    // The latest message of each purged room stays (its forward extremity).
    assert.equal(await messageCount(byDefault), 1);
    assert.equal(await messageCount(shortLived), 1);
    assert.equal(await messageCount(longLived), 5);
    // State stays: the room still answers and takes messages.
    const state = await call<Array<{ type: string }>>('GET', `${C}/rooms/${e(byDefault)}/state`);
    assert.ok(state.body.some((ev) => ev.type === 'm.room.create'));
    assert.equal(
      (
        await call('PUT', `${C}/rooms/${e(byDefault)}/send/m.room.message/x1`, {
          msgtype: 'm.text',
          body: 'x',
        })
      ).status,
      200,
    );
    assert.equal((await call('GET', `${C}/sync?timeout=0`)).status, 200);
  });
});
