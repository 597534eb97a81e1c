/**
 * matrix-bot-sdk's SynapseAdminApis against Commons: the calls Draupnir and other bots make
 * to Synapse's admin API (isSelfAdmin, users, rooms and their state, room deletion and its
 * status, registration tokens), each answer checked against what the test set up.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import {
  LogService,
  MatrixClient,
  MemoryStorageProvider,
  SynapseAdminApis,
  type ILogger,
} from 'matrix-bot-sdk';
import { registerUser, type TestUser } from '../helpers/client.js';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { ADMIN_SECRET, registerAdmin } from '../helpers/admin.js';
import { eventually } from '../helpers/eventually.js';
import { uniqueName } from '../helpers/assertions.js';

const silent: ILogger = {
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  debug: () => undefined,
  trace: () => undefined,
};
LogService.setLogger(silent);

forEachDatabase('matrix-bot-sdk: SynapseAdminApis (what Draupnir calls)', (dialect) => {
  let server: TestServer;
  let admin: TestUser;
  let alice: TestUser;
  let apis: SynapseAdminApis;
  let roomId: string;
  before(async () => {
    server = await startTestServer(dialect, { COMMONS_REGISTRATION_SHARED_SECRET: ADMIN_SECRET });
    admin = await registerAdmin(server);
    alice = await registerUser(server, uniqueName('alice'));
    apis = new SynapseAdminApis(
      new MatrixClient(server.url, admin.accessToken, new MemoryStorageProvider()),
    );
    const aliceClient = new MatrixClient(
      server.url,
      alice.accessToken,
      new MemoryStorageProvider(),
    );
    roomId = await aliceClient.createRoom({ name: 'Bots welcome', preset: 'public_chat' });
  });
  after(async () => server.close());

  it('isSelfAdmin: true for the admin, false (not an error) for anyone else', async () => {
    assert.equal(await apis.isSelfAdmin(), true);
    const other = new SynapseAdminApis(
      new MatrixClient(server.url, alice.accessToken, new MemoryStorageProvider()),
    );
    assert.equal(await other.isSelfAdmin(), false);
    assert.equal(await apis.isAdmin(alice.userId), false);
  });

  it('upsertUser, getUser, listUsers and listAllUsers', async () => {
    const userId = `@${uniqueName('bot')}:test.local`;
    const made = await apis.upsertUser(userId, { password: 'bot password', displayname: 'Bot' });
    assert.equal(made.displayname, 'Bot');
    const got = await apis.getUser(userId);
    assert.equal(got.displayname, 'Bot');
    assert.equal(got.admin, false);
    assert.equal(got.deactivated, false);
    await apis.upsertUser(userId, { admin: true });
    assert.equal(await apis.isAdmin(userId), true);

    // listUsers sends guests=true by default.
    const page = await apis.listUsers(undefined, 2);
    assert.equal(page.users.length, 2);
    assert.equal(page.total, 3);
    assert.equal(typeof page.next_token, 'string');
    const named = await apis.listUsers(undefined, undefined, 'bot');
    assert.deepEqual(
      named.users.map((u) => u.name),
      [userId],
    );
    const all: string[] = [];
    for await (const user of apis.listAllUsers({ limit: 1 })) all.push(user.name);
    assert.deepEqual(all.sort(), [admin.userId, alice.userId, userId].sort());
  });

  it('listRooms and getRoomState', async () => {
    const rooms = await apis.listRooms('Bots');
    assert.deepEqual(
      rooms.rooms.map((r) => [r.room_id, r.name, r.joined_members]),
      [[roomId, 'Bots welcome', 1]],
    );
    assert.equal(rooms.total_rooms, 1);
    const state = await apis.getRoomState(roomId);
    assert.ok(state.some((e) => e.type === 'm.room.name' && e.content.name === 'Bots welcome'));
  });

  it('makeRoomAdmin', async () => {
    const helper = await registerUser(server, uniqueName('mod'));
    await apis.makeRoomAdmin(roomId, helper.userId);
    const aliceClient = new MatrixClient(
      server.url,
      alice.accessToken,
      new MemoryStorageProvider(),
    );
    const levels = (await aliceClient.getRoomStateEvent(roomId, 'm.room.power_levels', '')) as {
      users: Record<string, number>;
    };
    assert.equal(levels.users[helper.userId], 100);
  });

  it('registration tokens: create, get, list, update, delete', async () => {
    const made = await apis.createRegistrationToken({ uses_allowed: 3 });
    assert.equal(made.uses_allowed, 3);
    assert.deepEqual(await apis.getRegistrationToken(made.token), made);
    assert.deepEqual(
      (await apis.listRegistrationTokens()).map((t) => t.token),
      [made.token],
    );
    assert.deepEqual(
      (await apis.listRegistrationTokens(true)).map((t) => t.token),
      [made.token],
    );
    const updated = await apis.updateRegistrationToken(made.token, { uses_allowed: null });
    assert.equal(updated.uses_allowed, null);
    await apis.deleteRegistrationToken(made.token);
    assert.equal(await apis.getRegistrationToken(made.token), null);
  });

  it('deleteRoom and getDeleteRoomState', async () => {
    const aliceClient = new MatrixClient(
      server.url,
      alice.accessToken,
      new MemoryStorageProvider(),
    );
    const doomed = await aliceClient.createRoom({ name: 'Spam' });
    const started = (await apis.deleteRoom(doomed)) as unknown as { delete_id: string };
    assert.equal(typeof started.delete_id, 'string');
    const results = await eventually(
      () => apis.getDeleteRoomState(doomed),
      (r) => r.length === 1 && (r[0] as { status: string }).status === 'complete',
      20_000,
    );
    assert.equal((results[0] as { status: string }).status, 'complete');
    assert.deepEqual(
      (await apis.listRooms()).rooms.map((r) => r.room_id),
      [roomId],
    );
  });
});
