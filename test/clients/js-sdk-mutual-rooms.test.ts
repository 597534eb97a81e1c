/**
 * matrix-js-sdk's `_unstable_getSharedRooms` against Commons: the SDK picks the unstable
 * query path (`…/uk.half-shot.msc2666/user/mutual_rooms?user_id=`) because /versions sets
 * `uk.half-shot.msc2666.query_mutual_rooms`, pages with `batch_token` and follows
 * `next_batch_token`. Its answer must equal walking `/v1/mutual_rooms` with plain fetch.
 * (The SDK's choice of the legacy path-parameter endpoints needs that flag absent; those
 * endpoints are tested over HTTP in test/http/mutual-rooms.test.ts.)
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { registerUser, type TestUser } from '../helpers/client.js';
import { forEachDatabase } from '../helpers/databases.js';
import { createSdkClient } from '../helpers/matrix-js-sdk.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const C = '/_matrix/client/v3';
const BATCH = 2;
const UNSTABLE_PATH = '/_matrix/client/unstable/uk.half-shot.msc2666/user/mutual_rooms';

interface MutualBody {
  joined: string[];
  count: number;
  next_batch?: string;
}

/** Every room of every page of GET /_matrix/client/v1/mutual_rooms, with plain fetch. */
async function walkWithFetch(server: TestServer, user: TestUser, userId: string) {
  const rooms: string[] = [];
  let from: string | undefined;
  for (let page = 0; page < 100; page++) {
    const query = new URLSearchParams({ user_id: userId, ...(from ? { from } : {}) });
    const response = await fetch(`${server.url}/_matrix/client/v1/mutual_rooms?${query}`, {
      headers: { Authorization: `Bearer ${user.accessToken}` },
    });
    const body = (await response.json()) as MutualBody;
    assert.equal(response.status, 200, JSON.stringify(body));
    rooms.push(...body.joined);
    if (body.next_batch === undefined) return rooms;
    from = body.next_batch;
  }
  throw new Error('more than 100 pages');
}

/** A fetch that notes each URL requested, then does the real request. */
function recordingFetch(urls: URL[]): typeof globalThis.fetch {
  return (input, init) => {
    const url = input instanceof Request ? input.url : String(input);
    urls.push(new URL(url));
    return fetch(input, init);
  };
}

forEachDatabase('matrix-js-sdk: _unstable_getSharedRooms (MSC2666)', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let shared: string[];

  const post = async (user: TestUser, path: string, body: unknown = {}) => {
    const res = await server.request<Record<string, unknown>>('POST', `${C}${path}`, {
      token: user.accessToken,
      body,
    });
    assert.equal(res.status, 200, `POST ${path}: ${JSON.stringify(res.body)}`);
    return res.body;
  };

  before(async () => {
    server = await startTestServer(dialect, { COMMONS_MUTUAL_ROOMS_BATCH_SIZE: String(BATCH) });
    alice = await registerUser(server);
    bob = await registerUser(server);
    shared = [];
    for (let i = 0; i < 2 * BATCH + 1; i++) {
      const owner = i % 2 === 0 ? alice : bob;
      const guest = owner === alice ? bob : alice;
      const roomId = (await post(owner, '/createRoom', { preset: 'public_chat' }))
        .room_id as string;
      await post(guest, `/join/${encodeURIComponent(roomId)}`);
      shared.push(roomId);
    }
    // Not shared: bob only invited, alice alone, bob joined then left.
    const invited = (await post(alice, '/createRoom', { preset: 'private_chat' })).room_id;
    await post(alice, `/rooms/${encodeURIComponent(String(invited))}/invite`, {
      user_id: bob.userId,
    });
    await post(alice, '/createRoom', { preset: 'public_chat' });
    const left = String((await post(alice, '/createRoom', { preset: 'public_chat' })).room_id);
    await post(bob, `/join/${encodeURIComponent(left)}`);
    await post(bob, `/rooms/${encodeURIComponent(left)}/leave`);
  });
  after(async () => server.close());

  it('sees the query_mutual_rooms feature and v1.19 in /versions', async () => {
    const client = await createSdkClient(server, alice);
    assert.equal(
      await client.doesServerSupportUnstableFeature('uk.half-shot.msc2666.query_mutual_rooms'),
      true,
    );
    assert.equal(await client.isVersionSupported('v1.19'), true);
  });

  it('pages through the unstable query path with batch_token; the result equals /v1/mutual_rooms walked with fetch', async () => {
    const urls: URL[] = [];
    const client = await createSdkClient(server, alice, { fetchFn: recordingFetch(urls) });
    const fromSdk = await client._unstable_getSharedRooms(bob.userId);
    const fromFetch = await walkWithFetch(server, alice, bob.userId);
    assert.deepEqual(fromFetch, shared);
    assert.deepEqual(fromSdk, fromFetch);

    const pages = urls.filter((u) => u.pathname.includes('msc2666'));
    assert.ok(
      pages.every((u) => u.pathname === UNSTABLE_PATH),
      pages.map((u) => u.pathname).join(', '),
    );
    assert.equal(pages.length, Math.ceil(shared.length / BATCH), pages.join('\n'));
    assert.equal(pages[0]?.searchParams.get('batch_token'), null);
    for (const page of pages.slice(1)) {
      assert.match(page.searchParams.get('batch_token') ?? '', /^[0-9a-zA-Z._~-]{1,255}$/);
    }
    for (const page of pages) assert.equal(page.searchParams.get('user_id'), bob.userId);
  });

  it('from the other side the same rooms; an unknown user shares none; the own ID is refused with M_UNKNOWN', async () => {
    const bobClient = await createSdkClient(server, bob);
    assert.deepEqual(await bobClient._unstable_getSharedRooms(alice.userId), shared);
    assert.deepEqual(await walkWithFetch(server, bob, alice.userId), shared);

    const client = await createSdkClient(server, alice);
    assert.deepEqual(await client._unstable_getSharedRooms('@nobody:test.local'), []);
    assert.deepEqual(await client._unstable_getSharedRooms('@x:elsewhere.example'), []);
    await assert.rejects(client._unstable_getSharedRooms(alice.userId), (err: unknown) => {
      const e = err as { httpStatus?: number; errcode?: string; data?: { error?: string } };
      assert.equal(e.httpStatus, 400);
      assert.equal(e.errcode, 'M_UNKNOWN');
      assert.equal(e.data?.error, 'you cannot request rooms in common with yourself');
      return true;
    });
  });
});
