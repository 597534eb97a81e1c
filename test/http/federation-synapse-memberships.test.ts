/**
 * A Commons user and rooms of Synapse (from PyPI) that Commons is not in: invites from Synapse
 * rooms of versions 10, 11 and 12 rejected (our make_leave/send_leave v2 against Synapse, the
 * leave seen there); knocks on Synapse rooms of versions 11 and 12 with `via` (our
 * make_knock/send_knock, Synapse's `knock_room_state` shown in our /sync), rescinded, made
 * again and let in by an invite, accepted without `via` (the inviter's server); `/messages`
 * past the join in Synapse rooms of versions 10-12 (our outbound /backfill: each event checked
 * against the state before it, a redaction applied) and `/context` of an event not held. Skipped (in
 * the SKIPPED banner) where Synapse cannot be installed; CI requires it
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

interface StrippedEvent {
  type: string;
  state_key: string;
  content: Record<string, unknown>;
}
interface SyncBody {
  rooms?: {
    invite?: Record<string, { invite_state: { events: StrippedEvent[] } }>;
    knock?: Record<string, { knock_state: { events: StrippedEvent[] } }>;
    leave?: Record<string, unknown>;
    join?: Record<string, unknown>;
  };
}

forEachDatabase(
  'Commons users and Synapse rooms they are not in',
  (dialect) => {
    let ca: TestCa;
    let commons: TestServer & { serverName: string; port: number };
    let synapse: SynapsePeer;
    let alice: TestUser;
    let sam: { user_id: string; access_token: string };

    const syn = (path: string, method = 'GET', body?: unknown) =>
      requestJson(`${synapse.clientUrl}/_matrix/client/v3${path}`, method, body, sam.access_token);
    const ours = <T = Record<string, unknown>>(method: string, path: string, body?: unknown) =>
      commons.request<T>(method, `/_matrix/client/v3${path}`, {
        token: alice.accessToken,
        ...(body !== undefined ? { body } : {}),
      });
    const aliceSync = async () =>
      (
        await ours<SyncBody>(
          'GET',
          `/sync?filter=${r(JSON.stringify({ room: { include_leave: true } }))}`,
        )
      ).body;
    /** Alice's membership as Synapse has it, waiting until it is `wanted`. */
    const onSynapse = (roomId: string, wanted: string) =>
      eventually(
        async () =>
          (await syn(`/rooms/${r(roomId)}/state/m.room.member/${r(alice.userId)}`)).body.membership,
        (m) => m === wanted,
        30_000,
      );
    async function createOnSynapse(version: string, joinRule: string, name: string) {
      const created = await syn('/createRoom', 'POST', {
        room_version: version,
        name,
        initial_state: [
          { type: 'm.room.join_rules', state_key: '', content: { join_rule: joinRule } },
        ],
      });
      assert.equal(created.status, 200, JSON.stringify(created.body));
      return created.body.room_id as string;
    }
    async function samInvitesAlice(roomId: string): Promise<void> {
      const invited = await syn(`/rooms/${r(roomId)}/invite`, 'POST', { user_id: alice.userId });
      assert.equal(invited.status, 200, JSON.stringify(invited.body));
      await eventually(aliceSync, (sync) => sync.rooms?.invite?.[roomId] !== undefined, 30_000);
    }

    before(async () => {
      const install = synapseInstall();
      if ('problem' in install) throw new Error(install.problem);
      ca = makeTestCa();
      commons = await startFederatedServer(dialect, ca);
      // Many rooms and messages from one user: Synapse's rate limits lifted.
      const unlimited = { per_second: 1000, burst_count: 1000 };
      synapse = await startSynapsePeer(install, ca, {
        rc_message: unlimited,
        rc_room_creation: unlimited,
        rc_joins: { local: unlimited, remote: unlimited },
        rc_invites: { per_room: unlimited, per_user: unlimited, per_issuer: unlimited },
      });
      alice = await registerUser(commons, 'alice');
      const first = await requestJson(`${synapse.clientUrl}/_matrix/client/v3/register`, 'POST', {
        username: 'sam',
        password: 'correct horse',
      });
      const second = await requestJson(`${synapse.clientUrl}/_matrix/client/v3/register`, 'POST', {
        username: 'sam',
        password: 'correct horse',
        auth: { type: 'm.login.dummy', session: first.body.session },
      });
      assert.equal(second.status, 200, JSON.stringify(second.body));
      sam = second.body as typeof sam;
    });
    after(async () => {
      await commons?.close();
      await synapse?.stop();
      if (ca) rmSync(ca.dir, { recursive: true, force: true });
    });

    for (const version of ['10', '11', '12']) {
      it(`rejects an invite to a Synapse room of version ${version}; Synapse sees the leave`, async () => {
        const roomId = await createOnSynapse(version, 'invite', `Invite v${version}`);
        await samInvitesAlice(roomId);
        const left = await ours('POST', `/rooms/${r(roomId)}/leave`, { reason: 'not now' });
        assert.equal(left.status, 200, JSON.stringify(left.body));
        await onSynapse(roomId, 'leave');
        const sync = await aliceSync();
        assert.equal(sync.rooms?.invite?.[roomId], undefined);
        assert.ok(sync.rooms?.leave?.[roomId], 'the room is under leave');
        const forgot = await ours('POST', `/rooms/${r(roomId)}/forget`, {});
        assert.equal(forgot.status, 200);
      });
    }

    for (const version of ['11', '12']) {
      it(`knocks on a Synapse room of version ${version}, rescinds, knocks again, is let in and joins`, async () => {
        const roomId = await createOnSynapse(version, 'knock', `Knock v${version}`);
        const knocked = await ours<{ room_id: string }>(
          'POST',
          `/knock/${r(roomId)}?via=${r(synapse.serverName)}`,
          { reason: 'hello' },
        );
        assert.equal(knocked.status, 200, JSON.stringify(knocked.body));
        await onSynapse(roomId, 'knock');
        const knock = (await aliceSync()).rooms?.knock?.[roomId];
        assert.ok(knock, 'the knock is in /sync');
        assert.equal(
          knock.knock_state.events.find((e) => e.type === 'm.room.name')?.content.name,
          `Knock v${version}`,
        );

        const rescinded = await ours('POST', `/rooms/${r(roomId)}/leave`, {});
        assert.equal(rescinded.status, 200, JSON.stringify(rescinded.body));
        await onSynapse(roomId, 'leave');
        assert.equal((await aliceSync()).rooms?.knock?.[roomId], undefined);

        const again = await ours('POST', `/knock/${r(roomId)}?via=${r(synapse.serverName)}`, {});
        assert.equal(again.status, 200, JSON.stringify(again.body));
        await onSynapse(roomId, 'knock');
        await samInvitesAlice(roomId);
        // No via: the inviter's server (a version 12 room ID names none).
        const joined = await ours('POST', `/join/${r(roomId)}`, {});
        assert.equal(joined.status, 200, JSON.stringify(joined.body));
        await onSynapse(roomId, 'join');
      });
    }

    for (const version of ['10', '11', '12']) {
      it(`pages back past the join in a Synapse room of version ${version}: backfilled from Synapse`, async () => {
        const created = await syn('/createRoom', 'POST', {
          preset: 'public_chat',
          room_version: version,
        });
        assert.equal(created.status, 200, JSON.stringify(created.body));
        const roomId = created.body.room_id as string;
        const expected: string[] = [];
        const ids: string[] = [];
        for (let i = 0; i < 15; i++) {
          const said = await syn(`/rooms/${r(roomId)}/send/m.room.message/early-${i}`, 'PUT', {
            msgtype: 'm.text',
            body: `early ${i}`,
          });
          assert.equal(said.status, 200);
          ids.push(said.body.event_id as string);
          // Early 3 is redacted by Sam before the join: it comes back redacted (no body).
          expected.push(i === 3 ? '' : `early ${i}`);
        }
        const redacted = await syn(
          `/rooms/${r(roomId)}/redact/${r(ids[3] as string)}/early-redaction`,
          'PUT',
          {},
        );
        assert.equal(redacted.status, 200, JSON.stringify(redacted.body));
        const joined = await ours('POST', `/join/${r(roomId)}?via=${r(synapse.serverName)}`, {});
        assert.equal(joined.status, 200, JSON.stringify(joined.body));
        // /context of an event not held yet: fetched from Synapse with the history to it.
        const context = await ours<{
          event: { content: { body?: string } };
          events_before: { content: { body?: string } }[];
          events_after: { content: { body?: string } }[];
        }>('GET', `/rooms/${r(roomId)}/context/${r(ids[12] as string)}?limit=4`);
        assert.equal(context.status, 200, JSON.stringify(context.body));
        assert.deepEqual(
          [
            context.body.event.content.body,
            ...context.body.events_before.map((e) => e.content.body),
            ...context.body.events_after.map((e) => e.content.body),
          ],
          ['early 12', 'early 11', 'early 10', 'early 13', 'early 14'],
        );
        const bodies: string[] = [];
        let from: string | undefined;
        for (let pages = 0; pages < 30; pages++) {
          const page = await ours<{
            chunk: { type: string; content: { body?: string } }[];
            end?: string;
          }>('GET', `/rooms/${r(roomId)}/messages?dir=b&limit=6${from ? `&from=${r(from)}` : ''}`);
          assert.equal(page.status, 200, JSON.stringify(page.body));
          for (const e of page.body.chunk)
            if (e.type === 'm.room.message') bodies.push(e.content.body ?? '');
          if (!page.body.end) break;
          from = page.body.end;
        }
        assert.deepEqual(bodies.reverse(), expected);
      });
    }

    it('a knock on a Synapse room that does not allow it: Synapse’s refusal passed on', async () => {
      const roomId = await createOnSynapse('11', 'invite', 'No knocking');
      const refused = await ours<{ errcode: string }>(
        'POST',
        `/knock/${r(roomId)}?via=${r(synapse.serverName)}`,
        {},
      );
      assert.equal(refused.status, 403, JSON.stringify(refused.body));
      assert.equal(refused.body.errcode, 'M_FORBIDDEN');
    });
  },
  { skip },
);
