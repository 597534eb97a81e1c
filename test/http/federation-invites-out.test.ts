/**
 * Inviting another server's user to a local room: the invite goes to the invitee's server
 * (`PUT /_matrix/federation/v2/invite/…`) with the room's stripped state, and the room keeps
 * the event that server countersigned. The invitee's server here is a small peer of the test's
 * own that signs with its own key, or refuses, or answers wrongly; kicks and bans of a remote
 * member are queued for that member's server.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:https';
import { rmSync } from 'node:fs';
import { after, before, it } from 'node:test';
import { canonicalJson } from '../../src/core/canonical-json.js';
import { computeEventId } from '../../src/core/event-hashing.js';
import type { Pdu, RoomVersionId } from '../../src/core/pdu.js';
import { ownServerKeys } from '../../src/core/server-keys.js';
import { generateSigningKey, signPdu, verifyPduSignature } from '../../src/core/signing.js';
import { forEachDatabase } from '../helpers/databases.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { freePort, makeTestCa, startFederatedServer, type TestCa } from '../helpers/federation.js';
import type { TestServer } from '../helpers/server.js';

type Federated = TestServer & { serverName: string; port: number };
type Mode = 'sign' | 'refuse' | 'tamper' | 'unsigned';
const r = encodeURIComponent;

interface InviteRequest {
  path: string;
  body: { room_version: RoomVersionId; event: Pdu; invite_room_state: Pdu[] };
}

/** The invitee's server: countersigns invites (or, by mode, refuses or answers wrongly). */
function invitePeer(ca: TestCa, port: number) {
  const serverName = `127.0.0.1:${port}`;
  const key = generateSigningKey();
  const received: InviteRequest[] = [];
  let mode: Mode = 'sign';
  const server: Server = createServer({ cert: ca.certPem, key: ca.keyPem }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = req.url ?? '';
      const reply = (status: number, body: unknown) =>
        res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
      if (url === '/_matrix/key/v2/server')
        return reply(200, ownServerKeys(serverName, key, [], Date.now() + 3600_000));
      if (req.method !== 'PUT' || !url.startsWith('/_matrix/federation/v2/invite/'))
        return reply(404, { errcode: 'M_UNRECOGNIZED', error: 'Unrecognized request' });
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as InviteRequest['body'];
      received.push({ path: url, body });
      if (mode === 'refuse') return reply(403, { errcode: 'M_FORBIDDEN', error: 'Not today' });
      if (mode === 'unsigned') return reply(200, { event: body.event });
      const signed = signPdu(body.event, body.room_version, serverName, key);
      if (mode === 'tamper')
        return reply(200, { event: { ...signed, content: { membership: 'join' } } });
      return reply(200, { event: signed });
    });
  });
  return {
    serverName,
    key,
    received,
    setMode: (next: Mode) => {
      mode = next;
    },
    listen: () => new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve)),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

forEachDatabase('invites of other servers’ users', (dialect) => {
  let ca: TestCa;
  let a: Federated;
  let peer: ReturnType<typeof invitePeer>;
  let alice: TestUser;
  let roomId: string;

  const invite = (user: string, room = roomId) =>
    a.request<{ errcode?: string; error?: string }>(
      'POST',
      `/_matrix/client/v3/rooms/${r(room)}/invite`,
      { token: alice.accessToken, body: { user_id: user } },
    );
  const memberEvent = (user: string) =>
    a.request<{ membership?: string }>(
      'GET',
      `/_matrix/client/v3/rooms/${r(roomId)}/state/m.room.member/${r(user)}`,
      { token: alice.accessToken },
    );

  before(async () => {
    ca = makeTestCa();
    a = await startFederatedServer(dialect, ca);
    peer = invitePeer(ca, await freePort());
    await peer.listen();
    alice = await registerUser(a, 'alice');
    const created = await a.request<{ room_id: string }>('POST', '/_matrix/client/v3/createRoom', {
      token: alice.accessToken,
      body: { name: 'Invitation only', room_version: '11' },
    });
    assert.equal(created.status, 200);
    roomId = created.body.room_id;
  });
  after(async () => {
    await a?.close();
    await peer?.close();
    rmSync(ca.dir, { recursive: true, force: true });
  });

  it('sends the invite with stripped state and keeps the countersigned event', async () => {
    const carol = `@carol:${peer.serverName}`;
    const answer = await invite(carol);
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    const request = peer.received.at(-1);
    assert.ok(request);
    const { event, room_version: version, invite_room_state: stripped } = request.body;
    assert.equal(version, '11');
    assert.equal(event.state_key, carol);
    assert.equal(event.content.membership, 'invite');
    assert.equal(
      request.path,
      `/_matrix/federation/v2/invite/${r(roomId)}/${r(computeEventId(event, '11'))}`,
    );
    const types = stripped.map((e) => e.type).sort();
    assert.ok(types.includes('m.room.create') && types.includes('m.room.name'), types.join());
    assert.ok(stripped.every((e) => !('event_id' in e) && e.room_id === roomId));
    assert.equal((await memberEvent(carol)).body.membership, 'invite');
    // The stored event carries the invitee's server's signature beside ours.
    const stored = await a.running.storage.stores.rooms.selectEvent(computeEventId(event, '11'));
    assert.ok(stored);
    const theirs = stored.pdu.signatures?.[peer.serverName] ?? {};
    const [keyId] = Object.keys(theirs);
    assert.ok(keyId);
    assert.ok(verifyPduSignature(stored.pdu, '11', peer.serverName, keyId, peer.key.publicKey));
    assert.ok(stored.pdu.signatures?.[a.serverName]);
    // Nothing goes to the invitee's server by /send: it has the invite already.
    const queued = await a.running.storage.stores.federationOutbox.selectOutbox(
      peer.serverName,
      100,
      100,
    );
    assert.deepEqual(
      queued.map((e) => (JSON.parse(e.payload) as Pdu).type),
      [],
    );
  });

  it('passes on the invitee’s server’s refusal and keeps nothing', async () => {
    peer.setMode('refuse');
    const dave = `@dave:${peer.serverName}`;
    const answer = await invite(dave);
    assert.equal(answer.status, 403);
    assert.equal(answer.body.errcode, 'M_FORBIDDEN');
    assert.equal((await memberEvent(dave)).status, 404);
  });

  it('refuses an answer that is another event or lacks the server’s signature (502)', async () => {
    for (const mode of ['tamper', 'unsigned'] as const) {
      peer.setMode(mode);
      const user = `@${mode}:${peer.serverName}`;
      const answer = await invite(user);
      assert.equal(answer.status, 502, mode);
      assert.equal(answer.body.errcode, 'M_UNKNOWN');
      assert.equal((await memberEvent(user)).status, 404);
    }
    peer.setMode('sign');
  });

  it('an unreachable server is 502; a user already invited again is fine; banned is 403', async () => {
    const answer = await invite('@erin:127.0.0.1:9');
    assert.equal(answer.status, 502);
    const again = await invite(`@carol:${peer.serverName}`);
    assert.equal(again.status, 200, JSON.stringify(again.body));
    const banned = `@frank:${peer.serverName}`;
    const ban = await a.request('POST', `/_matrix/client/v3/rooms/${r(roomId)}/ban`, {
      token: alice.accessToken,
      body: { user_id: banned },
    });
    assert.equal(ban.status, 200);
    const refused = await invite(banned);
    assert.equal(refused.status, 403);
  });

  it('createRoom invites remote users through their servers (is_direct kept)', async () => {
    const before = peer.received.length;
    const gina = `@gina:${peer.serverName}`;
    const created = await a.request<{ room_id: string }>('POST', '/_matrix/client/v3/createRoom', {
      token: alice.accessToken,
      body: { preset: 'trusted_private_chat', invite: [gina], is_direct: true },
    });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    assert.equal(peer.received.length, before + 1);
    const event = peer.received.at(-1)?.body.event;
    assert.equal(event?.state_key, gina);
    assert.equal(event?.content.is_direct, true);
  });

  it('a kick and a ban of a remote member are queued for their server', async () => {
    const hank = `@hank:127.0.0.1:9`;
    for (const action of ['invite', 'kick', 'ban'] as const) {
      if (action === 'invite') {
        // The member exists as a remote join would leave it.
        const pdu = {
          type: 'm.room.member',
          state_key: hank,
          sender: hank,
          room_id: roomId,
          content: { membership: 'join' },
          origin_server_ts: Date.now(),
          depth: 100,
          prev_events: [],
          auth_events: [],
          hashes: { sha256: 'x' },
          signatures: {},
        } as unknown as Pdu;
        const eventId = computeEventId(pdu, '11');
        await a.running.storage.tx('testRemoteJoin', async (stores) => {
          await stores.rooms.persistEvent(
            {
              eventId,
              roomId,
              pdu,
              json: canonicalJson(pdu),
              clientJson: JSON.stringify({ ...pdu, event_id: eventId }),
              membership: { userId: hank, membership: 'join', displayname: null, avatarUrl: null },
            },
            await stores.rooms.nextStreamPosition(),
          );
        });
        continue;
      }
      const done = await a.request('POST', `/_matrix/client/v3/rooms/${r(roomId)}/${action}`, {
        token: alice.accessToken,
        body: { user_id: hank, reason: action },
      });
      assert.equal(done.status, 200, JSON.stringify(done.body));
    }
    const queued = await a.running.storage.stores.federationOutbox.selectOutbox(
      '127.0.0.1:9',
      100,
      100,
    );
    const memberships = queued
      .map((e) => JSON.parse(e.payload) as Pdu)
      .filter((p) => p.type === 'm.room.member' && p.state_key === hank)
      .map((p) => p.content.membership);
    assert.deepEqual(memberships, ['leave', 'ban']);
  });
});
