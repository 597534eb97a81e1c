/**
 * Presence refreshed over federation: while a user of A stays online (or unavailable), A
 * sends their presence again to the servers sharing a room with them every
 * `federation.presence_refresh_seconds` (1 s here), so that those servers do not time them
 * out; a user gone offline is not sent again. On B, Bob's /sync shows each refresh as a
 * presence event of Alice (online) and Dave (unavailable), never of Carol (offline). Of two
 * processes on A's database, one makes each pass (the `presence-refresh` job lease).
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { eventually } from '../helpers/eventually.js';
import {
  federationEnv,
  freePort,
  makeTestCa,
  startFederatedServer,
  type TestCa,
} from '../helpers/federation.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { serviceContextOf } from '../helpers/services.js';
import { createPresenceRefresher } from '../../src/services/federation/presence-refresh.js';

type Federated = TestServer & { serverName: string; port: number };
const C = '/_matrix/client/v3';
const r = encodeURIComponent;

interface PresenceEvent {
  sender: string;
  content: { presence?: string; currently_active?: boolean; last_active_ago?: number };
}

forEachDatabase('presence refreshed over federation', (dialect) => {
  let ca: TestCa;
  let a: Federated;
  let b: Federated;
  let alice: TestUser;
  let carol: TestUser;
  let dave: TestUser;
  let bob: TestUser;

  const setPresence = async (user: TestUser, presence: string) => {
    const res = await a.request('PUT', `${C}/presence/${r(user.userId)}/status`, {
      token: user.accessToken,
      body: { presence },
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
  };
  /** The presence B holds for a user of A, as Bob asks it. */
  const presenceOnB = async (user: TestUser) => {
    const res = await b.request<{ presence?: string }>(
      'GET',
      `${C}/presence/${r(user.userId)}/status`,
      { token: bob.accessToken },
    );
    return res.body.presence;
  };

  before(async () => {
    ca = makeTestCa();
    const port = await freePort();
    const started = await startTestServer(dialect, {
      ...federationEnv(ca, port),
      COMMONS_FEDERATION_PRESENCE_REFRESH_SECONDS: '1',
    });
    a = Object.assign(started, { serverName: `127.0.0.1:${port}`, port });
    b = await startFederatedServer(dialect, ca);
    alice = await registerUser(a, 'alice');
    carol = await registerUser(a, 'carol');
    dave = await registerUser(a, 'dave');
    bob = await registerUser(b, 'bob');
    const created = await b.request<{ room_id: string }>('POST', `${C}/createRoom`, {
      token: bob.accessToken,
      body: { preset: 'public_chat', room_version: '11' },
    });
    const roomId = created.body.room_id;
    for (const user of [alice, carol, dave]) {
      const joined = await a.request('POST', `${C}/join/${r(roomId)}?via=${r(b.serverName)}`, {
        token: user.accessToken,
        body: {},
      });
      assert.equal(joined.status, 200, JSON.stringify(joined.body));
    }
    await setPresence(alice, 'online');
    await setPresence(dave, 'unavailable');
    await setPresence(carol, 'online');
    await setPresence(carol, 'offline');
    const known = await eventually(
      async () => [await presenceOnB(alice), await presenceOnB(dave), await presenceOnB(carol)],
      (states) => states.join() === 'online,unavailable,offline',
      30_000,
    );
    assert.deepEqual(known, ['online', 'unavailable', 'offline']);
  });
  after(async () => {
    await a?.close();
    await b?.close();
    if (ca) rmSync(ca.dir, { recursive: true, force: true });
  });

  it('B hears again of Alice (online) and Dave (unavailable), never of Carol (offline)', async () => {
    // From here on nothing changes on A: every presence event Bob gets is a refresh. The
    // token is one whose initial sync holds Carol offline (her change is before it: on
    // PostgreSQL the stream may be read a moment behind the latest commit).
    const initialSync = () =>
      b.request<{ next_batch: string; presence?: { events: PresenceEvent[] } }>(
        'GET',
        `${C}/sync`,
        { token: bob.accessToken },
      );
    const carolOffline = (body: { presence?: { events: PresenceEvent[] } }) =>
      (body.presence?.events ?? []).some(
        (e) => e.sender === carol.userId && e.content.presence === 'offline',
      );
    const initial = await eventually(initialSync, (res) => carolOffline(res.body), 30_000);
    assert.ok(carolOffline(initial.body));
    let since = initial.body.next_batch;
    const seen: PresenceEvent[] = [];
    const count = (user: TestUser) => seen.filter((e) => e.sender === user.userId).length;
    const deadline = Date.now() + 60_000;
    // Two refreshes of each: at least one whole pass over A's users ran after the token.
    while ((count(alice) < 2 || count(dave) < 2) && Date.now() < deadline) {
      const synced = await b.request<{
        next_batch: string;
        presence?: { events: PresenceEvent[] };
      }>('GET', `${C}/sync?since=${r(since)}&timeout=5000`, { token: bob.accessToken });
      assert.equal(synced.status, 200);
      seen.push(...(synced.body.presence?.events ?? []));
      since = synced.body.next_batch;
    }
    assert.ok(count(alice) >= 2, `Alice refreshed ${count(alice)} times`);
    assert.ok(count(dave) >= 2, `Dave refreshed ${count(dave)} times`);
    assert.equal(count(carol), 0, JSON.stringify(seen.filter((e) => e.sender === carol.userId)));
    for (const event of seen.filter((e) => e.sender === alice.userId)) {
      assert.equal(event.content.presence, 'online');
      assert.equal(event.content.currently_active, true);
      assert.equal(typeof event.content.last_active_ago, 'number');
    }
    for (const event of seen.filter((e) => e.sender === dave.userId)) {
      assert.equal(event.content.presence, 'unavailable');
      assert.equal(event.content.currently_active, false);
    }
    assert.equal(await presenceOnB(carol), 'offline');
  });

  it('one process of several makes each pass, and the next once an interval has passed', async () => {
    // Two more refreshers over A's database (as two more processes would have), on a clock
    // past every lease A's own took. Last: A's own refresher waits for theirs from now on.
    const intervalMs = 3_600_000;
    let clock = Date.now() + 10 * intervalMs;
    const ctx = serviceContextOf(a, () => clock);
    const first = createPresenceRefresher(ctx, intervalMs);
    const second = createPresenceRefresher(ctx, intervalMs);
    try {
      const [one, other] = await Promise.all([first.runIfDue(), second.runIfDue()]);
      // Alice and Dave, sent by one of them; the other found the pass made.
      assert.deepEqual([one, other].sort(), [2, null]);
      clock += intervalMs / 2;
      assert.equal(await second.runIfDue(), null);
      assert.equal(await first.runIfDue(), null);
      clock += intervalMs / 2;
      assert.equal(await second.runIfDue(), 2);
    } finally {
      await first.stop();
      await second.stop();
    }
  });
});
