/**
 * The federated public room directory between two Commons servers: B serves
 * `GET`/`POST /_matrix/federation/v1/publicRooms` (signed requests only), and a client of A
 * lists B's rooms with `/publicRooms?server=B`; each error.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, it } from 'node:test';
import type { FederationService } from '../../src/services/federation/index.js';
import { forEachDatabase } from '../helpers/databases.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { httpsJson, makeTestCa, startFederatedServer, type TestCa } from '../helpers/federation.js';
import type { TestServer } from '../helpers/server.js';

type Federated = TestServer & { serverName: string; port: number };
const r = encodeURIComponent;

interface Page {
  chunk: { room_id: string; name?: string; num_joined_members: number }[];
  next_batch?: string;
  total_room_count_estimate: number;
}

forEachDatabase('federated public room directory', (dialect) => {
  let ca: TestCa;
  let a: Federated;
  let b: Federated;
  let alice: TestUser;
  let aFederation: FederationService;
  const rooms: string[] = [];

  before(async () => {
    ca = makeTestCa();
    a = await startFederatedServer(dialect, ca);
    b = await startFederatedServer(dialect, ca);
    assert.ok(a.running.services.federation);
    aFederation = a.running.services.federation;
    alice = await registerUser(a, 'alice');
    const bob = await registerUser(b, 'bob');
    for (const name of ['Gardening', 'Astronomy', 'Cooking']) {
      const created = await b.request<{ room_id: string }>(
        'POST',
        '/_matrix/client/v3/createRoom',
        { token: bob.accessToken, body: { preset: 'public_chat', visibility: 'public', name } },
      );
      assert.equal(created.status, 200);
      rooms.push(created.body.room_id);
    }
  });
  after(async () => {
    await a?.close();
    await b?.close();
    rmSync(ca.dir, { recursive: true, force: true });
  });

  it('serves its directory to a signed GET and POST', async () => {
    const got = await aFederation.client.request(
      b.serverName,
      'GET',
      '/_matrix/federation/v1/publicRooms?limit=2',
    );
    assert.equal(got.status, 200, JSON.stringify(got.body));
    const page = got.body as Page;
    assert.equal(page.chunk.length, 2);
    assert.equal(page.total_room_count_estimate, 3);
    assert.ok(page.next_batch);
    const posted = await aFederation.client.request(
      b.serverName,
      'POST',
      '/_matrix/federation/v1/publicRooms',
      { body: { filter: { generic_search_term: 'astro' } } },
    );
    assert.equal(posted.status, 200, JSON.stringify(posted.body));
    assert.deepEqual(
      (posted.body as Page).chunk.map((room) => room.name),
      ['Astronomy'],
    );
  });

  it('refuses unsigned and malformed requests', async () => {
    const unsigned = await httpsJson(
      ca,
      `https://127.0.0.1:${b.port}/_matrix/federation/v1/publicRooms`,
    );
    assert.equal(unsigned.status, 401);
    const badLimit = await aFederation.client.request(
      b.serverName,
      'POST',
      '/_matrix/federation/v1/publicRooms',
      { body: { limit: 'ten' } },
    );
    assert.equal(badLimit.status, 400);
    const badNetwork = await aFederation.client.request(
      b.serverName,
      'GET',
      '/_matrix/federation/v1/publicRooms?third_party_instance_id=nobar',
    );
    assert.equal(badNetwork.status, 400);
    assert.equal((badNetwork.body as { errcode: string }).errcode, 'M_INVALID_PARAM');
    const badToken = await aFederation.client.request(
      b.serverName,
      'GET',
      '/_matrix/federation/v1/publicRooms?since=garbage',
    );
    assert.equal(badToken.status, 400);
  });

  it('a client of A lists B’s rooms with ?server=, paging and filtering', async () => {
    const first = await a.request<Page>(
      'GET',
      `/_matrix/client/v3/publicRooms?server=${r(b.serverName)}&limit=2`,
    );
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.equal(first.body.chunk.length, 2);
    assert.ok(first.body.next_batch);
    const second = await a.request<Page>(
      'GET',
      `/_matrix/client/v3/publicRooms?server=${r(b.serverName)}&limit=2&since=${r(first.body.next_batch)}`,
    );
    assert.equal(second.status, 200);
    assert.deepEqual(
      [...first.body.chunk, ...second.body.chunk].map((room) => room.room_id).sort(),
      [...rooms].sort(),
    );
    const filtered = await a.request<Page>(
      'POST',
      `/_matrix/client/v3/publicRooms?server=${r(b.serverName)}`,
      { token: alice.accessToken, body: { filter: { generic_search_term: 'cook' } } },
    );
    assert.equal(filtered.status, 200, JSON.stringify(filtered.body));
    assert.deepEqual(
      filtered.body.chunk.map((room) => room.name),
      ['Cooking'],
    );
    assert.equal(filtered.body.chunk[0]?.num_joined_members, 1);
  });

  it('passes on the other server’s refusal; an unreachable server is 502', async () => {
    const badToken = await a.request<{ errcode: string }>(
      'GET',
      `/_matrix/client/v3/publicRooms?server=${r(b.serverName)}&since=garbage`,
    );
    assert.equal(badToken.status, 400);
    assert.equal(badToken.body.errcode, 'M_INVALID_PARAM');
    const dead = await a.request<{ errcode: string }>(
      'GET',
      `/_matrix/client/v3/publicRooms?server=${r('127.0.0.1:9')}`,
    );
    assert.equal(dead.status, 502);
    assert.equal(dead.body.errcode, 'M_UNKNOWN');
    const invalid = await a.request<{ errcode: string }>(
      'GET',
      `/_matrix/client/v3/publicRooms?server=${r('not a server')}`,
    );
    assert.equal(invalid.status, 400);
    assert.equal(invalid.body.errcode, 'M_INVALID_PARAM');
  });
});
