/**
 * Synapse's admin API on Commons (docs/admin.md): every endpoint for a server admin, and a
 * non-admin refused by each one (table-driven), on both databases.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { loginUser, registerUser, type TestUser } from '../helpers/client.js';
import { expectError, uniqueName } from '../helpers/assertions.js';
import { ADMIN_SECRET as SECRET, registerAdmin } from '../helpers/admin.js';

const A1 = '/_synapse/admin/v1';
const A2 = '/_synapse/admin/v2';
const C = '/_matrix/client/v3';
const e = encodeURIComponent;

interface UserJson {
  name: string;
  admin: boolean;
  deactivated: boolean;
  displayname: string | null;
  avatar_url: string | null;
  creation_ts: number;
}

forEachDatabase('Synapse admin API', (dialect) => {
  let server: TestServer;
  let admin: TestUser;
  let alice: TestUser;
  let bob: TestUser;
  let roomId: string;
  before(async () => {
    server = await startTestServer(dialect, { COMMONS_REGISTRATION_SHARED_SECRET: SECRET });
    admin = await registerAdmin(server);
    alice = await registerUser(server, uniqueName('alice'));
    bob = await registerUser(server, uniqueName('bob'));
    const created = await server.request<{ room_id: string }>('POST', `${C}/createRoom`, {
      token: alice.accessToken,
      body: { name: 'Zebra talk', room_alias_name: uniqueName('zebra'), preset: 'public_chat' },
    });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    roomId = created.body.room_id;
    const joined = await server.request('POST', `${C}/join/${e(roomId)}`, {
      token: bob.accessToken,
      body: {},
    });
    assert.equal(joined.status, 200, JSON.stringify(joined.body));
  });
  after(async () => server.close());

  const as = (user: TestUser) => ({
    get: <T = Record<string, unknown>>(path: string) =>
      server.request<T>('GET', path, { token: user.accessToken }),
    send: <T = Record<string, unknown>>(method: string, path: string, body?: unknown) =>
      server.request<T>(method, path, { token: user.accessToken, body }),
  });

  describe('refusals', () => {
    // Every admin endpoint, each with a body it would accept from an admin.
    const endpoints: Array<[string, () => string, unknown?]> = [
      ['GET', () => `${A2}/users`],
      ['GET', () => `${A2}/users/${e(alice.userId)}`],
      ['PUT', () => `${A2}/users/${e(alice.userId)}`, { admin: true }],
      ['GET', () => `${A1}/users/${e(alice.userId)}/admin`],
      ['PUT', () => `${A1}/users/${e(alice.userId)}/admin`, { admin: true }],
      ['GET', () => `${A1}/users/${e(alice.userId)}/joined_rooms`],
      ['GET', () => `${A2}/users/${e(alice.userId)}/devices`],
      ['GET', () => `${A2}/users/${e(alice.userId)}/devices/${e(alice.deviceId)}`],
      ['PUT', () => `${A2}/users/${e(alice.userId)}/devices/${e(alice.deviceId)}`, {}],
      ['DELETE', () => `${A2}/users/${e(alice.userId)}/devices/${e(alice.deviceId)}`],
      ['POST', () => `${A2}/users/${e(alice.userId)}/delete_devices`, { devices: [] }],
      ['GET', () => `${A1}/whois/${e(alice.userId)}`],
      ['POST', () => `${A1}/users/${e(alice.userId)}/login`, {}],
      ['POST', () => `${A1}/deactivate/${e(alice.userId)}`, {}],
      ['GET', () => `${A1}/rooms`],
      ['GET', () => `${A1}/rooms/${e(roomId)}`],
      ['GET', () => `${A1}/rooms/${e(roomId)}/members`],
      ['GET', () => `${A1}/rooms/${e(roomId)}/state`],
      ['DELETE', () => `${A2}/rooms/${e(roomId)}`, {}],
      ['DELETE', () => `${A1}/rooms/${e(roomId)}`, {}],
      ['GET', () => `${A2}/rooms/${e(roomId)}/delete_status`],
      ['GET', () => `${A2}/rooms/delete_status/abc`],
      ['POST', () => `${A1}/purge_history/${e(roomId)}`, { purge_up_to_ts: 1 }],
      ['GET', () => `${A1}/purge_history_status/abc`],
      ['GET', () => `${A1}/rooms/${e(roomId)}/block`],
      ['PUT', () => `${A1}/rooms/${e(roomId)}/block`, { block: true }],
      ['POST', () => `${A1}/rooms/${e(roomId)}/make_room_admin`, { user_id: '@x:test.local' }],
      ['GET', () => `${A1}/registration_tokens`],
      ['POST', () => `${A1}/registration_tokens/new`, {}],
      ['GET', () => `${A1}/registration_tokens/abc`],
      ['PUT', () => `${A1}/registration_tokens/abc`, {}],
      ['DELETE', () => `${A1}/registration_tokens/abc`],
      ['GET', () => `${A1}/event_reports`],
      ['GET', () => `${A1}/event_reports/1`],
      ['DELETE', () => `${A1}/event_reports/1`],
      ['GET', () => '/_commons/admin/v1/reports'],
    ];
    /** The path as written in the table, IDs named: `${A2}/users/${e(alice.userId)}` → /v2/users/{alice.userId}. */
    const label = (path: () => string) =>
      path
        .toString()
        .replace(/^\(\)\s*=>\s*/, '')
        .replace(/\$\{A1\}/, '/v1')
        .replace(/\$\{A2\}/, '/v2')
        .replace(/\$\{e\(([^)]*)\)\}/g, '{$1}')
        .replace(/[`'"]/g, '');
    for (const [method, path, body] of endpoints) {
      it(`${method} ${label(path)}: 403 for a non-admin, 401 without a token`, async () => {
        expectError(await as(bob).send(method, path(), body), 403, 'M_FORBIDDEN');
        // A body the endpoint would refuse still gets 403: nothing is told to a non-admin.
        if (body !== undefined) {
          expectError(
            await as(bob).send(method, path(), { admin: 'x', devices: 7 }),
            403,
            'M_FORBIDDEN',
          );
        }
        const anonymous = await server.request(method, path(), { body });
        expectError(anonymous, 401, 'M_MISSING_TOKEN');
      });
    }
  });

  it('GET /v1/server_version answers anyone', async () => {
    const res = await server.request<{ server_version: string }>('GET', `${A1}/server_version`);
    assert.equal(res.status, 200);
    assert.equal(typeof res.body.server_version, 'string');
  });

  describe('users', () => {
    it('lists users with paging, filters and ordering', async () => {
      const all = await as(admin).get<{ users: UserJson[]; total: number; next_token?: string }>(
        `${A2}/users?limit=2`,
      );
      assert.equal(all.status, 200, JSON.stringify(all.body));
      assert.ok(all.body.total >= 3);
      assert.equal(all.body.users.length, 2);
      assert.equal(all.body.next_token, '2');
      const names = all.body.users.map((u) => u.name);
      assert.deepEqual([...names].sort(), names, 'ordered by name');
      const next = await as(admin).get<{ users: UserJson[] }>(`${A2}/users?limit=2&from=2`);
      assert.ok(!names.includes(next.body.users[0]!.name));

      const byName = await as(admin).get<{ users: UserJson[]; total: number }>(
        `${A2}/users?name=${e(alice.userId.slice(1, 8))}`,
      );
      assert.deepEqual(
        byName.body.users.map((u) => u.name),
        [alice.userId],
      );
      assert.equal(byName.body.total, 1);
      const admins = await as(admin).get<{ users: UserJson[] }>(`${A2}/users?admins=true`);
      assert.ok(admins.body.users.every((u) => u.admin));
      assert.ok(admins.body.users.some((u) => u.name === admin.userId));
      const desc = await as(admin).get<{ users: UserJson[] }>(
        `${A2}/users?order_by=creation_ts&dir=b&limit=1`,
      );
      assert.equal(desc.body.users[0]!.name, bob.userId, 'newest first');
      // A LIKE wildcard in the filter matches only itself.
      const wild = await as(admin).get<{ total: number }>(`${A2}/users?user_id=%25`);
      assert.equal(wild.body.total, 0);
    });

    it('refuses bad list parameters with 400', async () => {
      for (const query of ['limit=-1', 'from=-5', 'dir=x', 'order_by=password', 'limit=abc']) {
        expectError(await as(admin).get(`${A2}/users?${query}`), 400, 'M_INVALID_PARAM');
      }
    });

    it('gets one user; 404 for an unknown one, 400 for a remote or invalid one', async () => {
      const res = await as(admin).get<UserJson>(`${A2}/users/${e(alice.userId)}`);
      assert.equal(res.status, 200);
      assert.equal(res.body.name, alice.userId);
      assert.equal(res.body.admin, false);
      assert.equal(res.body.deactivated, false);
      assert.equal(typeof res.body.creation_ts, 'number');
      expectError(
        await as(admin).get(`${A2}/users/${e('@nobody:test.local')}`),
        404,
        'M_NOT_FOUND',
      );
      expectError(
        await as(admin).get(`${A2}/users/${e('@x:elsewhere.org')}`),
        400,
        'M_INVALID_PARAM',
      );
      expectError(await as(admin).get(`${A2}/users/not-a-user`), 400, 'M_INVALID_PARAM');
    });

    it('creates a user (201) who can log in, then modifies it (200)', async () => {
      const userId = `@${uniqueName('made')}:test.local`;
      const created = await as(admin).send<UserJson>('PUT', `${A2}/users/${e(userId)}`, {
        password: 'made password',
        displayname: 'Made',
        admin: false,
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      assert.equal(created.body.displayname, 'Made');
      const session = await loginUser(server, userId, 'made password');

      const changed = await as(admin).send<UserJson>('PUT', `${A2}/users/${e(userId)}`, {
        displayname: 'Renamed',
        admin: true,
      });
      assert.equal(changed.status, 200, JSON.stringify(changed.body));
      assert.equal(changed.body.displayname, 'Renamed');
      assert.equal(changed.body.admin, true);
      // The new admin's existing session is an admin's at once.
      assert.equal(
        (await server.request('GET', `${A2}/users`, { token: session.accessToken })).status,
        200,
      );

      // A new password ends the sessions (logout_devices defaults to true).
      const pw = await as(admin).send('PUT', `${A2}/users/${e(userId)}`, {
        password: 'another one',
      });
      assert.equal(pw.status, 200);
      expectError(
        await server.request('GET', `${C}/account/whoami`, { token: session.accessToken }),
        401,
        'M_UNKNOWN_TOKEN',
      );
      await loginUser(server, userId, 'another one');
    });

    it('deactivates through PUT, and reactivates only with a password', async () => {
      const user = await registerUser(server, uniqueName('deact'));
      const off = await as(admin).send<UserJson>('PUT', `${A2}/users/${e(user.userId)}`, {
        deactivated: true,
      });
      assert.equal(off.status, 200);
      assert.equal(off.body.deactivated, true);
      expectError(
        await server.request('GET', `${C}/account/whoami`, { token: user.accessToken }),
        401,
        'M_UNKNOWN_TOKEN',
      );
      const listed = await as(admin).get<{ users: UserJson[] }>(
        `${A2}/users?deactivated=true&user_id=${e(user.userId)}`,
      );
      assert.equal(listed.body.users[0]?.deactivated, true);
      const hidden = await as(admin).get<{ total: number }>(
        `${A2}/users?user_id=${e(user.userId)}`,
      );
      assert.equal(hidden.body.total, 0);
      expectError(
        await as(admin).send('PUT', `${A2}/users/${e(user.userId)}`, { deactivated: false }),
        400,
        'M_INVALID_PARAM',
      );
      const on = await as(admin).send<UserJson>('PUT', `${A2}/users/${e(user.userId)}`, {
        deactivated: false,
        password: 'back again',
      });
      assert.equal(on.body.deactivated, false);
      await loginUser(server, user.userId, 'back again');
    });

    it('refuses bad bodies and names', async () => {
      expectError(
        await as(admin).send('PUT', `${A2}/users/${e(alice.userId)}`, { admin: 'yes' }),
        400,
        'M_BAD_JSON',
      );
      expectError(
        await as(admin).send('PUT', `${A2}/users/${e('@BAD name:test.local')}`, {}),
        400,
        'M_INVALID_PARAM',
      );
      expectError(
        await as(admin).send('PUT', `${A2}/users/${e('@Upper:test.local')}`, {}),
        400,
        'M_INVALID_USERNAME',
      );
    });

    it('reads and sets the admin flag; an admin cannot demote themselves', async () => {
      const user = await registerUser(server, uniqueName('flag'));
      assert.deepEqual((await as(admin).get(`${A1}/users/${e(user.userId)}/admin`)).body, {
        admin: false,
      });
      assert.equal(
        (await as(admin).send('PUT', `${A1}/users/${e(user.userId)}/admin`, { admin: true }))
          .status,
        200,
      );
      assert.deepEqual((await as(admin).get(`${A1}/users/${e(user.userId)}/admin`)).body, {
        admin: true,
      });
      assert.equal((await as(user).get(`${A2}/users`)).status, 200);
      await as(admin).send('PUT', `${A1}/users/${e(user.userId)}/admin`, { admin: false });
      expectError(await as(user).get(`${A2}/users`), 403, 'M_FORBIDDEN');
      expectError(
        await as(admin).send('PUT', `${A1}/users/${e(admin.userId)}/admin`, { admin: false }),
        400,
        'M_UNKNOWN',
      );
    });

    it('lists joined rooms', async () => {
      const res = await as(admin).get<{ joined_rooms: string[]; total: number }>(
        `${A1}/users/${e(bob.userId)}/joined_rooms`,
      );
      assert.deepEqual(res.body, { joined_rooms: [roomId], total: 1 });
    });

    it('lists, renames and deletes devices; whois; login as the user', async () => {
      const user = await registerUser(server, uniqueName('dev'));
      const devices = await as(admin).get<{
        devices: Array<{ device_id: string; user_id: string }>;
        total: number;
      }>(`${A2}/users/${e(user.userId)}/devices`);
      assert.equal(devices.body.total, 1);
      assert.equal(devices.body.devices[0]!.device_id, user.deviceId);
      const path = `${A2}/users/${e(user.userId)}/devices/${e(user.deviceId)}`;
      assert.equal((await as(admin).send('PUT', path, { display_name: 'Phone' })).status, 200);
      assert.equal(
        (await as(admin).get<{ display_name: string }>(path)).body.display_name,
        'Phone',
      );
      expectError(
        await as(admin).get(`${A2}/users/${e(user.userId)}/devices/NOPE`),
        404,
        'M_NOT_FOUND',
      );

      const whois = await as(admin).get<{ user_id: string; devices: Record<string, unknown> }>(
        `${A1}/whois/${e(user.userId)}`,
      );
      assert.equal(whois.body.user_id, user.userId);
      assert.deepEqual(Object.keys(whois.body.devices), [user.deviceId]);

      const login = await as(admin).send<{ access_token: string }>(
        'POST',
        `${A1}/users/${e(user.userId)}/login`,
        {},
      );
      assert.equal(login.status, 200);
      const who = await server.request<{ user_id: string }>('GET', `${C}/account/whoami`, {
        token: login.body.access_token,
      });
      assert.equal(who.body.user_id, user.userId);

      assert.equal((await as(admin).send('DELETE', path)).status, 200);
      expectError(
        await server.request('GET', `${C}/account/whoami`, { token: user.accessToken }),
        401,
        'M_UNKNOWN_TOKEN',
      );
      assert.equal(
        (
          await as(admin).send('POST', `${A2}/users/${e(user.userId)}/delete_devices`, {
            devices: ['NOPE'],
          })
        ).status,
        200,
      );
      const left = await as(admin).get<{ total: number }>(`${A2}/users/${e(user.userId)}/devices`);
      assert.equal(left.body.total, 1, 'the admin login device is left');
    });
  });

  describe('rooms', () => {
    interface RoomJson {
      room_id: string;
      name: string | null;
      joined_members: number;
      joined_local_members: number;
      canonical_alias: string | null;
      public: boolean;
      join_rules: string | null;
      creator: string;
    }
    it('lists rooms with ordering, search and paging', async () => {
      const other = await as(bob).send<{ room_id: string }>('POST', `${C}/createRoom`, {
        name: 'Aardvark den',
      });
      const list = await as(admin).get<{
        rooms: RoomJson[];
        total_rooms: number;
        offset: number;
        next_batch?: number;
      }>(`${A1}/rooms`);
      assert.equal(list.status, 200, JSON.stringify(list.body));
      assert.equal(list.body.total_rooms, 2);
      assert.deepEqual(
        list.body.rooms.map((r) => r.name),
        ['Aardvark den', 'Zebra talk'],
      );
      const zebra = list.body.rooms[1]!;
      assert.equal(zebra.joined_members, 2);
      assert.equal(zebra.joined_local_members, 2);
      assert.equal(zebra.join_rules, 'public');
      assert.equal(zebra.creator, alice.userId);
      assert.match(zebra.canonical_alias ?? '', /^#zebra/);

      const bySize = await as(admin).get<{ rooms: RoomJson[] }>(
        `${A1}/rooms?order_by=joined_members&dir=b`,
      );
      assert.equal(bySize.body.rooms[0]!.room_id, roomId);
      const page = await as(admin).get<{ rooms: RoomJson[]; next_batch?: number }>(
        `${A1}/rooms?limit=1`,
      );
      assert.equal(page.body.rooms.length, 1);
      assert.equal(page.body.next_batch, 1);
      const second = await as(admin).get<{ rooms: RoomJson[]; prev_batch?: number }>(
        `${A1}/rooms?limit=1&from=1`,
      );
      assert.equal(second.body.rooms[0]!.name, 'Zebra talk');
      assert.equal(second.body.prev_batch, 0);

      const search = await as(admin).get<{ rooms: RoomJson[]; total_rooms: number }>(
        `${A1}/rooms?search_term=aardV`,
      );
      assert.deepEqual(
        search.body.rooms.map((r) => r.room_id),
        [other.body.room_id],
      );
      const byId = await as(admin).get<{ rooms: RoomJson[] }>(
        `${A1}/rooms?search_term=${e(roomId)}`,
      );
      assert.deepEqual(
        byId.body.rooms.map((r) => r.room_id),
        [roomId],
      );
      const none = await as(admin).get<{ rooms: RoomJson[]; total_rooms: number }>(
        `${A1}/rooms?search_term=${e('%')}`,
      );
      assert.equal(none.body.total_rooms, 0);
      expectError(await as(admin).get(`${A1}/rooms?order_by=nope`), 400, 'M_INVALID_PARAM');
    });

    it('make_room_admin: invites the user and gives them the top local power level', async () => {
      const carol = await registerUser(server, uniqueName('carol'));
      const res = await as(admin).send('POST', `${A1}/rooms/${e(roomId)}/make_room_admin`, {
        user_id: carol.userId,
      });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const member = await as(alice).get<{ membership: string }>(
        `${C}/rooms/${e(roomId)}/state/m.room.member/${e(carol.userId)}`,
      );
      assert.equal(member.body.membership, 'invite');
      const levels = await as(alice).get<{ users: Record<string, number> }>(
        `${C}/rooms/${e(roomId)}/state/m.room.power_levels/`,
      );
      assert.equal(levels.body.users[carol.userId], levels.body.users[alice.userId]);
      assert.equal((await as(carol).send('POST', `${C}/join/${e(roomId)}`, {})).status, 200);
      assert.equal((await as(carol).send('POST', `${C}/rooms/${e(roomId)}/leave`, {})).status, 200);

      // A room no local member may administer any more.
      const lone = await as(bob).send<{ room_id: string }>('POST', `${C}/createRoom`, {});
      await as(bob).send('POST', `${C}/rooms/${e(lone.body.room_id)}/leave`, {});
      expectError(
        await as(admin).send('POST', `${A1}/rooms/${e(lone.body.room_id)}/make_room_admin`, {
          user_id: carol.userId,
        }),
        400,
        'M_UNKNOWN',
      );
      const path = `${A1}/rooms/${e(roomId)}/make_room_admin`;
      expectError(
        await as(admin).send('POST', `${A1}/rooms/${e('!nope:test.local')}/make_room_admin`, {
          user_id: carol.userId,
        }),
        404,
        'M_NOT_FOUND',
      );
      expectError(
        await as(admin).send('POST', path, { user_id: '@nobody:test.local' }),
        404,
        'M_NOT_FOUND',
      );
      expectError(
        await as(admin).send('POST', path, { user_id: '@x:elsewhere.org' }),
        400,
        'M_INVALID_PARAM',
      );
    });

    it('gives details, members and state; 404 for an unknown room', async () => {
      const details = await as(admin).get<RoomJson>(`${A1}/rooms/${e(roomId)}`);
      assert.equal(details.status, 200);
      assert.equal(details.body.name, 'Zebra talk');
      // Not published in the room directory.
      assert.equal(details.body.public, false);
      const members = await as(admin).get<{ members: string[]; total: number }>(
        `${A1}/rooms/${e(roomId)}/members`,
      );
      assert.deepEqual([...members.body.members].sort(), [alice.userId, bob.userId].sort());
      assert.equal(members.body.total, 2);
      const state = await as(admin).get<{ state: Array<{ type: string; state_key: string }> }>(
        `${A1}/rooms/${e(roomId)}/state`,
      );
      assert.ok(state.body.state.some((ev) => ev.type === 'm.room.create'));
      assert.ok(
        state.body.state.some((ev) => ev.type === 'm.room.member' && ev.state_key === bob.userId),
      );
      for (const suffix of ['', '/members', '/state']) {
        expectError(
          await as(admin).get(`${A1}/rooms/${e('!nope:test.local')}${suffix}`),
          404,
          'M_NOT_FOUND',
        );
        expectError(await as(admin).get(`${A1}/rooms/not-a-room${suffix}`), 400, 'M_INVALID_PARAM');
      }
    });
  });

  describe('registration tokens', () => {
    interface TokenJson {
      token: string;
      uses_allowed: number | null;
      pending: number;
      completed: number;
      expiry_time: number | null;
    }
    const T = `${A1}/registration_tokens`;
    it('creates, reads, lists, updates and deletes tokens', async () => {
      const made = await as(admin).send<TokenJson>('POST', `${T}/new`, {
        token: 'abc-1',
        uses_allowed: 2,
      });
      assert.equal(made.status, 200, JSON.stringify(made.body));
      assert.deepEqual(made.body, {
        token: 'abc-1',
        uses_allowed: 2,
        pending: 0,
        completed: 0,
        expiry_time: null,
      });
      const generated = await as(admin).send<TokenJson>('POST', `${T}/new`, { length: 10 });
      assert.match(generated.body.token, /^[A-Za-z0-9._~-]{10}$/);
      const plain = await as(admin).send<TokenJson>('POST', `${T}/new`);
      assert.equal(plain.body.token.length, 16);
      const expired = await as(admin).send<TokenJson>('POST', `${T}/new`, {
        token: 'will-expire',
        expiry_time: Date.now() + 60_000,
      });
      assert.equal(expired.status, 200);

      assert.deepEqual((await as(admin).get(`${T}/abc-1`)).body, made.body);
      const list = await as(admin).get<{ registration_tokens: TokenJson[] }>(T);
      assert.deepEqual(
        list.body.registration_tokens.map((t) => t.token).sort(),
        ['abc-1', generated.body.token, plain.body.token, 'will-expire'].sort(),
      );

      const updated = await as(admin).send<TokenJson>('PUT', `${T}/abc-1`, { uses_allowed: 0 });
      assert.equal(updated.body.uses_allowed, 0);
      const valid = await as(admin).get<{ registration_tokens: TokenJson[] }>(`${T}?valid=true`);
      assert.ok(!valid.body.registration_tokens.some((t) => t.token === 'abc-1'));
      const invalid = await as(admin).get<{ registration_tokens: TokenJson[] }>(`${T}?valid=false`);
      assert.deepEqual(
        invalid.body.registration_tokens.map((t) => t.token),
        ['abc-1'],
      );
      const unlimited = await as(admin).send<TokenJson>('PUT', `${T}/abc-1`, {
        uses_allowed: null,
      });
      assert.equal(unlimited.body.uses_allowed, null);

      assert.deepEqual((await as(admin).send('DELETE', `${T}/abc-1`)).body, {});
      expectError(await as(admin).get(`${T}/abc-1`), 404, 'M_NOT_FOUND');
      expectError(await as(admin).send('DELETE', `${T}/abc-1`), 404, 'M_NOT_FOUND');
      expectError(
        await as(admin).send('PUT', `${T}/abc-1`, { uses_allowed: 1 }),
        404,
        'M_NOT_FOUND',
      );
    });

    it('refuses bad tokens, duplicates and past expiry', async () => {
      expectError(await as(admin).get(`${T}?valid=maybe`), 400, 'M_INVALID_PARAM');
      assert.equal((await as(admin).get(`${T}?valid=`)).status, 200);
      await as(admin).send('POST', `${T}/new`, { token: 'dup' });
      expectError(
        await as(admin).send('POST', `${T}/new`, { token: 'dup' }),
        400,
        'M_INVALID_PARAM',
      );
      expectError(
        await as(admin).send('POST', `${T}/new`, { token: 'has space' }),
        400,
        'M_INVALID_PARAM',
      );
      expectError(
        await as(admin).send('POST', `${T}/new`, { token: 'x', length: 5 }),
        400,
        'M_INVALID_PARAM',
      );
      expectError(
        await as(admin).send('POST', `${T}/new`, { uses_allowed: -1 }),
        400,
        'M_BAD_JSON',
      );
      expectError(await as(admin).send('POST', `${T}/new`, { length: 65 }), 400, 'M_BAD_JSON');
      expectError(
        await as(admin).send('POST', `${T}/new`, { expiry_time: 1000 }),
        400,
        'M_INVALID_PARAM',
      );
      expectError(
        await as(admin).send('PUT', `${T}/dup`, { expiry_time: 1000 }),
        400,
        'M_INVALID_PARAM',
      );
    });
  });

  describe('reports', () => {
    it('takes reports of events, rooms and users from clients and lists them for admins', async () => {
      const sent = await as(alice).send<{ event_id: string }>(
        'PUT',
        `${C}/rooms/${e(roomId)}/send/m.room.message/r1`,
        {
          msgtype: 'm.text',
          body: 'spam',
        },
      );
      const eventId = sent.body.event_id;
      assert.deepEqual(
        (
          await as(bob).send('POST', `${C}/rooms/${e(roomId)}/report/${e(eventId)}`, {
            reason: 'spam',
            score: -100,
          })
        ).body,
        {},
      );
      assert.deepEqual(
        (await as(bob).send('POST', `${C}/rooms/${e(roomId)}/report`, { reason: 'spam room' }))
          .body,
        {},
      );
      assert.deepEqual(
        (await as(bob).send('POST', `${C}/users/${e(alice.userId)}/report`, { reason: 'spammer' }))
          .body,
        {},
      );

      const list = await as(admin).get<{
        event_reports: Array<Record<string, unknown>>;
        total: number;
      }>(`${A1}/event_reports`);
      assert.equal(list.status, 200);
      assert.equal(list.body.total, 1);
      const report = list.body.event_reports[0]!;
      assert.equal(report.event_id, eventId);
      assert.equal(report.user_id, bob.userId);
      assert.equal(report.sender, alice.userId);
      assert.equal(report.room_id, roomId);
      assert.equal(report.name, 'Zebra talk');
      assert.equal(report.reason, 'spam');
      assert.equal(report.score, -100);

      const details = await as(admin).get<{ event_json: { content: { body: string } } }>(
        `${A1}/event_reports/${String(report.id)}`,
      );
      assert.equal(details.body.event_json.content.body, 'spam');

      const others = await as(admin).get<{
        reports: Array<Record<string, unknown>>;
        total: number;
      }>('/_commons/admin/v1/reports');
      assert.equal(others.body.total, 2);
      assert.deepEqual(
        others.body.reports.map((r) => r.reason),
        ['spammer', 'spam room'],
      );
      const byRoom = await as(admin).get<{ total: number }>(
        `${A1}/event_reports?room_id=${e('!other:test.local')}`,
      );
      assert.equal(byRoom.body.total, 0);

      assert.deepEqual(
        (await as(admin).send('DELETE', `${A1}/event_reports/${String(report.id)}`)).body,
        {},
      );
      expectError(
        await as(admin).get(`${A1}/event_reports/${String(report.id)}`),
        404,
        'M_NOT_FOUND',
      );
      expectError(await as(admin).get(`${A1}/event_reports/abc`), 400, 'M_INVALID_PARAM');
    });

    it('refuses reports of what the reporter cannot see, or that does not exist', async () => {
      const carol = await registerUser(server, uniqueName('carol'));
      const sent = await as(alice).send<{ event_id: string }>(
        'PUT',
        `${C}/rooms/${e(roomId)}/send/m.room.message/r2`,
        { msgtype: 'm.text', body: 'x' },
      );
      // Not joined: 404, as for an event that does not exist.
      expectError(
        await as(carol).send('POST', `${C}/rooms/${e(roomId)}/report/${e(sent.body.event_id)}`, {}),
        404,
        'M_NOT_FOUND',
      );
      expectError(
        await as(bob).send('POST', `${C}/rooms/${e(roomId)}/report/${e('$nope')}`, {}),
        404,
        'M_NOT_FOUND',
      );
      expectError(
        await as(bob).send('POST', `${C}/rooms/${e('!nope:test.local')}/report`, { reason: 'x' }),
        404,
        'M_NOT_FOUND',
      );
      expectError(
        await as(bob).send('POST', `${C}/users/${e('@nobody:test.local')}/report`, { reason: 'x' }),
        404,
        'M_NOT_FOUND',
      );
      expectError(
        await as(bob).send('POST', `${C}/users/nobody/report`, { reason: 'x' }),
        400,
        'M_INVALID_PARAM',
      );
      expectError(
        await as(bob).send('POST', `${C}/rooms/${e(roomId)}/report`, {}),
        400,
        'M_BAD_JSON',
      );
      expectError(
        await as(bob).send('POST', `${C}/rooms/${e(roomId)}/report/${e(sent.body.event_id)}`, {
          score: 5,
        }),
        400,
        'M_BAD_JSON',
      );
      expectError(
        await server.request('POST', `${C}/rooms/${e(roomId)}/report`, { body: { reason: 'x' } }),
        401,
        'M_MISSING_TOKEN',
      );
    });
  });
});
