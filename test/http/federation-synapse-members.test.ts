/**
 * Membership queries between Commons and Synapse (from PyPI, a peer nobody here wrote):
 * - `/mutual_rooms` on Commons about Synapse users, and Synapse's own `/v1/mutual_rooms` about
 *   ours, agree before and after joins (send_join through Commons, a Synapse user's join of a
 *   Synapse room reaching Commons over `/send`) and a leave over `/send`.
 * - An invite from a stranger on Synapse: the Commons invitee asks `/mutual_rooms` about the
 *   inviter before accepting; the invited room's member lists are 403; accepted, the room is
 *   shared. A user who blocks invites (MSC4380) has Synapse's invite refused.
 * - `/joined_members` and `/members` of a Commons room with Synapse members carry their
 *   Synapse profiles and agree with Synapse's lists.
 * Skipped (with a reason in the SKIPPED banner) where Synapse cannot be installed; CI
 * requires it (COMMONS_TEST_REQUIRE_SYNAPSE=1).
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
const WAIT_MS = 30_000;
const LOTS = { per_second: 1000, burst_count: 1000 };

interface SynapseUser {
  user_id: string;
  access_token: string;
}

interface MemberEvent {
  state_key: string;
  content: { membership: string; displayname?: string; avatar_url?: string };
}

forEachDatabase(
  'membership queries between Commons and Synapse',
  (dialect) => {
    let ca: TestCa;
    let commons: TestServer & { serverName: string; port: number };
    let synapse: SynapsePeer;
    let alice: TestUser;
    let ann: TestUser;
    let sam: SynapseUser;
    let sue: SynapseUser;
    let stan: SynapseUser;
    let roomC: string;
    let roomS: string;

    const syn = (user: SynapseUser, path: string, method = 'GET', body?: unknown) =>
      requestJson(
        `${synapse.clientUrl}${path.startsWith('/_matrix') ? path : `/_matrix/client/v3${path}`}`,
        method,
        body,
        user.access_token,
      );
    const ours =
      (user: TestUser) =>
      <T = Record<string, unknown>>(method: string, path: string, body?: unknown) =>
        commons.request<T>(
          method,
          path.startsWith('/_matrix') ? path : `/_matrix/client/v3${path}`,
          {
            token: user.accessToken,
            ...(body !== undefined ? { body } : {}),
          },
        );
    async function register(username: string, displayname: string): Promise<SynapseUser> {
      const url = `${synapse.clientUrl}/_matrix/client/v3/register`;
      const first = await requestJson(url, 'POST', { username, password: 'correct horse' });
      const second = await requestJson(url, 'POST', {
        username,
        password: 'correct horse',
        auth: { type: 'm.login.dummy', session: first.body.session },
      });
      assert.equal(second.status, 200, JSON.stringify(second.body));
      const user = second.body as unknown as SynapseUser;
      const path = `/profile/${r(user.user_id)}`;
      assert.equal((await syn(user, `${path}/displayname`, 'PUT', { displayname })).status, 200);
      const avatar = `mxc://synapse.example/${username}`;
      assert.equal(
        (await syn(user, `${path}/avatar_url`, 'PUT', { avatar_url: avatar })).status,
        200,
      );
      return user;
    }
    /** Commons' `/v1/mutual_rooms` of a local user about another (one page holds them all). */
    async function ourMutual(user: TestUser, other: string): Promise<string[]> {
      const answer = await ours(user)<{ joined: string[]; count: number; next_batch?: string }>(
        'GET',
        `/_matrix/client/v1/mutual_rooms?user_id=${r(other)}`,
      );
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      assert.equal(answer.body.count, answer.body.joined.length);
      return answer.body.joined;
    }
    /** Synapse's answer, sorted (it sorts by room ID, Commons by room creation here). */
    async function theirMutual(user: SynapseUser, other: string): Promise<string[]> {
      const answer = await syn(user, `/_matrix/client/v1/mutual_rooms?user_id=${r(other)}`);
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      return (answer.body.joined as string[]).sort();
    }
    /** Both servers' answers about the pair, once they agree with `expected`. */
    async function bothAnswer(local: TestUser, remote: SynapseUser, expected: string[]) {
      const ourAnswer = await eventually(
        () => ourMutual(local, remote.user_id),
        (rooms) => rooms.length === expected.length,
        WAIT_MS,
      );
      assert.deepEqual(ourAnswer, expected);
      const theirs = await eventually(
        () => theirMutual(remote, local.userId),
        (rooms) => rooms.length === expected.length,
        WAIT_MS,
      );
      assert.deepEqual(theirs, [...expected].sort());
    }
    const joinedOnCommons = async (roomId: string) =>
      (
        await ours(alice)<{
          joined?: Record<string, { display_name?: string; avatar_url?: string }>;
        }>('GET', `/rooms/${r(roomId)}/joined_members`)
      ).body.joined ?? {};

    before(async () => {
      const install = synapseInstall();
      if ('problem' in install) throw new Error(install.problem);
      ca = makeTestCa();
      commons = await startFederatedServer(dialect, ca);
      synapse = await startSynapsePeer(install, ca, {
        rc_joins: { local: LOTS, remote: LOTS },
        rc_invites: { per_room: LOTS, per_user: LOTS, per_issuer: LOTS },
        rc_message: LOTS,
      });
      alice = await registerUser(commons, 'alice');
      ann = await registerUser(commons, 'ann');
      sam = await register('sam', 'Sam of Synapse');
      sue = await register('sue', 'Sue of Synapse');
      stan = await register('stan', 'Stan the stranger');
      const created = await ours(alice)<{ room_id: string }>('POST', '/createRoom', {
        preset: 'public_chat',
        name: "Commons' room",
      });
      assert.equal(created.status, 200);
      roomC = created.body.room_id;
      const theirs = await syn(sam, '/createRoom', 'POST', {
        preset: 'public_chat',
        name: "Synapse's room",
      });
      assert.equal(theirs.status, 200, JSON.stringify(theirs.body));
      roomS = theirs.body.room_id as string;
    });
    after(async () => {
      await commons?.close();
      await synapse?.stop();
      if (ca) rmSync(ca.dir, { recursive: true, force: true });
    });

    it('mutual rooms agree on both servers through joins and a leave', async () => {
      await bothAnswer(alice, sam, []);
      // Sam joins the Commons room (send_join through Commons).
      const samJoins = await syn(
        sam,
        `/join/${r(roomC)}?server_name=${r(commons.serverName)}`,
        'POST',
        {},
      );
      assert.equal(samJoins.status, 200, JSON.stringify(samJoins.body));
      await bothAnswer(alice, sam, [roomC]);
      // Alice joins the Synapse room.
      const aliceJoins = await ours(alice)(
        'POST',
        `/join/${r(roomS)}?via=${r(synapse.serverName)}`,
        {},
      );
      assert.equal(aliceJoins.status, 200, JSON.stringify(aliceJoins.body));
      await bothAnswer(alice, sam, [roomC, roomS]);

      // Sue: in the Commons room first, so the pair is indexed before her next joins.
      const sueJoinsC = await syn(
        sue,
        `/join/${r(roomC)}?server_name=${r(commons.serverName)}`,
        'POST',
        {},
      );
      assert.equal(sueJoinsC.status, 200, JSON.stringify(sueJoinsC.body));
      await bothAnswer(alice, sue, [roomC]);
      // Her join of the Synapse room reaches Commons over Synapse's /send.
      assert.equal((await syn(sue, `/join/${r(roomS)}`, 'POST', {})).status, 200);
      await bothAnswer(alice, sue, [roomC, roomS]);
      // And her leave.
      assert.equal((await syn(sue, `/rooms/${r(roomS)}/leave`, 'POST', {})).status, 200);
      await bothAnswer(alice, sue, [roomC]);
      // Ann is in none of these rooms.
      assert.deepEqual(await ourMutual(ann, sue.user_id), []);
    });

    it("a stranger's invite: mutual rooms asked before accepting, member lists refused", async () => {
      const created = await syn(stan, '/createRoom', 'POST', {
        preset: 'private_chat',
        name: "Stan's room",
        invite: [ann.userId],
      });
      assert.equal(created.status, 200, JSON.stringify(created.body));
      const invited = created.body.room_id as string;
      await eventually(
        () => ours(ann)<{ rooms?: { invite?: Record<string, unknown> } }>('GET', '/sync'),
        (answer) => answer.body.rooms?.invite?.[invited] !== undefined,
        WAIT_MS,
      );
      assert.deepEqual(await ourMutual(ann, stan.user_id), []);
      for (const path of [
        `/rooms/${r(invited)}/members`,
        `/rooms/${r(invited)}/joined_members`,
        `/rooms/${r(invited)}/state`,
      ]) {
        const answer = await ours(ann)<{ errcode: string }>('GET', path);
        assert.equal(answer.status, 403, path);
        assert.equal(answer.body.errcode, 'M_FORBIDDEN');
      }
      const accepted = await ours(ann)(
        'POST',
        `/join/${r(invited)}?via=${r(synapse.serverName)}`,
        {},
      );
      assert.equal(accepted.status, 200, JSON.stringify(accepted.body));
      await bothAnswer(ann, stan, [invited]);
      const members = await ours(ann)<{ chunk: MemberEvent[] }>(
        'GET',
        `/rooms/${r(invited)}/members`,
      );
      assert.equal(members.status, 200);
      assert.deepEqual(
        members.body.chunk.map((e) => e.state_key).sort(),
        [ann.userId, stan.user_id].sort(),
      );
    });

    it('an invite of a Commons user who blocks invites is refused', async () => {
      const put = await ours(alice)(
        'PUT',
        `/user/${r(alice.userId)}/account_data/m.invite_permission_config`,
        { default_action: 'block' },
      );
      assert.equal(put.status, 200);
      const created = await syn(stan, '/createRoom', 'POST', { preset: 'private_chat' });
      assert.equal(created.status, 200);
      const room = created.body.room_id as string;
      const refused = await syn(stan, `/rooms/${r(room)}/invite`, 'POST', {
        user_id: alice.userId,
      });
      assert.equal(refused.status, 403, JSON.stringify(refused.body));
      const members = await syn(stan, `/rooms/${r(room)}/members`);
      const memberships = (members.body.chunk as MemberEvent[]).map((e) => e.state_key);
      assert.ok(!memberships.includes(alice.userId), 'Synapse kept no invite');
      await ours(alice)(
        'PUT',
        `/user/${r(alice.userId)}/account_data/m.invite_permission_config`,
        {},
      );
      const sent = await syn(stan, `/rooms/${r(room)}/invite`, 'POST', { user_id: alice.userId });
      assert.equal(sent.status, 200, JSON.stringify(sent.body));
    });

    it("member lists of the Commons room carry Synapse profiles and agree with Synapse's", async () => {
      const joined = await joinedOnCommons(roomC);
      assert.deepEqual(joined[sam.user_id], {
        display_name: 'Sam of Synapse',
        avatar_url: 'mxc://synapse.example/sam',
      });
      assert.deepEqual(joined[sue.user_id], {
        display_name: 'Sue of Synapse',
        avatar_url: 'mxc://synapse.example/sue',
      });
      const theirs = await syn(sam, `/rooms/${r(roomC)}/joined_members`);
      assert.deepEqual(
        Object.keys(theirs.body.joined as Record<string, unknown>).sort(),
        Object.keys(joined).sort(),
      );
      const byUser = (chunk: MemberEvent[]) =>
        Object.fromEntries(chunk.map((e) => [e.state_key, e.content.membership]));
      const ourMembers = await ours(alice)<{ chunk: MemberEvent[] }>(
        'GET',
        `/rooms/${r(roomS)}/members`,
      );
      const theirMembers = await syn(sam, `/rooms/${r(roomS)}/members`);
      assert.deepEqual(
        byUser(ourMembers.body.chunk),
        byUser(theirMembers.body.chunk as MemberEvent[]),
      );
      assert.equal(byUser(ourMembers.body.chunk)[sue.user_id], 'leave');
    });
  },
  { skip },
);
