import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestResponse, type TestServer } from '../helpers/server.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { assertMatchesSpec } from '../helpers/spec-contract.js';
import { expectError, uniqueName } from '../helpers/assertions.js';

const C = '/_matrix/client/v3';
const SECRET = 'directory tests shared secret';
const ALIAS_PATH = '/directory/room/{roomAlias}';
const ALIASES_PATH = '/rooms/{roomId}/aliases';
const LIST_PATH = '/directory/list/room/{roomId}';

type Body = Record<string, unknown>;

interface PublishedRoom {
  room_id: string;
  num_joined_members: number;
  world_readable: boolean;
  guest_can_join: boolean;
  join_rule?: string;
  name?: string;
  topic?: string;
  canonical_alias?: string;
  avatar_url?: string;
  room_type?: string;
}

interface PublicRooms {
  chunk: PublishedRoom[];
  next_batch?: string;
  prev_batch?: string;
  total_room_count_estimate?: number;
}

const enc = encodeURIComponent;

/** Client actions shared by both suites. */
function clientOf(getServer: () => TestServer) {
  const request = <T = Body>(
    method: string,
    path: string,
    user?: TestUser,
    body?: unknown,
  ): Promise<TestResponse<T>> =>
    getServer().request<T>(method, `${C}${path}`, {
      ...(user ? { token: user.accessToken } : {}),
      ...(body !== undefined ? { body } : {}),
    });

  return {
    request,

    async createRoom(user: TestUser, body: Body): Promise<string> {
      const res = await request<{ room_id: string }>('POST', '/createRoom', user, body);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body.room_id;
    },

    async join(user: TestUser, roomId: string): Promise<void> {
      const res = await request('POST', `/rooms/${enc(roomId)}/join`, user, {});
      assert.equal(res.status, 200, JSON.stringify(res.body));
    },

    /** Raises `userId` to `level` in the room's power levels (sent by `admin`). */
    async setPower(admin: TestUser, roomId: string, userId: string, level: number): Promise<void> {
      const path = `/rooms/${enc(roomId)}/state/m.room.power_levels/`;
      const current = await request<Body>('GET', path, admin);
      assert.equal(current.status, 200, JSON.stringify(current.body));
      const users = { ...(current.body.users as Body), [userId]: level };
      const res = await request('PUT', path, admin, { ...current.body, users });
      assert.equal(res.status, 200, JSON.stringify(res.body));
    },
  };
}

/** Registers an admin through shared-secret registration (the server needs SECRET). */
async function registerAdmin(server: TestServer): Promise<TestUser> {
  const path = '/_synapse/admin/v1/register';
  const nonce = await server.request<{ nonce: string }>('GET', path);
  const username = uniqueName('admin');
  const password = 'admin password';
  const macText = [nonce.body.nonce, username, password, 'admin'].join('\x00');
  const mac = createHmac('sha1', SECRET).update(macText, 'utf8').digest('hex');
  const res = await server.request<{ user_id: string; access_token: string; device_id: string }>(
    'POST',
    path,
    { body: { nonce: nonce.body.nonce, username, password, admin: true, mac } },
  );
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return {
    userId: res.body.user_id,
    accessToken: res.body.access_token,
    deviceId: res.body.device_id,
    password,
  };
}

forEachDatabase('room aliases and room visibility', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  let admin: TestUser;
  const client = clientOf(() => server);
  const { request } = client;

  before(async () => {
    server = await startTestServer(dialect, { COMMONS_REGISTRATION_SHARED_SECRET: SECRET });
    alice = await registerUser(server);
    bob = await registerUser(server);
    carol = await registerUser(server);
    admin = await registerAdmin(server);
  });
  after(async () => server.close());

  const aliasPath = (alias: string) => `/directory/room/${enc(alias)}`;
  const putAlias = (user: TestUser | undefined, alias: string, roomId: unknown) =>
    request('PUT', aliasPath(alias), user, { room_id: roomId });
  const localAlias = () => `#${uniqueName('a')}:test.local`;

  describe('PUT, GET and DELETE /directory/room/{roomAlias}', () => {
    it('maps an alias, resolves it without a token, lists it, and deletes it', async () => {
      const roomId = await client.createRoom(alice, { preset: 'public_chat' });
      const alias = localAlias();
      const put = await putAlias(alice, alias, roomId);
      assert.equal(put.status, 200, JSON.stringify(put.body));
      assert.deepEqual(put.body, {});
      assertMatchesSpec('directory.yaml', 'put', ALIAS_PATH, 200, put.body);

      const get = await request('GET', aliasPath(alias));
      assert.equal(get.status, 200, JSON.stringify(get.body));
      assert.deepEqual(get.body, { room_id: roomId, servers: ['test.local'] });
      assertMatchesSpec('directory.yaml', 'get', ALIAS_PATH, 200, get.body);

      const listed = await request('GET', `/rooms/${enc(roomId)}/aliases`, alice);
      assert.equal(listed.status, 200);
      assert.deepEqual(listed.body, { aliases: [alias] });

      const joined = await request<Body>('POST', `/join/${enc(alias)}`, bob, {});
      assert.equal(joined.status, 200, 'the new alias is joinable');
      assert.equal(joined.body.room_id, roomId);

      const del = await request('DELETE', aliasPath(alias), alice);
      assert.equal(del.status, 200, JSON.stringify(del.body));
      assert.deepEqual(del.body, {});
      assertMatchesSpec('directory.yaml', 'delete', ALIAS_PATH, 200, del.body);

      const gone = await request('GET', aliasPath(alias));
      expectError(gone, 404, 'M_NOT_FOUND');
      assertMatchesSpec('directory.yaml', 'get', ALIAS_PATH, 404, gone.body);
    });

    it('PUT refuses invalid, foreign and taken aliases (400, 400, 409)', async () => {
      const roomId = await client.createRoom(alice, { preset: 'private_chat' });
      for (const bad of ['noprefix:test.local', '#nocolon', '#:test.local', '#a b:test.local']) {
        const res = await putAlias(alice, bad, roomId);
        expectError(res, 400, 'M_INVALID_PARAM');
        assertMatchesSpec('directory.yaml', 'put', ALIAS_PATH, 400, res.body);
      }
      const foreign = await putAlias(alice, `#${uniqueName('f')}:elsewhere.example`, roomId);
      expectError(foreign, 400, 'M_INVALID_PARAM');

      const alias = localAlias();
      assert.equal((await putAlias(alice, alias, roomId)).status, 200);
      const taken = await putAlias(alice, alias, roomId);
      expectError(taken, 409, 'M_UNKNOWN');
      assertMatchesSpec('directory.yaml', 'put', ALIAS_PATH, 409, taken.body);
      const other = await client.createRoom(alice, { preset: 'private_chat' });
      expectError(await putAlias(alice, alias, other), 409, 'M_UNKNOWN');
      const still = await request<Body>('GET', aliasPath(alias));
      assert.equal(still.body.room_id, roomId, 'the first mapping stands');
    });

    it('PUT refuses unknown rooms and rooms the requester is not joined to (403)', async () => {
      const roomId = await client.createRoom(alice, { preset: 'public_chat' });
      expectError(await putAlias(carol, localAlias(), roomId), 403, 'M_FORBIDDEN');
      expectError(await putAlias(alice, localAlias(), '!unknown:test.local'), 403, 'M_FORBIDDEN');

      await client.join(bob, roomId);
      assert.equal((await putAlias(bob, localAlias(), roomId)).status, 200, 'any member may');
      assert.equal((await request('POST', `/rooms/${enc(roomId)}/leave`, bob, {})).status, 200);
      expectError(await putAlias(bob, localAlias(), roomId), 403, 'M_FORBIDDEN');
    });

    it('PUT checks its body and its token', async () => {
      const roomId = await client.createRoom(alice, { preset: 'private_chat' });
      expectError(await putAlias(alice, localAlias(), 'not-a-room'), 400, 'M_INVALID_PARAM');
      expectError(await putAlias(alice, localAlias(), 42), 400, 'M_BAD_JSON');
      expectError(await request('PUT', aliasPath(localAlias()), alice, {}), 400, 'M_BAD_JSON');
      expectError(await putAlias(undefined, localAlias(), roomId), 401, 'M_MISSING_TOKEN');
    });

    it('GET: 400 for an invalid alias, 404 for an unknown or remote one', async () => {
      const invalid = await request('GET', aliasPath('#nocolon'));
      expectError(invalid, 400, 'M_INVALID_PARAM');
      assertMatchesSpec('directory.yaml', 'get', ALIAS_PATH, 400, invalid.body);
      expectError(await request('GET', aliasPath(localAlias())), 404, 'M_NOT_FOUND');
      expectError(await request('GET', aliasPath('#room:elsewhere.example')), 404, 'M_NOT_FOUND');
    });

    it('DELETE: by the alias creator, an admin, or a member with power over the canonical alias', async () => {
      const roomId = await client.createRoom(alice, { preset: 'public_chat' });
      await client.join(bob, roomId);
      await client.join(carol, roomId);

      // Bob created it: he may delete it although his power level is 0.
      const bobs = localAlias();
      assert.equal((await putAlias(bob, bobs, roomId)).status, 200);
      assert.equal((await request('DELETE', aliasPath(bobs), bob)).status, 200);

      // Alice's alias: Carol (power 0, not its creator) may not; the admin may, from outside.
      const alices = localAlias();
      assert.equal((await putAlias(alice, alices, roomId)).status, 200);
      expectError(await request('DELETE', aliasPath(alices), carol), 403, 'M_FORBIDDEN');
      expectError(await request('DELETE', aliasPath(alices), bob), 403, 'M_FORBIDDEN');
      assert.equal((await request('DELETE', aliasPath(alices), admin)).status, 200);

      // Power to send m.room.canonical_alias (50 by default) is enough.
      const another = localAlias();
      assert.equal((await putAlias(alice, another, roomId)).status, 200);
      await client.setPower(alice, roomId, bob.userId, 50);
      assert.equal((await request('DELETE', aliasPath(another), bob)).status, 200);

      // ...but not once the member has left.
      const last = localAlias();
      assert.equal((await putAlias(alice, last, roomId)).status, 200);
      assert.equal((await request('POST', `/rooms/${enc(roomId)}/leave`, bob, {})).status, 200);
      expectError(await request('DELETE', aliasPath(last), bob), 403, 'M_FORBIDDEN');
      assert.equal((await request('DELETE', aliasPath(last), alice)).status, 200);
    });

    it('DELETE: 404 unknown, 400 invalid or foreign, 401 without a token', async () => {
      const unknown = await request('DELETE', aliasPath(localAlias()), alice);
      expectError(unknown, 404, 'M_NOT_FOUND');
      assertMatchesSpec('directory.yaml', 'delete', ALIAS_PATH, 404, unknown.body);
      expectError(await request('DELETE', aliasPath('#nocolon'), alice), 400, 'M_INVALID_PARAM');
      expectError(
        await request('DELETE', aliasPath('#x:elsewhere.example'), alice),
        400,
        'M_INVALID_PARAM',
      );
      expectError(await request('DELETE', aliasPath(localAlias())), 401, 'M_MISSING_TOKEN');
    });

    it('DELETE of the canonical alias leaves m.room.canonical_alias as it was', async () => {
      const name = uniqueName('canon');
      const alias = `#${name}:test.local`;
      const roomId = await client.createRoom(alice, {
        preset: 'public_chat',
        room_alias_name: name,
      });
      assert.equal((await request('DELETE', aliasPath(alias), alice)).status, 200);
      expectError(await request('GET', aliasPath(alias)), 404, 'M_NOT_FOUND');
      const state = await request<Body>(
        'GET',
        `/rooms/${enc(roomId)}/state/m.room.canonical_alias`,
        alice,
      );
      assert.equal(state.status, 200);
      assert.equal(state.body.alias, alias);
      // The alias is free again.
      assert.equal((await putAlias(alice, alias, roomId)).status, 200);
    });
  });

  describe('GET /rooms/{roomId}/aliases', () => {
    it('lists the local aliases, sorted, to members and admins', async () => {
      const roomId = await client.createRoom(alice, { preset: 'public_chat' });
      const empty = await request('GET', `/rooms/${enc(roomId)}/aliases`, alice);
      assert.equal(empty.status, 200);
      assert.deepEqual(empty.body, { aliases: [] });
      assertMatchesSpec('directory.yaml', 'get', ALIASES_PATH, 200, empty.body);

      const aliases = [localAlias(), localAlias()].sort();
      for (const alias of [...aliases].reverse())
        assert.equal((await putAlias(alice, alias, roomId)).status, 200);
      await client.join(bob, roomId);
      for (const viewer of [alice, bob, admin]) {
        const res = await request('GET', `/rooms/${enc(roomId)}/aliases`, viewer);
        assert.equal(res.status, 200, JSON.stringify(res.body));
        assert.deepEqual(res.body, { aliases });
        assertMatchesSpec('directory.yaml', 'get', ALIASES_PATH, 200, res.body);
      }
    });

    it('403 for non-members (unless world-readable), unknown rooms; 400; 401', async () => {
      const roomId = await client.createRoom(alice, { preset: 'public_chat' });
      const outsider = await request('GET', `/rooms/${enc(roomId)}/aliases`, carol);
      expectError(outsider, 403, 'M_FORBIDDEN');
      assertMatchesSpec('directory.yaml', 'get', ALIASES_PATH, 403, outsider.body);
      expectError(
        await request('GET', `/rooms/${enc('!unknown:test.local')}/aliases`, carol),
        403,
        'M_FORBIDDEN',
      );
      const invalid = await request('GET', `/rooms/${enc('nonsense')}/aliases`, carol);
      expectError(invalid, 400, 'M_INVALID_PARAM');
      assertMatchesSpec('directory.yaml', 'get', ALIASES_PATH, 400, invalid.body);
      expectError(await request('GET', `/rooms/${enc(roomId)}/aliases`), 401, 'M_MISSING_TOKEN');

      const readable = await client.createRoom(alice, {
        preset: 'public_chat',
        initial_state: [
          {
            type: 'm.room.history_visibility',
            content: { history_visibility: 'world_readable' },
          },
        ],
      });
      const alias = localAlias();
      assert.equal((await putAlias(alice, alias, readable)).status, 200);
      const seen = await request('GET', `/rooms/${enc(readable)}/aliases`, carol);
      assert.equal(seen.status, 200, JSON.stringify(seen.body));
      assert.deepEqual(seen.body, { aliases: [alias] });
    });
  });

  describe('GET and PUT /directory/list/room/{roomId}', () => {
    const listPath = (roomId: string) => `/directory/list/room/${enc(roomId)}`;
    const visibilityOf = async (roomId: string): Promise<unknown> => {
      const res = await request<Body>('GET', listPath(roomId));
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assertMatchesSpec('list_public_rooms.yaml', 'get', LIST_PATH, 200, res.body);
      return res.body.visibility;
    };

    it('GET needs no token: private by default, public after createRoom visibility=public', async () => {
      assert.equal(await visibilityOf(await client.createRoom(alice, {})), 'private');
      assert.equal(
        await visibilityOf(await client.createRoom(alice, { visibility: 'public' })),
        'public',
      );
    });

    it('PUT by the creator, a member with power, or an admin; default public', async () => {
      const roomId = await client.createRoom(alice, { preset: 'public_chat' });
      const put = await request('PUT', listPath(roomId), alice, { visibility: 'public' });
      assert.equal(put.status, 200, JSON.stringify(put.body));
      assert.deepEqual(put.body, {});
      assertMatchesSpec('list_public_rooms.yaml', 'put', LIST_PATH, 200, put.body);
      assert.equal(await visibilityOf(roomId), 'public');
      assert.equal(
        (await request('PUT', listPath(roomId), alice, { visibility: 'public' })).status,
        200,
        'no change needed',
      );

      await client.join(bob, roomId);
      expectError(
        await request('PUT', listPath(roomId), bob, { visibility: 'private' }),
        403,
        'M_FORBIDDEN',
      );
      expectError(
        await request('PUT', listPath(roomId), carol, { visibility: 'private' }),
        403,
        'M_FORBIDDEN',
      );
      assert.equal(await visibilityOf(roomId), 'public');

      await client.setPower(alice, roomId, bob.userId, 50);
      assert.equal(
        (await request('PUT', listPath(roomId), bob, { visibility: 'private' })).status,
        200,
      );
      assert.equal(await visibilityOf(roomId), 'private');

      assert.equal((await request('PUT', listPath(roomId), admin, {})).status, 200);
      assert.equal(await visibilityOf(roomId), 'public', 'visibility defaults to public');
    });

    it('404 for unknown rooms, 400 for invalid IDs or values, 401 without a token', async () => {
      const unknownGet = await request('GET', listPath('!unknown:test.local'));
      expectError(unknownGet, 404, 'M_NOT_FOUND');
      assertMatchesSpec('list_public_rooms.yaml', 'get', LIST_PATH, 404, unknownGet.body);
      const unknownPut = await request('PUT', listPath('!unknown:test.local'), alice, {
        visibility: 'public',
      });
      expectError(unknownPut, 404, 'M_NOT_FOUND');
      assertMatchesSpec('list_public_rooms.yaml', 'put', LIST_PATH, 404, unknownPut.body);

      const roomId = await client.createRoom(alice, {});
      expectError(await request('GET', listPath('nonsense')), 400, 'M_INVALID_PARAM');
      expectError(
        await request('PUT', listPath('nonsense'), alice, { visibility: 'public' }),
        400,
        'M_INVALID_PARAM',
      );
      expectError(
        await request('PUT', listPath(roomId), alice, { visibility: 'hidden' }),
        400,
        'M_BAD_JSON',
      );
      expectError(
        await request('PUT', listPath(roomId), undefined, { visibility: 'public' }),
        401,
        'M_MISSING_TOKEN',
      );
    });
  });
});

forEachDatabase('published room directory (/publicRooms)', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  const client = clientOf(() => server);
  const { request } = client;
  const rooms = { cheese: '', wine: '', space: '', hidden: '' };
  const cheeseAlias = `#cheese${process.pid}:test.local`;

  before(async () => {
    server = await startTestServer(dialect);
    alice = await registerUser(server);
    bob = await registerUser(server);
    carol = await registerUser(server);
  });
  after(async () => server.close());

  const getRooms = async (query = ''): Promise<PublicRooms> => {
    const res = await request<PublicRooms>('GET', `/publicRooms${query}`);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assertMatchesSpec('list_public_rooms.yaml', 'get', '/publicRooms', 200, res.body);
    return res.body;
  };
  const postRooms = async (body: Body, query = ''): Promise<PublicRooms> => {
    const res = await request<PublicRooms>('POST', `/publicRooms${query}`, alice, body);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assertMatchesSpec('list_public_rooms.yaml', 'post', '/publicRooms', 200, res.body);
    return res.body;
  };
  const ids = (page: PublicRooms): string[] => page.chunk.map((r) => r.room_id);

  it('is empty before anything is published', async () => {
    assert.deepEqual(await getRooms(), { chunk: [], total_room_count_estimate: 0 });
    assert.deepEqual(await postRooms({}), { chunk: [], total_room_count_estimate: 0 });
  });

  it('lists published rooms, most members first, with their summary', async () => {
    rooms.cheese = await client.createRoom(alice, {
      visibility: 'public',
      preset: 'public_chat',
      name: 'CHEESE Lovers',
      topic: 'Tasty tasty cheese',
      room_alias_name: `cheese${process.pid}`,
      initial_state: [
        { type: 'm.room.avatar', content: { url: 'mxc://test.local/CHEDDAR' } },
        {
          type: 'm.room.history_visibility',
          content: { history_visibility: 'world_readable' },
        },
        { type: 'm.room.guest_access', content: { guest_access: 'can_join' } },
      ],
    });
    rooms.wine = await client.createRoom(alice, {
      visibility: 'public',
      preset: 'public_chat',
      name: 'Wine',
      initial_state: [
        {
          type: 'm.room.topic',
          content: {
            topic: 'Red and white',
            'm.topic': { 'm.text': [{ mimetype: 'text/html', body: '<b>Red</b> and white' }] },
          },
        },
      ],
    });
    rooms.space = await client.createRoom(alice, {
      visibility: 'public',
      preset: 'public_chat',
      creation_content: { type: 'm.space' },
      initial_state: [
        {
          // No `topic` string: the text/plain entry of `m.topic` stands in.
          type: 'm.room.topic',
          content: {
            'm.topic': {
              'm.text': [
                { mimetype: 'text/html', body: '<i>Orbit</i>' },
                { mimetype: 'text/plain', body: 'Orbit' },
              ],
            },
          },
        },
      ],
    });
    rooms.hidden = await client.createRoom(alice, { preset: 'public_chat', name: 'Cheese too' });
    for (const user of [bob, carol]) await client.join(user, rooms.cheese);
    await client.join(bob, rooms.wine);

    const page = await getRooms();
    assert.deepEqual(ids(page), [rooms.cheese, rooms.wine, rooms.space]);
    assert.equal(page.total_room_count_estimate, 3);
    assert.equal(page.next_batch, undefined);
    assert.equal(page.prev_batch, undefined);
    assert.deepEqual(page.chunk[0], {
      room_id: rooms.cheese,
      num_joined_members: 3,
      world_readable: true,
      guest_can_join: true,
      join_rule: 'public',
      name: 'CHEESE Lovers',
      topic: 'Tasty tasty cheese',
      canonical_alias: cheeseAlias,
      avatar_url: 'mxc://test.local/CHEDDAR',
    });
    assert.deepEqual(page.chunk[1], {
      room_id: rooms.wine,
      num_joined_members: 2,
      world_readable: false,
      guest_can_join: false,
      join_rule: 'public',
      name: 'Wine',
      topic: 'Red and white',
    });
    assert.deepEqual(page.chunk[2], {
      room_id: rooms.space,
      num_joined_members: 1,
      world_readable: false,
      guest_can_join: false,
      join_rule: 'public',
      topic: 'Orbit',
      room_type: 'm.space',
    });
    assert.deepEqual(await postRooms({}), page, 'POST without a filter lists the same');
  });

  it('paginates with next_batch and prev_batch tokens', async () => {
    const first = await getRooms('?limit=1');
    assert.deepEqual(ids(first), [rooms.cheese]);
    assert.equal(first.total_room_count_estimate, 3);
    assert.equal(first.prev_batch, undefined);
    assert.equal(typeof first.next_batch, 'string');

    const second = await getRooms(`?limit=1&since=${enc(first.next_batch ?? '')}`);
    assert.deepEqual(ids(second), [rooms.wine]);
    assert.equal(typeof second.prev_batch, 'string');
    const third = await getRooms(`?limit=1&since=${enc(second.next_batch ?? '')}`);
    assert.deepEqual(ids(third), [rooms.space]);
    assert.equal(third.next_batch, undefined, 'no more rooms');
    const back = await getRooms(`?limit=1&since=${enc(third.prev_batch ?? '')}`);
    assert.deepEqual(ids(back), [rooms.wine]);
    const start = await getRooms(`?limit=1&since=${enc(back.prev_batch ?? '')}`);
    assert.deepEqual(ids(start), [rooms.cheese]);
    assert.equal(start.prev_batch, undefined);

    const twoPages = await postRooms({ limit: 2 });
    assert.deepEqual(ids(twoPages), [rooms.cheese, rooms.wine]);
    const rest = await postRooms({ limit: 2, since: twoPages.next_batch });
    assert.deepEqual(ids(rest), [rooms.space]);
    assert.equal(rest.next_batch, undefined);
    assert.equal(typeof rest.prev_batch, 'string');
  });

  it('POST filters by generic_search_term over name, topic and canonical alias, ignoring case', async () => {
    const search = async (term: string) =>
      postRooms({ filter: { generic_search_term: term } }).then((page) => ({
        ids: ids(page),
        total: page.total_room_count_estimate,
      }));
    assert.deepEqual(await search('cheese lovers'), { ids: [rooms.cheese], total: 1 });
    assert.deepEqual(await search('TASTY'), { ids: [rooms.cheese], total: 1 });
    assert.deepEqual(await search(`cheese${process.pid}:test`), { ids: [rooms.cheese], total: 1 });
    assert.deepEqual(await search('and white'), { ids: [rooms.wine], total: 1 });
    assert.deepEqual(await search('cheese'), { ids: [rooms.cheese], total: 1 }, 'unpublished');
    assert.deepEqual(await search('%'), { ids: [], total: 0 }, 'LIKE wildcards are literal');
    assert.deepEqual(await search('_'), { ids: [], total: 0 });
    assert.deepEqual(await search(''), {
      ids: [rooms.cheese, rooms.wine, rooms.space],
      total: 3,
    });
  });

  it('POST filters by room_types; include_all_networks adds no rooms without bridges', async () => {
    const byType = async (roomTypes: (string | null)[]) =>
      ids(await postRooms({ filter: { room_types: roomTypes } }));
    assert.deepEqual(await byType(['m.space']), [rooms.space]);
    assert.deepEqual(await byType([null]), [rooms.cheese, rooms.wine]);
    assert.deepEqual(await byType([null, 'm.space']), [rooms.cheese, rooms.wine, rooms.space]);
    assert.deepEqual(await byType(['org.example.other']), []);
    assert.deepEqual(await byType([]), [rooms.cheese, rooms.wine, rooms.space]);
    // Bridges' network directories: test/http/appservice-queries.test.ts.
    const allNetworks = await postRooms({ include_all_networks: true });
    assert.deepEqual(ids(allNetworks), [rooms.cheese, rooms.wine, rooms.space]);
  });

  it('follows membership and visibility changes', async () => {
    // space 1 → 3, cheese 3 → 2, wine 2 → 1: the order reverses.
    for (const user of [bob, carol]) await client.join(user, rooms.space);
    const left = [
      await request('POST', `/rooms/${enc(rooms.cheese)}/leave`, carol, {}),
      await request('POST', `/rooms/${enc(rooms.wine)}/leave`, bob, {}),
    ];
    for (const res of left) assert.equal(res.status, 200, JSON.stringify(res.body));
    const page = await getRooms();
    assert.deepEqual(ids(page), [rooms.space, rooms.cheese, rooms.wine]);
    assert.deepEqual(
      page.chunk.map((r) => r.num_joined_members),
      [3, 2, 1],
    );

    const unpublish = await request('PUT', `/directory/list/room/${enc(rooms.wine)}`, alice, {
      visibility: 'private',
    });
    assert.equal(unpublish.status, 200);
    const after = await getRooms();
    assert.deepEqual(ids(after), [rooms.space, rooms.cheese]);
    assert.equal(after.total_room_count_estimate, 2);
  });

  it('accepts server= this server; refuses other servers, bad tokens and limits', async () => {
    assert.equal((await getRooms('?server=test.local')).chunk.length, 2);
    assert.equal((await postRooms({}, '?server=test.local')).chunk.length, 2);
    for (const query of ['?server=elsewhere.example', '?server=not%20a%20server']) {
      expectError(await request('GET', `/publicRooms${query}`), 400, 'M_INVALID_PARAM');
      expectError(await request('POST', `/publicRooms${query}`, alice, {}), 400, 'M_INVALID_PARAM');
    }
    const badTokens = [
      'not a token!',
      Buffer.from('not json').toString('base64url'),
      Buffer.from(JSON.stringify({ offset: -1 })).toString('base64url'),
      Buffer.from(JSON.stringify({ offset: 1.5 })).toString('base64url'),
      Buffer.from(JSON.stringify([1])).toString('base64url'),
    ];
    for (const since of badTokens) {
      expectError(await request('GET', `/publicRooms?since=${enc(since)}`), 400, 'M_INVALID_PARAM');
      expectError(await request('POST', '/publicRooms', alice, { since }), 400, 'M_INVALID_PARAM');
    }
    expectError(await request('GET', '/publicRooms?limit=-1'), 400, 'M_INVALID_PARAM');
    expectError(await request('GET', '/publicRooms?limit=many'), 400, 'M_INVALID_PARAM');
    expectError(
      await request('POST', '/publicRooms', alice, { limit: -1 }),
      400,
      'M_INVALID_PARAM',
    );
    expectError(await request('POST', '/publicRooms', alice, { limit: 'many' }), 400, 'M_BAD_JSON');
    expectError(
      await request('POST', '/publicRooms', alice, { filter: { generic_search_term: 7 } }),
      400,
      'M_BAD_JSON',
    );
  });

  it('GET needs no token; POST does', async () => {
    assert.equal((await request('GET', '/publicRooms')).status, 200);
    expectError(await request('POST', '/publicRooms', undefined, {}), 401, 'M_MISSING_TOKEN');
  });
});
