/**
 * Commons and Synapse (from PyPI, a peer nobody here wrote) federating on this machine, each
 * named by IP literal, TLS from a CA the test makes: each fetches the other's keys, each asks
 * the other for a profile with signed requests, Synapse resolves our alias and serves our keys
 * as a notary, and each fetches media uploaded to the other (MSC3916, multipart/mixed). Skipped (with a reason in the SKIPPED banner) where Synapse cannot be installed;
 * CI requires it (COMMONS_TEST_REQUIRE_SYNAPSE=1).
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, it } from 'node:test';
import { verifyServerKeys } from '../../src/core/server-keys.js';
import type { FederationService } from '../../src/services/federation/index.js';
import { forEachDatabase } from '../helpers/databases.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { httpsJson, makeTestCa, startFederatedServer, type TestCa } from '../helpers/federation.js';
import { SYNAPSE, skipUnless, synapseInstall } from '../helpers/requirements.js';
import { startSynapsePeer, type SynapsePeer } from '../helpers/synapse-peer.js';
import type { TestServer } from '../helpers/server.js';

const r = encodeURIComponent;
const skip = skipUnless(SYNAPSE);

async function json(
  url: string,
  method = 'GET',
  body?: unknown,
  token?: string,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(url, {
    method,
    headers: {
      ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
      ...(token ? { Authorization: `Bearer ${token}` } : {}),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

forEachDatabase(
  'federation between Commons and Synapse',
  (dialect) => {
    let ca: TestCa;
    let commons: TestServer & { serverName: string; port: number };
    let synapse: SynapsePeer;
    let federation: FederationService;
    let alice: TestUser;
    let synapseUser: { user_id: string; access_token: string };

    before(async () => {
      const install = synapseInstall();
      if ('problem' in install) throw new Error(install.problem);
      ca = makeTestCa();
      commons = await startFederatedServer(dialect, ca);
      synapse = await startSynapsePeer(install, ca);
      const f = commons.running.services.federation;
      assert.ok(f);
      federation = f;
      alice = await registerUser(commons, 'alice');
      const named = await commons.request(
        'PUT',
        `/_matrix/client/v3/profile/${r(alice.userId)}/displayname`,
        { token: alice.accessToken, body: { displayname: 'Alice of Commons' } },
      );
      assert.equal(named.status, 200);
      const room = await commons.request('POST', '/_matrix/client/v3/createRoom', {
        token: alice.accessToken,
        body: { room_alias_name: 'lobby' },
      });
      assert.equal(room.status, 200);
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
      synapseUser = second.body as { user_id: string; access_token: string };
      const samNamed = await json(
        `${synapse.clientUrl}/_matrix/client/v3/profile/${r(synapseUser.user_id)}/displayname`,
        'PUT',
        { displayname: 'Sam of Synapse' },
        synapseUser.access_token,
      );
      assert.equal(samNamed.status, 200);
    });
    after(async () => {
      await commons?.close();
      await synapse?.stop();
      if (ca) rmSync(ca.dir, { recursive: true, force: true });
    });

    it('Commons fetches and checks Synapse’s keys', async () => {
      const answer = await federation.client.request(
        synapse.serverName,
        'GET',
        '/_matrix/key/v2/server',
        { unsigned: true },
      );
      assert.equal(answer.status, 200);
      assert.ok('keys' in verifyServerKeys(answer.body, synapse.serverName));
    });

    it('Commons asks Synapse for a profile with a signed request', async () => {
      const answer = await federation.client.request(
        synapse.serverName,
        'GET',
        `/_matrix/federation/v1/query/profile?user_id=${r(synapseUser.user_id)}`,
      );
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      assert.equal((answer.body as { displayname?: string }).displayname, 'Sam of Synapse');
    });

    it('Synapse asks Commons for a profile (we fetch its key to check its signed request)', async () => {
      const answer = await json(
        `${synapse.clientUrl}/_matrix/client/v3/profile/${r(alice.userId)}`,
        'GET',
        undefined,
        synapseUser.access_token,
      );
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      assert.equal(answer.body.displayname, 'Alice of Commons');
    });

    it('Synapse resolves an alias of ours through /query/directory', async () => {
      const answer = await json(
        `${synapse.clientUrl}/_matrix/client/v3/directory/room/${r(`#lobby:${commons.serverName}`)}`,
        'GET',
        undefined,
        synapseUser.access_token,
      );
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      assert.deepEqual(answer.body.servers, [commons.serverName]);
    });

    it('Synapse serves our keys as a notary, with its signature added', async () => {
      const [host, port] = synapse.serverName.split(':');
      const answer = await httpsJson(ca, `https://${host}:${port}/_matrix/key/v2/query`, {
        method: 'POST',
        body: { server_keys: { [commons.serverName]: {} } },
      });
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      const keys = (answer.body as { server_keys: Record<string, unknown>[] }).server_keys;
      const ours = keys.find((k) => k.server_name === commons.serverName);
      assert.ok(ours, JSON.stringify(answer.body));
      assert.ok('keys' in verifyServerKeys(ours, commons.serverName));
      assert.ok((ours.signatures as Record<string, unknown>)[synapse.serverName]);
    });

    it('Commons fetches media uploaded to Synapse, for its client', async () => {
      const bytes = Buffer.from('uploaded to Synapse, read through Commons');
      const uploaded = await fetch(`${synapse.clientUrl}/_matrix/media/v3/upload?filename=s.txt`, {
        method: 'POST',
        headers: {
          Authorization: `Bearer ${synapseUser.access_token}`,
          'Content-Type': 'text/plain',
        },
        body: bytes,
      });
      assert.equal(uploaded.status, 200);
      const uri = ((await uploaded.json()) as { content_uri: string }).content_uri;
      const mediaId = uri.slice(uri.lastIndexOf('/') + 1);
      const response = await fetch(
        `${commons.url}/_matrix/client/v1/media/download/${synapse.serverName}/${mediaId}`,
        { headers: { Authorization: `Bearer ${alice.accessToken}` } },
      );
      assert.equal(response.status, 200, await response.clone().text());
      assert.deepEqual(Buffer.from(await response.arrayBuffer()), bytes);
      assert.match(String(response.headers.get('content-type')), /^text\/plain/);
    });

    it('Synapse fetches media uploaded to Commons, for its client', async () => {
      const bytes = Buffer.from('uploaded to Commons, read through Synapse');
      const uploaded = await fetch(`${commons.url}/_matrix/media/v3/upload?filename=c.txt`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${alice.accessToken}`, 'Content-Type': 'text/plain' },
        body: bytes,
      });
      assert.equal(uploaded.status, 200);
      const uri = ((await uploaded.json()) as { content_uri: string }).content_uri;
      const mediaId = uri.slice(uri.lastIndexOf('/') + 1);
      const response = await fetch(
        `${synapse.clientUrl}/_matrix/client/v1/media/download/${commons.serverName}/${mediaId}`,
        { headers: { Authorization: `Bearer ${synapseUser.access_token}` } },
      );
      assert.equal(response.status, 200, await response.clone().text());
      assert.deepEqual(Buffer.from(await response.arrayBuffer()), bytes);
    });
  },
  { skip },
);
