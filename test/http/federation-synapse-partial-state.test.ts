/**
 * Partial-state joins (MSC3706) with Synapse (from PyPI), both directions. Synapse 1.163
 * joins remote rooms with partial state by default (`omit_members=true` whenever it has no
 * member in the room) and serves `omit_members` to joiners:
 * - a Commons user joins a Synapse room of several members: the room is partial-state here
 *   when /join answers (Synapse answered `members_omitted`), `/members` asked at once answers
 *   (after waiting) the same list as Synapse's, and the room completes;
 * - a Synapse user joins a Commons room of `MEMBERS` members (made through the event writer):
 *   Synapse's join (served with omit_members) succeeds, its member list, once its background
 *   fetch from us is done, is ours, and messages pass both ways.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, it } from 'node:test';
import { createEventWriter } from '../../src/services/event-writer.js';
import { forEachDatabase } from '../helpers/databases.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { eventually } from '../helpers/eventually.js';
import { makeTestCa, startFederatedServer, type TestCa } from '../helpers/federation.js';
import { SYNAPSE, skipUnless, synapseInstall } from '../helpers/requirements.js';
import { requestJson, startSynapsePeer, type SynapsePeer } from '../helpers/synapse-peer.js';
import { serviceContextOf } from '../helpers/services.js';
import type { TestServer } from '../helpers/server.js';

const r = encodeURIComponent;
const skip = skipUnless(SYNAPSE);
const json = requestJson;
const MEMBERS = 300;

const joinedOf = (body: Record<string, unknown>) =>
  Object.keys((body.joined as Record<string, unknown>) ?? {}).sort();

forEachDatabase(
  'partial-state joins with Synapse',
  (dialect) => {
    let ca: TestCa;
    let commons: TestServer & { serverName: string; port: number };
    let synapse: SynapsePeer;
    let alice: TestUser;
    const synapseUsers: { user_id: string; access_token: string }[] = [];

    async function register(username: string) {
      const first = await json(`${synapse.clientUrl}/_matrix/client/v3/register`, 'POST', {
        username,
        password: 'correct horse',
      });
      const second = await json(`${synapse.clientUrl}/_matrix/client/v3/register`, 'POST', {
        username,
        password: 'correct horse',
        auth: { type: 'm.login.dummy', session: first.body.session },
      });
      assert.equal(second.status, 200, JSON.stringify(second.body));
      return second.body as { user_id: string; access_token: string };
    }
    const syn = (user: { access_token: string }, p: string, method = 'GET', body?: unknown) =>
      json(`${synapse.clientUrl}/_matrix/client/v3${p}`, method, body, user.access_token);

    before(async () => {
      const install = synapseInstall();
      if ('problem' in install) throw new Error(install.problem);
      ca = makeTestCa();
      commons = await startFederatedServer(dialect, ca);
      synapse = await startSynapsePeer(install, ca);
      alice = await registerUser(commons, 'alice');
      for (const name of ['sam', 'sue', 'syd', 'sal']) synapseUsers.push(await register(name));
    });
    after(async () => {
      await commons?.close();
      await synapse?.stop();
      if (ca) rmSync(ca.dir, { recursive: true, force: true });
    });

    it('joins a Synapse room with partial state; /members in the gap is Synapse’s list', async () => {
      const [sam, ...others] = synapseUsers as [
        { user_id: string; access_token: string },
        ...{ user_id: string; access_token: string }[],
      ];
      const created = await syn(sam, '/createRoom', 'POST', {
        preset: 'public_chat',
        room_version: '11',
        name: 'Synapse room',
      });
      assert.equal(created.status, 200, JSON.stringify(created.body));
      const roomId = created.body.room_id as string;
      for (const u of others) {
        const j = await syn(u, `/join/${r(roomId)}`, 'POST', {});
        assert.equal(j.status, 200, JSON.stringify(j.body));
      }
      const joinedVia = await commons.request(
        'POST',
        `/_matrix/client/v3/join/${r(roomId)}?via=${r(synapse.serverName)}`,
        { token: alice.accessToken, body: {} },
      );
      assert.equal(joinedVia.status, 200, JSON.stringify(joinedVia.body));
      const stores = serviceContextOf(commons).storage.stores;
      const partial = await stores.partialState.selectPartialRoom(roomId);
      // Sending works at once.
      const sent = await commons.request(
        'PUT',
        `/_matrix/client/v3/rooms/${r(roomId)}/send/m.room.message/p1`,
        { token: alice.accessToken, body: { msgtype: 'm.text', body: 'hi from Commons' } },
      );
      assert.equal(sent.status, 200, JSON.stringify(sent.body));
      const members = await commons.request<{ chunk: { state_key: string }[] }>(
        'GET',
        `/_matrix/client/v3/rooms/${r(roomId)}/members?membership=join`,
        { token: alice.accessToken },
      );
      assert.equal(members.status, 200, JSON.stringify(members.body));
      const theirs = await eventually(
        async () => joinedOf((await syn(sam, `/rooms/${r(roomId)}/joined_members`)).body),
        (list) => list.includes(alice.userId),
        30_000,
      );
      assert.deepEqual(members.body.chunk.map((e) => e.state_key).sort(), theirs);
      assert.equal(theirs.length, 1 + others.length + 1);
      assert.ok(partial, 'Synapse answered members_omitted: the room was partial at /join');
      assert.equal(await stores.partialState.selectPartialRoom(roomId), undefined);
      // Our message reached Synapse.
      const seen = await eventually(
        async () =>
          JSON.stringify((await syn(sam, `/rooms/${r(roomId)}/messages?dir=b&limit=20`)).body),
        (text) => text.includes('hi from Commons'),
        30_000,
      );
      assert.ok(seen.includes('hi from Commons'));
    });

    it(`a Synapse user joins a Commons room of ${MEMBERS} members (served with omit_members)`, async () => {
      const [sam] = synapseUsers as [{ user_id: string; access_token: string }];
      const created = await commons.request<{ room_id: string }>(
        'POST',
        '/_matrix/client/v3/createRoom',
        { token: alice.accessToken, body: { preset: 'public_chat', room_version: '11' } },
      );
      const roomId = created.body.room_id;
      const ctx = serviceContextOf(commons);
      const writer = createEventWriter(ctx);
      await ctx.storage.tx('test-members', async (s) => {
        await s.rooms.lockRoom(roomId);
        for (let j = 0; j < MEMBERS; j++) {
          const user = `@p${String(j).padStart(4, '0')}:${commons.serverName}`;
          await writer.append(s, roomId, {
            type: 'm.room.member',
            stateKey: user,
            sender: user,
            content: { membership: 'join' },
          });
        }
      });
      const joined = await syn(
        sam,
        `/join/${r(roomId)}?server_name=${r(commons.serverName)}`,
        'POST',
        {},
      );
      assert.equal(joined.status, 200, JSON.stringify(joined.body));
      const ours = joinedOf(
        (
          await commons.request('GET', `/_matrix/client/v3/rooms/${r(roomId)}/joined_members`, {
            token: alice.accessToken,
          })
        ).body,
      );
      assert.equal(ours.length, MEMBERS + 2);
      // Synapse's /joined_members waits for its partial state to complete (or answers it).
      const theirs = await eventually(
        async () => {
          const answer = await syn(sam, `/rooms/${r(roomId)}/joined_members`);
          return answer.status === 200 ? joinedOf(answer.body) : [];
        },
        (list) => list.length === ours.length,
        90_000,
      );
      assert.deepEqual(theirs, ours);
      const sent = await syn(sam, `/rooms/${r(roomId)}/send/m.room.message/s1`, 'PUT', {
        msgtype: 'm.text',
        body: 'hi from Synapse',
      });
      assert.equal(sent.status, 200, JSON.stringify(sent.body));
      const seen = await eventually(
        async () =>
          JSON.stringify(
            (
              await commons.request(
                'GET',
                `/_matrix/client/v3/rooms/${r(roomId)}/messages?dir=b&limit=10`,
                { token: alice.accessToken },
              )
            ).body,
          ),
        (text) => text.includes('hi from Synapse'),
        30_000,
      );
      assert.ok(seen.includes('hi from Synapse'));
    });
  },
  { skip },
);
