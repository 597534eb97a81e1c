/**
 * Presence time-outs of local users, through listening servers with shortened timers, as
 * another user's /sync sees them:
 * - a user who synced and stopped goes offline once `presence.sync_timeout_seconds` passed,
 *   while one who keeps syncing (here, or through a second set of services over the same
 *   database, as another worker process would) stays online;
 * - a user online with no activity goes unavailable after `presence.idle_timeout_seconds`
 *   (`currently_active` false), while one who keeps sending messages stays online.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { servicesOf } from '../helpers/services.js';
import type { Services } from '../../src/services/index.js';

const C = '/_matrix/client/v3';
const r = encodeURIComponent;

interface PresenceEvent {
  sender: string;
  content: { presence?: string; currently_active?: boolean };
}
interface SyncBody {
  next_batch: string;
  presence?: { events: PresenceEvent[] };
}

/** A room of `creator` that every user of `others` joins. */
async function sharedRoom(server: TestServer, creator: TestUser, others: TestUser[]) {
  const created = await server.request<{ room_id: string }>('POST', `${C}/createRoom`, {
    token: creator.accessToken,
    body: { preset: 'public_chat' },
  });
  assert.equal(created.status, 200, JSON.stringify(created.body));
  for (const user of others) {
    const joined = await server.request('POST', `${C}/join/${r(created.body.room_id)}`, {
      token: user.accessToken,
      body: {},
    });
    assert.equal(joined.status, 200, JSON.stringify(joined.body));
  }
  return created.body.room_id;
}

/**
 * Bob's /sync (never changing his own presence) from an initial one, until `done` holds of
 * the presence events seen (60 s at most); returns them.
 */
async function watchPresence(
  server: TestServer,
  bob: TestUser,
  done: (seen: PresenceEvent[]) => boolean,
): Promise<PresenceEvent[]> {
  const seen: PresenceEvent[] = [];
  const initial = await server.request<SyncBody>('GET', `${C}/sync?set_presence=offline`, {
    token: bob.accessToken,
  });
  assert.equal(initial.status, 200);
  seen.push(...(initial.body.presence?.events ?? []));
  let since = initial.body.next_batch;
  const deadline = Date.now() + 60_000;
  while (!done(seen) && Date.now() < deadline) {
    const synced = await server.request<SyncBody>(
      'GET',
      `${C}/sync?since=${r(since)}&timeout=2000&set_presence=offline`,
      { token: bob.accessToken },
    );
    assert.equal(synced.status, 200);
    seen.push(...(synced.body.presence?.events ?? []));
    since = synced.body.next_batch;
  }
  return seen;
}

const latest = (seen: PresenceEvent[], user: TestUser) =>
  seen.filter((e) => e.sender === user.userId).at(-1)?.content;

forEachDatabase('presence time-outs', (dialect) => {
  let syncing: TestServer;
  let idle: TestServer;
  let other: Services | undefined;

  before(async () => {
    // Only the sync time-out is short on one server, only idleness on the other.
    syncing = await startTestServer(dialect, {
      COMMONS_PRESENCE_SYNC_TIMEOUT_SECONDS: '3',
      COMMONS_PRESENCE_IDLE_TIMEOUT_SECONDS: '3600',
      COMMONS_PRESENCE_CURRENTLY_ACTIVE_SECONDS: '3600',
    });
    idle = await startTestServer(dialect, {
      COMMONS_PRESENCE_SYNC_TIMEOUT_SECONDS: '3600',
      COMMONS_PRESENCE_IDLE_TIMEOUT_SECONDS: '3',
      COMMONS_PRESENCE_CURRENTLY_ACTIVE_SECONDS: '1',
    });
  });
  after(async () => {
    await other?.presenceTimeouts.stop();
    await syncing?.close();
    await idle?.close();
  });

  it('a user whose /sync stopped goes offline; users still syncing (on either process) do not', async () => {
    const bob = await registerUser(syncing, 'bob');
    const alice = await registerUser(syncing, 'alice');
    const carol = await registerUser(syncing, 'carol');
    const dave = await registerUser(syncing, 'dave');
    await sharedRoom(syncing, bob, [alice, carol, dave]);
    // Dave syncs through another set of services over the same database (another worker):
    // its own in-memory syncing users, its own writes of their sync times.
    other = servicesOf(syncing);
    other.presenceTimeouts.start((err) => assert.fail(String(err)));
    const daveRequester = { userId: dave.userId, deviceId: dave.deviceId, isAdmin: false };
    let stop = false;
    const keepSyncing = async (sync: (since: string | undefined) => Promise<string>) => {
      let since: string | undefined;
      while (!stop) since = await sync(since);
    };
    const carolSyncs = keepSyncing(async (since) => {
      const query = since === undefined ? '' : `?since=${r(since)}&timeout=1000`;
      const res = await syncing.request<SyncBody>('GET', `${C}/sync${query}`, {
        token: carol.accessToken,
      });
      assert.equal(res.status, 200);
      return res.body.next_batch;
    });
    const otherServices = other;
    const daveSyncs = keepSyncing(async (since) => {
      const res = await otherServices.sync.sync(daveRequester, {
        ...(since === undefined ? {} : { since }),
        timeoutMs: since === undefined ? 0 : 1000,
        setPresence: 'online',
        fullState: false,
        filter: {},
      } as Parameters<Services['sync']['sync']>[1]);
      return res.next_batch;
    });
    try {
      const once = await syncing.request('GET', `${C}/sync?timeout=0`, {
        token: alice.accessToken,
      });
      assert.equal(once.status, 200);
      // Alice's one sync made her online; then, with no sync since, offline.
      const seen = await watchPresence(
        syncing,
        bob,
        (events) => latest(events, alice)?.presence === 'offline',
      );
      const alices = seen.filter((e) => e.sender === alice.userId).map((e) => e.content.presence);
      assert.equal(alices.at(-1), 'offline', JSON.stringify(alices));
      assert.ok(alices.includes('online') || alices.length === 1, JSON.stringify(alices));
      // Carol and Dave synced all along, Alice's sync ended before theirs began.
      for (const user of [carol, dave]) {
        const res = await syncing.request<{ presence: string }>(
          'GET',
          `${C}/presence/${r(user.userId)}/status`,
          { token: bob.accessToken },
        );
        assert.equal(res.status, 200);
        assert.equal(res.body.presence, 'online', `${user.userId} stayed online`);
      }
      assert.ok(
        !seen.some(
          (e) => [carol.userId, dave.userId].includes(e.sender) && e.content.presence !== 'online',
        ),
        JSON.stringify(seen),
      );
    } finally {
      stop = true;
      await carolSyncs;
      await daveSyncs;
    }
  });

  it('a user online with no activity goes unavailable; one sending messages stays online', async () => {
    const bob = await registerUser(idle, 'bob');
    const erin = await registerUser(idle, 'erin');
    const frank = await registerUser(idle, 'frank');
    const roomId = await sharedRoom(idle, bob, [erin, frank]);
    for (const user of [erin, frank]) {
      const res = await idle.request('PUT', `${C}/presence/${r(user.userId)}/status`, {
        token: user.accessToken,
        body: { presence: 'online' },
      });
      assert.equal(res.status, 200);
    }
    let stop = false;
    const frankTalks = (async () => {
      for (let n = 0; !stop; n++) {
        const sent = await idle.request(
          'PUT',
          `${C}/rooms/${r(roomId)}/send/m.room.message/t${n}`,
          { token: frank.accessToken, body: { msgtype: 'm.text', body: `hello ${n}` } },
        );
        assert.equal(sent.status, 200);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    })();
    try {
      const seen = await watchPresence(
        idle,
        bob,
        (events) => latest(events, erin)?.presence === 'unavailable',
      );
      const erins = seen.filter((e) => e.sender === erin.userId).map((e) => e.content);
      assert.deepEqual(erins.at(-1), {
        ...erins.at(-1),
        presence: 'unavailable',
        currently_active: false,
      });
      // Before going unavailable she stopped being currently active (1 s before 3 s).
      assert.ok(
        erins.some((c) => c.presence === 'online' && c.currently_active === false),
        JSON.stringify(erins),
      );
      const franks = await idle.request<{ presence: string; currently_active: boolean }>(
        'GET',
        `${C}/presence/${r(frank.userId)}/status`,
        { token: bob.accessToken },
      );
      assert.equal(franks.body.presence, 'online');
      assert.equal(franks.body.currently_active, true);
    } finally {
      stop = true;
      await frankTalks;
    }
  });
});
