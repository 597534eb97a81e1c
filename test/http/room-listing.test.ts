/**
 * Room listings: GET /joined_rooms (spec) and MSC2895's
 * GET /_matrix/client/unstable/org.matrix.msc2895/rooms (every membership of the requester,
 * filtered by repeated `membership` or a `filter` with membership / rooms / not_rooms / limit).
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { expectError } from '../helpers/assertions.js';
import { assertMatchesSpec } from '../helpers/spec-contract.js';

const C = '/_matrix/client/v3';
const MSC2895 = '/_matrix/client/unstable/org.matrix.msc2895/rooms';
const MEMBERSHIPS = ['join', 'invite', 'knock', 'leave', 'ban'] as const;

interface RoomsBody {
  rooms: Record<string, { membership: string }>;
}

const sorted = <T>(record: Record<string, T>): Record<string, T> =>
  Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : 1)));

forEachDatabase('room listings: /joined_rooms and MSC2895 /rooms', (dialect) => {
  let server: TestServer;
  let owner: TestUser; // creates the rooms `me` is put in
  let me: TestUser;
  /** roomId → membership `me` should have, for every room MSC2895 must list. */
  let listed: Record<string, string>;
  let neverIn: string;
  let forgotten: string;
  let createdByMe: string;

  const r = (roomId: string) => encodeURIComponent(roomId);
  const ok = <T>(res: { status: number; body: T }, what: string): T => {
    assert.equal(res.status, 200, `${what}: ${JSON.stringify(res.body)}`);
    return res.body;
  };
  const createRoom = async (user: TestUser, body: Record<string, unknown>) =>
    ok(
      await server.request<{ room_id: string }>('POST', `${C}/createRoom`, {
        token: user.accessToken,
        body,
      }),
      'createRoom',
    ).room_id;
  const post = async (user: TestUser, path: string, body: unknown = {}) =>
    ok(await server.request('POST', `${C}${path}`, { token: user.accessToken, body }), path);
  const rooms = (user: TestUser | null, query = '') =>
    server.request<RoomsBody>('GET', `${MSC2895}${query}`, user ? { token: user.accessToken } : {});
  const roomsView = async (user: TestUser, query = '') => {
    const body = ok(await rooms(user, query), `GET ${MSC2895}${query}`);
    assert.equal(typeof body.rooms, 'object');
    const out: Record<string, string> = {};
    for (const [roomId, entry] of Object.entries(body.rooms)) {
      assert.match(roomId, /^!/);
      assert.ok(MEMBERSHIPS.includes(entry.membership as never), JSON.stringify(entry));
      out[roomId] = entry.membership;
    }
    return sorted(out);
  };
  const pick = (memberships: string[]) =>
    sorted(Object.fromEntries(Object.entries(listed).filter(([, m]) => memberships.includes(m))));
  const filterQuery = (filter: unknown) => `filter=${encodeURIComponent(JSON.stringify(filter))}`;

  before(async () => {
    server = await startTestServer(dialect);
    owner = await registerUser(server);
    me = await registerUser(server);
    const meTarget = { user_id: me.userId };

    const created = await createRoom(me, { preset: 'private_chat' });
    createdByMe = created;
    const joined = await createRoom(owner, { preset: 'public_chat' });
    await post(me, `/join/${r(joined)}`);
    const invited = await createRoom(owner, { preset: 'private_chat' });
    await post(owner, `/rooms/${r(invited)}/invite`, meTarget);
    const knocked = await createRoom(owner, { preset: 'private_chat' });
    ok(
      await server.request('PUT', `${C}/rooms/${r(knocked)}/state/m.room.join_rules/`, {
        token: owner.accessToken,
        body: { join_rule: 'knock' },
      }),
      'knock rule',
    );
    await post(me, `/knock/${r(knocked)}`);
    const left = await createRoom(owner, { preset: 'public_chat' });
    await post(me, `/join/${r(left)}`);
    await post(me, `/rooms/${r(left)}/leave`);
    const kicked = await createRoom(owner, { preset: 'public_chat' });
    await post(me, `/join/${r(kicked)}`);
    await post(owner, `/rooms/${r(kicked)}/kick`, meTarget);
    const banned = await createRoom(owner, { preset: 'public_chat' });
    await post(me, `/join/${r(banned)}`);
    await post(owner, `/rooms/${r(banned)}/ban`, meTarget);
    const rejected = await createRoom(owner, { preset: 'private_chat' });
    await post(owner, `/rooms/${r(rejected)}/invite`, meTarget);
    await post(me, `/rooms/${r(rejected)}/leave`);
    forgotten = await createRoom(owner, { preset: 'public_chat' });
    await post(me, `/join/${r(forgotten)}`);
    await post(me, `/rooms/${r(forgotten)}/leave`);
    await post(me, `/rooms/${r(forgotten)}/forget`);
    neverIn = await createRoom(owner, { preset: 'public_chat' });

    listed = sorted({
      [created]: 'join',
      [joined]: 'join',
      [invited]: 'invite',
      [knocked]: 'knock',
      [left]: 'leave',
      [kicked]: 'leave',
      [banned]: 'ban',
      [rejected]: 'leave',
    });
  });
  after(async () => server.close());

  it('/joined_rooms lists exactly the rooms where the requester is joined', async () => {
    const res = await server.request<{ joined_rooms: string[] }>('GET', `${C}/joined_rooms`, {
      token: me.accessToken,
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assertMatchesSpec('list_joined_rooms.yaml', 'get', '/joined_rooms', 200, res.body);
    assert.deepEqual([...res.body.joined_rooms].sort(), Object.keys(pick(['join'])).sort());
    assert.equal(new Set(res.body.joined_rooms).size, res.body.joined_rooms.length, 'no repeats');

    // The owner is joined in every room they created, and in nothing else.
    const ownerRooms = ok(
      await server.request<{ joined_rooms: string[] }>('GET', `${C}/joined_rooms`, {
        token: owner.accessToken,
      }),
      'joined_rooms',
    );
    const ownerExpected = [...Object.keys(listed), forgotten, neverIn].filter(
      (id) => id !== createdByMe,
    );
    assert.deepEqual([...ownerRooms.joined_rooms].sort(), ownerExpected.sort());
    expectError(await server.request('GET', `${C}/joined_rooms`), 401, 'M_MISSING_TOKEN');
  });
  it('/joined_rooms follows changes: join, leave, rejoin after forgetting', async () => {
    const roomId = await createRoom(owner, { preset: 'public_chat' });
    const list = async () =>
      ok(
        await server.request<{ joined_rooms: string[] }>('GET', `${C}/joined_rooms`, {
          token: me.accessToken,
        }),
        'joined_rooms',
      ).joined_rooms;
    assert.ok(!(await list()).includes(roomId));
    await post(me, `/join/${r(roomId)}`);
    assert.ok((await list()).includes(roomId));
    await post(me, `/rooms/${r(roomId)}/leave`);
    assert.ok(!(await list()).includes(roomId));
    await post(me, `/rooms/${r(roomId)}/forget`);
    await post(me, `/join/${r(roomId)}`);
    assert.ok((await list()).includes(roomId));
    assert.equal((await roomsView(me))[roomId], 'join', 'a rejoined forgotten room is listed');
    await post(me, `/rooms/${r(roomId)}/leave`);
    assert.equal((await roomsView(me))[roomId], 'leave');
    await post(me, `/rooms/${r(roomId)}/forget`);
    assert.ok(!Object.hasOwn(await roomsView(me), roomId));
  });

  it('/versions advertises org.matrix.msc2895', async () => {
    const res = await server.request<{ unstable_features: Record<string, boolean> }>(
      'GET',
      '/_matrix/client/versions',
    );
    assert.equal(res.status, 200);
    assert.equal(res.body.unstable_features['org.matrix.msc2895'], true);
  });

  it('MSC2895 /rooms unfiltered: every membership, except forgotten rooms and rooms never in', async () => {
    const view = await roomsView(me);
    assert.deepEqual(view, listed);
    assert.ok(!(forgotten in view));
    assert.ok(!(neverIn in view));
  });

  it('MSC2895 /rooms ?membership= (repeatable)', async () => {
    for (const m of MEMBERSHIPS) {
      assert.deepEqual(await roomsView(me, `?membership=${m}`), pick([m]), `membership=${m}`);
    }
    assert.deepEqual(
      await roomsView(me, '?membership=join&membership=invite'),
      pick(['join', 'invite']),
    );
    assert.deepEqual(
      await roomsView(me, '?membership=leave&membership=ban&membership=knock'),
      pick(['leave', 'ban', 'knock']),
    );
  });

  it('MSC2895 /rooms filter: membership, rooms, not_rooms, limit', async () => {
    assert.deepEqual(
      await roomsView(me, `?${filterQuery({ membership: ['leave', 'ban'] })}`),
      pick(['leave', 'ban']),
    );
    assert.deepEqual(await roomsView(me, `?${filterQuery({})}`), listed);
    const [first, second] = Object.keys(listed);
    assert.ok(first && second);
    assert.deepEqual(
      await roomsView(me, `?${filterQuery({ rooms: [first, second, neverIn, forgotten] })}`),
      sorted({ [first]: listed[first] as string, [second]: listed[second] as string }),
      'rooms restricts to the listed rooms the requester has a (not forgotten) membership in',
    );
    const rest = sorted({ ...listed });
    delete rest[first];
    assert.deepEqual(await roomsView(me, `?${filterQuery({ not_rooms: [first] })}`), rest);
    const inviteOrLeave = Object.keys(pick(['invite', 'leave']));
    assert.deepEqual(
      await roomsView(
        me,
        `?${filterQuery({ membership: ['leave', 'invite'], rooms: inviteOrLeave, not_rooms: [inviteOrLeave[0]] })}`,
      ),
      sorted(
        Object.fromEntries(inviteOrLeave.slice(1).map((id) => [id, listed[id] as string] as const)),
      ),
    );
    for (const limit of [1, 3]) {
      const view = await roomsView(me, `?${filterQuery({ limit })}`);
      assert.equal(Object.keys(view).length, limit, `limit ${limit}`);
      for (const [id, m] of Object.entries(view)) assert.equal(listed[id], m);
    }
    const limitedLeaves = await roomsView(
      me,
      `?${filterQuery({ membership: ['leave'], limit: 2 })}`,
    );
    assert.equal(Object.keys(limitedLeaves).length, 2);
    for (const m of Object.values(limitedLeaves)) assert.equal(m, 'leave');
  });

  it('MSC2895 /rooms errors: bad membership, bad filter 400 M_INVALID_PARAM; 401 without a token', async () => {
    for (const query of [
      '?membership=joined',
      '?membership=JOIN',
      '?membership=join&membership=x',
      `?${filterQuery({ membership: ['x'] })}`,
      `?${filterQuery({ membership: 'join' })}`,
      `?${filterQuery({ rooms: 'nope' })}`,
      `?${filterQuery({ not_rooms: [1] })}`,
      `?${filterQuery({ limit: 0 })}`,
      `?${filterQuery({ limit: 'all' })}`,
      `?filter=${encodeURIComponent('{not json')}`,
      `?filter=${encodeURIComponent('[]')}`,
    ]) {
      const res = await rooms(me, query);
      expectError(res, 400, 'M_INVALID_PARAM');
    }
    expectError(await rooms(null), 401, 'M_MISSING_TOKEN');
  });
});
