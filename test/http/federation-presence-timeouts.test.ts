/**
 * Remote presence over federation, between two Commons servers A and B:
 * - B times out a user of A it hears nothing more of (`presence.remote_timeout_seconds`, 3 s
 *   here) to offline, while A still holds them online;
 * - an `m.presence` EDU from B to A that says what A holds already (only `last_active_ago`
 *   differs) takes no stream position: Alice's /sync on A sees nothing new;
 * - a user of B whose client stopped syncing goes offline on B
 *   (`presence.sync_timeout_seconds`, 2 s here), and A hears of it (the EDU of any change).
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, it } from 'node:test';
import { loadServerSecrets } from '../../src/config/server-secrets.js';
import { xMatrixHeader } from '../../src/core/x-matrix.js';
import { forEachDatabase } from '../helpers/databases.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { eventually } from '../helpers/eventually.js';
import {
  federationEnv,
  freePort,
  httpsJson,
  makeTestCa,
  type TestCa,
} from '../helpers/federation.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

type Federated = TestServer & { serverName: string; port: number };
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

async function federated(
  dialect: Parameters<typeof startTestServer>[0],
  ca: TestCa,
  env: Record<string, string>,
): Promise<Federated> {
  const port = await freePort();
  const server = await startTestServer(dialect, { ...federationEnv(ca, port), ...env });
  return Object.assign(server, { serverName: `127.0.0.1:${port}`, port });
}

forEachDatabase('presence time-outs over federation', (dialect) => {
  let ca: TestCa;
  let a: Federated;
  let b: Federated;
  let alice: TestUser;
  let bob: TestUser;
  let roomId: string;

  before(async () => {
    ca = makeTestCa();
    // On A nothing times out while this runs (Alice sets her presence and never syncs).
    a = await federated(dialect, ca, {
      COMMONS_PRESENCE_SYNC_TIMEOUT_SECONDS: '3600',
      COMMONS_PRESENCE_IDLE_TIMEOUT_SECONDS: '3600',
      COMMONS_PRESENCE_CURRENTLY_ACTIVE_SECONDS: '3600',
    });
    b = await federated(dialect, ca, {
      COMMONS_PRESENCE_REMOTE_TIMEOUT_SECONDS: '3',
      COMMONS_PRESENCE_SYNC_TIMEOUT_SECONDS: '2',
    });
    alice = await registerUser(a, 'alice');
    bob = await registerUser(b, 'bob');
    // Bob's /sync requests never set his presence: B sends A nothing of him by itself.
    const created = await b.request<{ room_id: string }>('POST', `${C}/createRoom`, {
      token: bob.accessToken,
      body: { preset: 'public_chat', room_version: '11' },
    });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    roomId = created.body.room_id;
    const joined = await a.request(
      'POST',
      `${C}/join/${r(created.body.room_id)}?via=${r(b.serverName)}`,
      { token: alice.accessToken, body: {} },
    );
    assert.equal(joined.status, 200, JSON.stringify(joined.body));
  });
  after(async () => {
    await a?.close();
    await b?.close();
    if (ca) rmSync(ca.dir, { recursive: true, force: true });
  });

  it('B times out Alice of A to offline without news of her; A still holds her online', async () => {
    const set = await a.request('PUT', `${C}/presence/${r(alice.userId)}/status`, {
      token: alice.accessToken,
      body: { presence: 'online' },
    });
    assert.equal(set.status, 200);
    const initial = await b.request<SyncBody>('GET', `${C}/sync?set_presence=offline`, {
      token: bob.accessToken,
    });
    assert.equal(initial.status, 200);
    const seen: PresenceEvent[] = [...(initial.body.presence?.events ?? [])];
    let since = initial.body.next_batch;
    const alices = () =>
      seen.filter((e) => e.sender === alice.userId).map((e) => e.content.presence);
    const deadline = Date.now() + 60_000;
    while (alices().at(-1) !== 'offline' && Date.now() < deadline) {
      const synced = await b.request<SyncBody>(
        'GET',
        `${C}/sync?since=${r(since)}&timeout=2000&set_presence=offline`,
        { token: bob.accessToken },
      );
      assert.equal(synced.status, 200);
      seen.push(...(synced.body.presence?.events ?? []));
      since = synced.body.next_batch;
    }
    assert.deepEqual(alices(), ['online', 'offline']);
    const onA = await a.request<{ presence: string }>(
      'GET',
      `${C}/presence/${r(alice.userId)}/status`,
      { token: alice.accessToken },
    );
    assert.equal(onA.body.presence, 'online');
  });

  it('an EDU saying what A holds already takes no stream position', async () => {
    const { signingKey } = loadServerSecrets(b.config.data_dir);
    let txn = 0;
    const sendPresence = async (lastActiveAgo: number) => {
      const path = `/_matrix/federation/v1/send/presence-${Date.now()}-${txn++}`;
      const body = {
        origin: b.serverName,
        origin_server_ts: Date.now(),
        pdus: [],
        edus: [
          {
            edu_type: 'm.presence',
            content: {
              push: [
                {
                  user_id: bob.userId,
                  presence: 'online',
                  last_active_ago: lastActiveAgo,
                  currently_active: true,
                  status_msg: 'here',
                },
              ],
            },
          },
        ],
      };
      const res = await httpsJson(ca, `https://127.0.0.1:${a.port}${path}`, {
        method: 'PUT',
        body,
        headers: {
          Authorization: xMatrixHeader(
            {
              method: 'PUT',
              uri: path,
              origin: b.serverName,
              destination: a.serverName,
              content: body,
            },
            signingKey,
          ),
        },
      });
      assert.equal(res.status, 200, JSON.stringify(res.body));
    };
    await sendPresence(1000);
    const first = await eventually(
      () =>
        a.request<SyncBody>('GET', `${C}/sync?set_presence=offline`, { token: alice.accessToken }),
      (res) =>
        (res.body.presence?.events ?? []).some(
          (e) => e.sender === bob.userId && e.content.presence === 'online',
        ),
    );
    const bobs = (first.body.presence?.events ?? []).filter((e) => e.sender === bob.userId);
    assert.equal(bobs.at(-1)?.content.presence, 'online');
    await sendPresence(20_000);
    // A kept it: the time it last heard of Bob moved (read from its storage), nothing else.
    const row = await a.running.storage.stores.presence.selectPresence(bob.userId);
    assert.equal(row?.presence, 'online');
    assert.equal(row?.statusMsg, 'here');
    const again = await a.request<SyncBody>(
      'GET',
      `${C}/sync?since=${r(first.body.next_batch)}&timeout=0&set_presence=offline`,
      { token: alice.accessToken },
    );
    assert.equal(again.status, 200);
    assert.deepEqual(
      (again.body.presence?.events ?? []).filter((e) => e.sender === bob.userId),
      [],
    );
    assert.equal(again.body.next_batch, first.body.next_batch);
  });

  it('a user of B whose /sync stopped goes offline on B, and A hears of it', async () => {
    const bea = await registerUser(b, 'bea');
    const joined = await b.request('POST', `${C}/join/${r(roomId)}`, {
      token: bea.accessToken,
      body: {},
    });
    assert.equal(joined.status, 200, JSON.stringify(joined.body));
    const initial = await a.request<SyncBody>('GET', `${C}/sync?set_presence=offline`, {
      token: alice.accessToken,
    });
    assert.equal(initial.status, 200);
    // One sync (online), then none.
    const once = await b.request('GET', `${C}/sync?timeout=0`, { token: bea.accessToken });
    assert.equal(once.status, 200);
    const seen: PresenceEvent[] = [];
    let since = initial.body.next_batch;
    const beas = () => seen.filter((e) => e.sender === bea.userId).map((e) => e.content.presence);
    const deadline = Date.now() + 60_000;
    while (beas().at(-1) !== 'offline' && Date.now() < deadline) {
      const synced = await a.request<SyncBody>(
        'GET',
        `${C}/sync?since=${r(since)}&timeout=2000&set_presence=offline`,
        { token: alice.accessToken },
      );
      assert.equal(synced.status, 200);
      seen.push(...(synced.body.presence?.events ?? []));
      since = synced.body.next_batch;
    }
    assert.deepEqual(beas(), ['online', 'offline']);
    const onB = await b.request<{ presence: string }>(
      'GET',
      `${C}/presence/${r(bea.userId)}/status`,
      { token: bob.accessToken },
    );
    assert.equal(onB.body.presence, 'offline');
  });
});
