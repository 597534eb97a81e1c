/**
 * Idle /sync long-polls (issue #19): a waiting request is woken by the changes that concern
 * it and by no other — not by other users' messages, account data or presence (a user's /sync
 * writes their presence), not by a change that committed while it was building its answer
 * unless that change concerns it — and waiting holds no database connection. The waiters are
 * a notifier over the running server's own storage, so the changes are the server's commits,
 * made through HTTP; the last test goes through /sync alone.
 */
import assert from 'node:assert/strict';
import { setImmediate as turn } from 'node:timers/promises';
import { after, before, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { createNotifier, type Notifier } from '../../src/services/notifier.js';

const V3 = '/_matrix/client/v3';

forEachDatabase('idle /sync long-polls', (dialect) => {
  let server: TestServer;
  let notifier: Notifier;
  let txn = 0;
  before(async () => {
    // A small pool: waiting long-polls must not need connections.
    server = await startTestServer(dialect, { COMMONS_DATABASE_POOL_SIZE: '2' });
    notifier = createNotifier(server.running.storage);
  });
  after(async () => {
    notifier.close();
    await server.close();
  });

  async function createRoom(user: TestUser, invite: TestUser[] = []): Promise<string> {
    const response = await server.request<{ room_id: string }>('POST', `${V3}/createRoom`, {
      token: user.accessToken,
      body: { invite: invite.map((u) => u.userId) },
    });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    return response.body.room_id;
  }

  async function join(user: TestUser, roomId: string): Promise<void> {
    const response = await server.request('POST', `${V3}/rooms/${roomId}/join`, {
      token: user.accessToken,
      body: {},
    });
    assert.equal(response.status, 200, JSON.stringify(response.body));
  }

  async function say(user: TestUser, roomId: string, body = 'hello'): Promise<void> {
    const response = await server.request(
      'PUT',
      `${V3}/rooms/${roomId}/send/m.room.message/t${++txn}`,
      { token: user.accessToken, body: { msgtype: 'm.text', body } },
    );
    assert.equal(response.status, 200, JSON.stringify(response.body));
  }

  /** A wait of `user` in `rooms` from `mark`; `result` is undefined while it waits. */
  function waitFor(user: TestUser, rooms: string[], mark = notifier.mark(), timeoutMs = 60_000) {
    const state: { result: boolean | undefined; done: Promise<boolean> } = {
      result: undefined,
      done: Promise.resolve(false),
    };
    state.done = notifier
      .waitForChange({ userId: user.userId, rooms: new Set(rooms) }, mark, timeoutMs)
      .then((value) => (state.result = value));
    return state;
  }

  it('a waiter is woken by a change in its rooms, not by other users’ writes', async () => {
    const alice = await registerUser(server);
    const bob = await registerUser(server);
    const aliceRoom = await createRoom(alice);
    const bobRoom = await createRoom(bob);
    const waiting = waitFor(alice, [aliceRoom]);
    const before = notifier.waiting;

    // Each write is answered after its change has reached the process's listeners.
    for (let i = 0; i < 5; i++) await say(bob, bobRoom);
    const presence = await server.request('PUT', `${V3}/presence/${bob.userId}/status`, {
      token: bob.accessToken,
      body: { presence: 'unavailable' },
    });
    assert.equal(presence.status, 200);
    const accountData = await server.request(
      'PUT',
      `${V3}/user/${bob.userId}/account_data/org.example.x`,
      { token: bob.accessToken, body: { a: 1 } },
    );
    assert.equal(accountData.status, 200);
    await turn();
    assert.equal(waiting.result, undefined, 'woken by changes that do not concern it');
    assert.equal(notifier.waiting, before);

    await say(alice, aliceRoom);
    assert.equal(await waiting.done, true);
  });

  it('a change committed before the wait began counts only if it concerns the waiter', async () => {
    const alice = await registerUser(server);
    const bob = await registerUser(server);
    const aliceRoom = await createRoom(alice);
    const bobRoom = await createRoom(bob);

    // As /sync does: mark, read and build, then wait. Here a change comes between.
    const concerned = notifier.mark();
    await say(bob, bobRoom);
    await say(alice, aliceRoom);
    assert.equal(
      await notifier.waitForChange(
        { userId: alice.userId, rooms: new Set([aliceRoom]) },
        concerned,
        60_000,
      ),
      true,
    );

    const unconcerned = notifier.mark();
    for (let i = 0; i < 3; i++) await say(bob, bobRoom);
    const waiting = waitFor(alice, [aliceRoom], unconcerned);
    await turn();
    assert.equal(
      waiting.result,
      undefined,
      'woken by changes before the wait that do not concern it',
    );
    await say(alice, aliceRoom);
    assert.equal(await waiting.done, true);
  });

  it('the presence a /sync writes wakes those sharing a room with the user, nobody else', async () => {
    const dave = await registerUser(server);
    const erin = await registerUser(server);
    const frank = await registerUser(server);
    const shared = await createRoom(erin, [dave]);
    await join(dave, shared);
    const franks = await createRoom(frank);
    const roommate = waitFor(erin, [shared]);
    const stranger = waitFor(frank, [franks]);

    // Dave's first /sync sets him online (set_presence defaults to online): a presence write.
    const synced = await server.request('GET', `${V3}/sync?timeout=0`, { token: dave.accessToken });
    assert.equal(synced.status, 200);
    assert.equal(await roommate.done, true);
    await turn();
    assert.equal(
      stranger.result,
      undefined,
      'woken by the presence of a user in no room of theirs',
    );

    // A second /sync of his writes nothing (his presence is unchanged), so wakes nobody.
    const again = waitFor(erin, [shared]);
    const second = await server.request('GET', `${V3}/sync?timeout=0`, { token: dave.accessToken });
    assert.equal(second.status, 200);
    await turn();
    assert.equal(again.result, undefined, 'woken by a /sync that changed nothing');

    await say(frank, franks);
    await say(erin, shared);
    assert.equal(await stranger.done, true);
    assert.equal(await again.done, true);
  });

  it('an idle poll from an empty answer gets the same answer, with current key counts, until something concerns it', async () => {
    const gina = await registerUser(server);
    const hugo = await registerUser(server);
    const room = await createRoom(gina);
    const elsewhere = await createRoom(hugo);
    const poll = async (since: string) => {
      const response = await server.request<{
        next_batch: string;
        rooms?: {
          join?: Record<string, { timeline: { events: { content: { body?: string } }[] } }>;
        };
        device_one_time_keys_count?: Record<string, number>;
      }>('GET', `${V3}/sync?timeout=0&since=${since}`, { token: gina.accessToken });
      assert.equal(response.status, 200);
      return response.body;
    };
    const initial = await server.request<{ next_batch: string }>('GET', `${V3}/sync?timeout=0`, {
      token: gina.accessToken,
    });
    const first = await poll(initial.body.next_batch);
    assert.deepEqual(first.rooms?.join ?? {}, {});
    await say(hugo, elsewhere, 'not for gina');
    const second = await poll(first.next_batch);
    assert.equal(second.next_batch, first.next_batch, 'nothing new for her: the same position');
    assert.deepEqual(second.rooms?.join ?? {}, {});

    // Uploading one-time keys wakes nobody; the counts in an empty answer are still current.
    const uploaded = await server.request('POST', `${V3}/keys/upload`, {
      token: gina.accessToken,
      body: { one_time_keys: { 'signed_curve25519:AAAAAQ': { key: 'k1' } } },
    });
    assert.equal(uploaded.status, 200, JSON.stringify(uploaded.body));
    const third = await poll(second.next_batch);
    assert.equal(third.device_one_time_keys_count?.signed_curve25519, 1);
    // And so are they after another user claims her key.
    const claimed = await server.request('POST', `${V3}/keys/claim`, {
      token: hugo.accessToken,
      body: { one_time_keys: { [gina.userId]: { [gina.deviceId]: 'signed_curve25519' } } },
    });
    assert.equal(claimed.status, 200, JSON.stringify(claimed.body));
    const afterClaim = await poll(third.next_batch);
    assert.equal(afterClaim.device_one_time_keys_count?.signed_curve25519, 0);

    await say(hugo, elsewhere, 'still not for gina');
    await say(gina, room, 'for gina');
    const fourth = await poll(afterClaim.next_batch);
    const bodies = fourth.rooms?.join?.[room]?.timeline.events.map((e) => e.content.body);
    assert.deepEqual(bodies, ['for gina']);
  });

  it('long-polls held beyond the pool size leave the database to other requests', async () => {
    const users = await Promise.all(Array.from({ length: 6 }, () => registerUser(server)));
    const rooms: string[] = [];
    for (const user of users) rooms.push(await createRoom(user));
    const tokens: string[] = [];
    for (const user of users) {
      const first = await server.request<{ next_batch: string }>('GET', `${V3}/sync?timeout=0`, {
        token: user.accessToken,
      });
      assert.equal(first.status, 200);
      tokens.push(first.body.next_batch);
    }
    const polls = users.map((user, i) =>
      server.request<{ rooms?: { join?: Record<string, unknown> } }>(
        'GET',
        `${V3}/sync?timeout=60000&since=${tokens[i]}`,
        { token: user.accessToken },
      ),
    );
    // Six waiting requests on a pool of two (SQLite: one connection): others still get answers.
    const talker = await registerUser(server);
    const talk = await createRoom(talker);
    for (let i = 0; i < 5; i++) await say(talker, talk);
    const joined = await server.request<{ joined_rooms: string[] }>('GET', `${V3}/joined_rooms`, {
      token: talker.accessToken,
    });
    assert.deepEqual(joined.body.joined_rooms, [talk]);

    // Each poll is answered by a message in its own room.
    for (let i = 0; i < users.length; i++) await say(users[i] as TestUser, rooms[i] as string);
    const answers = await Promise.all(polls);
    answers.forEach((answer, i) => {
      assert.equal(answer.status, 200);
      assert.ok(answer.body.rooms?.join?.[rooms[i] as string], 'the poll carries its room');
    });
  });

  it('more clients at once than answers built at once: each gets its own answer, none is lost', async () => {
    // Forty initial syncs and their next long-polls, more than a process builds at once
    // (4 on SQLite, 16 on PostgreSQL): the others wait their turn and are answered in full.
    const users = await Promise.all(Array.from({ length: 40 }, () => registerUser(server)));
    const rooms = await Promise.all(users.map((user) => createRoom(user)));
    const initial = await Promise.all(
      users.map((user) =>
        server.request<{ next_batch: string; rooms?: { join?: Record<string, unknown> } }>(
          'GET',
          `${V3}/sync?timeout=0`,
          { token: user.accessToken },
        ),
      ),
    );
    initial.forEach((answer, i) => {
      assert.equal(answer.status, 200);
      assert.ok(answer.body.rooms?.join?.[rooms[i] as string], 'the initial sync has its room');
    });
    const polls = users.map((user, i) =>
      server.request<{ rooms?: { join?: Record<string, unknown> } }>(
        'GET',
        `${V3}/sync?timeout=60000&since=${initial[i]?.body.next_batch}`,
        { token: user.accessToken },
      ),
    );
    for (let i = 0; i < users.length; i++) await say(users[i] as TestUser, rooms[i] as string);
    const answers = await Promise.all(polls);
    answers.forEach((answer, i) => {
      assert.equal(answer.status, 200);
      assert.deepEqual(Object.keys(answer.body.rooms?.join ?? {}), [rooms[i]]);
    });
  });
});
