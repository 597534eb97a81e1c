/**
 * A local user who keeps typing longer than other servers keep a typing notification (60 s
 * on Commons, as on Synapse) is told to them again every 40 s: on a second Commons, Bob
 * still sees Alice typing 70 s after she started (one request, timeout 120 s), and sees her
 * stop when she stops.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { eventually } from '../helpers/eventually.js';
import { makeTestCa, startFederatedServer, type TestCa } from '../helpers/federation.js';
import type { TestServer } from '../helpers/server.js';
import { REMOTE_TYPING_TIMEOUT_MS } from '../../src/services/typing.js';

type Federated = TestServer & { serverName: string; port: number };
const C = '/_matrix/client/v3';
const r = encodeURIComponent;

forEachDatabase('typing renewed over federation', (dialect) => {
  let ca: TestCa;
  let a: Federated;
  let b: Federated;
  let alice: TestUser;
  let bob: TestUser;
  let roomId: string;

  /** Who B's room shows typing, to Bob (an initial /sync: typing as it is now). */
  const typingOnB = async () => {
    const synced = await b.request<{
      rooms?: {
        join?: Record<
          string,
          { ephemeral?: { events: { type: string; content: { user_ids?: string[] } }[] } }
        >;
      };
    }>('GET', `${C}/sync`, { token: bob.accessToken });
    const events = synced.body.rooms?.join?.[roomId]?.ephemeral?.events ?? [];
    return events.find((e) => e.type === 'm.typing')?.content.user_ids ?? [];
  };

  before(async () => {
    ca = makeTestCa();
    a = await startFederatedServer(dialect, ca);
    b = await startFederatedServer(dialect, ca);
    alice = await registerUser(a, 'alice');
    bob = await registerUser(b, 'bob');
    const created = await b.request<{ room_id: string }>('POST', `${C}/createRoom`, {
      token: bob.accessToken,
      body: { preset: 'public_chat', room_version: '11' },
    });
    roomId = created.body.room_id;
    const joined = await a.request('POST', `${C}/join/${r(roomId)}?via=${r(b.serverName)}`, {
      token: alice.accessToken,
      body: {},
    });
    assert.equal(joined.status, 200, JSON.stringify(joined.body));
  });
  after(async () => {
    await a?.close();
    await b?.close();
    if (ca) rmSync(ca.dir, { recursive: true, force: true });
  });

  it('Alice typing for 120 s is still shown on B after B’s 60 s timeout, then stops', async () => {
    const started = Date.now();
    const typing = await a.request('PUT', `${C}/rooms/${r(roomId)}/typing/${r(alice.userId)}`, {
      token: alice.accessToken,
      body: { typing: true, timeout: 120_000 },
    });
    assert.equal(typing.status, 200);
    await eventually(typingOnB, (ids) => ids.includes(alice.userId), 30_000);
    // Past B's own timeout for the first notification: only a renewal keeps her shown.
    const past = started + REMOTE_TYPING_TIMEOUT_MS + 10_000;
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, past - Date.now())));
    assert.deepEqual(await typingOnB(), [alice.userId]);
    const stopped = await a.request('PUT', `${C}/rooms/${r(roomId)}/typing/${r(alice.userId)}`, {
      token: alice.accessToken,
      body: { typing: false },
    });
    assert.equal(stopped.status, 200);
    assert.deepEqual(await eventually(typingOnB, (ids) => ids.length === 0, 30_000), []);
  });
});
