/**
 * Room summaries across two Commons servers: B serves `GET /_matrix/federation/v1/hierarchy`
 * (signed requests only; public rooms, spaces with their children, private rooms only to a
 * server with a member joined or invited, restricted ones to a server in an allowed room), and
 * a client of A reads the summary of B's rooms by ID with `via` and by B's alias, with its
 * membership as A knows it; each error.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { after, before, it } from 'node:test';
import type { FederationService } from '../../src/services/federation/index.js';
import { forEachDatabase } from '../helpers/databases.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { eventually } from '../helpers/eventually.js';
import { httpsJson, makeTestCa, startFederatedServer, type TestCa } from '../helpers/federation.js';
import { SPEC_ROOT } from '../helpers/requirements.js';
import { assertMatchesSpec } from '../helpers/spec-contract.js';
import type { TestServer } from '../helpers/server.js';

type Federated = TestServer & { serverName: string; port: number };
const r = encodeURIComponent;
const HIERARCHY_SPEC = path.join(SPEC_ROOT, 'data/api/server-server/space_hierarchy.yaml');
/** The answer checked against the spec's schema for `/hierarchy` (200 or 404). */
const matchesSpec = (status: number, body: unknown) =>
  assertMatchesSpec(HIERARCHY_SPEC, 'get', '/hierarchy/{roomId}', status, body);

interface Summary {
  room_id: string;
  name?: string;
  topic?: string;
  num_joined_members: number;
  join_rule?: string;
  room_type?: string;
  room_version?: string;
  allowed_room_ids?: string[];
  canonical_alias?: string;
  membership?: string;
  children_state?: { type: string; state_key: string; origin_server_ts: number }[];
  errcode?: string;
}
interface Hierarchy {
  room: Summary;
  children: Summary[];
  inaccessible_children: string[];
  errcode?: string;
}

forEachDatabase('room summaries over federation', (dialect) => {
  let ca: TestCa;
  let a: Federated;
  let b: Federated;
  let alice: TestUser;
  let bob: TestUser;
  let aFederation: FederationService;
  let publicRoom: string;
  let privateRoom: string;
  let space: string;

  const onB = <T = Record<string, unknown>>(method: string, path: string, body?: unknown) =>
    b.request<T>(method, `/_matrix/client/v3${path}`, {
      token: bob.accessToken,
      ...(body !== undefined ? { body } : {}),
    });
  const hierarchy = (roomId: string, query = '') =>
    aFederation.client.request(
      b.serverName,
      'GET',
      `/_matrix/federation/v1/hierarchy/${r(roomId)}${query}`,
    ) as Promise<{ status: number; body: Hierarchy }>;
  const summaryOnA = (roomIdOrAlias: string, query = '', token?: string) =>
    a.request<Summary>('GET', `/_matrix/client/v1/room_summary/${r(roomIdOrAlias)}${query}`, {
      ...(token !== undefined ? { token } : {}),
    });

  before(async () => {
    ca = makeTestCa();
    a = await startFederatedServer(dialect, ca);
    b = await startFederatedServer(dialect, ca);
    assert.ok(a.running.services.federation);
    aFederation = a.running.services.federation;
    alice = await registerUser(a, 'alice');
    bob = await registerUser(b, 'bob');
    const created = async (body: Record<string, unknown>) => {
      const answer = await onB<{ room_id: string }>('POST', '/createRoom', body);
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      return answer.body.room_id;
    };
    publicRoom = await created({
      preset: 'public_chat',
      room_alias_name: 'garden',
      name: 'Garden',
      topic: 'Plants and soil',
    });
    privateRoom = await created({ preset: 'private_chat', name: 'Secret' });
    space = await created({
      preset: 'public_chat',
      name: 'The space',
      creation_content: { type: 'm.space' },
    });
    for (const [child, suggested] of [
      [publicRoom, true],
      [privateRoom, false],
    ] as const) {
      const put = await onB('PUT', `/rooms/${r(space)}/state/m.space.child/${r(child)}`, {
        via: [b.serverName],
        suggested,
      });
      assert.equal(put.status, 200, JSON.stringify(put.body));
    }
  });
  after(async () => {
    await a?.close();
    await b?.close();
    rmSync(ca.dir, { recursive: true, force: true });
  });

  it('serves a public room’s hierarchy entry to a signed request', async () => {
    const got = await hierarchy(publicRoom);
    assert.equal(got.status, 200, JSON.stringify(got.body));
    matchesSpec(200, got.body);
    assert.equal(got.body.room.room_id, publicRoom);
    assert.equal(got.body.room.name, 'Garden');
    assert.equal(got.body.room.topic, 'Plants and soil');
    assert.equal(got.body.room.join_rule, 'public');
    assert.equal(got.body.room.num_joined_members, 1);
    assert.equal(got.body.room.canonical_alias, `#garden:${b.serverName}`);
    assert.ok(got.body.room.room_version);
    assert.deepEqual(got.body.room.children_state, []);
    assert.deepEqual(got.body.children, []);
    assert.deepEqual(got.body.inaccessible_children, []);
  });

  it('serves a space with its children, the private one as inaccessible', async () => {
    const got = await hierarchy(space);
    assert.equal(got.status, 200, JSON.stringify(got.body));
    matchesSpec(200, got.body);
    assert.equal(got.body.room.room_type, 'm.space');
    assert.deepEqual(
      got.body.room.children_state?.map((c) => c.state_key).sort(),
      [publicRoom, privateRoom].sort(),
    );
    assert.ok(got.body.room.children_state?.every((c) => c.type === 'm.space.child'));
    assert.ok(got.body.room.children_state?.every((c) => c.origin_server_ts > 0));
    assert.deepEqual(
      got.body.children.map((c) => [c.room_id, c.name]),
      [[publicRoom, 'Garden']],
    );
    assert.deepEqual(got.body.inaccessible_children, [privateRoom]);
    const suggested = await hierarchy(space, '?suggested_only=true');
    assert.equal(suggested.status, 200, JSON.stringify(suggested.body));
    assert.deepEqual(
      suggested.body.children.map((c) => c.room_id),
      [publicRoom],
    );
    assert.deepEqual(suggested.body.inaccessible_children, []);
  });

  it('answers 404 for a room the server may not see and for an unknown room', async () => {
    const hidden = await hierarchy(privateRoom);
    assert.equal(hidden.status, 404);
    matchesSpec(404, hidden.body);
    assert.equal(hidden.body.errcode, 'M_NOT_FOUND');
    const unknown = await hierarchy(`!nowhere:${b.serverName}`);
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.errcode, 'M_NOT_FOUND');
  });

  it('refuses unsigned and malformed requests', async () => {
    const unsigned = await httpsJson(
      ca,
      `https://127.0.0.1:${b.port}/_matrix/federation/v1/hierarchy/${r(publicRoom)}`,
    );
    assert.equal(unsigned.status, 401);
    assert.equal((unsigned.body as { errcode: string }).errcode, 'M_UNAUTHORIZED');
    const bad = await hierarchy(publicRoom, '?suggested_only=perhaps');
    assert.equal(bad.status, 400);
  });

  it('a client of A reads the summary of B’s public room by ID with via', async () => {
    const got = await summaryOnA(publicRoom, `?via=${r(b.serverName)}`, alice.accessToken);
    assert.equal(got.status, 200, JSON.stringify(got.body));
    assertMatchesSpec('room_summary.yaml', 'get', '/room_summary/{roomIdOrAlias}', 200, got.body);
    assert.equal(got.body.room_id, publicRoom);
    assert.equal(got.body.name, 'Garden');
    assert.equal(got.body.topic, 'Plants and soil');
    assert.equal(got.body.join_rule, 'public');
    assert.equal(got.body.num_joined_members, 1);
    assert.ok(got.body.room_version);
    assert.equal(got.body.membership, undefined);
    // Unauthenticated, and on the unstable path.
    const anonymous = await a.request<Summary>(
      'GET',
      `/_matrix/client/unstable/im.nheko.summary/summary/${r(publicRoom)}?via=${r(b.serverName)}`,
    );
    assert.equal(anonymous.status, 200, JSON.stringify(anonymous.body));
    assert.equal(anonymous.body.name, 'Garden');
  });

  it('a client of A reads the summary of B’s public room by B’s alias', async () => {
    const got = await summaryOnA(`#garden:${b.serverName}`, '', alice.accessToken);
    assert.equal(got.status, 200, JSON.stringify(got.body));
    assert.equal(got.body.room_id, publicRoom);
    assert.equal(got.body.name, 'Garden');
    const space_ = await summaryOnA(space, `?via=${r(b.serverName)}`, alice.accessToken);
    assert.equal(space_.status, 200, JSON.stringify(space_.body));
    assert.equal(space_.body.room_type, 'm.space');
  });

  it('answers 404 for remote rooms not visible or not found, 400 for a bad via', async () => {
    const hidden = await summaryOnA(privateRoom, `?via=${r(b.serverName)}`, alice.accessToken);
    assert.equal(hidden.status, 404);
    assert.equal(hidden.body.errcode, 'M_NOT_FOUND');
    const unknownAlias = await summaryOnA(`#nothing:${b.serverName}`, '', alice.accessToken);
    assert.equal(unknownAlias.status, 404);
    assert.equal(unknownAlias.body.errcode, 'M_NOT_FOUND');
    const unknownRoom = await summaryOnA(
      `!nowhere:${b.serverName}`,
      `?via=${r(b.serverName)}`,
      alice.accessToken,
    );
    assert.equal(unknownRoom.status, 404);
    const unreachable = await summaryOnA(
      `!nowhere:127.0.0.1:1`,
      `?via=${r('127.0.0.1:1')}`,
      alice.accessToken,
    );
    assert.equal(unreachable.status, 404);
    const badVia = await summaryOnA(publicRoom, '?via=not%20a%20server', alice.accessToken);
    assert.equal(badVia.status, 400);
    assert.equal(badVia.body.errcode, 'M_INVALID_PARAM');
  });

  it('an invite received over federation shows B’s private room to its invitee', async () => {
    const invited = await onB('POST', `/rooms/${r(privateRoom)}/invite`, {
      user_id: alice.userId,
    });
    assert.equal(invited.status, 200, JSON.stringify(invited.body));
    const got = await eventually(
      () => summaryOnA(privateRoom, `?via=${r(b.serverName)}`, alice.accessToken),
      (answer) => answer.status === 200,
      20_000,
    );
    assert.equal(got.body.name, 'Secret');
    assert.equal(got.body.join_rule, 'invite');
    assert.equal(got.body.membership, 'invite');
    // B now serves the room to A (a user of A is invited), but other users of A still see 404.
    assert.equal((await hierarchy(privateRoom)).status, 200);
    const carol = await registerUser(a, 'carol');
    const other = await summaryOnA(privateRoom, `?via=${r(b.serverName)}`, carol.accessToken);
    assert.equal(other.status, 404);
  });

  it('a restricted room shows to a server, and a user, in a room it allows', async () => {
    const created = await onB<{ room_id: string }>('POST', '/createRoom', {
      preset: 'private_chat',
      room_version: '10',
      name: 'Members of the space',
      initial_state: [
        {
          type: 'm.room.join_rules',
          state_key: '',
          content: {
            join_rule: 'restricted',
            allow: [{ type: 'm.room_membership', room_id: space }],
          },
        },
      ],
    });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    const restricted = created.body.room_id;
    assert.equal((await hierarchy(restricted)).status, 404);
    const before = await summaryOnA(restricted, `?via=${r(b.serverName)}`, alice.accessToken);
    assert.equal(before.status, 404);
    const joined = await a.request(
      'POST',
      `/_matrix/client/v3/join/${r(space)}?via=${r(b.serverName)}`,
      { token: alice.accessToken, body: {} },
    );
    assert.equal(joined.status, 200, JSON.stringify(joined.body));
    const served = await eventually(
      () => hierarchy(restricted),
      (answer) => answer.status === 200,
      20_000,
    );
    assert.equal(served.body.room.join_rule, 'restricted');
    const got = await summaryOnA(restricted, `?via=${r(b.serverName)}`, alice.accessToken);
    assert.equal(got.status, 200, JSON.stringify(got.body));
    assert.equal(got.body.name, 'Members of the space');
    assert.deepEqual(got.body.allowed_room_ids, [space]);
    assert.equal(got.body.membership, undefined);
    const dave = await registerUser(a, 'dave');
    const other = await summaryOnA(restricted, `?via=${r(b.serverName)}`, dave.accessToken);
    assert.equal(other.status, 404);
  });
});
