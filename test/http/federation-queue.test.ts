/**
 * The federation outbox end to end: events of a room with a member on another server are
 * queued in their own transaction while that server is down, survive a restart of the sender,
 * and are delivered once the destination is up and contacts us — all of them, each once, in
 * order, in transactions of at most 50 PDUs and 100 EDUs, each signed. The destination is a
 * small recording server of the test's own (receiving PDUs is not built yet).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, it } from 'node:test';
import { canonicalJson } from '../../src/core/canonical-json.js';
import { computeEventId } from '../../src/core/event-hashing.js';
import type { Pdu } from '../../src/core/pdu.js';
import { ownServerKeys, verifyServerKeys } from '../../src/core/server-keys.js';
import { generateSigningKey } from '../../src/core/signing.js';
import { parseXMatrixHeader, verifyXMatrix, xMatrixHeader } from '../../src/core/x-matrix.js';
import { createTestDatabase, forEachDatabase, type TestDatabase } from '../helpers/databases.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { eventually } from '../helpers/eventually.js';
import {
  federationEnv,
  freePort,
  httpsJson,
  makeTestCa,
  type TestCa,
} from '../helpers/federation.js';
import { startServerOn, type TestServer } from '../helpers/server.js';

interface Received {
  txnId: string;
  pdus: { type: string; content: { n?: number }; room_id: string }[];
  edus: { edu_type: string; content: { n: number } }[];
}

/** A destination that records the transactions it is sent, checking each one's X-Matrix. */
function recordingPeer(ca: TestCa, port: number, origin: () => string) {
  const serverName = `127.0.0.1:${port}`;
  const key = generateSigningKey();
  const received: Received[] = [];
  const refused: string[] = [];
  let originKey: Buffer | null = null;
  const server: Server = createServer({ cert: ca.certPem, key: ca.keyPem }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const url = req.url ?? '';
        const reply = (status: number, body: unknown) =>
          res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
        if (url === '/_matrix/key/v2/server')
          return reply(200, ownServerKeys(serverName, key, [], Date.now() + 3600_000));
        const match = /^\/_matrix\/federation\/v1\/send\/([^/?]+)$/.exec(url);
        if (req.method !== 'PUT' || !match) return reply(404, { errcode: 'M_UNRECOGNIZED' });
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Received;
        if (!originKey) {
          const keys = await httpsJson(ca, `https://${origin()}/_matrix/key/v2/server`);
          const verified = verifyServerKeys(keys.body, origin());
          if ('error' in verified) throw new Error(verified.error);
          originKey = verified.keys[0]?.publicKey ?? null;
        }
        const auth = parseXMatrixHeader(req.headers.authorization ?? '');
        const authentic =
          auth !== null &&
          originKey !== null &&
          verifyXMatrix(
            auth,
            { method: 'PUT', uri: url, destination: serverName, content: body },
            originKey,
          );
        if (!authentic) {
          refused.push(url);
          return reply(401, { errcode: 'M_UNAUTHORIZED' });
        }
        const txnId = decodeURIComponent(match[1] ?? '');
        // Idempotent per transaction ID, as the spec has receivers be.
        if (!received.some((t) => t.txnId === txnId))
          received.push({ txnId, pdus: body.pdus, edus: body.edus ?? [] });
        reply(200, { pdus: {} });
      })().catch((err: unknown) => res.writeHead(500).end(JSON.stringify({ error: String(err) })));
    });
  });
  return {
    serverName,
    key,
    received,
    refused,
    listen: () => new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve)),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

forEachDatabase('federation outbox and sender', (dialect) => {
  let ca: TestCa;
  let database: TestDatabase;
  let dataDir: string;
  let aPort: number;
  let a: TestServer;
  let peer: ReturnType<typeof recordingPeer>;
  let alice: TestUser;
  let roomId: string;
  const MESSAGES = 60;
  const EDUS = 120;

  const startA = async () => {
    a = await startServerOn(database, dataDir, federationEnv(ca, aPort));
  };

  before(async () => {
    ca = makeTestCa();
    database = await createTestDatabase(dialect);
    dataDir = mkdtempSync(path.join(tmpdir(), 'commons-data-'));
    aPort = await freePort();
    await startA();
    peer = recordingPeer(ca, await freePort(), () => `127.0.0.1:${aPort}`);
    alice = await registerUser(a, 'alice');
    const created = await a.request<{ room_id: string }>('POST', '/_matrix/client/v3/createRoom', {
      token: alice.accessToken,
      body: { preset: 'public_chat' },
    });
    assert.equal(created.status, 200);
    roomId = created.body.room_id;
  });
  after(async () => {
    await a?.close();
    await peer?.close();
    await database?.drop();
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(ca.dir, { recursive: true, force: true });
  });

  it('stores a remote member as a remote join would, queueing nothing for it', async () => {
    const carol = `@carol:${peer.serverName}`;
    const pdu = {
      type: 'm.room.member',
      state_key: carol,
      sender: carol,
      room_id: roomId,
      content: { membership: 'join' },
      origin_server_ts: Date.now(),
      depth: 100,
      prev_events: [],
      auth_events: [],
      hashes: { sha256: 'x' },
      signatures: {},
    } as unknown as Pdu;
    const eventId = computeEventId(pdu, '10');
    await a.running.storage.tx('testRemoteJoin', async (stores) => {
      const position = await stores.rooms.nextStreamPosition();
      await stores.rooms.persistEvent(
        {
          eventId,
          roomId,
          pdu,
          json: canonicalJson(pdu),
          clientJson: JSON.stringify({ ...pdu, event_id: eventId }),
          membership: { userId: carol, membership: 'join', displayname: null, avatarUrl: null },
        },
        position,
      );
    });
    const pending = await a.running.storage.stores.federationOutbox.selectPendingDestinations();
    assert.deepEqual(pending, []);
  });

  it('queues each new event for the remote member’s server while it is down; sending is not held up', async () => {
    for (let n = 0; n < MESSAGES; n++) {
      const sent = await a.request(
        'PUT',
        `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/t${n}`,
        {
          token: alice.accessToken,
          body: { msgtype: 'm.text', body: `message ${n}`, n },
        },
      );
      assert.equal(sent.status, 200);
    }
    const federation = a.running.services.federation;
    assert.ok(federation);
    await a.running.storage.tx('testEdus', async (stores) => {
      for (let n = 0; n < EDUS; n++)
        await federation.enqueue(stores, [peer.serverName], 'edu', {
          edu_type: 'org.commons.test',
          content: { n },
        });
    });
    const queued = await a.running.storage.stores.federationOutbox.selectOutbox(
      peer.serverName,
      1000,
      1000,
    );
    assert.equal(queued.filter((e) => e.kind === 'pdu').length, MESSAGES);
    assert.equal(queued.filter((e) => e.kind === 'edu').length, EDUS);
    assert.equal(peer.received.length, 0);
  });

  it('after a restart of the sender, delivers everything once the destination is up and contacts us', async () => {
    await a.close();
    await startA();
    await peer.listen();
    // The destination contacts us (a signed request): its backoff ends at once.
    const uri = `/_matrix/federation/v1/query/profile?user_id=${encodeURIComponent(alice.userId)}`;
    const contact = await httpsJson(ca, `https://127.0.0.1:${aPort}${uri}`, {
      headers: {
        Authorization: xMatrixHeader(
          { method: 'GET', uri, origin: peer.serverName, destination: `127.0.0.1:${aPort}` },
          peer.key,
        ),
      },
    });
    assert.equal(contact.status, 200, JSON.stringify(contact.body));
    const count = () => peer.received.reduce((sum, t) => sum + t.pdus.length + t.edus.length, 0);
    await eventually(
      async () => count(),
      (n) => n >= MESSAGES + EDUS,
      30_000,
    );
    assert.deepEqual(peer.refused, []);
    const pdus = peer.received.flatMap((t) => t.pdus);
    const edus = peer.received.flatMap((t) => t.edus);
    assert.deepEqual(
      pdus.map((p) => p.content.n),
      Array.from({ length: MESSAGES }, (_, n) => n),
      'every message once, in order',
    );
    assert.ok(pdus.every((p) => p.type === 'm.room.message' && p.room_id === roomId));
    assert.deepEqual(
      edus.map((e) => e.content.n),
      Array.from({ length: EDUS }, (_, n) => n),
      'every EDU once, in order',
    );
    for (const t of peer.received) {
      assert.ok(t.pdus.length <= 50, `${t.pdus.length} PDUs in one transaction`);
      assert.ok(t.edus.length <= 100, `${t.edus.length} EDUs in one transaction`);
    }
    const left = await eventually(
      () => a.running.storage.stores.federationOutbox.selectPendingDestinations(),
      (rows) => rows.length === 0,
    );
    assert.deepEqual(left, []);
  });

  it('a message sent now goes straight out', async () => {
    const before = peer.received.length;
    const sent = await a.request(
      'PUT',
      `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/late`,
      {
        token: alice.accessToken,
        body: { msgtype: 'm.text', body: 'late', n: MESSAGES },
      },
    );
    assert.equal(sent.status, 200);
    await eventually(
      async () => peer.received.length,
      (n) => n > before,
      10_000,
    );
    assert.deepEqual(
      peer.received.slice(before).flatMap((t) => t.pdus.map((p) => p.content.n)),
      [MESSAGES],
    );
  });

  it('only one process holds the right to send to a destination until its lease lapses', async () => {
    const outbox = a.running.storage.stores.federationOutbox;
    const now = Date.now();
    assert.equal(await outbox.updateLease('lease.example', 'one', now, now + 1000), true);
    assert.equal(await outbox.updateLease('lease.example', 'two', now, now + 1000), false);
    assert.equal(await outbox.updateLease('lease.example', 'one', now, now + 2000), true);
    assert.equal(await outbox.updateLease('lease.example', 'two', now + 2001, now + 3000), true);
    await outbox.releaseLease('lease.example', 'two');
    assert.equal(await outbox.updateLease('lease.example', 'one', now, now + 1000), true);
  });
});
