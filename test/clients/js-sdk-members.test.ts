/**
 * matrix-js-sdk's own member and room-list calls against Commons: getJoinedRooms,
 * getJoinedRoomMembers, members (with membership filters and `at`), and the oldest
 * mutual-rooms paths, which the SDK picks when a server advertises only the older names.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { createSdkClient } from '../helpers/matrix-js-sdk.js';

const C = '/_matrix/client/v3';
type MemberEvent = { state_key: string; content: { membership: string } };

forEachDatabase('matrix-js-sdk: members, joined members, joined rooms', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  let roomId: string;
  let tokenBeforeCarol: string;

  const post = async (user: TestUser, path: string, body: Record<string, unknown> = {}) => {
    const res = await server.request<Record<string, string>>('POST', path, {
      token: user.accessToken,
      body,
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body;
  };

  before(async () => {
    server = await startTestServer(dialect);
    [alice, bob, carol] = [
      await registerUser(server),
      await registerUser(server),
      await registerUser(server),
    ];
    roomId = (await post(alice, `${C}/createRoom`, { preset: 'public_chat' })).room_id ?? '';
    await post(bob, `${C}/join/${encodeURIComponent(roomId)}`);
    const messages = await server.request<{ start: string }>(
      'GET',
      `${C}/rooms/${encodeURIComponent(roomId)}/messages?dir=b&limit=1`,
      { token: alice.accessToken },
    );
    tokenBeforeCarol = messages.body.start;
    await post(alice, `${C}/rooms/${encodeURIComponent(roomId)}/invite`, { user_id: carol.userId });
  });
  after(async () => server.close());

  it('getJoinedRooms and getJoinedRoomMembers', async () => {
    const client = await createSdkClient(server, bob);
    assert.deepEqual((await client.getJoinedRooms()).joined_rooms, [roomId]);
    const members = await client.getJoinedRoomMembers(roomId);
    assert.deepEqual(Object.keys(members.joined).sort(), [alice.userId, bob.userId].sort());
    assert.equal(typeof members.joined[alice.userId]?.display_name, 'string');
  });

  it('members() with include/exclude membership and at', async () => {
    const client = await createSdkClient(server, alice);
    const states = (chunk: MemberEvent[]) =>
      Object.fromEntries(chunk.map((e) => [e.state_key, e.content.membership]));
    const all = (await client.members(roomId)) as unknown as { chunk: MemberEvent[] };
    assert.deepEqual(states(all.chunk), {
      [alice.userId]: 'join',
      [bob.userId]: 'join',
      [carol.userId]: 'invite',
    });
    const invited = (await client.members(roomId, 'invite')) as unknown as {
      chunk: MemberEvent[];
    };
    assert.deepEqual(states(invited.chunk), { [carol.userId]: 'invite' });
    const notJoined = (await client.members(roomId, undefined, 'join')) as unknown as {
      chunk: MemberEvent[];
    };
    assert.deepEqual(states(notJoined.chunk), { [carol.userId]: 'invite' });
    // matrix-js-sdk passes a sync token as `at` (its lazy-loading member fetch).
    const earlier = (await client.members(
      roomId,
      undefined,
      'leave',
      tokenBeforeCarol,
    )) as unknown as { chunk: MemberEvent[] };
    assert.deepEqual(states(earlier.chunk), { [alice.userId]: 'join', [bob.userId]: 'join' });
  });

  it('_unstable_getSharedRooms on a server advertising only the older MSC2666 names', async () => {
    // The SDK picks `…/user/mutual_rooms/{userId}` (or `shared_rooms`) only when the newer
    // feature names are missing: hide them from /versions, as an older server would.
    const requested: string[] = [];
    const olderServer = (keep: string) => {
      const fetchFn: typeof fetch = async (input, init) => {
        const url = input instanceof Request ? input.url : String(input);
        requested.push(new URL(url).pathname);
        const response = await fetch(input, init);
        if (!url.includes('/_matrix/client/versions')) return response;
        const body = (await response.json()) as { unstable_features: Record<string, boolean> };
        for (const name of Object.keys(body.unstable_features))
          if (name.startsWith('uk.half-shot.msc2666') && name !== keep)
            delete body.unstable_features[name];
        return new Response(JSON.stringify(body), {
          status: response.status,
          headers: { 'content-type': 'application/json' },
        });
      };
      return fetchFn;
    };
    for (const [feature, path] of [
      ['uk.half-shot.msc2666.mutual_rooms', 'mutual_rooms'],
      ['uk.half-shot.msc2666', 'shared_rooms'],
    ] as const) {
      requested.length = 0;
      const client = await createSdkClient(server, alice, { fetchFn: olderServer(feature) });
      assert.deepEqual(await client._unstable_getSharedRooms(bob.userId), [roomId]);
      assert.ok(
        requested.some((p) =>
          p.endsWith(`/uk.half-shot.msc2666/user/${path}/${encodeURIComponent(bob.userId)}`),
        ),
        requested.join(' '),
      );
    }
  });
});
