/**
 * synapse-admin (the React admin UI: github.com/Awesome-Technologies/synapse-admin) against
 * Commons. The package is a web application (React, react-admin), not a library a test can
 * import, so its data provider (src/synapse/dataProvider.ts) was read and the requests it
 * makes are replayed here as it makes them: the list pages with their query strings (`from`,
 * `limit`, `order_by` = the column sorted on, `dir` = f/b, the filters it sends, undefined
 * ones left out), a user's details and the lists on its tabs (devices, joined rooms, media,
 * connections), a room's tabs (members, state, messages), reports, registration tokens, the
 * server-notice form, and its deletions — checking that each answer has the fields the
 * provider reads (`users`/`total`, `rooms`/`total_rooms`, `event_reports`, `devices`, …).
 * Pushers, federation destinations, media statistics and forward extremities are not served
 * by Commons (docs/admin.md).
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { uniqueName } from '../helpers/assertions.js';
import { ADMIN_SECRET, registerAdmin } from '../helpers/admin.js';

const e = encodeURIComponent;

/** The query string the provider builds: keys in its order, undefined values left out. */
function query(values: Record<string, string | number | boolean | undefined>): string {
  return Object.entries(values)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${e(k)}=${e(String(v))}`)
    .sort()
    .join('&');
}

forEachDatabase('synapse-admin replay', (dialect) => {
  let server: TestServer;
  let admin: TestUser;
  let alice: TestUser;
  let roomId: string;
  before(async () => {
    server = await startTestServer(dialect, {
      COMMONS_REGISTRATION_SHARED_SECRET: ADMIN_SECRET,
      COMMONS_SERVER_NOTICES_SYSTEM_MXID_LOCALPART: 'notices',
    });
    admin = await registerAdmin(server);
    alice = await registerUser(server, uniqueName('alice'));
    const created = await server.request<{ room_id: string }>(
      'POST',
      '/_matrix/client/v3/createRoom',
      {
        token: alice.accessToken,
        body: { name: 'Replay room', preset: 'public_chat' },
      },
    );
    roomId = created.body.room_id;
    await server.request('POST', `/_matrix/client/v3/rooms/${e(roomId)}/report`, {
      token: alice.accessToken,
      body: { reason: 'testing' },
    });
  });
  after(async () => server.close());

  const get = async <T = Record<string, unknown>>(path: string): Promise<T> => {
    const res = await server.request<T>('GET', path, { token: admin.accessToken });
    assert.equal(res.status, 200, `${path}: ${JSON.stringify(res.body)}`);
    return res.body;
  };
  const send = async <T = Record<string, unknown>>(
    method: string,
    path: string,
    body?: unknown,
  ) => {
    const res = await server.request<T>(method, path, { token: admin.accessToken, body });
    assert.equal(res.status, 200, `${method} ${path}: ${JSON.stringify(res.body)}`);
    return res.body;
  };

  it('the users list page (getList users), with its filters and sorting', async () => {
    // Page 1 of 10, sorted on the name column, guests shown, deactivated hidden (its defaults).
    const page = await get<{ users: Array<Record<string, unknown>>; total: number }>(
      `/_synapse/admin/v2/users?${query({ from: 0, limit: 10, guests: true, deactivated: false, order_by: 'name', dir: 'f' })}`,
    );
    assert.ok(page.total >= 2);
    for (const user of page.users) {
      for (const field of [
        'name',
        'admin',
        'deactivated',
        'is_guest',
        'shadow_banned',
        'creation_ts',
        'locked',
        'erased',
      ]) {
        assert.ok(field in user, `users[].${field}`);
      }
    }
    // A search in the name box (user_id and name), the "locked" toggle, descending creation time.
    const searched = await get<{ users: Array<{ name: string }>; total: number }>(
      `/_synapse/admin/v2/users?${query({ from: 0, limit: 10, user_id: 'alice', name: 'alice', guests: false, deactivated: true, locked: false, order_by: 'creation_ts', dir: 'b' })}`,
    );
    assert.deepEqual(
      searched.users.map((u) => u.name),
      [alice.userId],
    );
  });

  it("a user's page (getOne users) and its tabs (getManyReference)", async () => {
    const user = await get<Record<string, unknown>>(`/_synapse/admin/v2/users/${e(alice.userId)}`);
    for (const field of [
      'name',
      'displayname',
      'threepids',
      'external_ids',
      'admin',
      'deactivated',
      'creation_ts',
    ]) {
      assert.ok(field in user, field);
    }
    const tab = query({ from: 0, limit: 25, order_by: 'id', dir: 'f' });
    const devices = await get<{ devices: Array<{ device_id: string }>; total: number }>(
      `/_synapse/admin/v2/users/${e(alice.userId)}/devices?${tab}`,
    );
    assert.equal(devices.total, devices.devices.length);
    const connections = await get<{ user_id: string; devices: Record<string, unknown> }>(
      `/_synapse/admin/v1/whois/${e(alice.userId)}`,
    );
    assert.equal(connections.user_id, alice.userId);
    const rooms = await get<{ joined_rooms: string[]; total: number }>(
      `/_synapse/admin/v1/users/${e(alice.userId)}/joined_rooms?${tab}`,
    );
    assert.ok(rooms.joined_rooms.includes(roomId));
    const media = await get<{ media: unknown[]; total: number }>(
      `/_synapse/admin/v1/users/${e(alice.userId)}/media?${query({ from: 0, limit: 10, order_by: 'created_ts', dir: 'b' })}`,
    );
    assert.equal(media.total, 0);
    // Editing the user (update users): PUT with the record as shown, nulls left out.
    const updated = await send<{ displayname: string }>(
      'PUT',
      `/_synapse/admin/v2/users/${e(alice.userId)}`,
      {
        displayname: 'Alice A.',
        admin: false,
        deactivated: false,
        threepids: [],
        external_ids: [],
      },
    );
    assert.equal(updated.displayname, 'Alice A.');
  });

  it('the rooms list page, a room and its tabs', async () => {
    const page = await get<{ rooms: Array<Record<string, unknown>>; total_rooms: number }>(
      `/_synapse/admin/v1/rooms?${query({ from: 0, limit: 10, search_term: 'Replay', order_by: 'name', dir: 'f' })}`,
    );
    assert.equal(page.total_rooms, 1);
    for (const field of [
      'room_id',
      'name',
      'canonical_alias',
      'joined_members',
      'joined_local_members',
      'version',
      'creator',
      'encryption',
      'federatable',
      'public',
      'join_rules',
      'guest_access',
      'history_visibility',
      'state_events',
    ]) {
      assert.ok(field in (page.rooms[0] ?? {}), `rooms[].${field}`);
    }
    const bySize = await get<{ rooms: unknown[] }>(
      `/_synapse/admin/v1/rooms?${query({ from: 0, limit: 10, order_by: 'joined_members', dir: 'b' })}`,
    );
    assert.ok(bySize.rooms.length >= 1);
    await get(`/_synapse/admin/v1/rooms/${e(roomId)}`);
    const tab = query({ from: 0, limit: 25, order_by: 'id', dir: 'f' });
    const members = await get<{ members: string[]; total: number }>(
      `/_synapse/admin/v1/rooms/${e(roomId)}/members?${tab}`,
    );
    assert.deepEqual(members.members, [alice.userId]);
    const state = await get<{ state: Array<{ event_id: string }> }>(
      `/_synapse/admin/v1/rooms/${e(roomId)}/state?${tab}`,
    );
    assert.ok(state.state.length > 0);
    const messages = await get<{ chunk: unknown[] }>(
      `/_synapse/admin/v1/rooms/${e(roomId)}/messages?limit=10`,
    );
    assert.ok(messages.chunk.length > 0);
  });

  it('reports, registration tokens, server notices, and deletions', async () => {
    const reports = await get<{ event_reports: unknown[]; total: number }>(
      `/_synapse/admin/v1/event_reports?${query({ from: 0, limit: 10, order_by: 'received_ts', dir: 'b' })}`,
    );
    assert.equal(typeof reports.total, 'number');

    const made = await send<{ token: string }>(
      'POST',
      '/_synapse/admin/v1/registration_tokens/new',
      {
        uses_allowed: 3,
      },
    );
    const tokens = await get<{ registration_tokens: Array<{ token: string }> }>(
      `/_synapse/admin/v1/registration_tokens?${query({ from: 0, limit: 10, valid: true, order_by: 'token', dir: 'f' })}`,
    );
    assert.ok(tokens.registration_tokens.some((t) => t.token === made.token));
    await send('DELETE', `/_synapse/admin/v1/registration_tokens/${e(made.token)}`);

    const notice = await send<{ event_id: string }>(
      'POST',
      '/_synapse/admin/v1/send_server_notice',
      {
        user_id: alice.userId,
        content: { msgtype: 'm.text', body: 'Hello from the admin UI' },
      },
    );
    assert.match(notice.event_id, /^\$/);

    // Deleting a device (delete devices), then the room (delete rooms, block: false), then the
    // user (delete users: deactivate with erase).
    const spare = await registerUser(server, uniqueName('spare'));
    await send(
      'DELETE',
      `/_synapse/admin/v2/users/${e(spare.userId)}/devices/${e(spare.deviceId)}`,
    );
    const deletion = await send<{ delete_id: string }>(
      'DELETE',
      `/_synapse/admin/v2/rooms/${e(roomId)}`,
      {
        block: false,
      },
    );
    assert.equal(typeof deletion.delete_id, 'string');
    await send('POST', `/_synapse/admin/v1/deactivate/${e(spare.userId)}`, { erase: true });
  });
});
