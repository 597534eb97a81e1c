/**
 * Presence refreshed over federation: while a user of A stays online (or unavailable), A
 * sends their presence again to the servers sharing a room with them every
 * `federation.presence_refresh_seconds` (1 s here), so that those servers do not time them
 * out; a user gone offline is not sent again. B keeps each refresh of Alice (online) and
 * Dave (unavailable) quietly, as nothing changed (the time it last heard of them moves; no
 * stream position, no presence event for Bob's /sync), and never hears of Carol (offline). Of two
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
      // Alice and Dave set their presence and never sync: nothing times out while this runs.
      COMMONS_PRESENCE_SYNC_TIMEOUT_SECONDS: '3600',
      COMMONS_PRESENCE_IDLE_TIMEOUT_SECONDS: '3600',
      COMMONS_PRESENCE_CURRENTLY_ACTIVE_SECONDS: '3600',
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
    // A refresh says what B holds already: B keeps it quietly (no stream position, nothing
    // for Bob's /sync), moving only the time it last heard of the user, read here.
    const heard = async (user: TestUser) =>
      (await b.running.storage.stores.presence.selectPresence(user.userId))?.lastUpdateTs ?? 0;
    // B holds each state (not merely no row, which reads as offline) before counting.
    const held = await eventually(
      () =>
        Promise.all(
          [alice, dave, carol].map((user) =>
            b.running.storage.stores.presence.selectPresence(user.userId),
          ),
        ),
      (rows) => rows.map((row) => row?.presence).join() === 'online,unavailable,offline',
      30_000,
    );
    assert.deepEqual(
      held.map((row) => row?.presence),
      ['online', 'unavailable', 'offline'],
    );
    const start = { alice: await heard(alice), dave: await heard(dave), carol: await heard(carol) };
    const initial = await b.request<{ next_batch: string }>(
      'GET',
      `${C}/sync?set_presence=offline`,
      {
        token: bob.accessToken,
      },
    );
    let refreshes = { alice: 0, dave: 0 };
    let last = { alice: start.alice, dave: start.dave };
    const deadline = Date.now() + 60_000;
    // Two refreshes of each: at least one whole pass over A's users ran after the start.
    while ((refreshes.alice < 2 || refreshes.dave < 2) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      const now = { alice: await heard(alice), dave: await heard(dave) };
      refreshes = {
        alice: refreshes.alice + (now.alice > last.alice ? 1 : 0),
        dave: refreshes.dave + (now.dave > last.dave ? 1 : 0),
      };
      last = now;
    }
    assert.ok(refreshes.alice >= 2, `Alice refreshed ${refreshes.alice} times`);
    assert.ok(refreshes.dave >= 2, `Dave refreshed ${refreshes.dave} times`);
    assert.equal(await heard(carol), start.carol, 'Carol (offline) is not sent again');
    assert.equal(await presenceOnB(alice), 'online');
    assert.equal(await presenceOnB(dave), 'unavailable');
    assert.equal(await presenceOnB(carol), 'offline');
    // None of the refreshes was news to Bob's /sync.
    const synced = await b.request<{ presence?: { events: PresenceEvent[] } }>(
      'GET',
      `${C}/sync?since=${r(initial.body.next_batch)}&timeout=0&set_presence=offline`,
      { token: bob.accessToken },
    );
    assert.equal(synced.status, 200);
    const about = (synced.body.presence?.events ?? []).filter((e) =>
      [alice.userId, dave.userId, carol.userId].includes(e.sender),
    );
    assert.deepEqual(about, []);
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
