/**
 * matrix-js-sdk's Rust crypto (the matrix-sdk-crypto WebAssembly build, as Element Web runs
 * it) against Commons: a device sets up cross-signing (device_signing/upload behind
 * user-interactive auth, signatures/upload) and a key backup (room_keys/version), sends a
 * message in an encrypted room, and its room key reaches the backup; a second device of the
 * same user restores the backup with the backup key and decrypts the message. Another user's
 * /keys/query shows the cross-signing keys the SDK made.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import type { MatrixClient } from 'matrix-js-sdk';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { loginUser, registerUser, type TestUser } from '../helpers/client.js';
import { createSdkClient, loadMatrixJsSdk } from '../helpers/matrix-js-sdk.js';
import { eventually } from '../helpers/eventually.js';

const V3 = '/_matrix/client/v3';

forEachDatabase('matrix-js-sdk Rust crypto: cross-signing and key backup', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  const clients: MatrixClient[] = [];

  before(async () => {
    server = await startTestServer(dialect);
    alice = await registerUser(server);
    bob = await registerUser(server);
  });
  after(async () => {
    for (const client of clients) client.stopClient();
    await server.close();
  });

  const cryptoClient = async (user: TestUser) => {
    const client = await createSdkClient(server, user);
    clients.push(client);
    await client.initRustCrypto({ useIndexedDB: false });
    const crypto = client.getCrypto();
    assert.ok(crypto);
    return { client, crypto };
  };

  it('sets up cross-signing and a backup, and a second device restores a room key from it', async () => {
    const sdk = await loadMatrixJsSdk();
    const first = await cryptoClient(alice);
    await first.crypto.bootstrapCrossSigning({
      authUploadDeviceSigningKeys: async (makeRequest) => {
        await makeRequest({
          type: 'm.login.password',
          identifier: { type: 'm.id.user', user: alice.userId },
          password: alice.password,
        });
      },
    });
    assert.equal(await first.crypto.isCrossSigningReady(), true);
    const status = await first.crypto.getCrossSigningStatus();
    assert.equal(status.publicKeysOnDevice, true);
    assert.equal(status.privateKeysCachedLocally.masterKey, true);

    // Bob sees Alice's cross-signing keys, and her device signed by her self-signing key.
    const query = await server.request<{
      master_keys: Record<string, { keys: Record<string, string> }>;
      self_signing_keys: Record<string, { keys: Record<string, string> }>;
      device_keys: Record<string, Record<string, { signatures: Record<string, object> }>>;
    }>('POST', `${V3}/keys/query`, {
      token: bob.accessToken,
      body: { device_keys: { [alice.userId]: [] } },
    });
    assert.equal(query.status, 200, JSON.stringify(query.body));
    const master = Object.values(query.body.master_keys[alice.userId]?.keys ?? {})[0];
    const selfSigning = Object.keys(query.body.self_signing_keys[alice.userId]?.keys ?? {})[0];
    assert.equal(master, (await first.crypto.getCrossSigningKeyId()) ?? undefined);
    const device = query.body.device_keys[alice.userId]?.[alice.deviceId];
    assert.ok(device && selfSigning && selfSigning in (device.signatures[alice.userId] ?? {}));

    await first.crypto.resetKeyBackup();
    const version = await first.crypto.getActiveSessionBackupVersion();
    assert.ok(version);
    const backupKey = await first.crypto.getSessionBackupPrivateKey();
    assert.ok(backupKey);

    // An encrypted room; the message's room key goes to the backup.
    await first.client.startClient({ initialSyncLimit: 1 });
    const { room_id: roomId } = await first.client.createRoom({
      initial_state: [
        {
          type: 'm.room.encryption',
          state_key: '',
          content: { algorithm: 'm.megolm.v1.aes-sha2' },
        },
      ],
    });
    const ready = await eventually(
      async () =>
        first.client.getRoom(roomId) !== null &&
        (await first.crypto.isEncryptionEnabledInRoom(roomId)),
      (value) => value,
      30_000,
    );
    assert.equal(ready, true, 'the client knows the room is encrypted');
    const { event_id: eventId } = await first.client.sendTextMessage(roomId, 'backed up secret');
    const backedUp = await eventually(
      async () => {
        const keys = await server.request<{ rooms: Record<string, unknown> }>(
          'GET',
          `${V3}/room_keys/keys?version=${version}`,
          { token: alice.accessToken },
        );
        assert.equal(keys.status, 200);
        return keys.body.rooms[roomId] !== undefined;
      },
      (value) => value,
      60_000,
    );
    assert.equal(backedUp, true, 'the room key is in the backup');
    first.client.stopClient();

    // A second device: the backup key alone gives it the room key.
    const login = await loginUser(server, alice.userId, alice.password);
    const second = await cryptoClient({ ...alice, ...login });
    await second.crypto.storeSessionBackupPrivateKey(backupKey, version);
    const restored = await second.crypto.restoreKeyBackup();
    assert.ok(restored.imported >= 1, JSON.stringify(restored));
    const raw = await server.request<Record<string, unknown>>(
      'GET',
      `${V3}/rooms/${encodeURIComponent(roomId)}/event/${encodeURIComponent(eventId)}`,
      { token: login.accessToken },
    );
    assert.equal(raw.status, 200);
    assert.equal(raw.body.type, 'm.room.encrypted');
    const event = new sdk.MatrixEvent(raw.body);
    await second.client.decryptEventIfNeeded(event);
    assert.equal(event.getContent().body, 'backed up secret');
  });
});
