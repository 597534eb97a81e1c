/**
 * Mutual rooms (spec v1.19 `GET /_matrix/client/v1/mutual_rooms`; proposal MSC2666), black
 * box over HTTP: which memberships count, order and paging, the opaque `next_batch` token
 * (format, tampering, binding, expiry, restarts and other processes on one database), the
 * proposal's unstable and legacy paths, errors, rate limits, the multi-user extension and
 * the `/versions` flags. Bodies are checked against `mutual_rooms.yaml` of the spec.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { expectError, uniqueName } from '../helpers/assertions.js';
import { eventually } from '../helpers/eventually.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { createTestDatabase, forEachDatabase } from '../helpers/databases.js';
import {
  startServerOn,
  startTestServer,
  type RequestOptions,
  type TestResponse,
  type TestServer,
} from '../helpers/server.js';
import { assertMatchesSpec } from '../helpers/spec-contract.js';

const C = '/_matrix/client/v3';
const V1 = '/_matrix/client/v1/mutual_rooms';
const V1_USER = '/_matrix/client/v1/user/mutual_rooms';
const UNSTABLE = '/_matrix/client/unstable/uk.half-shot.msc2666/user/mutual_rooms';
const QUERY_PATHS = [V1, V1_USER, UNSTABLE] as const;
const V1_PATHS = [V1, V1_USER] as const;
const legacyMutual = (userId: string) =>
  `/_matrix/client/unstable/uk.half-shot.msc2666/user/mutual_rooms/${encodeURIComponent(userId)}`;
const legacyShared = (userId: string) =>
  `/_matrix/client/unstable/uk.half-shot.msc2666/user/shared_rooms/${encodeURIComponent(userId)}`;
const LEGACY_PATHS = [legacyMutual, legacyShared] as const;

const SPEC = { file: 'mutual_rooms.yaml', method: 'get', path: '/mutual_rooms' } as const;
const TOKEN_RE = /^[0-9a-zA-Z._~-]{1,255}$/;
const TOKEN_ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ._~-';
const SELF_ERROR = 'you cannot request rooms in common with yourself';
const BATCH = 2;

interface MutualBody {
  joined: string[];
  count: number;
  next_batch?: string;
  next_batch_token?: string;
}

type Param = [name: string, value: string];

/** A query string, each name and value percent-encoded (a space is %20, never '+'). */
const queryString = (params: Param[]): string =>
  params.length === 0
    ? ''
    : `?${params.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&')}`;

const userParams = (userIds: string[]): Param[] => userIds.map((u) => ['user_id', u]);

/** `token` with the character at `index` replaced by another character of the token alphabet. */
function flipAt(token: string, index: number): string {
  const current = token.charAt(index);
  const next = TOKEN_ALPHABET[(TOKEN_ALPHABET.indexOf(current) + 1) % TOKEN_ALPHABET.length];
  return token.slice(0, index) + next + token.slice(index + 1);
}

const describeRequest = (requestPath: string, params: Param[]) =>
  `GET ${requestPath}${queryString(params)}`;

/** Room and membership operations through the client API, each asserting success. */
function roomOps(getServer: () => TestServer) {
  const post = async (user: TestUser, urlPath: string, body: unknown = {}) => {
    const res = await getServer().request<Record<string, unknown>>('POST', `${C}${urlPath}`, {
      token: user.accessToken,
      body,
    });
    assert.equal(res.status, 200, `POST ${urlPath}: ${JSON.stringify(res.body)}`);
    return res.body;
  };
  const r = (roomId: string) => `/rooms/${encodeURIComponent(roomId)}`;
  return {
    /** A public room (anyone may join), or `kind` private (invite only) or knock. */
    async create(owner: TestUser, kind: 'public' | 'private' | 'knock' = 'public') {
      const body = await post(owner, '/createRoom', {
        preset: kind === 'public' ? 'public_chat' : 'private_chat',
        ...(kind === 'knock'
          ? { initial_state: [{ type: 'm.room.join_rules', content: { join_rule: 'knock' } }] }
          : {}),
      });
      assert.equal(typeof body.room_id, 'string');
      return body.room_id as string;
    },
    join: (user: TestUser, roomId: string) =>
      post(user, `/join/${encodeURIComponent(roomId)}`).then(() => undefined),
    leave: (user: TestUser, roomId: string) =>
      post(user, `${r(roomId)}/leave`).then(() => undefined),
    knock: (user: TestUser, roomId: string) =>
      post(user, `/knock/${encodeURIComponent(roomId)}`).then(() => undefined),
    invite: (by: TestUser, roomId: string, target: TestUser) =>
      post(by, `${r(roomId)}/invite`, { user_id: target.userId }).then(() => undefined),
    kick: (by: TestUser, roomId: string, target: TestUser) =>
      post(by, `${r(roomId)}/kick`, { user_id: target.userId }).then(() => undefined),
    ban: (by: TestUser, roomId: string, target: TestUser) =>
      post(by, `${r(roomId)}/ban`, { user_id: target.userId }).then(() => undefined),
    unban: (by: TestUser, roomId: string, target: TestUser) =>
      post(by, `${r(roomId)}/unban`, { user_id: target.userId }).then(() => undefined),
    /** `count` public rooms created by `owner`, each joined by every one of `others`. */
    async shared(owner: TestUser, others: TestUser[], count: number) {
      const rooms: string[] = [];
      for (let i = 0; i < count; i++) {
        const roomId = await this.create(owner);
        for (const other of others) await this.join(other, roomId);
        rooms.push(roomId);
      }
      return rooms;
    },
  };
}

/** One mutual-rooms request. */
function mutual(
  server: TestServer,
  user: TestUser | null,
  requestPath: string,
  params: Param[],
  options: RequestOptions = {},
): Promise<TestResponse<MutualBody>> {
  return server.request<MutualBody>('GET', requestPath + queryString(params), {
    ...(user ? { token: user.accessToken } : {}),
    ...options,
  });
}

interface Walk {
  rooms: string[];
  pages: MutualBody[];
}

/**
 * Follows `next_batch` from the first page to the last on a query path, checking each page:
 * 200, the spec's schema, the token grammar, and on the unstable path `next_batch_token`
 * equal to `next_batch`. `between(n, page)` runs after page n (from 1) when there is a next page.
 */
async function walk(
  server: TestServer,
  user: TestUser,
  requestPath: string,
  others: string[],
  options: {
    tokenParam?: 'from' | 'batch_token';
    between?: (page: number, body: MutualBody) => Promise<void>;
  } = {},
): Promise<Walk> {
  const rooms: string[] = [];
  const pages: MutualBody[] = [];
  let token: string | undefined;
  for (;;) {
    const params: Param[] = [...userParams(others)];
    if (token !== undefined) params.push([options.tokenParam ?? 'from', token]);
    const where = describeRequest(requestPath, params);
    const res = await mutual(server, user, requestPath, params);
    assert.equal(res.status, 200, `${where} → ${res.status} ${JSON.stringify(res.body)}`);
    assertMatchesSpec(SPEC.file, SPEC.method, SPEC.path, 200, res.body);
    const body = res.body;
    assert.ok(Number.isInteger(body.count) && body.count >= 0, `${where}: count ${body.count}`);
    assert.equal(new Set(body.joined).size, body.joined.length, `${where}: duplicates in a page`);
    if (body.next_batch !== undefined) {
      assert.match(body.next_batch, TOKEN_RE, `${where}: next_batch grammar`);
      assert.ok(body.joined.length > 0, `${where}: an empty page that is not the last`);
    }
    if (requestPath === UNSTABLE) {
      assert.equal(body.next_batch_token, body.next_batch, `${where}: next_batch_token`);
    }
    pages.push(body);
    rooms.push(...body.joined);
    if (body.next_batch === undefined) break;
    assert.notEqual(body.next_batch, token, `${where}: the same token again`);
    assert.ok(pages.length < 100, `${where}: more than 100 pages`);
    await options.between?.(pages.length, body);
    token = body.next_batch;
  }
  return { rooms, pages };
}

/** A walk with no membership change: `expected` in order, `count` right on every page. */
function assertWalk(result: Walk, expected: string[], batch = BATCH): void {
  assert.deepEqual(result.rooms, expected);
  for (const page of result.pages) assert.equal(page.count, expected.length, 'count on a page');
  const sizes = result.pages.map((p) => p.joined.length);
  const full = Math.floor(expected.length / batch);
  const rest = expected.length % batch;
  const wanted =
    expected.length === 0 ? [0] : [...Array<number>(full).fill(batch), ...(rest ? [rest] : [])];
  assert.deepEqual(sizes, wanted, 'page sizes');
}

/** Next page token of the first page of `requester` with `others`, which must have one. */
async function firstToken(
  server: TestServer,
  requester: TestUser,
  others: string[],
  requestPath: string = V1,
): Promise<{ token: string; first: MutualBody }> {
  const res = await mutual(server, requester, requestPath, userParams(others));
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.equal(typeof res.body.next_batch, 'string', `no next_batch: ${JSON.stringify(res.body)}`);
  return { token: res.body.next_batch as string, first: res.body };
}

interface VersionsBody {
  versions: string[];
  unstable_features?: Record<string, boolean>;
}

const getVersions = async (server: TestServer): Promise<VersionsBody> => {
  const res = await server.request<VersionsBody>('GET', '/_matrix/client/versions');
  assert.equal(res.status, 200);
  return res.body;
};

forEachDatabase('mutual rooms (MSC2666)', (dialect) => {
  let server: TestServer;
  const ops = roomOps(() => server);
  /** Two fresh users: tests do not see each other's rooms. */
  const pair = async (): Promise<[TestUser, TestUser]> => [
    await registerUser(server),
    await registerUser(server),
  ];

  before(async () => {
    server = await startTestServer(dialect, { COMMONS_MUTUAL_ROOMS_BATCH_SIZE: String(BATCH) });
  });
  after(async () => server.close());

  it('/versions lists v1.19 and the MSC2666 flags; the multi-user flag is off by default', async () => {
    const body = await getVersions(server);
    assertMatchesSpec('versions.yaml', 'get', '/versions', 200, body);
    assert.ok(body.versions.includes('v1.19'), JSON.stringify(body.versions));
    const features = body.unstable_features ?? {};
    for (const flag of [
      'uk.half-shot.msc2666.query_mutual_rooms',
      'uk.half-shot.msc2666.query_mutual_rooms.stable',
      'uk.half-shot.msc2666.mutual_rooms',
      'uk.half-shot.msc2666',
    ]) {
      assert.equal(features[flag], true, `${flag}: ${JSON.stringify(features)}`);
    }
    assert.notEqual(features['org.commons.msc2666.multi_user'], true);
  });

  it('counts only rooms both users have joined: invite, knock, leave, kick, ban do not count; rejoins do', async () => {
    const [alice, bob] = await pair();
    const bothJoined = await ops.create(alice);
    await ops.join(bob, bothJoined);

    const bobInvited = await ops.create(alice, 'private');
    await ops.invite(alice, bobInvited, bob);
    const aliceInvited = await ops.create(bob, 'private');
    await ops.invite(bob, aliceInvited, alice);

    const bobKnocking = await ops.create(alice, 'knock');
    await ops.knock(bob, bobKnocking);
    const aliceKnocking = await ops.create(bob, 'knock');
    await ops.knock(alice, aliceKnocking);

    const bobLeft = await ops.create(alice);
    await ops.join(bob, bobLeft);
    await ops.leave(bob, bobLeft);
    const bobKicked = await ops.create(alice);
    await ops.join(bob, bobKicked);
    await ops.kick(alice, bobKicked, bob);
    const bobBanned = await ops.create(alice);
    await ops.join(bob, bobBanned);
    await ops.ban(alice, bobBanned, bob);
    const aliceLeft = await ops.create(bob);
    await ops.join(alice, aliceLeft);
    await ops.leave(alice, aliceLeft);

    const bobRejoinsLater = await ops.create(alice);
    await ops.join(bob, bobRejoinsLater);
    await ops.leave(bob, bobRejoinsLater);

    const inviteAccepted = await ops.create(alice, 'private');
    await ops.invite(alice, inviteAccepted, bob);
    await ops.join(bob, inviteAccepted);
    const aliceRejoined = await ops.create(bob);
    await ops.join(alice, aliceRejoined);
    await ops.leave(alice, aliceRejoined);
    await ops.join(alice, aliceRejoined);
    const aliceAlone = await ops.create(alice);
    const bobAlone = await ops.create(bob);
    const bobUnbanned = await ops.create(alice);
    await ops.join(bob, bobUnbanned);
    await ops.ban(alice, bobUnbanned, bob);
    await ops.unban(alice, bobUnbanned, bob);
    await ops.join(bob, bobUnbanned);
    // Rejoined last of all: creation order differs from the order of the latest joins.
    await ops.join(bob, bobRejoinsLater);

    const expected = [bothJoined, bobRejoinsLater, inviteAccepted, aliceRejoined, bobUnbanned];
    const excluded = [
      bobInvited,
      aliceInvited,
      bobKnocking,
      aliceKnocking,
      bobLeft,
      bobKicked,
      bobBanned,
      aliceLeft,
      aliceAlone,
      bobAlone,
    ];
    for (const [requester, other] of [
      [alice, bob],
      [bob, alice],
    ] as const) {
      for (const requestPath of QUERY_PATHS) {
        const result = await walk(server, requester, requestPath, [other.userId]);
        assertWalk(result, expected);
        for (const roomId of excluded) assert.ok(!result.rooms.includes(roomId), roomId);
      }
      for (const legacy of LEGACY_PATHS) {
        const res = await mutual(server, requester, legacy(other.userId), []);
        assert.equal(res.status, 200, JSON.stringify(res.body));
        assert.deepEqual(res.body.joined, expected, legacy(other.userId));
        assert.equal(res.body.count, expected.length);
      }
    }
  });

  it('pages in room creation order (not join order), count is the total, next_batch absent on the last page', async () => {
    const [alice, bob] = await pair();
    const a1 = await ops.create(alice);
    const a2 = await ops.create(alice);
    const b3 = await ops.create(bob);
    const a4 = await ops.create(alice);
    const a5 = await ops.create(alice);
    for (const roomId of [a5, a4, a2, a1]) await ops.join(bob, roomId);
    await ops.join(alice, b3);
    const expected = [a1, a2, b3, a4, a5];
    for (const requestPath of QUERY_PATHS) {
      const forward = await walk(server, alice, requestPath, [bob.userId]);
      assertWalk(forward, expected);
      assert.deepEqual(
        forward.pages.map((p) => p.joined),
        [[a1, a2], [b3, a4], [a5]],
      );
      assert.equal(forward.pages.at(-1)?.next_batch, undefined);
      assertWalk(await walk(server, bob, requestPath, [alice.userId]), expected);
    }
  });

  it('a last page that is exactly full has no next_batch; no shared room is one empty page', async () => {
    const [alice, bob] = await pair();
    const rooms = await ops.shared(alice, [bob], 2 * BATCH);
    await ops.create(alice); // alice alone
    for (const requestPath of QUERY_PATHS) {
      const result = await walk(server, alice, requestPath, [bob.userId]);
      assertWalk(result, rooms);
      assert.equal(result.pages.length, 2, JSON.stringify(result.pages));
    }
    const [carol, dave] = await pair();
    await ops.create(carol);
    const lonely = await ops.create(dave, 'private');
    await ops.invite(dave, lonely, carol);
    for (const requestPath of QUERY_PATHS) {
      const res = await mutual(server, carol, requestPath, [['user_id', dave.userId]]);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assertMatchesSpec(SPEC.file, SPEC.method, SPEC.path, 200, res.body);
      assert.deepEqual(res.body.joined, []);
      assert.equal(res.body.count, 0);
      assert.equal(res.body.next_batch, undefined);
      assert.equal(res.body.next_batch_token, undefined);
    }
  });

  it('the unstable path accepts batch_token for from and answers next_batch_token = next_batch', async () => {
    const [alice, bob] = await pair();
    const rooms = await ops.shared(bob, [alice], 5);
    const viaBatchToken = await walk(server, alice, UNSTABLE, [bob.userId], {
      tokenParam: 'batch_token',
    });
    assertWalk(viaBatchToken, rooms);
    const viaFrom = await walk(server, alice, UNSTABLE, [bob.userId], { tokenParam: 'from' });
    assertWalk(viaFrom, rooms);
    // The two names of the parameter give the same page for the same token.
    const { token } = await firstToken(server, alice, [bob.userId], UNSTABLE);
    const a = await mutual(server, alice, UNSTABLE, [
      ['user_id', bob.userId],
      ['batch_token', token],
    ]);
    const b = await mutual(server, alice, UNSTABLE, [
      ['user_id', bob.userId],
      ['from', token],
    ]);
    assert.equal(a.status, 200, JSON.stringify(a.body));
    assert.equal(b.status, 200, JSON.stringify(b.body));
    assert.deepEqual(a.body.joined, rooms.slice(BATCH, 2 * BATCH));
    assert.deepEqual(b.body.joined, rooms.slice(BATCH, 2 * BATCH));
  });

  it('the legacy path-parameter endpoints answer every shared room at once, without a token', async () => {
    const [alice, bob] = await pair();
    const rooms = await ops.shared(alice, [bob], 2 * BATCH + 1);
    for (const legacy of LEGACY_PATHS) {
      for (const [requester, other] of [
        [alice, bob],
        [bob, alice],
      ] as const) {
        const res = await mutual(server, requester, legacy(other.userId), []);
        assert.equal(res.status, 200, `${legacy(other.userId)}: ${JSON.stringify(res.body)}`);
        assertMatchesSpec(SPEC.file, SPEC.method, SPEC.path, 200, res.body);
        assert.deepEqual(res.body.joined, rooms);
        assert.equal(res.body.count, rooms.length);
        assert.equal(res.body.next_batch, undefined);
        assert.equal(res.body.next_batch_token, undefined);
      }
    }
  });

  it('after the first query, every later membership change shows: joins, leaves, kicks, bans, unbans, knocks, profile changes', async () => {
    const [alice, bob] = await pair();
    // bob is in no room at all yet.
    for (const requestPath of QUERY_PATHS) {
      assertWalk(await walk(server, alice, requestPath, [bob.userId]), []);
    }
    const first = await ops.create(alice);
    await ops.join(bob, first);
    assertWalk(await walk(server, alice, V1, [bob.userId]), [first]);
    assertWalk(await walk(server, bob, V1, [alice.userId]), [first]);

    const invitedOnly = await ops.create(alice, 'private');
    await ops.invite(alice, invitedOnly, bob);
    const knockAccepted = await ops.create(alice, 'knock');
    await ops.knock(bob, knockAccepted);
    const knocking = await ops.create(alice, 'knock');
    await ops.knock(bob, knocking);
    assertWalk(await walk(server, alice, V1, [bob.userId]), [first]);
    await ops.invite(alice, knockAccepted, bob);
    await ops.join(bob, knockAccepted);
    const kicked = await ops.create(alice);
    await ops.join(bob, kicked);
    await ops.kick(alice, kicked, bob);
    const banned = await ops.create(bob);
    await ops.join(alice, banned);
    await ops.ban(bob, banned, alice);
    const unbanned = await ops.create(alice);
    await ops.join(bob, unbanned);
    await ops.ban(alice, unbanned, bob);
    await ops.unban(alice, unbanned, bob);
    await ops.join(bob, unbanned);
    const cycled = await ops.create(alice);
    for (let i = 0; i < 3; i++) {
      await ops.join(bob, cycled);
      await ops.leave(bob, cycled);
    }
    await ops.join(bob, cycled);
    const aliceLeft = await ops.create(bob);
    await ops.join(alice, aliceLeft);
    await ops.leave(alice, aliceLeft);
    await ops.leave(bob, first);
    await ops.join(bob, first);
    // join → join: new display names reach every room of both (member events, no change).
    for (const user of [alice, bob]) {
      const res = await server.request(
        'PUT',
        `${C}/profile/${encodeURIComponent(user.userId)}/displayname`,
        { token: user.accessToken, body: { displayname: `renamed ${user.userId}` } },
      );
      assert.equal(res.status, 200, JSON.stringify(res.body));
    }

    const expected = [first, knockAccepted, unbanned, cycled];
    for (const [requester, other] of [
      [alice, bob],
      [bob, alice],
    ] as const) {
      for (const requestPath of QUERY_PATHS) {
        assertWalk(await walk(server, requester, requestPath, [other.userId]), expected);
      }
      for (const legacy of LEGACY_PATHS) {
        const res = await mutual(server, requester, legacy(other.userId), []);
        assert.deepEqual(res.body, { joined: expected, count: expected.length });
      }
    }
  });

  it('concurrent first queries and membership changes leave the answer exact', async () => {
    for (let round = 0; round < 3; round++) {
      const [alice, bob] = await pair();
      await ops.create(bob); // bob has a membership, so a first query indexes the pair
      const rooms: string[] = [];
      for (let i = 0; i < 6; i++) rooms.push(await ops.create(alice));
      const changes = async () => {
        for (const roomId of rooms) await ops.join(bob, roomId);
        await ops.leave(bob, rooms[0] as string);
        await ops.leave(alice, rooms[3] as string);
      };
      const query = async (i: number) => {
        const [requester, other] = i % 2 === 0 ? [alice, bob] : [bob, alice];
        const requestPath = QUERY_PATHS[i % QUERY_PATHS.length] as string;
        for (let n = 0; n < 3; n++) {
          const res = await mutual(server, requester, requestPath, [['user_id', other.userId]]);
          assert.equal(res.status, 200, `${requestPath}: ${JSON.stringify(res.body)}`);
          for (const roomId of res.body.joined) assert.ok(rooms.includes(roomId), roomId);
        }
      };
      await Promise.all([changes(), ...[0, 1, 2, 3, 4, 5].map(query)]);
      const truth = rooms.filter((_, i) => i !== 0 && i !== 3);
      for (const requestPath of QUERY_PATHS) {
        assertWalk(await walk(server, alice, requestPath, [bob.userId]), truth);
        assertWalk(await walk(server, bob, requestPath, [alice.userId]), truth);
      }
    }
  });

  it('walking while memberships change: rooms shared throughout appear exactly once, rooms left vanish, no duplicates', async () => {
    for (const requestPath of QUERY_PATHS) {
      const [alice, bob] = await pair();
      const rooms = await ops.shared(alice, [bob], 7);
      const [r1, r2, r3, r4, r5, r6, r7] = rooms as [
        string,
        string,
        string,
        string,
        string,
        string,
        string,
      ];
      let joinedLater = '';
      const result = await walk(server, alice, requestPath, [bob.userId], {
        between: async (page, body) => {
          if (page !== 1) return;
          assert.deepEqual(body.joined, [r1, r2]);
          // Rooms already returned are left (a cursor by position in the list would now
          // skip r3), r4 is left before its page, r5 is left and joined again, one is new.
          await ops.leave(bob, r1);
          await ops.leave(bob, r2);
          await ops.leave(bob, r4);
          await ops.leave(alice, r5);
          await ops.join(alice, r5);
          [joinedLater = ''] = await ops.shared(alice, [bob], 1);
        },
      });
      const seen = result.rooms;
      const where = `${requestPath}: ${JSON.stringify(seen)} (rooms ${JSON.stringify(rooms)})`;
      assert.equal(new Set(seen).size, seen.length, `duplicates: ${where}`);
      for (const roomId of [r3, r6, r7]) {
        assert.equal(seen.filter((x) => x === roomId).length, 1, `${roomId} once: ${where}`);
      }
      const later = seen.slice(BATCH);
      for (const gone of [r1, r2, r4]) assert.ok(!later.includes(gone), `${gone}: ${where}`);
      // Whatever else a later page holds is a room shared at that moment.
      for (const roomId of later) assert.ok([r3, r5, r6, r7, joinedLater].includes(roomId));
      // A new walk shows the present exactly.
      assertWalk(await walk(server, alice, requestPath, [bob.userId]), [
        r3,
        r5,
        r6,
        r7,
        joinedLater,
      ]);
    }
  });

  it('next_batch is authenticated and bound: altered, truncated, made up, another requester or user_id → 400 M_INVALID_PARAM', async () => {
    const [alice, bob] = await pair();
    const carol = await registerUser(server);
    const rooms = await ops.shared(alice, [bob, carol], 5);
    const failures: string[] = [];
    const expectInvalid = async (
      who: TestUser,
      requestPath: string,
      params: Param[],
      label: string,
    ) => {
      const res = await mutual(server, who, requestPath, params);
      const body = res.body as unknown as { errcode?: string; error?: unknown };
      if (
        res.status !== 400 ||
        body.errcode !== 'M_INVALID_PARAM' ||
        typeof body.error !== 'string'
      )
        failures.push(
          `${label}: ${describeRequest(requestPath, params)} as ${who.userId} → ${res.status} ${JSON.stringify(res.body)}`,
        );
      else assertMatchesSpec(SPEC.file, SPEC.method, SPEC.path, 400, res.body);
    };
    for (const requestPath of QUERY_PATHS) {
      const { token } = await firstToken(server, alice, [bob.userId], requestPath);
      assert.match(token, TOKEN_RE);
      const tokenParams = requestPath === UNSTABLE ? ['from', 'batch_token'] : ['from'];
      for (const name of tokenParams) {
        const withToken = (userId: string, value: string): Param[] => [
          ['user_id', userId],
          [name, value],
        ];
        for (let i = 0; i < token.length; i++) {
          await expectInvalid(
            alice,
            requestPath,
            withToken(bob.userId, flipAt(token, i)),
            `flip ${i}`,
          );
        }
        const madeUp: Array<[string, string]> = [
          ['last character dropped', token.slice(0, -1)],
          ['first character dropped', token.slice(1)],
          ['a character appended', `${token}A`],
          ['doubled', `${token}${token}`.slice(0, 255)],
          ['made up', 'garbage'],
          ['a number', '0'],
          ['255 letters', 'a'.repeat(255)],
          ['too long', 'a'.repeat(256)],
          ['outside the alphabet', `${token.slice(0, -1)}!`],
        ];
        for (const [label, value] of madeUp) {
          await expectInvalid(alice, requestPath, withToken(bob.userId, value), label);
        }
        await expectInvalid(carol, requestPath, withToken(bob.userId, token), 'another requester');
        await expectInvalid(bob, requestPath, withToken(alice.userId, token), 'the other side');
        await expectInvalid(alice, requestPath, withToken(carol.userId, token), 'another user_id');
        // The genuine token still gives the second page.
        const good = await mutual(server, alice, requestPath, withToken(bob.userId, token));
        assert.equal(good.status, 200, JSON.stringify(good.body));
        assert.deepEqual(good.body.joined, rooms.slice(BATCH, 2 * BATCH));
        assert.equal(good.body.count, rooms.length);
      }
    }
    assert.deepEqual(failures, [], `accepted or mis-answered:\n${failures.join('\n')}`);
  });

  it('a token minted by another server (another database and secret) is refused', async () => {
    const other = await startTestServer(dialect, {
      COMMONS_MUTUAL_ROOMS_BATCH_SIZE: String(BATCH),
    });
    try {
      const names = [uniqueName('twina'), uniqueName('twinb')];
      const here = [await registerUser(server, names[0]), await registerUser(server, names[1])];
      const there = [await registerUser(other, names[0]), await registerUser(other, names[1])];
      assert.equal(here[0]?.userId, there[0]?.userId);
      const [ha, hb] = here as [TestUser, TestUser];
      const [ta, tb] = there as [TestUser, TestUser];
      await ops.shared(ha, [hb], 3);
      const otherOps = roomOps(() => other);
      await otherOps.shared(ta, [tb], 3);
      const { token } = await firstToken(other, ta, [tb.userId]);
      for (const requestPath of V1_PATHS) {
        expectError(
          await mutual(server, ha, requestPath, [
            ['user_id', hb.userId],
            ['from', token],
          ]),
          400,
          'M_INVALID_PARAM',
          SPEC,
        );
      }
    } finally {
      await other.close();
    }
  });

  it('an expired token → 400 M_INVALID_PARAM (token_ttl_seconds)', async () => {
    const ttl = 2;
    const short = await startTestServer(dialect, {
      COMMONS_MUTUAL_ROOMS_BATCH_SIZE: String(BATCH),
      COMMONS_MUTUAL_ROOMS_TOKEN_TTL_SECONDS: String(ttl),
    });
    try {
      const alice = await registerUser(short);
      const bob = await registerUser(short);
      const rooms = await roomOps(() => short).shared(alice, [bob], 3);
      const tokens: Array<[string, string]> = [];
      for (const requestPath of QUERY_PATHS) {
        const { token } = await firstToken(short, alice, [bob.userId], requestPath);
        const fresh = await mutual(short, alice, requestPath, [
          ['user_id', bob.userId],
          ['from', token],
        ]);
        assert.equal(fresh.status, 200, JSON.stringify(fresh.body));
        assert.deepEqual(fresh.body.joined, rooms.slice(BATCH));
        tokens.push([requestPath, token]);
      }
      await delay((ttl + 1) * 1000 + 100);
      for (const [requestPath, token] of tokens) {
        expectError(
          await mutual(short, alice, requestPath, [
            ['user_id', bob.userId],
            ['from', token],
          ]),
          400,
          'M_INVALID_PARAM',
          SPEC,
        );
      }
      // A new walk still works.
      assertWalk(await walk(short, alice, V1, [bob.userId]), rooms);
    } finally {
      await short.close();
    }
  });

  it('tokens survive a restart and work on another server sharing the database, whatever its data_dir', async () => {
    const database = await createTestDatabase(dialect);
    const dirs = [0, 1, 2].map(() => mkdtempSync(path.join(tmpdir(), 'commons-mutual-')));
    const [dirA, dirB, dirC] = dirs as [string, string, string];
    const env = { COMMONS_MUTUAL_ROOMS_BATCH_SIZE: String(BATCH) };
    const started: TestServer[] = [];
    const start = async (dir: string) => {
      const s = await startServerOn(database, dir, env);
      started.push(s);
      return s;
    };
    // SQLite serves one process at a time (the server holds the file's lock), so there the
    // servers take turns; on PostgreSQL they run side by side.
    const sideBySide = dialect === 'postgres';
    const stop = async (s: TestServer) => {
      started.splice(started.indexOf(s), 1);
      await s.close();
    };
    try {
      const a = await start(dirA);
      const alice = await registerUser(a);
      const bob = await registerUser(a);
      const rooms = await roomOps(() => a).shared(alice, [bob], 5);
      const [r1, r2, r3, r4, r5] = rooms as [string, string, string, string, string];

      // One walk, alternating servers page by page.
      const page1 = await firstToken(a, alice, [bob.userId]);
      assert.deepEqual(page1.first.joined, [r1, r2]);
      if (!sideBySide) await stop(a);
      const b = await start(dirB);
      const page2 = await mutual(b, alice, V1, [
        ['user_id', bob.userId],
        ['from', page1.token],
      ]);
      assert.equal(page2.status, 200, `server B with A's token: ${JSON.stringify(page2.body)}`);
      assert.deepEqual(page2.body.joined, [r3, r4]);
      assert.equal(page2.body.count, 5);
      if (!sideBySide) await stop(b);
      const again = sideBySide ? a : await start(dirA);
      const page3 = await mutual(again, alice, V1, [
        ['user_id', bob.userId],
        ['from', String(page2.body.next_batch)],
      ]);
      assert.equal(page3.status, 200, `server A with B's token: ${JSON.stringify(page3.body)}`);
      assert.deepEqual(page3.body.joined, [r5]);
      assert.equal(page3.body.next_batch, undefined);

      if (sideBySide) {
        // Both servers answer alike, and a change made through one shows on the other.
        // The other server sees a change once its notification arrives (a moment after the
        // commit), so it is asked until it does.
        const walkUntil = (s: TestServer, user: TestUser, other: TestUser, expected: string[]) =>
          eventually(
            () => walk(s, user, V1, [other.userId]),
            (w) => w.rooms.join() === expected.join(),
          );
        assertWalk(await walk(b, alice, V1, [bob.userId]), rooms);
        await roomOps(() => a).leave(bob, r2);
        assertWalk(await walkUntil(b, alice, bob, [r1, r3, r4, r5]), [r1, r3, r4, r5]);
        assertWalk(await walkUntil(b, bob, alice, [r1, r3, r4, r5]), [r1, r3, r4, r5]);
        await roomOps(() => b).join(bob, r2);
        assertWalk(await walkUntil(a, alice, bob, rooms), rooms);
      }

      // Restarts: the same data_dir, then yet another one.
      for (const s of [...started]) await stop(s);
      for (const dir of [dirA, dirC]) {
        const c = await start(dir);
        const res = await mutual(c, alice, V1, [
          ['user_id', bob.userId],
          ['from', page1.token],
        ]);
        assert.equal(res.status, 200, `after a restart (${dir}): ${JSON.stringify(res.body)}`);
        assert.deepEqual(res.body.joined, [r3, r4]);
        await stop(c);
      }
    } finally {
      for (const s of started) await s.close();
      await database.drop();
      for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    }
  });

  it('errors: no user_id → 400 M_MISSING_PARAM; a malformed, too long or non-historical user_id → 400 M_INVALID_PARAM', async () => {
    const [alice] = await pair();
    const invalid: Array<[string, string]> = [
      ['no @', 'bob:test.local'],
      ['no colon', '@bob'],
      ['empty server name', '@bob:'],
      ['empty localpart', '@:test.local'],
      ['bad server name', '@bob:bad_server!'],
      ['space in the server name', '@bob:exa mple.org'],
      ['six-digit port', '@bob:test.local:123456'],
      ['empty port', '@bob:test.local:'],
      ['two ports', '@bob:test.local:80:80'],
      ['unclosed IPv6 literal', '@bob:[::1'],
      ['space in the localpart', '@b ob:test.local'],
      ['non-ASCII localpart', '@bób:test.local'],
      ['DEL in the localpart', '@b\u007fob:test.local'],
      ['256 bytes', `@${'a'.repeat(244)}:test.local`],
      ['room ID', '!room:test.local'],
    ];
    const failures: string[] = [];
    for (const requestPath of QUERY_PATHS) {
      expectError(await mutual(server, alice, requestPath, []), 400, 'M_MISSING_PARAM', SPEC);
      for (const [label, userId] of invalid) {
        const params: Param[] = [['user_id', userId]];
        const res = await mutual(server, alice, requestPath, params);
        const body = res.body as unknown as { errcode?: string };
        if (res.status !== 400 || body.errcode !== 'M_INVALID_PARAM')
          failures.push(
            `${label}: ${describeRequest(requestPath, params)} → ${res.status} ${JSON.stringify(res.body)}`,
          );
        else assertMatchesSpec(SPEC.file, SPEC.method, SPEC.path, 400, res.body);
      }
    }
    for (const legacy of LEGACY_PATHS) {
      for (const [label, userId] of invalid) {
        const res = await mutual(server, alice, legacy(userId), []);
        const body = res.body as unknown as { errcode?: string };
        if (res.status !== 400 || body.errcode !== 'M_INVALID_PARAM')
          failures.push(
            `${label}: GET ${legacy(userId)} → ${res.status} ${JSON.stringify(res.body)}`,
          );
      }
    }
    assert.deepEqual(failures, [], failures.join('\n'));
  });

  it('unknown, remote and unusual-but-valid user IDs share nothing: 200, joined [], count 0', async () => {
    const [alice] = await pair();
    await ops.create(alice);
    const valid = [
      `@${uniqueName('nobody')}:test.local`,
      '@Ab!~c"#$%&\'()*+,-./09;<=>?[]^_`{|}:test.local',
      '@x:elsewhere.example',
      '@x:elsewhere.example:8448',
      '@x:127.0.0.1',
      '@x:[::1]:8448',
      `@${'a'.repeat(243)}:test.local`,
    ];
    assert.equal(Buffer.byteLength(valid.at(-1) ?? ''), 255);
    const failures: string[] = [];
    const check = (where: string, res: TestResponse<MutualBody>) => {
      if (res.status !== 200 || res.body.count !== 0 || res.body.joined?.length !== 0)
        failures.push(`${where} → ${res.status} ${JSON.stringify(res.body)}`);
      else {
        assertMatchesSpec(SPEC.file, SPEC.method, SPEC.path, 200, res.body);
        assert.equal(res.body.next_batch, undefined);
      }
    };
    for (const userId of valid) {
      for (const requestPath of QUERY_PATHS) {
        const params: Param[] = [['user_id', userId]];
        check(
          describeRequest(requestPath, params),
          await mutual(server, alice, requestPath, params),
        );
      }
      for (const legacy of LEGACY_PATHS) {
        check(`GET ${legacy(userId)}`, await mutual(server, alice, legacy(userId), []));
      }
    }
    assert.deepEqual(failures, [], failures.join('\n'));
  });

  it('user_id or from given twice → 400 M_INVALID_PARAM (multi_user off)', async () => {
    const [alice, bob] = await pair();
    const carol = await registerUser(server);
    await ops.shared(alice, [bob, carol], 3);
    for (const requestPath of QUERY_PATHS) {
      const { token } = await firstToken(server, alice, [bob.userId], requestPath);
      const cases: Param[][] = [
        [
          ['user_id', bob.userId],
          ['user_id', bob.userId],
        ],
        userParams(Array.from({ length: 11 }, (_, i) => `@someone${i}:test.local`)),
        [
          ['user_id', bob.userId],
          ['user_id', carol.userId],
        ],
        [
          ['user_id', bob.userId],
          ['from', token],
          ['from', token],
        ],
      ];
      if (requestPath === UNSTABLE) {
        cases.push([
          ['user_id', bob.userId],
          ['batch_token', token],
          ['batch_token', token],
        ]);
      }
      for (const params of cases) {
        const res = await mutual(server, alice, requestPath, params);
        assert.equal(
          res.status,
          400,
          `${describeRequest(requestPath, params)}: ${JSON.stringify(res.body)}`,
        );
        expectError(res, 400, 'M_INVALID_PARAM', SPEC);
      }
    }
  });

  it("the requester's own ID: 400 M_INVALID_PARAM on v1, 400 M_UNKNOWN on the unstable and legacy paths", async () => {
    const [alice, bob] = await pair();
    await ops.shared(alice, [bob], 1);
    for (const requestPath of V1_PATHS) {
      expectError(
        await mutual(server, alice, requestPath, [['user_id', alice.userId]]),
        400,
        'M_INVALID_PARAM',
        SPEC,
      );
    }
    const unstable = [
      `${UNSTABLE}${queryString([['user_id', alice.userId]])}`,
      legacyMutual(alice.userId),
      legacyShared(alice.userId),
    ];
    for (const url of unstable) {
      const res = await server.request('GET', url, { token: alice.accessToken });
      const body = expectError(res, 400, 'M_UNKNOWN', SPEC);
      assert.equal(body.error, SELF_ERROR, url);
    }
  });

  it('no access token → 401 M_MISSING_TOKEN, an unknown one → 401 M_UNKNOWN_TOKEN, on every path', async () => {
    const [, bob] = await pair();
    const urls = [
      ...QUERY_PATHS.map((p) => `${p}${queryString([['user_id', bob.userId]])}`),
      ...LEGACY_PATHS.map((legacy) => legacy(bob.userId)),
    ];
    for (const url of urls) {
      expectError(await server.request('GET', url), 401, 'M_MISSING_TOKEN');
      expectError(await server.request('GET', url, { token: 'nonsense' }), 401, 'M_UNKNOWN_TOKEN');
    }
  });

  it('rate limited per requester across all its paths: 429 M_LIMIT_EXCEEDED with retry_after_ms', async () => {
    const limited = await startTestServer(dialect, {
      COMMONS_RATE_LIMITS_ENABLED: 'true',
      COMMONS_RATE_LIMITS_CLASSES_MUTUAL_ROOMS_PER_SECOND: '0.001',
      COMMONS_RATE_LIMITS_CLASSES_MUTUAL_ROOMS_BURST: '2',
      COMMONS_RATE_LIMITS_CLASSES_REGISTRATION_BURST: '100',
    });
    try {
      const alice = await registerUser(limited);
      const bob = await registerUser(limited);
      const carol = await registerUser(limited);
      const [room] = await roomOps(() => limited).shared(alice, [bob, carol], 1);
      for (const requestPath of [V1, V1_USER]) {
        const res = await mutual(limited, alice, requestPath, [['user_id', bob.userId]]);
        assert.equal(res.status, 200, JSON.stringify(res.body));
        assert.deepEqual(res.body.joined, [room]);
      }
      for (const url of [
        `${UNSTABLE}${queryString([['user_id', bob.userId]])}`,
        `${V1}${queryString([['user_id', bob.userId]])}`,
        legacyMutual(bob.userId),
      ]) {
        const res = await limited.request('GET', url, { token: alice.accessToken });
        const body = expectError(res, 429, 'M_LIMIT_EXCEEDED', SPEC);
        assert.ok(
          typeof body.retry_after_ms === 'number' && body.retry_after_ms > 0,
          `${url}: ${JSON.stringify(body)}`,
        );
      }
      // Another requester has a bucket of its own.
      const other = await mutual(limited, carol, V1, [['user_id', bob.userId]]);
      assert.equal(other.status, 200, JSON.stringify(other.body));
      assert.deepEqual(other.body.joined, [room]);
    } finally {
      await limited.close();
    }
  });

  describe('several user_ids (mutual_rooms.multi_user on)', () => {
    let multi: TestServer;
    const mops = roomOps(() => multi);
    let alice: TestUser;
    let bob: TestUser;
    let carol: TestUser;
    let dave: TestUser;
    /** Rooms alice, bob and carol have all joined, in creation order. */
    let expected: string[];
    /** Rooms alice and bob have joined, in creation order. */
    let withBobOnly: string[];
    let withoutCarol: string;

    before(async () => {
      multi = await startTestServer(dialect, {
        COMMONS_MUTUAL_ROOMS_BATCH_SIZE: String(BATCH),
        COMMONS_MUTUAL_ROOMS_MULTI_USER: 'true',
      });
      [alice, bob, carol, dave] = [
        await registerUser(multi),
        await registerUser(multi),
        await registerUser(multi),
        await registerUser(multi),
      ];
      const all1 = (await mops.shared(alice, [bob, carol], 1))[0] as string;
      withoutCarol = (await mops.shared(alice, [bob], 1))[0] as string;
      await mops.shared(carol, [alice], 1); // without bob
      const all2 = (await mops.shared(bob, [alice, carol], 1))[0] as string;
      await mops.shared(bob, [carol], 1); // without alice
      const carolInvited = await mops.create(alice, 'private');
      await mops.invite(alice, carolInvited, bob);
      await mops.join(bob, carolInvited);
      await mops.invite(alice, carolInvited, carol);
      const carolLeft = (await mops.shared(alice, [bob, carol], 1))[0] as string;
      await mops.leave(carol, carolLeft);
      const rest = await mops.shared(carol, [alice, bob, dave], 3);
      expected = [all1, all2, ...rest];
      withBobOnly = [all1, withoutCarol, all2, carolInvited, carolLeft, ...rest];
    });
    after(async () => multi.close());

    it('/versions sets org.commons.msc2666.multi_user', async () => {
      const body = await getVersions(multi);
      assert.equal(body.unstable_features?.['org.commons.msc2666.multi_user'], true);
      assert.equal(body.unstable_features?.['uk.half-shot.msc2666.query_mutual_rooms'], true);
    });

    it('answers the rooms the requester shares with all of them, paged, from every side', async () => {
      for (const requestPath of QUERY_PATHS) {
        assertWalk(await walk(multi, alice, requestPath, [bob.userId, carol.userId]), expected);
        assertWalk(await walk(multi, alice, requestPath, [carol.userId, bob.userId]), expected);
        assertWalk(await walk(multi, bob, requestPath, [alice.userId, carol.userId]), expected);
        assertWalk(await walk(multi, carol, requestPath, [bob.userId, alice.userId]), expected);
      }
      const rest = expected.slice(2);
      assertWalk(await walk(multi, alice, V1, [bob.userId, carol.userId, dave.userId]), rest);
      // One user_id still works as without the extension.
      assertWalk(await walk(multi, alice, V1, [bob.userId]), withBobOnly);
    });

    it('the token is bound to the set of users', async () => {
      const { token } = await firstToken(multi, alice, [bob.userId, carol.userId]);
      for (const others of [[bob.userId], [carol.userId], [bob.userId, dave.userId]]) {
        expectError(
          await mutual(multi, alice, V1, [...userParams(others), ['from', token]]),
          400,
          'M_INVALID_PARAM',
          SPEC,
        );
      }
      for (const others of [
        [bob.userId, carol.userId],
        [carol.userId, bob.userId],
      ]) {
        const res = await mutual(multi, alice, V1, [...userParams(others), ['from', token]]);
        assert.equal(res.status, 200, `${JSON.stringify(others)}: ${JSON.stringify(res.body)}`);
        assert.deepEqual(res.body.joined, expected.slice(BATCH, 2 * BATCH));
      }
      expectError(
        await mutual(multi, bob, V1, [
          ...userParams([alice.userId, carol.userId]),
          ['from', token],
        ]),
        400,
        'M_INVALID_PARAM',
        SPEC,
      );
    });

    it('errors and empty answers as with one user_id', async () => {
      for (const requestPath of V1_PATHS) {
        expectError(
          await mutual(multi, alice, requestPath, userParams([bob.userId, alice.userId])),
          400,
          'M_INVALID_PARAM',
          SPEC,
        );
        expectError(
          await mutual(multi, alice, requestPath, userParams([bob.userId, 'carol'])),
          400,
          'M_INVALID_PARAM',
          SPEC,
        );
        const { token } = await firstToken(multi, alice, [bob.userId, carol.userId], requestPath);
        expectError(
          await mutual(multi, alice, requestPath, [
            ...userParams([bob.userId, carol.userId]),
            ['from', token],
            ['from', token],
          ]),
          400,
          'M_INVALID_PARAM',
          SPEC,
        );
        for (const stranger of ['@x:elsewhere.example', `@${uniqueName('nobody')}:test.local`]) {
          const res = await mutual(multi, alice, requestPath, userParams([bob.userId, stranger]));
          assert.equal(res.status, 200, JSON.stringify(res.body));
          assert.deepEqual(res.body.joined, []);
          assert.equal(res.body.count, 0);
        }
      }
      const self = await mutual(multi, alice, UNSTABLE, userParams([bob.userId, alice.userId]));
      assert.equal(expectError(self, 400, 'M_UNKNOWN').error, SELF_ERROR);
    });
  });
});
