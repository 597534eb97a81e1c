/**
 * End-to-end encryption across servers with matrix-js-sdk's own crypto (its Rust crypto,
 * compiled to WebAssembly): Alice on Commons A and Bob on Commons B, two servers talking over
 * federation, each a running client (`initRustCrypto`, `startClient`). Alice sends a message
 * in an encrypted room; her client asks A for Bob's devices (`/keys/query`, answered from B),
 * claims a one-time key (`/keys/claim`, asked of B), and sends the room key to Bob's device
 * as an olm-encrypted to-device message (an `m.direct_to_device` EDU from A to B). Bob's
 * client decrypts the message. Then Bob answers, the other way round.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, it } from 'node:test';
import type { MatrixClient, MatrixEvent } from 'matrix-js-sdk';
import { registerUser, type TestUser } from '../helpers/client.js';
import { forEachDatabase } from '../helpers/databases.js';
import { makeTestCa, startFederatedServer, type TestCa } from '../helpers/federation.js';
import { createSdkClient, loadMatrixJsSdk } from '../helpers/matrix-js-sdk.js';
import type { TestServer } from '../helpers/server.js';

type Federated = TestServer & { serverName: string; port: number };
const r = encodeURIComponent;
/** How long one step may take through /sync and federation. */
const DEADLINE_MS = 30_000;

/** Resolves once `check()` holds (tested every 50 ms); rejects after the deadline naming `what`. */
async function until<T>(what: string, check: () => T | undefined | null | false): Promise<T> {
  const deadline = Date.now() + DEADLINE_MS;
  for (;;) {
    const value = check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The decrypted text of the room's events, as the client holds them. */
function clearBodies(client: MatrixClient, roomId: string): string[] {
  const room = client.getRoom(roomId);
  const events: MatrixEvent[] = room?.getLiveTimeline().getEvents() ?? [];
  return events
    .filter((e) => e.getType() === 'm.room.message' && e.isEncrypted())
    .map((e) => e.getContent().body)
    .filter((body): body is string => typeof body === 'string');
}

forEachDatabase('matrix-js-sdk crypto between two Commons servers', (dialect) => {
  let ca: TestCa;
  let a: Federated;
  let b: Federated;
  let alice: TestUser;
  let bob: TestUser;
  let aliceClient: MatrixClient;
  let bobClient: MatrixClient;
  let roomId: string;

  async function startCrypto(server: Federated, user: TestUser): Promise<MatrixClient> {
    const sdk = await loadMatrixJsSdk();
    const client = await createSdkClient(server, user);
    await client.initRustCrypto({ useIndexedDB: false });
    await client.startClient({ initialSyncLimit: 20 });
    await until(
      `${user.userId}'s first sync`,
      () => client.getSyncState() === sdk.SyncState.Syncing || client.isInitialSyncComplete(),
    );
    return client;
  }

  before(async () => {
    ca = makeTestCa();
    a = await startFederatedServer(dialect, ca);
    b = await startFederatedServer(dialect, ca);
    alice = await registerUser(a, 'alice');
    bob = await registerUser(b, 'bob');
    aliceClient = await startCrypto(a, alice);
    bobClient = await startCrypto(b, bob);
    const created = await a.request<{ room_id: string }>('POST', '/_matrix/client/v3/createRoom', {
      token: alice.accessToken,
      body: {
        preset: 'public_chat',
        initial_state: [
          {
            type: 'm.room.encryption',
            state_key: '',
            content: { algorithm: 'm.megolm.v1.aes-sha2' },
          },
        ],
      },
    });
    assert.equal(created.status, 200);
    roomId = created.body.room_id;
    const joined = await b.request(
      'POST',
      `/_matrix/client/v3/join/${r(roomId)}?via=${r(a.serverName)}`,
      {
        token: bob.accessToken,
        body: {},
      },
    );
    assert.equal(joined.status, 200, JSON.stringify(joined.body));
    await until(
      "Bob's join on Alice's client",
      () => aliceClient.getRoom(roomId)?.getMember(bob.userId)?.membership === 'join',
    );
    await until("the room on Bob's client", () => bobClient.getRoom(roomId));
  });
  after(async () => {
    aliceClient?.stopClient();
    bobClient?.stopClient();
    await a?.close();
    await b?.close();
    rmSync(ca.dir, { recursive: true, force: true });
  });

  it("Bob's client decrypts Alice's message sent from the other server", async () => {
    await aliceClient.sendTextMessage(roomId, 'a secret from A');
    const bodies = await until("Bob's client decrypting the message", () => {
      const found = clearBodies(bobClient, roomId);
      return found.includes('a secret from A') ? found : null;
    });
    assert.ok(bodies.includes('a secret from A'));
  });

  it("Alice's client decrypts Bob's answer", async () => {
    await bobClient.sendTextMessage(roomId, 'an answer from B');
    await until("Alice's client decrypting the answer", () =>
      clearBodies(aliceClient, roomId).includes('an answer from B'),
    );
    // On the wire both servers carried only m.room.encrypted events.
    for (const [server, user] of [
      [a, alice],
      [b, bob],
    ] as const) {
      const history = await server.request<{
        chunk: { type: string; content: Record<string, unknown> }[];
      }>('GET', `/_matrix/client/v3/rooms/${r(roomId)}/messages?dir=b&limit=50`, {
        token: user.accessToken,
      });
      assert.equal(history.status, 200);
      const texts = JSON.stringify(history.body.chunk);
      assert.ok(!texts.includes('a secret from A') && !texts.includes('an answer from B'));
      assert.ok(history.body.chunk.filter((e) => e.type === 'm.room.encrypted').length >= 2);
    }
  });
});
