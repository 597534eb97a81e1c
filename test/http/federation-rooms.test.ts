/**
 * Rooms over federation, receiving and serving, against a fake remote server with its own key
 * (test/helpers/fake-remote.ts) that signs its requests and events: make_join/send_join v2,
 * PUT /send (idempotent, a forged signature and a wrong content hash, a fork of two
 * concurrent events, a gap filled from the origin), /state, /state_ids, /event, /event_auth,
 * /backfill, /get_missing_events, make_leave/send_leave, make_knock/send_knock, server ACLs —
 * each with its errors — on both databases.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, it } from 'node:test';
import { addContentHash, computeEventId } from '../../src/core/event-hashing.js';
import type { Pdu, RoomVersionId } from '../../src/core/pdu.js';
import { signPdu } from '../../src/core/signing.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { forEachDatabase } from '../helpers/databases.js';
import { eventually } from '../helpers/eventually.js';
import { startFakeRemote, type FakeRemote } from '../helpers/fake-remote.js';
import { makeTestCa, startFederatedServer, type TestCa } from '../helpers/federation.js';
import type { TestServer } from '../helpers/server.js';

const C = '/_matrix/client/v3';
const F = '/_matrix/federation';
const enc = encodeURIComponent;

forEachDatabase('federation: rooms received and served', (dialect) => {
  let ca: TestCa;
  let a: TestServer & { serverName: string };
  let remote: FakeRemote;
  let stranger: FakeRemote;
  let alice: TestUser;
  let roomId: string;
  let bob: string;
  let bobJoin: { eventId: string; pdu: Pdu };
  /** What a message of Bob's cites: the create event, the power levels, his member event. */
  let messageAuth: string[];
  const version: RoomVersionId = '11';
  let txn = 0;

  before(async () => {
    ca = makeTestCa();
    a = await startFederatedServer(dialect, ca);
    remote = await startFakeRemote(ca);
    stranger = await startFakeRemote(ca);
    alice = await registerUser(a, 'alice');
    const created = await a.request<{ room_id: string }>('POST', `${C}/createRoom`, {
      token: alice.accessToken,
      body: { preset: 'public_chat', room_version: version, name: 'Commons room' },
    });
    assert.equal(created.status, 200);
    roomId = created.body.room_id;
    bob = `@bob:${remote.serverName}`;
  });
  after(async () => {
    await a?.close();
    await remote?.close();
    await stranger?.close();
    rmSync(ca.dir, { recursive: true, force: true });
  });

  /** Completes a template as the remote server would: content hash, signature, ID. */
  const complete = (template: Record<string, unknown>, server: FakeRemote = remote) => {
    const hashed = addContentHash({ ...template, signatures: {} } as unknown as Pdu);
    const pdu = signPdu(hashed, version, server.serverName, server.key);
    const eventId = computeEventId(pdu, version);
    server.events.set(eventId, pdu);
    return { eventId, pdu };
  };
  const send = (pdus: unknown[], edus: unknown[] = [], from: FakeRemote = remote) =>
    from.request(a.serverName, 'PUT', `${F}/v1/send/t${++txn}`, {
      origin: from.serverName,
      origin_server_ts: Date.now(),
      pdus,
      edus,
    });
  const joinedMembers = async () =>
    (
      await a.request<{ joined: Record<string, { display_name?: string }> }>(
        'GET',
        `${C}/rooms/${enc(roomId)}/joined_members`,
        { token: alice.accessToken },
      )
    ).body.joined;
  const messages = async () =>
    (
      await a.request<{ chunk: { event_id: string; content: Record<string, unknown> }[] }>(
        'GET',
        `${C}/rooms/${enc(roomId)}/messages?dir=b&limit=100`,
        { token: alice.accessToken },
      )
    ).body.chunk;
  const extremities = async () => {
    const sync = await a.request<{ rooms: { join: Record<string, unknown> } }>('GET', `${C}/sync`, {
      token: alice.accessToken,
    });
    void sync;
    const res = await remote.request(
      a.serverName,
      'GET',
      `${F}/v1/make_join/${enc(roomId)}/${enc(`@probe:${remote.serverName}`)}?ver=${version}`,
    );
    return res.body.event as { prev_events: string[]; depth: number; auth_events: string[] };
  };

  it('make_join: a template; unknown room, other version, other server, no signature refused', async () => {
    const ok = await remote.request(
      a.serverName,
      'GET',
      `${F}/v1/make_join/${enc(roomId)}/${enc(bob)}?ver=10&ver=${version}`,
    );
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(ok.body.room_version, version);
    assert.equal(ok.body.event.content.membership, 'join');
    assert.equal(ok.body.event.state_key, bob);
    const unknown = await remote.request(
      a.serverName,
      'GET',
      `${F}/v1/make_join/${enc('!nope:elsewhere')}/${enc(bob)}?ver=${version}`,
    );
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.errcode, 'M_NOT_FOUND');
    const incompatible = await remote.request(
      a.serverName,
      'GET',
      `${F}/v1/make_join/${enc(roomId)}/${enc(bob)}?ver=1`,
    );
    assert.equal(incompatible.status, 400);
    assert.equal(incompatible.body.errcode, 'M_INCOMPATIBLE_ROOM_VERSION');
    const other = await remote.request(
      a.serverName,
      'GET',
      `${F}/v1/make_join/${enc(roomId)}/${enc('@eve:evil.example')}?ver=${version}`,
    );
    assert.equal(other.status, 403);
    assert.equal(other.body.errcode, 'M_FORBIDDEN');
    const res = await fetch(`${a.url}${F}/v1/make_join/${enc(roomId)}/${enc(bob)}?ver=${version}`);
    assert.equal(res.status, 401);
  });

  it('send_join: the remote user joins; state and auth chain answered; bad bodies refused', async () => {
    const template = await remote.request(
      a.serverName,
      'GET',
      `${F}/v1/make_join/${enc(roomId)}/${enc(bob)}?ver=${version}`,
    );
    const event = { ...template.body.event, content: { membership: 'join', displayname: 'Bob' } };
    bobJoin = complete(event);
    const wrongId = await remote.request(
      a.serverName,
      'PUT',
      `${F}/v2/send_join/${enc(roomId)}/${enc('$wrong')}`,
      bobJoin.pdu,
    );
    assert.equal(wrongId.status, 400);
    assert.equal(wrongId.body.errcode, 'M_BAD_JSON');
    const notJson = await remote.request(
      a.serverName,
      'PUT',
      `${F}/v2/send_join/${enc(roomId)}/${enc(bobJoin.eventId)}`,
      { type: 'nonsense' },
    );
    assert.equal(notJson.status, 400);
    const joined = await remote.request(
      a.serverName,
      'PUT',
      `${F}/v2/send_join/${enc(roomId)}/${enc(bobJoin.eventId)}`,
      bobJoin.pdu,
    );
    assert.equal(joined.status, 200, JSON.stringify(joined.body));
    const types = (joined.body.state as Pdu[]).map((p) => p.type);
    const idOf = (type: string) =>
      computeEventId((joined.body.state as Pdu[]).find((p) => p.type === type) as Pdu, version);
    messageAuth = [idOf('m.room.create'), idOf('m.room.power_levels'), bobJoin.eventId];
    assert.ok(types.includes('m.room.create') && types.includes('m.room.power_levels'));
    assert.ok(types.includes('m.room.name'));
    assert.ok((joined.body.auth_chain as Pdu[]).some((p) => p.type === 'm.room.create'));
    assert.equal(joined.body.members_omitted, false);
    assert.deepEqual(joined.body.servers_in_room, [a.serverName]);
    const members = await joinedMembers();
    assert.equal(members[bob]?.display_name, 'Bob');
    const listed = await a.request<{ chunk: { state_key: string }[] }>(
      'GET',
      `${C}/rooms/${enc(roomId)}/members`,
      { token: alice.accessToken },
    );
    assert.ok(listed.body.chunk.some((m) => m.state_key === bob));
    const mutual = await a.request<{ joined: string[] }>(
      'GET',
      `/_matrix/client/v1/user/mutual_rooms?user_id=${enc(bob)}`,
      { token: alice.accessToken },
    );
    assert.equal(mutual.status, 200, JSON.stringify(mutual.body));
    assert.deepEqual(mutual.body.joined, [roomId]);
  });

  it('/send: messages accepted, idempotent; our events reach the remote server', async () => {
    const t = await extremities();
    const hello = remote.event(version, {
      roomId,
      type: 'm.room.message',
      sender: bob,
      content: { msgtype: 'm.text', body: 'hello from afar' },
      authEvents: messageAuth,
      prevEvents: t.prev_events,
      depth: t.depth,
    });
    const first = await send([hello.pdu]);
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.deepEqual(first.body.pdus, { [hello.eventId]: {} });
    const again = await remote.request(a.serverName, 'PUT', `${F}/v1/send/t${txn}`, {
      origin: remote.serverName,
      origin_server_ts: Date.now(),
      pdus: [hello.pdu],
    });
    assert.deepEqual(again.body, first.body);
    const chunk = await messages();
    assert.equal(chunk.filter((e) => e.event_id === hello.eventId).length, 1);
    const sent = await a.request<{ event_id: string }>(
      'PUT',
      `${C}/rooms/${enc(roomId)}/send/m.room.message/back`,
      { token: alice.accessToken, body: { msgtype: 'm.text', body: 'hello back' } },
    );
    await eventually(
      async () =>
        remote.received.some((t) =>
          t.pdus.some((p) => computeEventId(p, version) === sent.body.event_id),
        ),
      (arrived) => arrived,
    );
  });

  it('/send: a forged signature dropped, a wrong content hash stored redacted, limits', async () => {
    const t = await extremities();
    const spec = {
      roomId,
      type: 'm.room.message',
      sender: bob,
      authEvents: messageAuth,
      prevEvents: t.prev_events,
      depth: t.depth,
    };
    const forgedBase = stranger.event(version, { ...spec, content: { body: 'forged' } });
    const forged = {
      ...forgedBase.pdu,
      signatures: { [remote.serverName]: Object.values(forgedBase.pdu.signatures)[0] },
    };
    const wrongHash = remote.event(version, { ...spec, content: { body: 'original' } });
    const tampered = { ...wrongHash.pdu, content: { body: 'tampered', msgtype: 'm.text' } };
    const res = await send([forged, tampered]);
    assert.equal(res.status, 200);
    const forgedId = computeEventId(forged as Pdu, version);
    assert.ok('error' in (res.body.pdus[forgedId] ?? {}), JSON.stringify(res.body));
    assert.deepEqual(res.body.pdus[wrongHash.eventId], {});
    const chunk = await messages();
    assert.ok(!chunk.some((e) => e.event_id === forgedId));
    const stored = chunk.find((e) => e.event_id === wrongHash.eventId);
    assert.deepEqual(stored?.content, {}, 'redacted: its content is gone');
    const tooMany = await send(Array.from({ length: 51 }, () => tampered));
    assert.equal(tooMany.status, 400);
    const notJson = await remote.request(a.serverName, 'PUT', `${F}/v1/send/bad${txn}`, {
      pdus: 'no',
    });
    assert.equal(notJson.status, 400);
  });

  it('/send: two concurrent profile changes resolve to the later one, in either order', async () => {
    const t = await extremities();
    const profile = (name: string, ts: number) =>
      remote.event(version, {
        roomId,
        type: 'm.room.member',
        sender: bob,
        stateKey: bob,
        content: { membership: 'join', displayname: name },
        authEvents: [...t.auth_events, bobJoin.eventId],
        prevEvents: t.prev_events,
        depth: t.depth,
        ts,
      });
    const early = profile('Bob early', Date.now() - 1000);
    const late = profile('Bob late', Date.now());
    const res = await send([late.pdu, early.pdu]);
    assert.deepEqual(res.body.pdus, { [late.eventId]: {}, [early.eventId]: {} });
    assert.equal((await joinedMembers())[bob]?.display_name, 'Bob late');
    const state = await a.request<{ displayname?: string }>(
      'GET',
      `${C}/rooms/${enc(roomId)}/state/m.room.member/${enc(bob)}`,
      { token: alice.accessToken },
    );
    assert.equal(state.body.displayname, 'Bob late');
  });

  it('/send: a gap is filled with the state asked of the origin', async () => {
    const t = await extremities();
    const ids = await remote.request(
      a.serverName,
      'GET',
      `${F}/v1/state_ids/${enc(roomId)}?event_id=${enc(t.prev_events[0] ?? '')}`,
    );
    assert.equal(ids.status, 200);
    const stateBefore = ids.body.pdu_ids as string[];
    const unseen = remote.event(version, {
      roomId,
      type: 'm.room.message',
      sender: bob,
      content: { msgtype: 'm.text', body: 'never sent' },
      authEvents: messageAuth,
      prevEvents: t.prev_events,
      depth: t.depth,
    });
    const prevPdu = t.prev_events[0] ?? '';
    remote.stateAfter.set(unseen.eventId, [...new Set([...stateBefore, prevPdu])]);
    const next = remote.event(version, {
      roomId,
      type: 'm.room.message',
      sender: bob,
      content: { msgtype: 'm.text', body: 'after the gap' },
      authEvents: messageAuth,
      prevEvents: [unseen.eventId],
      depth: t.depth + 1,
    });
    const res = await send([next.pdu]);
    assert.deepEqual(res.body.pdus, { [next.eventId]: {} });
    const chunk = await messages();
    assert.ok(chunk.some((e) => e.event_id === next.eventId));
  });

  it('reads: /state, /state_ids, /event, /event_auth, /backfill, /get_missing_events and their errors', async () => {
    const at = bobJoin.eventId;
    const stateIds = await remote.request(
      a.serverName,
      'GET',
      `${F}/v1/state_ids/${enc(roomId)}?event_id=${enc(at)}`,
    );
    assert.equal(stateIds.status, 200);
    assert.ok((stateIds.body.pdu_ids as string[]).length >= 5);
    assert.ok(!(stateIds.body.pdu_ids as string[]).includes(at), 'the state before the event');
    const state = await remote.request(
      a.serverName,
      'GET',
      `${F}/v1/state/${enc(roomId)}?event_id=${enc(at)}`,
    );
    assert.equal(state.status, 200);
    assert.equal((state.body.pdus as Pdu[]).length, (stateIds.body.pdu_ids as string[]).length);
    const event = await remote.request(a.serverName, 'GET', `${F}/v1/event/${enc(at)}`);
    assert.equal(event.status, 200);
    assert.equal(computeEventId(event.body.pdus[0] as Pdu, version), at);
    const auth = await remote.request(
      a.serverName,
      'GET',
      `${F}/v1/event_auth/${enc(roomId)}/${enc(at)}`,
    );
    assert.equal(auth.status, 200);
    assert.ok((auth.body.auth_chain as Pdu[]).some((p) => p.type === 'm.room.create'));
    const backfill = await remote.request(
      a.serverName,
      'GET',
      `${F}/v1/backfill/${enc(roomId)}?v=${enc(at)}&limit=5`,
    );
    assert.equal(backfill.status, 200);
    assert.equal((backfill.body.pdus as Pdu[]).length, 5);
    assert.equal(computeEventId((backfill.body.pdus as Pdu[])[0] as Pdu, version), at);
    const latest = await a.request<{ event_id: string }>(
      'PUT',
      `${C}/rooms/${enc(roomId)}/send/m.room.message/latest`,
      { token: alice.accessToken, body: { msgtype: 'm.text', body: 'latest' } },
    );
    const missing = await remote.request(
      a.serverName,
      'POST',
      `${F}/v1/get_missing_events/${enc(roomId)}`,
      { earliest_events: [at], latest_events: [latest.body.event_id], limit: 3 },
    );
    assert.equal(missing.status, 200);
    assert.ok((missing.body.events as Pdu[]).length > 0);

    // Errors: a server with no member, unknown rooms and events, bad bodies.
    const outsider = await stranger.request(
      a.serverName,
      'GET',
      `${F}/v1/state_ids/${enc(roomId)}?event_id=${enc(at)}`,
    );
    assert.equal(outsider.status, 403);
    assert.equal(outsider.body.errcode, 'M_FORBIDDEN');
    const outsiderEvent = await stranger.request(a.serverName, 'GET', `${F}/v1/event/${enc(at)}`);
    assert.equal(outsiderEvent.status, 403);
    const noRoom = await remote.request(
      a.serverName,
      'GET',
      `${F}/v1/state/${enc('!nope:x.test')}?event_id=${enc(at)}`,
    );
    assert.equal(noRoom.status, 404);
    assert.equal(noRoom.body.errcode, 'M_NOT_FOUND');
    const noEvent = await remote.request(a.serverName, 'GET', `${F}/v1/event/${enc('$nope')}`);
    assert.equal(noEvent.status, 404);
    const noEventState = await remote.request(
      a.serverName,
      'GET',
      `${F}/v1/state_ids/${enc(roomId)}?event_id=${enc('$nope')}`,
    );
    assert.equal(noEventState.status, 404);
    const badMissing = await remote.request(
      a.serverName,
      'POST',
      `${F}/v1/get_missing_events/${enc(roomId)}`,
      { latest_events: 'x' },
    );
    assert.equal(badMissing.status, 400);
    const badBackfill = await remote.request(
      a.serverName,
      'GET',
      `${F}/v1/backfill/${enc(roomId)}?limit=3`,
    );
    assert.equal(badBackfill.status, 400);
  });

  it('make_knock/send_knock on a knock room; make_leave/send_leave', async () => {
    const knockRoom = await a.request<{ room_id: string }>('POST', `${C}/createRoom`, {
      token: alice.accessToken,
      body: {
        room_version: version,
        initial_state: [
          { type: 'm.room.join_rules', state_key: '', content: { join_rule: 'knock' } },
        ],
      },
    });
    const carol = `@carol:${remote.serverName}`;
    const k = await remote.request(
      a.serverName,
      'GET',
      `${F}/v1/make_knock/${enc(knockRoom.body.room_id)}/${enc(carol)}?ver=${version}`,
    );
    assert.equal(k.status, 200, JSON.stringify(k.body));
    const knock = complete(k.body.event);
    const sent = await remote.request(
      a.serverName,
      'PUT',
      `${F}/v1/send_knock/${enc(knockRoom.body.room_id)}/${enc(knock.eventId)}`,
      knock.pdu,
    );
    assert.equal(sent.status, 200, JSON.stringify(sent.body));
    assert.ok(
      (sent.body.knock_room_state as { type: string }[]).some(
        (e) => e.type === 'm.room.join_rules',
      ),
    );
    const noVer = await remote.request(
      a.serverName,
      'GET',
      `${F}/v1/make_knock/${enc(knockRoom.body.room_id)}/${enc(carol)}`,
    );
    assert.equal(noVer.status, 400);
    // A join to the knock room is refused: not invited.
    const refused = await remote.request(
      a.serverName,
      'GET',
      `${F}/v1/make_join/${enc(knockRoom.body.room_id)}/${enc(`@dave:${remote.serverName}`)}?ver=${version}`,
    );
    assert.equal(refused.status, 403);

    const l = await remote.request(
      a.serverName,
      'GET',
      `${F}/v1/make_leave/${enc(roomId)}/${enc(bob)}`,
    );
    assert.equal(l.status, 200, JSON.stringify(l.body));
    const leave = complete(l.body.event);
    const left = await remote.request(
      a.serverName,
      'PUT',
      `${F}/v2/send_leave/${enc(roomId)}/${enc(leave.eventId)}`,
      leave.pdu,
    );
    assert.equal(left.status, 200, JSON.stringify(left.body));
    assert.equal((await joinedMembers())[bob], undefined);
  });

  it('invites v2: a remote room invites a local user, countersigned, seen in /sync; errors', async () => {
    const remoteRoom = `!afar:${remote.serverName}`;
    const inviteOf = (target: string) =>
      remote.event(version, {
        roomId: remoteRoom,
        type: 'm.room.member',
        sender: bob,
        stateKey: target,
        content: { membership: 'invite' },
        authEvents: [],
        prevEvents: [],
        depth: 5,
      });
    const invite = inviteOf(alice.userId);
    const stripped = [
      { type: 'm.room.name', state_key: '', content: { name: 'Afar' }, sender: bob },
      { type: 'm.room.join_rules', state_key: '', content: { join_rule: 'invite' }, sender: bob },
    ];
    const put = (event: { eventId: string; pdu: Pdu }, roomVersion: string = version) =>
      remote.request(
        a.serverName,
        'PUT',
        `${F}/v2/invite/${enc(remoteRoom)}/${enc(event.eventId)}`,
        {
          room_version: roomVersion,
          event: event.pdu,
          invite_room_state: stripped,
        },
      );
    const res = await put(invite);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const signatures = (res.body.event as Pdu).signatures;
    assert.ok(signatures[a.serverName] && signatures[remote.serverName]);
    const sync = await a.request<{
      rooms: {
        invite: Record<
          string,
          { invite_state: { events: { type: string; content: Record<string, unknown> }[] } }
        >;
      };
    }>('GET', `${C}/sync`, { token: alice.accessToken });
    const shown = sync.body.rooms.invite[remoteRoom]?.invite_state.events ?? [];
    assert.equal(shown.find((e) => e.type === 'm.room.name')?.content.name, 'Afar');
    assert.equal(shown.find((e) => e.type === 'm.room.member')?.content.membership, 'invite');

    const oldVersion = await put(invite, '1');
    assert.equal(oldVersion.status, 400);
    assert.equal(oldVersion.body.errcode, 'M_INCOMPATIBLE_ROOM_VERSION');
    const nobody = await put(inviteOf(`@nobody:${a.serverName}`));
    assert.equal(nobody.status, 404);
    const elsewhere = await put(inviteOf('@someone:elsewhere.test'));
    assert.equal(elsewhere.status, 403);
    const wrongId = await remote.request(
      a.serverName,
      'PUT',
      `${F}/v2/invite/${enc(remoteRoom)}/${enc('$other')}`,
      {
        room_version: version,
        event: invite.pdu,
      },
    );
    assert.equal(wrongId.status, 400);
    assert.equal(wrongId.body.errcode, 'M_BAD_JSON');
  });

  it('m.room.server_acl: a denied server is refused', async () => {
    const acl = await a.request('PUT', `${C}/rooms/${enc(roomId)}/state/m.room.server_acl/`, {
      token: alice.accessToken,
      body: {
        allow: ['*'],
        deny: [remote.serverName.split(':')[0] ?? ''],
        allow_ip_literals: true,
      },
    });
    assert.equal(acl.status, 200);
    const denied = await remote.request(
      a.serverName,
      'GET',
      `${F}/v1/make_join/${enc(roomId)}/${enc(bob)}?ver=${version}`,
    );
    assert.equal(denied.status, 403);
    assert.equal(denied.body.errcode, 'M_FORBIDDEN');
  });
});
