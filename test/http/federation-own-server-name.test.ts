/**
 * Our own users are told from other servers' by the exact server part of their IDs: with
 * this server named like a remote one but for case (`LOCALHOST:<port>` beside
 * `localhost:<port>`), the remote server's joined user is another server's, and our events
 * and EDUs reach it (a `LIKE '%:server'` match took it for ours on SQLite, where LIKE ignores
 * case). A server name with `_` (which LIKE read as any character) is not a valid one for
 * user IDs, so that case is tested on the comparison itself: test/storage/user-server.test.ts.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, it } from 'node:test';
import { addContentHash, computeEventId } from '../../src/core/event-hashing.js';
import type { Pdu } from '../../src/core/pdu.js';
import { signPdu } from '../../src/core/signing.js';
import { registerUser } from '../helpers/client.js';
import { forEachDatabase } from '../helpers/databases.js';
import { eventually } from '../helpers/eventually.js';
import { startFakeRemote, type FakeRemote } from '../helpers/fake-remote.js';
import { federationEnv, freePort, makeTestCa, type TestCa } from '../helpers/federation.js';
import { startTestServer } from '../helpers/server.js';

const C = '/_matrix/client/v3';
const F = '/_matrix/federation';
const enc = encodeURIComponent;

const CASES = [
  {
    name: 'differing only by case',
    remoteHost: 'localhost',
    ours: (port: number) => `LOCALHOST:${port}`,
  },
] as const;

forEachDatabase('federation: our users told from a server named almost like ours', (dialect) => {
  let ca: TestCa;
  const remotes: FakeRemote[] = [];
  const servers: { close(): Promise<void> }[] = [];
  before(() => {
    ca = makeTestCa();
  });
  after(async () => {
    for (const server of servers) await server.close();
    for (const remote of remotes) await remote.close();
    rmSync(ca.dir, { recursive: true, force: true });
  });

  for (const { name, remoteHost, ours } of CASES)
    it(`a remote server ${name} gets our events`, async () => {
      const remote = await startFakeRemote(ca, remoteHost);
      remotes.push(remote);
      const remotePort = Number(remote.serverName.split(':')[1]);
      const port = await freePort();
      const serverName = ours(remotePort);
      const a = await startTestServer(dialect, {
        ...federationEnv(ca, port),
        COMMONS_SERVER_NAME: serverName,
      });
      servers.push(a);
      const address = `127.0.0.1:${port}`;
      const alice = await registerUser(a, 'alice');
      assert.ok(alice.userId.endsWith(`:${serverName}`), alice.userId);
      const created = await a.request<{ room_id: string }>('POST', `${C}/createRoom`, {
        token: alice.accessToken,
        body: { preset: 'public_chat', room_version: '11' },
      });
      assert.equal(created.status, 200, JSON.stringify(created.body));
      const roomId = created.body.room_id;

      const bob = `@bob:${remote.serverName}`;
      const template = await remote.request(
        serverName,
        'GET',
        `${F}/v1/make_join/${enc(roomId)}/${enc(bob)}?ver=11`,
        undefined,
        address,
      );
      assert.equal(template.status, 200, JSON.stringify(template.body));
      const hashed = addContentHash({
        ...template.body.event,
        content: { membership: 'join' },
        signatures: {},
      } as Pdu);
      const pdu = signPdu(hashed, '11', remote.serverName, remote.key);
      const eventId = computeEventId(pdu, '11');
      const joined = await remote.request(
        serverName,
        'PUT',
        `${F}/v2/send_join/${enc(roomId)}/${enc(eventId)}`,
        pdu,
        address,
      );
      assert.equal(joined.status, 200, JSON.stringify(joined.body));

      const sent = await a.request<{ event_id: string }>(
        'PUT',
        `${C}/rooms/${enc(roomId)}/send/m.room.message/t1`,
        { token: alice.accessToken, body: { msgtype: 'm.text', body: 'to the other server' } },
      );
      assert.equal(sent.status, 200, JSON.stringify(sent.body));
      const typing = await a.request(
        'PUT',
        `${C}/rooms/${enc(roomId)}/typing/${enc(alice.userId)}`,
        { token: alice.accessToken, body: { typing: true, timeout: 30_000 } },
      );
      assert.equal(typing.status, 200);
      // The message, and the typing notice (sent to the servers sharing a room with alice).
      const received = await eventually(
        async () => remote.received,
        (received) =>
          received.some((t) => t.pdus.some((p) => p.content.body === 'to the other server')) &&
          received.some((t) =>
            t.edus.some((edu) => (edu as { edu_type?: string }).edu_type === 'm.typing'),
          ),
        20_000,
      );
      assert.ok(
        received.some((t) => t.pdus.some((p) => p.content.body === 'to the other server')),
        'the message reached the other server',
      );
      assert.ok(
        received.some((t) =>
          t.edus.some((edu) => (edu as { edu_type?: string }).edu_type === 'm.typing'),
        ),
        'the typing notice reached it',
      );
    });
});
