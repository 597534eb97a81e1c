/**
 * The deprecated `PUT /_matrix/federation/v1/invite/{roomId}/{eventId}`, against a fake
 * remote server (test/helpers/fake-remote.ts): the body is the invite event with its stripped
 * state in `unsigned.invite_room_state`, the answer `[200, { event }]` countersigned; the room
 * version is the one the stripped `m.room.create` names (the spec's assumed "1" or "2"
 * otherwise, which are not supported here); each refusal with its error, on both databases.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, it } from 'node:test';
import type { Pdu, RoomVersionId } from '../../src/core/pdu.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { forEachDatabase } from '../helpers/databases.js';
import { startFakeRemote, type FakeRemote } from '../helpers/fake-remote.js';
import { makeTestCa, startFederatedServer, type TestCa } from '../helpers/federation.js';
import type { TestServer } from '../helpers/server.js';

const C = '/_matrix/client/v3';
const F = '/_matrix/federation';
const enc = encodeURIComponent;

forEachDatabase('federation: invites v1', (dialect) => {
  let ca: TestCa;
  let a: TestServer & { serverName: string };
  let remote: FakeRemote;
  let alice: TestUser;
  let bob: string;
  const version: RoomVersionId = '11';

  before(async () => {
    ca = makeTestCa();
    a = await startFederatedServer(dialect, ca);
    remote = await startFakeRemote(ca);
    alice = await registerUser(a, 'alice');
    bob = `@bob:${remote.serverName}`;
  });
  after(async () => {
    await a?.close();
    await remote?.close();
    rmSync(ca.dir, { recursive: true, force: true });
  });

  const inviteOf = (roomId: string, target: string, overrides: { sender?: string } = {}) =>
    remote.event(version, {
      roomId,
      type: 'm.room.member',
      sender: overrides.sender ?? bob,
      stateKey: target,
      content: { membership: 'invite' },
      authEvents: [],
      prevEvents: [],
      depth: 5,
    });
  const strippedOf = (roomVersion: string | undefined) => [
    ...(roomVersion !== undefined
      ? [
          {
            type: 'm.room.create',
            state_key: '',
            content: { room_version: roomVersion },
            sender: bob,
          },
        ]
      : []),
    { type: 'm.room.name', state_key: '', content: { name: 'Afar' }, sender: bob },
  ];
  const put = (
    roomId: string,
    eventId: string,
    body: unknown,
  ): Promise<{ status: number; body: unknown }> =>
    remote.request(a.serverName, 'PUT', `${F}/v1/invite/${enc(roomId)}/${enc(eventId)}`, body);
  const withState = (pdu: Pdu, roomVersion: string | undefined) => ({
    ...pdu,
    unsigned: { invite_room_state: strippedOf(roomVersion) },
  });

  it('answers [200, { event }] countersigned; the invite shows in /sync with its stripped state', async () => {
    const roomId = `!v1room:${remote.serverName}`;
    const invite = inviteOf(roomId, alice.userId);
    const res = await put(roomId, invite.eventId, withState(invite.pdu, version));
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.ok(Array.isArray(res.body), 'the v1 answer is an array');
    const [code, container] = res.body as [number, { event: Pdu }];
    assert.equal(code, 200);
    assert.equal(container.event.type, 'm.room.member');
    assert.equal(container.event.state_key, alice.userId);
    assert.equal(container.event.content.membership, 'invite');
    assert.ok(container.event.signatures[a.serverName], 'signed by the invited server');
    assert.ok(container.event.signatures[remote.serverName], "the inviter's signature kept");
    const sync = await a.request<{
      rooms: {
        invite: Record<
          string,
          { invite_state: { events: { type: string; content: Record<string, unknown> }[] } }
        >;
      };
    }>('GET', `${C}/sync`, { token: alice.accessToken });
    const shown = sync.body.rooms.invite[roomId]?.invite_state.events ?? [];
    assert.equal(shown.find((e) => e.type === 'm.room.name')?.content.name, 'Afar');
    assert.equal(shown.find((e) => e.type === 'm.room.member')?.content.membership, 'invite');
  });

  it('without a create event naming the version: room version 1 assumed, 400 M_INCOMPATIBLE_ROOM_VERSION', async () => {
    const roomId = `!v1old:${remote.serverName}`;
    const invite = inviteOf(roomId, alice.userId);
    for (const body of [invite.pdu, withState(invite.pdu, undefined), withState(invite.pdu, '2')]) {
      const res = await put(roomId, invite.eventId, body);
      assert.equal(res.status, 400, JSON.stringify(res.body));
      assert.equal((res.body as { errcode: string }).errcode, 'M_INCOMPATIBLE_ROOM_VERSION');
    }
  });

  it('refusals: not an event, wrong ID, another room, not an invite, a stranger sender, a remote or unknown invitee', async () => {
    const roomId = `!v1bad:${remote.serverName}`;
    const errcode = (res: { body: unknown }) => (res.body as { errcode?: string }).errcode;

    const notObject = await put(roomId, '$x', ['not', 'an', 'event']);
    assert.equal(notObject.status, 400, JSON.stringify(notObject.body));
    assert.equal(errcode(notObject), 'M_BAD_JSON');

    const invite = inviteOf(roomId, alice.userId);
    const wrongId = await put(roomId, '$another', withState(invite.pdu, version));
    assert.equal(wrongId.status, 400);
    assert.equal(errcode(wrongId), 'M_BAD_JSON');

    const otherRoom = await put(`!elsewhere:${remote.serverName}`, invite.eventId, {
      ...withState(invite.pdu, version),
    });
    assert.equal(otherRoom.status, 400);
    assert.equal(errcode(otherRoom), 'M_BAD_JSON');

    const message = remote.event(version, {
      roomId,
      type: 'm.room.message',
      sender: bob,
      content: { msgtype: 'm.text', body: 'hi' },
      authEvents: [],
      prevEvents: [],
      depth: 5,
    });
    const notInvite = await put(roomId, message.eventId, withState(message.pdu, version));
    assert.equal(notInvite.status, 400);
    assert.equal(errcode(notInvite), 'M_BAD_JSON');

    const stranger = inviteOf(roomId, alice.userId, { sender: '@eve:elsewhere.test' });
    const fromStranger = await put(roomId, stranger.eventId, withState(stranger.pdu, version));
    assert.equal(fromStranger.status, 403);
    assert.equal(errcode(fromStranger), 'M_FORBIDDEN');

    const remoteInvitee = inviteOf(roomId, '@someone:elsewhere.test');
    const notOurs = await put(roomId, remoteInvitee.eventId, withState(remoteInvitee.pdu, version));
    assert.equal(notOurs.status, 403);
    assert.equal(errcode(notOurs), 'M_FORBIDDEN');

    const nobody = inviteOf(roomId, `@nobody:${a.serverName}`);
    const unknown = await put(roomId, nobody.eventId, withState(nobody.pdu, version));
    assert.equal(unknown.status, 404);
    assert.equal(errcode(unknown), 'M_NOT_FOUND');
  });

  it('unauthenticated: 401 M_UNAUTHORIZED', async () => {
    const res = await a.request('PUT', `${F}/v1/invite/${enc('!r:x')}/${enc('$e')}`, {
      body: {},
    });
    assert.equal(res.status, 401);
    assert.equal((res.body as { errcode: string }).errcode, 'M_UNAUTHORIZED');
  });
});
