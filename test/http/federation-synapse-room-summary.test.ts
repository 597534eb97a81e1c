/**
 * Room summaries between Commons and Synapse (from PyPI): a Commons user reads the summary of
 * a Synapse room by ID with `via` and by Synapse's alias (Synapse's `/hierarchy` answer read);
 * a Synapse user reads the summary of Commons rooms and the hierarchy of a Commons space
 * (Commons' `/hierarchy` answer accepted by Synapse; MSC4235's `via` turned on), and not a private Commons room. Skipped
 * (with a reason in the SKIPPED banner) where Synapse cannot be installed; CI requires it
 * (COMMONS_TEST_REQUIRE_SYNAPSE=1).
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { makeTestCa, startFederatedServer, type TestCa } from '../helpers/federation.js';
import { SYNAPSE, skipUnless, synapseInstall } from '../helpers/requirements.js';
import { requestJson, startSynapsePeer, type SynapsePeer } from '../helpers/synapse-peer.js';
import type { TestServer } from '../helpers/server.js';

const r = encodeURIComponent;
const skip = skipUnless(SYNAPSE);

const json = requestJson;

forEachDatabase(
  'room summaries between Commons and Synapse',
  (dialect) => {
    let ca: TestCa;
    let commons: TestServer & { serverName: string; port: number };
    let synapse: SynapsePeer;
    let alice: TestUser;
    let sam: { user_id: string; access_token: string };
    let synapseRoom: string;
    const ours: Record<string, string> = {};

    const syn = (path: string, method = 'GET', body?: unknown) =>
      json(`${synapse.clientUrl}${path}`, method, body, sam.access_token);
    const onCommons = async (body: Record<string, unknown>) => {
      const created = await commons.request<{ room_id: string }>(
        'POST',
        '/_matrix/client/v3/createRoom',
        { token: alice.accessToken, body },
      );
      assert.equal(created.status, 200, JSON.stringify(created.body));
      return created.body.room_id;
    };

    before(async () => {
      const install = synapseInstall();
      if ('problem' in install) throw new Error(install.problem);
      ca = makeTestCa();
      commons = await startFederatedServer(dialect, ca);
      // MSC4235: `via` on the client's /hierarchy, for a room Synapse is not in.
      synapse = await startSynapsePeer(install, ca, {
        experimental_features: { msc4235_enabled: true },
      });
      alice = await registerUser(commons, 'alice');
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
      const created = await syn('/_matrix/client/v3/createRoom', 'POST', {
        preset: 'public_chat',
        room_alias_name: 'orchard',
        name: 'Orchard',
        topic: 'Apples',
      });
      assert.equal(created.status, 200, JSON.stringify(created.body));
      synapseRoom = created.body.room_id as string;
      ours.public = await onCommons({
        preset: 'public_chat',
        room_alias_name: 'meadow',
        name: 'Meadow',
        topic: 'Grass',
      });
      ours.private = await onCommons({ preset: 'private_chat', name: 'Hidden' });
      ours.space = await onCommons({
        preset: 'public_chat',
        name: 'Fields',
        creation_content: { type: 'm.space' },
      });
      const child = await commons.request(
        'PUT',
        `/_matrix/client/v3/rooms/${r(ours.space)}/state/m.space.child/${r(ours.public)}`,
        { token: alice.accessToken, body: { via: [commons.serverName], suggested: true } },
      );
      assert.equal(child.status, 200, JSON.stringify(child.body));
    });
    after(async () => {
      await commons?.close();
      await synapse?.stop();
      if (ca) rmSync(ca.dir, { recursive: true, force: true });
    });

    it('a Commons user reads a Synapse room’s summary by ID with via and by alias', async () => {
      const byId = await commons.request<Record<string, unknown>>(
        'GET',
        `/_matrix/client/v1/room_summary/${r(synapseRoom)}?via=${r(synapse.serverName)}`,
        { token: alice.accessToken },
      );
      assert.equal(byId.status, 200, JSON.stringify(byId.body));
      assert.equal(byId.body.room_id, synapseRoom);
      assert.equal(byId.body.name, 'Orchard');
      assert.equal(byId.body.topic, 'Apples');
      assert.equal(byId.body.join_rule, 'public');
      assert.equal(byId.body.num_joined_members, 1);
      assert.equal(byId.body.membership, undefined);
      const byAlias = await commons.request<Record<string, unknown>>(
        'GET',
        `/_matrix/client/v1/room_summary/${r(`#orchard:${synapse.serverName}`)}`,
        { token: alice.accessToken },
      );
      assert.equal(byAlias.status, 200, JSON.stringify(byAlias.body));
      assert.equal(byAlias.body.room_id, synapseRoom);
    });

    it('a Synapse user reads Commons rooms’ summaries and a Commons space’s hierarchy', async () => {
      const summary = await syn(
        `/_matrix/client/v1/room_summary/${r(ours.public as string)}?via=${r(commons.serverName)}`,
      );
      assert.equal(summary.status, 200, JSON.stringify(summary.body));
      assert.equal(summary.body.name, 'Meadow');
      assert.equal(summary.body.topic, 'Grass');
      assert.equal(summary.body.join_rule, 'public');
      const hierarchy = await syn(
        `/_matrix/client/v1/rooms/${r(ours.space as string)}/hierarchy?org.matrix.msc4235.via=${r(commons.serverName)}`,
      );
      assert.equal(hierarchy.status, 200, JSON.stringify(hierarchy.body));
      const rooms = hierarchy.body.rooms as { room_id: string; name?: string }[];
      assert.deepEqual(
        rooms.map((room) => [room.room_id, room.name]).sort(),
        [
          [ours.public, 'Meadow'],
          [ours.space, 'Fields'],
        ].sort(),
      );
      const hidden = await syn(
        `/_matrix/client/v1/room_summary/${r(ours.private as string)}?via=${r(commons.serverName)}`,
      );
      assert.equal(hidden.status, 404, JSON.stringify(hidden.body));
    });
  },
  { skip },
);
