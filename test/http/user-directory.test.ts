import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { expectError, uniqueName } from '../helpers/assertions.js';
import { assertMatchesSpec } from '../helpers/spec-contract.js';

const V3 = '/_matrix/client/v3';
const r = encodeURIComponent;

interface SearchAnswer {
  limited: boolean;
  results: { user_id: string; display_name?: string; avatar_url?: string }[];
}

forEachDatabase('user directory', (dialect) => {
  let server: TestServer;
  let everyone: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  let dave: TestUser;
  let eve: TestUser;
  let privateRoom: string;
  let eveRoom: string;

  const post = async <T = Record<string, string>>(
    on: TestServer,
    user: TestUser,
    path: string,
    body: unknown,
  ) => on.request<T>('POST', `${V3}${path}`, { token: user.accessToken, body });
  const ok = async (on: TestServer, user: TestUser, path: string, body: unknown = {}) => {
    const response = await post(on, user, path, body);
    assert.equal(response.status, 200, JSON.stringify(response.body));
    return response.body;
  };
  const search = async (user: TestUser, term: string, limit?: number, on = server) => {
    const response = await post<SearchAnswer>(on, user, '/user_directory/search', {
      search_term: term,
      ...(limit !== undefined ? { limit } : {}),
    });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assertMatchesSpec('users.yaml', 'post', '/user_directory/search', 200, response.body);
    return response.body;
  };
  const found = async (user: TestUser, term: string) =>
    (await search(user, term)).results.map((result) => result.user_id);
  const setName = async (user: TestUser, name: string) => {
    const response = await server.request('PUT', `${V3}/profile/${r(user.userId)}/displayname`, {
      token: user.accessToken,
      body: { displayname: name },
    });
    assert.equal(response.status, 200);
  };

  before(async () => {
    server = await startTestServer(dialect);
    everyone = await startTestServer(dialect, { COMMONS_USER_DIRECTORY_SEARCH_ALL_USERS: 'true' });
    alice = await registerUser(server, uniqueName('alice'));
    bob = await registerUser(server, uniqueName('bob'));
    carol = await registerUser(server, uniqueName('carol'));
    dave = await registerUser(server, uniqueName('dave'));
    eve = await registerUser(server, uniqueName('eve'));
    privateRoom =
      (await ok(server, alice, '/createRoom', { preset: 'private_chat' })).room_id ?? '';
    await ok(server, alice, `/rooms/${r(privateRoom)}/invite`, { user_id: bob.userId });
    await ok(server, bob, `/join/${r(privateRoom)}`);
    await ok(server, carol, '/createRoom', { preset: 'public_chat' });
    eveRoom = (await ok(server, eve, '/createRoom', { preset: 'private_chat' })).room_id ?? '';
    await ok(server, eve, `/rooms/${r(eveRoom)}/invite`, { user_id: alice.userId });
    await ok(server, alice, `/join/${r(eveRoom)}`);
  });
  after(async () => {
    await server.close();
    await everyone.close();
  });

  const localpart = (user: TestUser) => user.userId.slice(1, user.userId.indexOf(':'));

  it('finds users sharing a room or in a public room, never others', async () => {
    assert.deepEqual(await found(alice, localpart(bob)), [bob.userId]);
    assert.deepEqual(await found(alice, localpart(carol)), [carol.userId], 'public room');
    assert.deepEqual(await found(alice, localpart(dave)), [], 'shares nothing');
    assert.deepEqual(await found(dave, localpart(bob)), [], 'bob is only in a private room');
    assert.deepEqual(await found(dave, localpart(carol)), [carol.userId]);
  });

  it('matches a localpart prefix, the user ID, and display names without case or accents', async () => {
    assert.deepEqual(await found(alice, localpart(bob).slice(0, 4)), [bob.userId]);
    assert.deepEqual(await found(alice, bob.userId), [bob.userId]);
    await setName(bob, 'Zoë Ångström');
    const result = await search(alice, 'zoe');
    assert.deepEqual(result.results, [{ user_id: bob.userId, display_name: 'Zoë Ångström' }]);
    for (const term of ['ZOË', 'angs', 'ångström zo', 'Zoe ANGSTROM']) {
      assert.deepEqual(await found(alice, term), [bob.userId], term);
    }
    for (const term of ['zoe xyz', 'oe', 'ström'])
      assert.deepEqual(await found(alice, term), [], term);
    // The old name no longer finds him; the new one replaced it.
    await setName(bob, 'Robert');
    assert.deepEqual(await found(alice, 'zoe'), []);
    assert.deepEqual(await found(alice, 'rob'), [bob.userId]);
  });

  it('stops finding a user who no longer shares a room', async () => {
    assert.deepEqual(await found(alice, localpart(eve)), [eve.userId]);
    await ok(server, alice, `/rooms/${r(eveRoom)}/leave`);
    assert.deepEqual(await found(alice, localpart(eve)), []);
  });

  it('follows join rules: members of a room made public can be found', async () => {
    const frank = await registerUser(server, uniqueName('frank'));
    const room = (await ok(server, frank, '/createRoom', { preset: 'private_chat' })).room_id ?? '';
    assert.deepEqual(await found(dave, localpart(frank)), []);
    const put = await server.request('PUT', `${V3}/rooms/${r(room)}/state/m.room.join_rules/`, {
      token: frank.accessToken,
      body: { join_rule: 'public' },
    });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    assert.deepEqual(await found(dave, localpart(frank)), [frank.userId]);
    await server.request('PUT', `${V3}/rooms/${r(room)}/state/m.room.join_rules/`, {
      token: frank.accessToken,
      body: { join_rule: 'invite' },
    });
    assert.deepEqual(await found(dave, localpart(frank)), []);
  });

  it('a member of a public room is found while joined, and no longer once gone', async () => {
    const gina = await registerUser(server, uniqueName('gina'));
    const harry = await registerUser(server, uniqueName('harry'));
    const room = (await ok(server, harry, '/createRoom', { preset: 'public_chat' })).room_id ?? '';
    assert.deepEqual(await found(dave, localpart(gina)), [], 'in no room yet');
    await ok(server, gina, `/join/${r(room)}`);
    assert.deepEqual(await found(dave, localpart(gina)), [gina.userId], 'joined a public room');
    // A profile change keeps her entry visible.
    await setName(gina, 'Gina Renamed');
    assert.deepEqual(await found(dave, 'renamed'), [gina.userId]);
    await ok(server, gina, `/rooms/${r(room)}/leave`);
    assert.deepEqual(await found(dave, localpart(gina)), [], 'left it');
    assert.deepEqual(await found(dave, localpart(harry)), [harry.userId], 'harry stays');
  });

  it('limit and limited', async () => {
    const name = uniqueName('limiter');
    const room = (await ok(server, alice, '/createRoom', { preset: 'public_chat' })).room_id ?? '';
    for (let i = 0; i < 3; i++) {
      const user = await registerUser(server, uniqueName('lim'));
      await setName(user, `${name} ${i}`);
      await ok(server, user, `/join/${r(room)}`);
    }
    const two = await search(dave, name, 2);
    assert.equal(two.results.length, 2);
    assert.equal(two.limited, true);
    const all = await search(dave, name);
    assert.equal(all.results.length, 3);
    assert.equal(all.limited, false);
    assert.deepEqual(await search(dave, name, 0), { limited: false, results: [] });
    assert.deepEqual(await search(dave, '  !!  '), { limited: false, results: [] });
  });

  const byUserId = (ids: string[]) =>
    [...ids].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));

  it('merges the requester, room-mates and public-room members in user ID order under one limit', async () => {
    const word = uniqueName('merge');
    const named = async (on: TestServer, prefix: string) => {
      const user = await registerUser(on, uniqueName(prefix));
      const response = await on.request('PUT', `${V3}/profile/${r(user.userId)}/displayname`, {
        token: user.accessToken,
        body: { displayname: `${word} ${prefix}` },
      });
      assert.equal(response.status, 200);
      return user;
    };
    const seeker = await named(server, 'seeker');
    const mate = await named(server, 'mate');
    const open = await named(server, 'open');
    const stranger = await named(server, 'stranger');
    const room = (await ok(server, seeker, '/createRoom', { preset: 'private_chat' })).room_id;
    await ok(server, seeker, `/rooms/${r(room ?? '')}/invite`, { user_id: mate.userId });
    await ok(server, mate, `/join/${r(room ?? '')}`);
    await ok(server, open, '/createRoom', { preset: 'public_chat' });

    const all = byUserId([seeker.userId, mate.userId, open.userId]);
    assert.deepEqual(await found(seeker, word), all);
    const two = await search(seeker, word, 2);
    assert.deepEqual(
      two.results.map((x) => x.user_id),
      all.slice(0, 2),
    );
    assert.equal(two.limited, true);
    const three = await search(seeker, word, 3);
    assert.equal(three.limited, false);
    // The stranger sees the public-room member and themself, not the private pair.
    assert.deepEqual(await found(stranger, word), byUserId([open.userId, stranger.userId]));
    // Two words must both match, whichever list finds the user.
    assert.deepEqual(await found(seeker, `${word} mate`), [mate.userId]);
    assert.deepEqual(await found(seeker, `${word} open`), [open.userId]);
    assert.deepEqual(await found(seeker, `${word} seeker`), [seeker.userId]);
    assert.deepEqual(await found(seeker, `${word} stranger`), []);
  });

  it('a member of a public and a private room: found by all until leaving the public one, then by room-mates until leaving theirs', async () => {
    const word = uniqueName('both');
    const quinn = await registerUser(server, word);
    const pub = (await ok(server, quinn, '/createRoom', { preset: 'public_chat' })).room_id ?? '';
    const pub2 = (await ok(server, quinn, '/createRoom', { preset: 'public_chat' })).room_id ?? '';
    const priv = (await ok(server, alice, '/createRoom', { preset: 'private_chat' })).room_id ?? '';
    await ok(server, alice, `/rooms/${r(priv)}/invite`, { user_id: quinn.userId });
    await ok(server, quinn, `/join/${r(priv)}`);
    assert.deepEqual(await found(dave, word), [quinn.userId]);
    // One public room made private: still in another public one.
    const rule = await server.request('PUT', `${V3}/rooms/${r(pub2)}/state/m.room.join_rules/`, {
      token: quinn.accessToken,
      body: { join_rule: 'invite' },
    });
    assert.equal(rule.status, 200);
    assert.deepEqual(await found(dave, word), [quinn.userId]);
    await ok(server, quinn, `/rooms/${r(pub)}/leave`);
    assert.deepEqual(await found(dave, word), [], 'in no public room now');
    assert.deepEqual(await found(alice, word), [quinn.userId], 'alice shares a room');
    // The private room made public: everyone finds them again; made private: only alice.
    const open = await server.request('PUT', `${V3}/rooms/${r(priv)}/state/m.room.join_rules/`, {
      token: alice.accessToken,
      body: { join_rule: 'public' },
    });
    assert.equal(open.status, 200);
    assert.deepEqual(await found(dave, word), [quinn.userId]);
    const close = await server.request('PUT', `${V3}/rooms/${r(priv)}/state/m.room.join_rules/`, {
      token: alice.accessToken,
      body: { join_rule: 'invite' },
    });
    assert.equal(close.status, 200);
    assert.deepEqual(await found(dave, word), []);
    assert.deepEqual(await found(alice, word), [quinn.userId]);
    await ok(server, quinn, `/rooms/${r(priv)}/leave`);
    assert.deepEqual(await found(alice, word), [], 'the last shared room left');
  });

  it('search_all_users merges local users with public-room members, in order', async () => {
    const word = uniqueName('all');
    const users = [];
    for (const preset of ['public_chat', 'private_chat', null]) {
      const user = await registerUser(everyone, uniqueName(word));
      if (preset) {
        const made = await everyone.request('POST', `${V3}/createRoom`, {
          token: user.accessToken,
          body: { preset },
        });
        assert.equal(made.status, 200);
      }
      users.push(user.userId);
    }
    const seeker = await registerUser(everyone, uniqueName('seeker'));
    assert.deepEqual(
      (await search(seeker, word, undefined, everyone)).results.map((x) => x.user_id),
      byUserId(users),
    );
    const two = await search(seeker, word, 2, everyone);
    assert.deepEqual(
      two.results.map((x) => x.user_id),
      byUserId(users).slice(0, 2),
    );
    assert.equal(two.limited, true);
  });

  it('search_all_users finds every local user, but not deactivated ones', async () => {
    const loner = await registerUser(everyone, uniqueName('loner'));
    const seeker = await registerUser(everyone, uniqueName('seeker'));
    assert.deepEqual(
      (await search(seeker, localpart(loner), undefined, everyone)).results.map((x) => x.user_id),
      [loner.userId],
    );
    const gone = await registerUser(everyone, uniqueName('gone'));
    const deactivate = await everyone.request('POST', `${V3}/account/deactivate`, {
      token: gone.accessToken,
      body: {
        auth: {
          type: 'm.login.password',
          identifier: { type: 'm.id.user', user: gone.userId },
          password: gone.password,
        },
      },
    });
    assert.equal(deactivate.status, 200, JSON.stringify(deactivate.body));
    assert.deepEqual((await search(seeker, localpart(gone), undefined, everyone)).results, []);
  });

  it('errors: no token, a missing or wrong search_term, a negative limit', async () => {
    expectError(
      await server.request('POST', `${V3}/user_directory/search`, { body: { search_term: 'a' } }),
      401,
      'M_MISSING_TOKEN',
    );
    expectError(await post(server, alice, '/user_directory/search', {}), 400, 'M_BAD_JSON');
    expectError(
      await post(server, alice, '/user_directory/search', { search_term: 5 }),
      400,
      'M_BAD_JSON',
    );
    expectError(
      await post(server, alice, '/user_directory/search', { search_term: 'a', limit: -1 }),
      400,
      'M_BAD_JSON',
    );
  });
});
