/**
 * A Commons user in rooms of Synapse (from PyPI, a peer nobody here wrote), room versions 10,
 * 11 and 12: joining by room ID (with `via`) and by alias (resolved with /query/directory),
 * through make_join/send_join with the answer checked and imported; then messages, typing and
 * read receipts from Commons seen by the Synapse user, Synapse's message and typing seen by
 * ours, `/members` agreeing on both sides, and a leave seen by Synapse. Invites from Commons
 * rooms countersigned by Synapse, seen and accepted by its user. End-to-end keys between the
 * two: each server answers the other's `/user/keys/query` and `/user/keys/claim`. Skipped
 * (with a reason in the SKIPPED banner) where Synapse cannot be installed; CI requires it
 * (COMMONS_TEST_REQUIRE_SYNAPSE=1).
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { eventually } from '../helpers/eventually.js';
import { makeTestCa, startFederatedServer, type TestCa } from '../helpers/federation.js';
import { SYNAPSE, skipUnless, synapseInstall } from '../helpers/requirements.js';
import { requestJson, startSynapsePeer, type SynapsePeer } from '../helpers/synapse-peer.js';
import type { TestServer } from '../helpers/server.js';

const r = encodeURIComponent;
const skip = skipUnless(SYNAPSE);

const json = requestJson;

interface SyncRoom {
  timeline?: { events: { type: string; sender: string; content: Record<string, unknown> }[] };
  ephemeral?: { events: { type: string; content: Record<string, unknown> }[] };
}

forEachDatabase(
  'Commons users in Synapse rooms',
  (dialect) => {
    let ca: TestCa;
    let commons: TestServer & { serverName: string; port: number };
    let synapse: SynapsePeer;
    let alice: TestUser;
    let sam: { user_id: string; access_token: string; device_id: string };
    const rooms: Record<string, string> = {};

    const syn = (path: string, method = 'GET', body?: unknown) =>
      json(`${synapse.clientUrl}/_matrix/client/v3${path}`, method, body, sam.access_token);
    const ours = <T = Record<string, unknown>>(method: string, path: string, body?: unknown) =>
      commons.request<T>(method, `/_matrix/client/v3${path}`, {
        token: alice.accessToken,
        ...(body !== undefined ? { body } : {}),
      });
    /** The joined members Synapse reports for a room. */
    const synapseMembers = async (roomId: string) =>
      Object.keys(
        ((await syn(`/rooms/${r(roomId)}/joined_members`)).body.joined ?? {}) as Record<
          string,
          unknown
        >,
      ).sort();
    /** Sam's /sync of one room, waiting until `found` holds. */
    async function samSees(roomId: string, found: (room: SyncRoom) => boolean): Promise<void> {
      let since: string | undefined;
      await eventually(
        async () => {
          const answer = await syn(
            `/sync?timeout=1000${since ? `&since=${r(since)}` : ''}&filter=${r(
              JSON.stringify({ room: { rooms: [roomId], timeline: { limit: 50 } } }),
            )}`,
          );
          since = answer.body.next_batch as string;
          const joined = (answer.body.rooms as { join?: Record<string, SyncRoom> } | undefined)
            ?.join?.[roomId];
          return joined ? found(joined) : false;
        },
        (ok) => ok,
        30_000,
      );
    }

    before(async () => {
      const install = synapseInstall();
      if ('problem' in install) throw new Error(install.problem);
      ca = makeTestCa();
      commons = await startFederatedServer(dialect, ca);
      synapse = await startSynapsePeer(install, ca);
      alice = await registerUser(commons, 'alice');
      const named = await ours('PUT', `/profile/${r(alice.userId)}/displayname`, {
        displayname: 'Alice of Commons',
      });
      assert.equal(named.status, 200);
      const first = await json(`${synapse.clientUrl}/_matrix/client/v3/register`, 'POST', {
        username: 'sam',
        password: 'correct horse',
      });
      const second = await json(`${synapse.clientUrl}/_matrix/client/v3/register`, 'POST', {
        username: 'sam',
        password: 'correct horse',
        auth: { type: 'm.login.dummy', session: first.body.session },
      });
      assert.equal(second.status, 200, JSON.stringify(second.body));
      sam = second.body as typeof sam;
      for (const version of ['10', '11', '12']) {
        const created = await syn('/createRoom', 'POST', {
          preset: 'public_chat',
          room_version: version,
          room_alias_name: `v${version}`,
          name: `Room of version ${version}`,
        });
        assert.equal(created.status, 200, JSON.stringify(created.body));
        rooms[version] = created.body.room_id as string;
        const said = await syn(
          `/rooms/${r(rooms[version])}/send/m.room.message/before-${version}`,
          'PUT',
          { msgtype: 'm.text', body: `before Alice, v${version}` },
        );
        assert.equal(said.status, 200);
      }
    });
    after(async () => {
      await commons?.close();
      await synapse?.stop();
      if (ca) rmSync(ca.dir, { recursive: true, force: true });
    });

    for (const version of ['10', '11', '12']) {
      it(`joins a Synapse room of version ${version} by ID with via, and both sides agree`, async () => {
        const roomId = rooms[version] as string;
        const joined = await ours<{ room_id: string }>(
          'POST',
          `/join/${r(roomId)}?via=${r(synapse.serverName)}`,
          {},
        );
        assert.equal(joined.status, 200, JSON.stringify(joined.body));
        assert.equal(joined.body.room_id, roomId);
        // Commons has the room's state: its name, both members.
        const name = await ours<{ name: string }>('GET', `/rooms/${r(roomId)}/state/m.room.name`);
        assert.equal(name.body.name, `Room of version ${version}`);
        const members = await ours<{ joined: Record<string, unknown> }>(
          'GET',
          `/rooms/${r(roomId)}/joined_members`,
        );
        assert.deepEqual(
          Object.keys(members.body.joined).sort(),
          [alice.userId, sam.user_id].sort(),
        );
        // Synapse has Alice's join.
        await eventually(
          () => synapseMembers(roomId),
          (list) => list.includes(alice.userId),
          20_000,
        );
        assert.deepEqual(await synapseMembers(roomId), [alice.userId, sam.user_id].sort());
      });
    }

    it('Alice’s message, typing and read receipt reach Sam through Synapse', async () => {
      const roomId = rooms['11'] as string;
      const sent = await ours<{ event_id: string }>(
        'PUT',
        `/rooms/${r(roomId)}/send/m.room.message/hello`,
        { msgtype: 'm.text', body: 'hello from Commons' },
      );
      assert.equal(sent.status, 200, JSON.stringify(sent.body));
      await samSees(roomId, (room) =>
        (room.timeline?.events ?? []).some(
          (e) => e.sender === alice.userId && e.content.body === 'hello from Commons',
        ),
      );
      const typed = await ours('PUT', `/rooms/${r(roomId)}/typing/${r(alice.userId)}`, {
        typing: true,
        timeout: 30000,
      });
      assert.equal(typed.status, 200);
      await samSees(roomId, (room) =>
        (room.ephemeral?.events ?? []).some(
          (e) => e.type === 'm.typing' && (e.content.user_ids as string[]).includes(alice.userId),
        ),
      );
      const read = await ours(
        'POST',
        `/rooms/${r(roomId)}/receipt/m.read/${r(sent.body.event_id)}`,
        {},
      );
      assert.equal(read.status, 200);
      await samSees(roomId, (room) =>
        (room.ephemeral?.events ?? []).some(
          (e) =>
            e.type === 'm.receipt' &&
            JSON.stringify(e.content).includes(alice.userId) &&
            sent.body.event_id in e.content,
        ),
      );
    });

    it('Sam’s message and typing reach Alice (our /send, the EDU handler)', async () => {
      const roomId = rooms['11'] as string;
      const first = await ours<{ next_batch: string }>('GET', '/sync');
      const said = await syn(`/rooms/${r(roomId)}/send/m.room.message/from-sam`, 'PUT', {
        msgtype: 'm.text',
        body: 'hello from Synapse',
      });
      assert.equal(said.status, 200);
      const typed = await syn(`/rooms/${r(roomId)}/typing/${r(sam.user_id)}`, 'PUT', {
        typing: true,
        timeout: 30000,
      });
      assert.equal(typed.status, 200);
      let since = first.body.next_batch;
      let message = false;
      let typing = false;
      await eventually(
        async () => {
          const answer = await ours<{
            next_batch: string;
            rooms?: { join?: Record<string, SyncRoom> };
          }>('GET', `/sync?timeout=1000&since=${r(since)}`);
          since = answer.body.next_batch;
          const room = answer.body.rooms?.join?.[roomId];
          message ||= (room?.timeline?.events ?? []).some(
            (e) => e.sender === sam.user_id && e.content.body === 'hello from Synapse',
          );
          typing ||= (room?.ephemeral?.events ?? []).some(
            (e) => e.type === 'm.typing' && (e.content.user_ids as string[]).includes(sam.user_id),
          );
          return message && typing;
        },
        (ok) => ok,
        30_000,
      );
    });

    it('a to-device message from Alice reaches Sam’s device through Synapse', async () => {
      const sent = await ours('PUT', '/sendToDevice/m.test.hello/td-1', {
        messages: { [sam.user_id]: { [sam.device_id]: { greeting: 'from Commons' } } },
      });
      assert.equal(sent.status, 200, JSON.stringify(sent.body));
      await eventually(
        async () => {
          const answer = await syn('/sync?timeout=1000');
          const events =
            (
              answer.body.to_device as
                | { events?: { sender: string; type: string; content: { greeting?: string } }[] }
                | undefined
            )?.events ?? [];
          return events.some(
            (e) =>
              e.sender === alice.userId &&
              e.type === 'm.test.hello' &&
              e.content.greeting === 'from Commons',
          );
        },
        (ok) => ok,
        20_000,
      );
    });

    it('joins by alias, resolved through Synapse’s /query/directory', async () => {
      // Leave the version 10 room first, then join it again by its alias.
      const roomId = rooms['10'] as string;
      const left = await ours('POST', `/rooms/${r(roomId)}/leave`, {});
      assert.equal(left.status, 200, JSON.stringify(left.body));
      await eventually(
        () => synapseMembers(roomId),
        (list) => !list.includes(alice.userId),
        20_000,
      );
      const alias = `#v12:${synapse.serverName}`;
      const joined = await ours<{ room_id: string }>('POST', `/join/${r(alias)}`, {});
      assert.equal(joined.status, 200, JSON.stringify(joined.body));
      assert.equal(joined.body.room_id, rooms['12']);
    });

    it('refuses unknown aliases and rooms nobody can be joined through', async () => {
      const unknownAlias = await ours<{ errcode: string }>(
        'POST',
        `/join/${r(`#nothing:${synapse.serverName}`)}`,
        {},
      );
      assert.equal(unknownAlias.status, 404);
      assert.equal(unknownAlias.body.errcode, 'M_NOT_FOUND');
      const unknownRoom = await ours<{ errcode: string }>(
        'POST',
        `/join/${r(`!nothing:${synapse.serverName}`)}`,
        {},
      );
      assert.equal(unknownRoom.status, 404, JSON.stringify(unknownRoom.body));
      const badVia = await ours<{ errcode: string }>(
        'POST',
        `/join/${r(rooms['11'] as string)}?via=${r('not a server')}`,
        {},
      );
      assert.equal(badVia.status, 400);
      assert.equal(badVia.body.errcode, 'M_INVALID_PARAM');
    });

    for (const version of ['11', '12']) {
      it(`invites Sam to a Commons room of version ${version}: Synapse countersigns, Sam sees and accepts it`, async () => {
        const created = await ours<{ room_id: string }>('POST', '/createRoom', {
          name: `Commons room v${version}`,
          room_version: version,
        });
        assert.equal(created.status, 200);
        const roomId = created.body.room_id;
        const invited = await ours('POST', `/rooms/${r(roomId)}/invite`, { user_id: sam.user_id });
        assert.equal(invited.status, 200, JSON.stringify(invited.body));
        const member = await ours<{ membership: string }>(
          'GET',
          `/rooms/${r(roomId)}/state/m.room.member/${r(sam.user_id)}`,
        );
        assert.equal(member.body.membership, 'invite');
        await eventually(
          async () => {
            const answer = await syn('/sync?timeout=1000');
            const invite = (
              answer.body.rooms as
                | {
                    invite?: Record<
                      string,
                      { invite_state: { events: { type: string; content: { name?: string } }[] } }
                    >;
                  }
                | undefined
            )?.invite?.[roomId];
            return invite?.invite_state.events.find((e) => e.type === 'm.room.name')?.content.name;
          },
          (name) => name === `Commons room v${version}`,
          20_000,
        );
        // Sam accepts: Synapse joins through us (make_join/send_join served here).
        const accepted = await syn(`/join/${r(roomId)}`, 'POST', {});
        assert.equal(accepted.status, 200, JSON.stringify(accepted.body));
        await eventually(
          async () =>
            (
              await ours<{ membership?: string }>(
                'GET',
                `/rooms/${r(roomId)}/state/m.room.member/${r(sam.user_id)}`,
              )
            ).body.membership,
          (membership) => membership === 'join',
          20_000,
        );
      });
    }

    it('end-to-end keys: each side reads the other’s device keys and claims a one-time key', async () => {
      const deviceKeys = (userId: string, deviceId: string) => ({
        user_id: userId,
        device_id: deviceId,
        algorithms: ['m.olm.v1.curve25519-aes-sha2', 'm.megolm.v1.aes-sha2'],
        keys: {
          [`curve25519:${deviceId}`]: `c-${deviceId}`,
          [`ed25519:${deviceId}`]: `e-${deviceId}`,
        },
        signatures: { [userId]: { [`ed25519:${deviceId}`]: 'sig' } },
      });
      const samUpload = await syn('/keys/upload', 'POST', {
        device_keys: deviceKeys(sam.user_id, sam.device_id),
        one_time_keys: { 'signed_curve25519:SAM1': { key: 'sam-otk', signatures: {} } },
      });
      assert.equal(samUpload.status, 200, JSON.stringify(samUpload.body));
      const aliceUpload = await ours('POST', '/keys/upload', {
        device_keys: deviceKeys(alice.userId, alice.deviceId),
        one_time_keys: { 'signed_curve25519:ALI1': { key: 'alice-otk', signatures: {} } },
      });
      assert.equal(aliceUpload.status, 200);

      const ourQuery = await ours<{
        device_keys: Record<string, Record<string, { keys: unknown }>>;
      }>('POST', '/keys/query', { device_keys: { [sam.user_id]: [] } });
      assert.equal(ourQuery.status, 200, JSON.stringify(ourQuery.body));
      assert.deepEqual(
        ourQuery.body.device_keys[sam.user_id]?.[sam.device_id]?.keys,
        deviceKeys(sam.user_id, sam.device_id).keys,
      );
      // Synapse tracks Alice's devices (they share rooms): it learns of her new keys from the
      // m.device_list_update EDU we send.
      const aliceKeys = async () => {
        const answer = await syn('/keys/query', 'POST', { device_keys: { [alice.userId]: [] } });
        assert.equal(answer.status, 200, JSON.stringify(answer.body));
        return (answer.body.device_keys as Record<string, Record<string, { keys: unknown }>>)[
          alice.userId
        ]?.[alice.deviceId]?.keys;
      };
      // (A busy machine can make a transaction time out: the retry comes after a backoff.)
      await eventually(aliceKeys, (keys) => keys !== undefined, 60_000);
      assert.deepEqual(await aliceKeys(), deviceKeys(alice.userId, alice.deviceId).keys);

      const ourClaim = await ours<{ one_time_keys: Record<string, Record<string, unknown>> }>(
        'POST',
        '/keys/claim',
        { one_time_keys: { [sam.user_id]: { [sam.device_id]: 'signed_curve25519' } } },
      );
      assert.equal(ourClaim.status, 200, JSON.stringify(ourClaim.body));
      assert.deepEqual(ourClaim.body.one_time_keys[sam.user_id]?.[sam.device_id], {
        'signed_curve25519:SAM1': { key: 'sam-otk', signatures: {} },
      });
      const theirClaim = await syn('/keys/claim', 'POST', {
        one_time_keys: { [alice.userId]: { [alice.deviceId]: 'signed_curve25519' } },
      });
      assert.equal(theirClaim.status, 200, JSON.stringify(theirClaim.body));
      assert.deepEqual(
        (theirClaim.body.one_time_keys as Record<string, Record<string, unknown>>)[alice.userId]?.[
          alice.deviceId
        ],
        { 'signed_curve25519:ALI1': { key: 'alice-otk', signatures: {} } },
      );
    });
  },
  { skip },
);
