/**
 * Membership queries about users of other servers, on three Commons servers A, B and C (TLS
 * from a CA made for the test). A pages `/mutual_rooms` one room at a time.
 * - `/mutual_rooms` on A about Bob of B: before he shares a room, after he joins A's room
 *   (send_join), after he joins C's room that Alice is in (his join reaches A over C's
 *   `/send`), after he leaves it (over B's `/send`); paging and tokens; the unstable paths;
 *   and B's own answer about Alice.
 * - An invite from a stranger (Carol of C) to Ann of A: Ann asks `/mutual_rooms` about Carol
 *   before accepting; `/members`, `/joined_members` and `/state` of the invited room are 403.
 * - Member lists of A's room with members of B and C: display names and avatars from their
 *   member events, `/members?at=` before C's member joined, the MSC2895 filters.
 * - Invite blocking (MSC4380): B's invite of a user of A who blocks invites is refused.
 * - A local user's typing, receipts, presence and device-list updates are queued only for the
 *   servers sharing a room with her; a remote user's cached device list is dropped when they
 *   share no room with A any more, and fetched afresh (new devices included) when they rejoin.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { canonicalJson } from '../../src/core/canonical-json.js';
import { computeEventId } from '../../src/core/event-hashing.js';
import type { Pdu } from '../../src/core/pdu.js';
import { forEachDatabase } from '../helpers/databases.js';
import { loginUser, registerUser, type TestUser } from '../helpers/client.js';
import { eventually } from '../helpers/eventually.js';
import {
  federationEnv,
  freePort,
  makeTestCa,
  startFederatedServer,
  type TestCa,
} from '../helpers/federation.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

type Federated = TestServer & { serverName: string; port: number };
const r = encodeURIComponent;
const WAIT_MS = 30_000;
/** A server name nothing answers for: what is queued for it stays in the outbox. */
const DEAD = '127.0.0.1:9';

/**
 * Stores a membership of a user of the DEAD server in a room, as a join or leave over
 * federation would leave it (that server never answers, so it cannot join for real).
 */
async function storeRemoteMembership(
  server: TestServer,
  roomId: string,
  userId: string,
  membership: 'join' | 'leave',
): Promise<void> {
  const pdu = {
    type: 'm.room.member',
    state_key: userId,
    sender: userId,
    room_id: roomId,
    content: { membership },
    origin_server_ts: Date.now(),
    depth: 100,
    prev_events: [],
    auth_events: [],
    hashes: { sha256: 'x' },
    signatures: {},
  } as unknown as Pdu;
  const eventId = computeEventId(pdu, '10');
  await server.running.storage.tx('testRemoteMembership', async (stores) => {
    const position = await stores.rooms.nextStreamPosition();
    await stores.rooms.persistEvent(
      {
        eventId,
        roomId,
        pdu,
        json: canonicalJson(pdu),
        clientJson: JSON.stringify({ ...pdu, event_id: eventId }),
        membership: { userId, membership, displayname: null, avatarUrl: null },
      },
      position,
    );
    await stores.stream.notify({ rooms: [roomId], memberRooms: [roomId], users: [userId] });
  });
}

const deviceKeysOf = (user: { userId: string; deviceId: string }) => ({
  user_id: user.userId,
  device_id: user.deviceId,
  algorithms: ['m.olm.v1.curve25519-aes-sha2', 'm.megolm.v1.aes-sha2'],
  keys: {
    [`curve25519:${user.deviceId}`]: 'curve-of-' + user.deviceId,
    [`ed25519:${user.deviceId}`]: 'ed-of-' + user.deviceId,
  },
  signatures: { [user.userId]: { [`ed25519:${user.deviceId}`]: 'sig' } },
});

interface MutualPage {
  joined: string[];
  count: number;
  next_batch?: string;
}

interface MemberEvent {
  type: string;
  state_key: string;
  sender: string;
  content: { membership: string; displayname?: string; avatar_url?: string };
}

forEachDatabase('membership queries about users of other servers', (dialect) => {
  let ca: TestCa;
  let a: Federated;
  let b: Federated;
  let c: Federated;
  let alice: TestUser;
  let ann: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  let roomA: string;
  let roomC: string;

  const client =
    (server: Federated, user: TestUser) =>
    <T = Record<string, unknown>>(method: string, path: string, body?: unknown) =>
      server.request<T>(method, path.startsWith('/_matrix') ? path : `/_matrix/client/v3${path}`, {
        token: user.accessToken,
        ...(body !== undefined ? { body } : {}),
      });
  /** Every page of `/v1/mutual_rooms` (A pages one room at a time), checked as it goes. */
  async function mutual(server: Federated, user: TestUser, other: string) {
    const rooms: string[] = [];
    let from: string | undefined;
    let count = -1;
    for (let i = 0; i < 20; i++) {
      const page = await client(server, user)<MutualPage>(
        'GET',
        `/_matrix/client/v1/mutual_rooms?user_id=${r(other)}${from ? `&from=${r(from)}` : ''}`,
      );
      assert.equal(page.status, 200, JSON.stringify(page.body));
      if (count >= 0) assert.equal(page.body.count, count, 'every page gives the same count');
      count = page.body.count;
      rooms.push(...page.body.joined);
      from = page.body.next_batch;
      if (!from) break;
    }
    assert.equal(rooms.length, count, 'the pages hold count rooms');
    return rooms;
  }
  const joinedOn = async (server: Federated, user: TestUser, roomId: string) =>
    (
      await client(server, user)<{ joined?: Record<string, { display_name?: string }> }>(
        'GET',
        `/rooms/${r(roomId)}/joined_members`,
      )
    ).body.joined ?? {};
  async function createRoom(server: Federated, user: TestUser, body: Record<string, unknown>) {
    const created = await client(server, user)<{ room_id: string }>('POST', '/createRoom', body);
    assert.equal(created.status, 200, JSON.stringify(created.body));
    return created.body.room_id;
  }
  async function join(server: Federated, user: TestUser, roomId: string, via: Federated) {
    const joined = await client(server, user)<{ room_id: string }>(
      'POST',
      `/join/${r(roomId)}?via=${r(via.serverName)}`,
      {},
    );
    assert.equal(joined.status, 200, JSON.stringify(joined.body));
  }
  /** Waits until `watcher` on `server` sees `userId` joined to (or gone from) the room. */
  async function waitJoined(
    server: Federated,
    watcher: TestUser,
    roomId: string,
    userId: string,
    joined = true,
  ) {
    const list = await eventually(
      () => joinedOn(server, watcher, roomId),
      (members) => userId in members === joined,
      WAIT_MS,
    );
    assert.equal(userId in list, joined, `${userId} joined=${joined} on ${server.serverName}`);
  }

  before(async () => {
    ca = makeTestCa();
    const portA = await freePort();
    a = Object.assign(
      await startTestServer(dialect, {
        ...federationEnv(ca, portA),
        COMMONS_MUTUAL_ROOMS_BATCH_SIZE: '1',
      }),
      { serverName: `127.0.0.1:${portA}`, port: portA },
    );
    b = await startFederatedServer(dialect, ca);
    c = await startFederatedServer(dialect, ca);
    alice = await registerUser(a, 'alice');
    ann = await registerUser(a, 'ann');
    bob = await registerUser(b, 'bob');
    carol = await registerUser(c, 'carol');
    for (const [server, user, name, avatar] of [
      [b, bob, 'Bob of B', 'mxc://b.example/bob'],
      [c, carol, 'Carol of C', 'mxc://c.example/carol'],
    ] as const) {
      const path = `/profile/${r(user.userId)}`;
      assert.equal(
        (await client(server, user)('PUT', `${path}/displayname`, { displayname: name })).status,
        200,
      );
      assert.equal(
        (await client(server, user)('PUT', `${path}/avatar_url`, { avatar_url: avatar })).status,
        200,
      );
    }
    roomA = await createRoom(a, alice, { preset: 'public_chat', name: "A's room" });
    await createRoom(b, bob, { preset: 'public_chat', name: "B's room" });
    roomC = await createRoom(c, carol, { preset: 'public_chat', name: "C's room" });
  });
  after(async () => {
    await a?.close();
    await b?.close();
    await c?.close();
    rmSync(ca.dir, { recursive: true, force: true });
  });

  describe('mutual rooms with a user of another server', () => {
    it('nothing is shared before Bob joins a room Alice is in', async () => {
      assert.deepEqual(await mutual(a, alice, bob.userId), []);
      assert.deepEqual(await mutual(a, alice, carol.userId), []);
      // Bob is in a room on B that A knows nothing of.
      assert.deepEqual(await mutual(b, bob, alice.userId), []);
    });

    it("Bob joins A's room (send_join): both servers answer it", async () => {
      await join(b, bob, roomA, a);
      assert.deepEqual(await mutual(a, alice, bob.userId), [roomA]);
      assert.deepEqual(await mutual(b, bob, alice.userId), [roomA]);
      // Ann, not in the room, shares nothing with Bob.
      assert.deepEqual(await mutual(a, ann, bob.userId), []);
    });

    it("Bob's join of C's room reaches A over /send; the pair's index follows", async () => {
      await join(a, alice, roomC, c);
      assert.deepEqual(await mutual(a, alice, carol.userId), [roomC]);
      assert.deepEqual(await mutual(a, alice, bob.userId), [roomA]);
      await join(b, bob, roomC, c);
      await waitJoined(a, alice, roomC, bob.userId);
      assert.deepEqual(await mutual(a, alice, bob.userId), [roomA, roomC]);
      assert.deepEqual((await mutual(b, bob, alice.userId)).sort(), [roomA, roomC].sort());
    });

    it('pages with tokens bound to the request; the unstable paths agree', async () => {
      const first = await client(a, alice)<MutualPage>(
        'GET',
        `/_matrix/client/v1/mutual_rooms?user_id=${r(bob.userId)}`,
      );
      assert.equal(first.status, 200);
      assert.deepEqual(first.body.joined, [roomA]);
      assert.equal(first.body.count, 2);
      assert.ok(first.body.next_batch);
      // Ann may not use Alice's token; nor may Alice use it about another user.
      const token = r(first.body.next_batch);
      const foreign = await client(a, ann)<{ errcode: string }>(
        'GET',
        `/_matrix/client/v1/mutual_rooms?user_id=${r(bob.userId)}&from=${token}`,
      );
      assert.equal(foreign.status, 400);
      assert.equal(foreign.body.errcode, 'M_INVALID_PARAM');
      const otherUser = await client(a, alice)<{ errcode: string }>(
        'GET',
        `/_matrix/client/v1/mutual_rooms?user_id=${r(carol.userId)}&from=${token}`,
      );
      assert.equal(otherUser.status, 400);
      assert.equal(otherUser.body.errcode, 'M_INVALID_PARAM');
      const bad = await client(a, alice)<{ errcode: string }>(
        'GET',
        `/_matrix/client/v1/mutual_rooms?user_id=${r('@bob:')}`,
      );
      assert.equal(bad.status, 400);
      assert.equal(bad.body.errcode, 'M_INVALID_PARAM');

      const unstable = '/_matrix/client/unstable/uk.half-shot.msc2666/user';
      const paged = await client(a, alice)<MutualPage & { next_batch_token?: string }>(
        'GET',
        `${unstable}/mutual_rooms?user_id=${r(bob.userId)}`,
      );
      assert.equal(paged.status, 200);
      assert.deepEqual(paged.body.joined, [roomA]);
      assert.ok(paged.body.next_batch_token);
      const rest = await client(a, alice)<MutualPage>(
        'GET',
        `${unstable}/mutual_rooms?user_id=${r(bob.userId)}&batch_token=${r(paged.body.next_batch_token)}`,
      );
      assert.deepEqual(rest.body.joined, [roomC]);
      assert.equal(rest.body.next_batch, undefined);
      for (const name of ['mutual_rooms', 'shared_rooms']) {
        const all = await client(a, alice)<MutualPage>(
          'GET',
          `${unstable}/${name}/${r(bob.userId)}`,
        );
        assert.equal(all.status, 200);
        assert.deepEqual(all.body, { joined: [roomA, roomC], count: 2 });
      }
    });

    it("Bob's leave reaches A over B's /send; the room leaves the pair", async () => {
      const left = await client(b, bob)('POST', `/rooms/${r(roomC)}/leave`, {});
      assert.equal(left.status, 200, JSON.stringify(left.body));
      await waitJoined(a, alice, roomC, bob.userId, false);
      assert.deepEqual(await mutual(a, alice, bob.userId), [roomA]);
      assert.deepEqual(await mutual(b, bob, alice.userId), [roomA]);
      // He joins again: back in the pair.
      await join(b, bob, roomC, c);
      await waitJoined(a, alice, roomC, bob.userId);
      assert.deepEqual(await mutual(a, alice, bob.userId), [roomA, roomC]);
    });
  });

  describe('an invite from a stranger on another server', () => {
    let invited: string;

    it('Ann, invited by Carol, asks what she shares with her before accepting', async () => {
      invited = await createRoom(c, carol, {
        preset: 'private_chat',
        name: 'Carol invites',
        topic: 'secret topic',
        invite: [ann.userId, alice.userId],
      });
      await eventually(
        () => client(a, ann)<{ rooms?: { invite?: Record<string, unknown> } }>('GET', '/sync'),
        (answer) => answer.body.rooms?.invite?.[invited] !== undefined,
        WAIT_MS,
      );
      assert.deepEqual(await mutual(a, ann, carol.userId), []);
      // Alice, invited too, shares C's room with Carol (not the room she is invited to).
      assert.deepEqual(await mutual(a, alice, carol.userId), [roomC]);
    });

    it('the invited room reveals nothing beyond its stripped state', async () => {
      for (const path of [
        `/rooms/${r(invited)}/members`,
        `/rooms/${r(invited)}/members?membership=join`,
        `/rooms/${r(invited)}/joined_members`,
        `/rooms/${r(invited)}/state`,
        `/rooms/${r(invited)}/state/m.room.topic/`,
      ]) {
        const answer = await client(a, ann)<{ errcode: string }>('GET', path);
        assert.equal(answer.status, 403, `${path}: ${JSON.stringify(answer.body)}`);
        assert.equal(answer.body.errcode, 'M_FORBIDDEN', path);
      }
      // History is readable as its visibility allows an invitee (as in a local room): this
      // server holds nothing of the room but the invite itself.
      const history = await client(a, ann)<{ chunk: MemberEvent[] }>(
        'GET',
        `/rooms/${r(invited)}/messages?dir=b`,
      );
      assert.equal(history.status, 200);
      for (const event of history.body.chunk) {
        assert.equal(event.type, 'm.room.member');
        assert.equal(event.state_key, ann.userId);
      }
    });

    it('an invite of a user who blocks invites is refused by her server (MSC4380)', async () => {
      const setPermission = async (content: Record<string, unknown>) => {
        const put = await client(a, ann)(
          'PUT',
          `/user/${r(ann.userId)}/account_data/m.invite_permission_config`,
          content,
        );
        assert.equal(put.status, 200);
      };
      const room = await createRoom(c, carol, { preset: 'private_chat' });
      await setPermission({ default_action: 'block' });
      const refused = await client(c, carol)<{ errcode: string }>(
        'POST',
        `/rooms/${r(room)}/invite`,
        { user_id: ann.userId },
      );
      assert.equal(refused.status, 403, JSON.stringify(refused.body));
      assert.equal(refused.body.errcode, 'M_INVITE_BLOCKED');
      await setPermission({});
      // Nothing was kept of the refused invite: it does not show once blocking is off.
      const invites = async () =>
        (await client(a, ann)<{ rooms?: { invite?: Record<string, unknown> } }>('GET', '/sync'))
          .body.rooms?.invite ?? {};
      assert.equal((await invites())[room], undefined);
      const sent = await client(c, carol)('POST', `/rooms/${r(room)}/invite`, {
        user_id: ann.userId,
      });
      assert.equal(sent.status, 200, JSON.stringify(sent.body));
      assert.ok((await invites())[room]);
    });

    it('after Alice accepts, the room is shared with Carol', async () => {
      await join(a, alice, invited, c);
      assert.deepEqual(await mutual(a, alice, carol.userId), [roomC, invited]);
      const members = await client(a, alice)<{ chunk: MemberEvent[] }>(
        'GET',
        `/rooms/${r(invited)}/members`,
      );
      assert.equal(members.status, 200);
      const byUser = Object.fromEntries(
        members.body.chunk.map((e) => [e.state_key, e.content.membership]),
      );
      assert.deepEqual(byUser, {
        [alice.userId]: 'join',
        [ann.userId]: 'invite',
        [carol.userId]: 'join',
      });
      // Ann, still only invited, is still refused.
      const still = await client(a, ann)('GET', `/rooms/${r(invited)}/members`);
      assert.equal(still.status, 403);
    });
  });

  describe("member lists of A's room with members of B and C", () => {
    let beforeCarol: string;

    it("joined members carry their servers' profiles", async () => {
      const sync = await client(a, alice)<{ next_batch: string }>('GET', '/sync');
      beforeCarol = sync.body.next_batch;
      await join(c, carol, roomA, a);
      const joined = await joinedOn(a, alice, roomA);
      assert.deepEqual(joined, {
        [alice.userId]: { display_name: 'alice' },
        [bob.userId]: { display_name: 'Bob of B', avatar_url: 'mxc://b.example/bob' },
        [carol.userId]: { display_name: 'Carol of C', avatar_url: 'mxc://c.example/carol' },
      });
      // B learns of Carol's join over A's /send, with the same profile.
      await waitJoined(b, bob, roomA, carol.userId);
      assert.deepEqual(await joinedOn(b, bob, roomA), joined);
    });

    it('/members now and at a point before Carol joined', async () => {
      const now = await client(a, alice)<{ chunk: MemberEvent[] }>(
        'GET',
        `/rooms/${r(roomA)}/members`,
      );
      assert.equal(now.status, 200);
      const names = (chunk: MemberEvent[]) =>
        Object.fromEntries(chunk.map((e) => [e.state_key, e.content.displayname ?? null]));
      assert.deepEqual(names(now.body.chunk), {
        [alice.userId]: 'alice',
        [bob.userId]: 'Bob of B',
        [carol.userId]: 'Carol of C',
      });
      const then = await client(a, alice)<{ chunk: MemberEvent[] }>(
        'GET',
        `/rooms/${r(roomA)}/members?at=${r(beforeCarol)}`,
      );
      assert.equal(then.status, 200, JSON.stringify(then.body));
      assert.deepEqual(names(then.body.chunk), {
        [alice.userId]: 'alice',
        [bob.userId]: 'Bob of B',
      });
    });

    it('MSC2895: membership filters over remote members', async () => {
      const invitee = `@dan:${b.serverName}`;
      assert.equal((await registerUser(b, 'dan')).userId, invitee);
      const sent = await client(a, alice)('POST', `/rooms/${r(roomA)}/invite`, {
        user_id: invitee,
      });
      assert.equal(sent.status, 200, JSON.stringify(sent.body));
      const list = async (query: string) => {
        const answer = await client(a, alice)<{ chunk: MemberEvent[] }>(
          'GET',
          `/rooms/${r(roomA)}/members?${query}`,
        );
        assert.equal(answer.status, 200, JSON.stringify(answer.body));
        return answer.body.chunk.map((e) => e.state_key).sort();
      };
      assert.deepEqual(await list('membership=invite'), [invitee]);
      assert.deepEqual(
        await list('membership=join&membership=invite'),
        [alice.userId, bob.userId, carol.userId, invitee].sort(),
      );
      assert.deepEqual(await list('not_membership=join'), [invitee]);
      assert.deepEqual(await list(`filter=${r(JSON.stringify({ senders: [carol.userId] }))}`), [
        carol.userId,
      ]);
      assert.deepEqual(
        await list(`filter=${r(JSON.stringify({ not_senders: [alice.userId] }))}`),
        [bob.userId, carol.userId].sort(),
      );
    });
  });
  describe('EDUs and device lists across servers', () => {
    let roomAnn: string;

    it("a local user's EDUs go only to the servers sharing a room with her", async () => {
      // Ann's room: Bob of B joined; Dora of the DEAD server was in it and left. Dora is still
      // in a room of Alice's, so A keeps queueing for her server: but nothing of Ann's.
      roomAnn = await createRoom(a, ann, { preset: 'public_chat' });
      await join(b, bob, roomAnn, a);
      const dora = `@dora:${DEAD}`;
      await storeRemoteMembership(a, roomAnn, dora, 'join');
      await storeRemoteMembership(a, roomAnn, dora, 'leave');
      const roomDora = await createRoom(a, alice, { preset: 'public_chat' });
      await storeRemoteMembership(a, roomDora, dora, 'join');

      const asAnn = client(a, ann);
      assert.equal(
        (
          await asAnn('PUT', `/rooms/${r(roomAnn)}/typing/${r(ann.userId)}`, {
            typing: true,
            timeout: 30000,
          })
        ).status,
        200,
      );
      const sent = await asAnn<{ event_id: string }>(
        'PUT',
        `/rooms/${r(roomAnn)}/send/m.room.message/edu1`,
        { msgtype: 'm.text', body: 'hello' },
      );
      assert.equal(sent.status, 200);
      assert.equal(
        (await asAnn('POST', `/rooms/${r(roomAnn)}/receipt/m.read/${r(sent.body.event_id)}`, {}))
          .status,
        200,
      );
      assert.equal(
        (await asAnn('PUT', `/presence/${r(ann.userId)}/status`, { presence: 'online' })).status,
        200,
      );
      assert.equal(
        (await asAnn('POST', '/keys/upload', { device_keys: deviceKeysOf(ann) })).status,
        200,
      );
      // Alice's presence, by contrast, is queued for Dora's server.
      assert.equal(
        (
          await client(a, alice)('PUT', `/presence/${r(alice.userId)}/status`, {
            presence: 'online',
          })
        ).status,
        200,
      );
      const queued = (
        await a.running.storage.stores.federationOutbox.selectOutbox(DEAD, 1000, 1000)
      ).map((entry) => entry.payload);
      assert.ok(
        queued.some((payload) => payload.includes('m.presence') && payload.includes(alice.userId)),
      );
      for (const payload of queued) {
        assert.ok(!payload.includes(ann.userId), `queued for ${DEAD}: ${payload}`);
        assert.ok(!payload.includes(roomAnn), `queued for ${DEAD}: ${payload}`);
      }
      // B, which shares Ann's room, has her typing.
      await eventually(
        async () =>
          (
            await client(b, bob)<{
              rooms?: {
                join?: Record<
                  string,
                  { ephemeral?: { events: { type: string; content: { user_ids?: string[] } }[] } }
                >;
              };
            }>('GET', '/sync')
          ).body.rooms?.join?.[roomAnn]?.ephemeral?.events ?? [],
        (events) =>
          events.some(
            (e) => e.type === 'm.typing' && (e.content.user_ids ?? []).includes(ann.userId),
          ),
        WAIT_MS,
      ).then((events) =>
        assert.ok(
          events.some(
            (e) => e.type === 'm.typing' && (e.content.user_ids ?? []).includes(ann.userId),
          ),
        ),
      );
    });

    it("a remote user's device list is dropped when they stop sharing a room, fetched again when they rejoin", async () => {
      const eve = await registerUser(b, 'eve');
      assert.equal(
        (await client(b, eve)('POST', '/keys/upload', { device_keys: deviceKeysOf(eve) })).status,
        200,
      );
      const roomDev = await createRoom(a, alice, { preset: 'public_chat' });
      await join(b, eve, roomDev, a);
      const devicesOfEve = async () => {
        const answer = await client(a, alice)<{
          device_keys: Record<string, Record<string, unknown>>;
          failures: Record<string, unknown>;
        }>('POST', '/keys/query', { device_keys: { [eve.userId]: [] } });
        assert.equal(answer.status, 200, JSON.stringify(answer.body));
        assert.deepEqual(answer.body.failures, {});
        return Object.keys(answer.body.device_keys[eve.userId] ?? {}).sort();
      };
      const cached = () =>
        a.running.storage.stores.remoteDevices.selectRemoteDeviceLists([eve.userId]);
      assert.deepEqual(await devicesOfEve(), [eve.deviceId]);
      assert.equal((await cached()).length, 1, 'A caches the list of a user sharing a room');

      assert.equal((await client(b, eve)('POST', `/rooms/${r(roomDev)}/leave`, {})).status, 200);
      await waitJoined(a, alice, roomDev, eve.userId, false);
      assert.deepEqual(await cached(), [], 'no shared room: the list is dropped');

      // A new device while nothing is shared: B tells A nothing.
      const second = await loginUser(b, 'eve', eve.password);
      assert.equal(
        (
          await b.request('POST', '/_matrix/client/v3/keys/upload', {
            token: second.accessToken,
            body: { device_keys: deviceKeysOf(second) },
          })
        ).status,
        200,
      );
      await join(b, eve, roomDev, a);
      await waitJoined(a, alice, roomDev, eve.userId);
      assert.deepEqual(await devicesOfEve(), [eve.deviceId, second.deviceId].sort());
    });
  });
});
