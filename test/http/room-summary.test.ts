/** The room summary (MSC3266, spec v1.15), stable and unstable paths, through a listening server. */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { assertMatchesSpec } from '../helpers/spec-contract.js';
import { expectError, uniqueName } from '../helpers/assertions.js';

const V3 = '/_matrix/client/v3';
const PATHS = [
  '/_matrix/client/v1/room_summary/',
  '/_matrix/client/unstable/im.nheko.summary/summary/',
];
const SPEC = { file: 'room_summary.yaml', method: 'get', path: '/room_summary/{roomIdOrAlias}' };
const r = encodeURIComponent;

forEachDatabase('room summary (MSC3266)', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let publicRoom: string;
  let alias: string;
  let privateRoom: string;
  let invited: string;
  let restricted: string;
  before(async () => {
    server = await startTestServer(dialect);
    alice = await registerUser(server);
    bob = await registerUser(server);
    const create = async (body: Record<string, unknown>) => {
      const response = await server.request<{ room_id: string }>('POST', `${V3}/createRoom`, {
        token: alice.accessToken,
        body,
      });
      assert.equal(response.status, 200, JSON.stringify(response.body));
      return response.body.room_id;
    };
    const localpart = uniqueName('summary');
    alias = `#${localpart}:test.local`;
    publicRoom = await create({
      preset: 'public_chat',
      name: 'Cheese',
      topic: 'Tasty',
      room_alias_name: localpart,
      creation_content: { type: 'm.space' },
      initial_state: [
        {
          type: 'm.room.encryption',
          state_key: '',
          content: { algorithm: 'm.megolm.v1.aes-sha2' },
        },
      ],
    });
    privateRoom = await create({ preset: 'private_chat', name: 'Secret' });
    invited = await create({ preset: 'private_chat', name: 'Invited', invite: [bob.userId] });
    restricted = await create({
      preset: 'private_chat',
      initial_state: [
        {
          type: 'm.room.join_rules',
          state_key: '',
          content: {
            join_rule: 'restricted',
            allow: [{ type: 'm.room_membership', room_id: publicRoom }],
          },
        },
      ],
    });
  });
  after(async () => server.close());

  const summary = (path: string, room: string, user?: TestUser) =>
    server.request<Record<string, unknown>>('GET', `${path}${r(room)}`, {
      ...(user ? { token: user.accessToken } : {}),
    });

  it('summarises a public room by ID and by alias, on both paths', async () => {
    for (const path of PATHS) {
      for (const room of [publicRoom, alias]) {
        const response = await summary(path, room, bob);
        assert.equal(response.status, 200, JSON.stringify(response.body));
        assertMatchesSpec(SPEC.file, SPEC.method, SPEC.path, 200, response.body);
        assert.equal(response.body.room_id, publicRoom);
        assert.equal(response.body.name, 'Cheese');
        assert.equal(response.body.topic, 'Tasty');
        assert.equal(response.body.canonical_alias, alias);
        assert.equal(response.body.num_joined_members, 1);
        assert.equal(response.body.join_rule, 'public');
        assert.equal(response.body.room_type, 'm.space');
        assert.equal(response.body.encryption, 'm.megolm.v1.aes-sha2');
        assert.equal(typeof response.body.room_version, 'string');
        assert.equal(response.body.world_readable, false);
        assert.equal(response.body.guest_can_join, false);
        assert.equal(response.body.membership, 'leave');
      }
    }
    const mine = await summary(PATHS[0]!, publicRoom, alice);
    assert.equal(mine.body.membership, 'join');
  });

  it('answers a public room without authentication, without membership', async () => {
    const response = await summary(PATHS[0]!, publicRoom);
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assert.equal(response.body.membership, undefined);
  });

  it('a private room: its members and invitees only; others are told it is not found', async () => {
    expectError(await summary(PATHS[0]!, privateRoom, bob), 404, 'M_NOT_FOUND', SPEC);
    expectError(await summary(PATHS[0]!, privateRoom), 404, 'M_NOT_FOUND', SPEC);
    const own = await summary(PATHS[0]!, privateRoom, alice);
    assert.equal(own.status, 200);
    assert.equal(own.body.join_rule, 'invite');
    const invite = await summary(PATHS[1]!, invited, bob);
    assert.equal(invite.status, 200, JSON.stringify(invite.body));
    assert.equal(invite.body.membership, 'invite');
    assert.equal(invite.body.name, 'Invited');
  });

  it('a restricted room: visible to members of an allowed room', async () => {
    expectError(await summary(PATHS[0]!, restricted, bob), 404, 'M_NOT_FOUND');
    const joined = await server.request('POST', `${V3}/join/${r(publicRoom)}`, {
      token: bob.accessToken,
      body: {},
    });
    assert.equal(joined.status, 200);
    const response = await summary(PATHS[0]!, restricted, bob);
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assert.deepEqual(response.body.allowed_room_ids, [publicRoom]);
    assert.equal(response.body.join_rule, 'restricted');
  });

  it('unknown rooms, aliases and malformed identifiers are M_NOT_FOUND', async () => {
    expectError(await summary(PATHS[0]!, '!nope:test.local', alice), 404, 'M_NOT_FOUND', SPEC);
    expectError(await summary(PATHS[0]!, '#nope:test.local', alice), 404, 'M_NOT_FOUND', SPEC);
    expectError(await summary(PATHS[0]!, 'garbage', alice), 404, 'M_NOT_FOUND', SPEC);
  });
});
