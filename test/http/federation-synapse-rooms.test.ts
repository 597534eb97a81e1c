/**
 * A Synapse user joins rooms hosted by Commons (room versions 10, 11 and 12) by room ID:
 * Synapse's make_join/send_join against ours, messages both ways (Synapse → Commons through
 * our PUT /send, Commons → Synapse through our outbox), /members agreeing on both sides, and
 * the Synapse user leaving (make_leave/send_leave). Skipped (in the SKIPPED banner) where
 * Synapse cannot be installed; CI requires it (COMMONS_TEST_REQUIRE_SYNAPSE=1).
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

const bodiesOf = (chunk: unknown): string[] =>
  ((chunk as { type: string; content: { body?: string } }[]) ?? [])
    .filter((e) => e.type === 'm.room.message')
    .map((e) => e.content.body ?? '');

const joinedOf = (body: Record<string, unknown>): string[] =>
  Object.keys((body.joined as Record<string, unknown>) ?? {}).sort();

forEachDatabase(
  'Synapse users join rooms hosted by Commons',
  (dialect) => {
    let ca: TestCa;
    let commons: TestServer & { serverName: string; port: number };
    let synapse: SynapsePeer;
    let alice: TestUser;
    let sam: { user_id: string; access_token: string };

    before(async () => {
      const install = synapseInstall();
      if ('problem' in install) throw new Error(install.problem);
      ca = makeTestCa();
      commons = await startFederatedServer(dialect, ca);
      synapse = await startSynapsePeer(install, ca);
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
      sam = second.body as { user_id: string; access_token: string };
    });
    after(async () => {
      await commons?.close();
      await synapse?.stop();
      if (ca) rmSync(ca.dir, { recursive: true, force: true });
    });

    for (const version of ['10', '11', '12']) {
      it(`room version ${version}: join by ID, messages both ways, /members, leave`, async () => {
        const created = await commons.request<{ room_id: string }>(
          'POST',
          '/_matrix/client/v3/createRoom',
          { token: alice.accessToken, body: { preset: 'public_chat', room_version: version } },
        );
        assert.equal(created.status, 200);
        const roomId = created.body.room_id;
        const syn = (path: string, method = 'GET', body?: unknown) =>
          json(`${synapse.clientUrl}/_matrix/client/v3${path}`, method, body, sam.access_token);

        const joined = await syn(
          `/join/${r(roomId)}?server_name=${r(commons.serverName)}`,
          'POST',
          {},
        );
        assert.equal(joined.status, 200, JSON.stringify(joined.body));

        const commonsMembers = async () =>
          joinedOf(
            (
              await commons.request(`GET`, `/_matrix/client/v3/rooms/${r(roomId)}/joined_members`, {
                token: alice.accessToken,
              })
            ).body,
          );
        assert.deepEqual(await commonsMembers(), [alice.userId, sam.user_id].sort());

        // Synapse → Commons (our PUT /send).
        const sent = await syn(`/rooms/${r(roomId)}/send/m.room.message/s1`, 'PUT', {
          msgtype: 'm.text',
          body: `from synapse ${version}`,
        });
        assert.equal(sent.status, 200, JSON.stringify(sent.body));
        await eventually(
          async () =>
            bodiesOf(
              (
                await commons.request(
                  'GET',
                  `/_matrix/client/v3/rooms/${r(roomId)}/messages?dir=b&limit=20`,
                  { token: alice.accessToken },
                )
              ).body.chunk,
            ),
          (bodies) => bodies.includes(`from synapse ${version}`),
          30_000,
        );

        // Commons → Synapse (our outbox).
        const ours = await commons.request(
          'PUT',
          `/_matrix/client/v3/rooms/${r(roomId)}/send/m.room.message/c1`,
          {
            token: alice.accessToken,
            body: { msgtype: 'm.text', body: `from commons ${version}` },
          },
        );
        assert.equal(ours.status, 200);
        await eventually(
          async () =>
            bodiesOf((await syn(`/rooms/${r(roomId)}/messages?dir=b&limit=20`)).body.chunk),
          (bodies) => bodies.includes(`from commons ${version}`),
          30_000,
        );

        // Both sides list the same members.
        const synapseMembers = joinedOf((await syn(`/rooms/${r(roomId)}/joined_members`)).body);
        assert.deepEqual(synapseMembers, await commonsMembers());

        // Sam leaves (Synapse's make_leave/send_leave against us).
        const left = await syn(`/rooms/${r(roomId)}/leave`, 'POST', {});
        assert.equal(left.status, 200, JSON.stringify(left.body));
        await eventually(commonsMembers, (members) => !members.includes(sam.user_id), 30_000);
      });
    }
  },
  { skip },
);
