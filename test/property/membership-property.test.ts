/**
 * Property test: random users, rooms and membership histories, created through the HTTP API.
 * An independent model replays the accepted actions; GET /v1/mutual_rooms (every page, small
 * batches) and GET /rooms/{roomId}/members (random membership / not_membership / filter and
 * recorded `at` tokens) must always equal the model's answer.
 *
 * The model does not re-implement the auth rules: an action the server refuses is simply not
 * recorded. It only records what each accepted action does to the target's membership.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import fc from 'fast-check';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { registerUser, type TestUser } from '../helpers/client.js';

const C = '/_matrix/client/v3';
const MEMBERSHIPS = ['join', 'invite', 'knock', 'leave', 'ban'] as const;
type Membership = (typeof MEMBERSHIPS)[number];
type ActionKind =
  'invite' | 'join' | 'leave' | 'kick' | 'ban' | 'unban' | 'knock' | 'forget' | 'token';
type Preset = 'public' | 'private' | 'knock';

interface Action {
  kind: ActionKind;
  actor: number;
  target: number;
  room: number;
}
interface MembersQuery {
  membership: Membership[];
  notMembership: Membership[];
  filterMembership: Membership[] | null;
  /** The filter's senders / not_senders, as user indices (modulo the number of users). */
  senders: number[] | null;
  notSenders: number[] | null;
  limit: number | null;
  /** Index into the recorded tokens (modulo their number), or null for "now". */
  at: number | null;
}
interface Scenario {
  users: number;
  rooms: { creator: number; preset: Preset }[];
  actions: Action[];
  queries: MembersQuery[];
}

/** One membership change, in the order the server accepted it. */
interface Change {
  room: number;
  user: number;
  membership: Membership;
  previous: Membership | undefined;
  /** Who sent the member event. */
  sender: number;
}

/** The model: the accepted changes, replayed to answer any question about any point. */
class Model {
  readonly history: Change[] = [];
  /** History length at which each room was created. */
  readonly createdAt: number[] = [];

  /** `${room}/${user}` of memberships forgotten since their last change. */
  readonly forgotten = new Set<string>();

  record(room: number, user: number, membership: Membership, sender: number): void {
    this.history.push({ room, user, membership, sender, previous: this.membershipAt(room, user) });
    this.forgotten.delete(`${room}/${user}`);
  }

  forget(room: number, user: number): void {
    this.forgotten.add(`${room}/${user}`);
  }

  membershipAt(room: number, user: number, upTo = this.history.length): Membership | undefined {
    let value: Membership | undefined;
    for (let i = 0; i < upTo; i++) {
      const change = this.history[i] as Change;
      if (change.room === room && change.user === user) value = change.membership;
    }
    return value;
  }

  /** user → the change current in `room` after the first `upTo` changes. */
  viewAt(room: number, upTo = this.history.length): Map<number, Change> {
    const view = new Map<number, Change>();
    for (let i = 0; i < upTo; i++) {
      const change = this.history[i] as Change;
      if (change.room === room) view.set(change.user, change);
    }
    return view;
  }

  joinedRooms(user: number, roomCount: number): number[] {
    const out: number[] = [];
    for (let room = 0; room < roomCount; room++)
      if (this.membershipAt(room, user) === 'join') out.push(room);
    return out;
  }

  /**
   * How `viewer` may read the member list of `room`:
   *  - 'never': no membership ever → 403;
   *  - 'joined': currently joined → any point;
   *  - 'departed': left / kicked / banned straight from join → as of that change (`until`),
   *    and `since` is where the last join began (tokens from there on are unambiguous);
   *  - 'skip': anything else (pending invite after leaving, etc.), not asserted here.
   */
  access(
    room: number,
    viewer: number,
  ):
    | { kind: 'never' }
    | { kind: 'joined' }
    | { kind: 'departed'; until: number; since: number }
    | { kind: 'skip' } {
    let last = -1;
    let lastJoinStart = -1;
    for (let i = 0; i < this.history.length; i++) {
      const change = this.history[i] as Change;
      if (change.room !== room || change.user !== viewer) continue;
      if (change.membership === 'join' && change.previous !== 'join') lastJoinStart = i;
      last = i;
    }
    if (last === -1) return { kind: 'never' };
    if (this.forgotten.has(`${room}/${viewer}`)) return { kind: 'skip' };
    const change = this.history[last] as Change;
    if (change.membership === 'join') return { kind: 'joined' };
    if (
      (change.membership === 'leave' || change.membership === 'ban') &&
      change.previous === 'join'
    )
      return { kind: 'departed', until: last + 1, since: lastJoinStart + 1 };
    return { kind: 'skip' };
  }
}

/**
 * The spec's rule: IS one of `membership` OR IS NOT one of `not_membership`; and the filter's
 * membership / senders / not_senders (sender indices already reduced modulo the user count).
 */
function selects(change: Change, q: MembersQuery, userCount: number): boolean {
  const value = change.membership;
  if (q.senders !== null && !q.senders.some((s) => s % userCount === change.sender)) return false;
  if (q.notSenders !== null && q.notSenders.some((s) => s % userCount === change.sender))
    return false;
  let chosen = true;
  if (q.membership.length > 0 || q.notMembership.length > 0) {
    chosen =
      q.membership.includes(value) ||
      (q.notMembership.length > 0 && !q.notMembership.includes(value));
  }
  return chosen && (q.filterMembership === null || q.filterMembership.includes(value));
}

/** Mostly null: a filter field is set in about one query of four. */
const rarely = <T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | null> =>
  fc.oneof({ arbitrary: fc.constant(null), weight: 3 }, { arbitrary: arb, weight: 1 });

/** Weighted so that most actions are ones the server can accept (joins, creator's moderation). */
const actionKind: fc.Arbitrary<ActionKind> = fc.oneof(
  { arbitrary: fc.constant<ActionKind>('join'), weight: 5 },
  { arbitrary: fc.constant<ActionKind>('invite'), weight: 4 },
  { arbitrary: fc.constant<ActionKind>('leave'), weight: 3 },
  { arbitrary: fc.constant<ActionKind>('knock'), weight: 3 },
  { arbitrary: fc.constant<ActionKind>('kick'), weight: 2 },
  { arbitrary: fc.constant<ActionKind>('ban'), weight: 2 },
  { arbitrary: fc.constant<ActionKind>('unban'), weight: 2 },
  { arbitrary: fc.constant<ActionKind>('forget'), weight: 1 },
  { arbitrary: fc.constant<ActionKind>('token'), weight: 2 },
);

const scenarioArbitrary: fc.Arbitrary<Scenario> = fc
  .record({ users: fc.integer({ min: 3, max: 5 }), roomCount: fc.integer({ min: 2, max: 4 }) })
  .chain(({ users, roomCount }) =>
    fc
      .record({
        rooms: fc.array(
          fc.record({
            creator: fc.nat(users - 1),
            preset: fc.constantFrom<Preset>('public', 'public', 'private', 'knock'),
          }),
          { minLength: roomCount, maxLength: roomCount },
        ),
        actions: fc.array(
          fc.record({
            kind: actionKind,
            actor: fc.nat(users - 1),
            // Invites, kicks, bans and unbans come from the room's creator 3 times in 4.
            byCreator: fc.oneof(
              { arbitrary: fc.constant(true), weight: 3 },
              { arbitrary: fc.constant(false), weight: 1 },
            ),
            target: fc.nat(users - 1),
            room: fc.nat(roomCount - 1),
          }),
          { minLength: 15, maxLength: 40 },
        ),
        queries: fc.array(
          fc.record({
            membership: fc.subarray([...MEMBERSHIPS], { maxLength: 2 }),
            notMembership: fc.subarray([...MEMBERSHIPS], { maxLength: 1 }),
            filterMembership: rarely(fc.subarray([...MEMBERSHIPS], { minLength: 1 })),
            at: fc.option(fc.nat(20), { freq: 2 }),
            senders: rarely(fc.array(fc.nat(4), { minLength: 1, maxLength: 3 })),
            notSenders: rarely(fc.array(fc.nat(4), { maxLength: 2 })),
            limit: rarely(fc.integer({ min: 1, max: 6 })),
          }),
          { minLength: 3, maxLength: 5 },
        ),
      })
      .map(({ rooms, actions, queries }) => ({
        users,
        rooms,
        queries,
        actions: actions.map(({ byCreator, ...action }) =>
          byCreator && ['invite', 'kick', 'ban', 'unban'].includes(action.kind)
            ? { ...action, actor: (rooms[action.room] as { creator: number }).creator }
            : action,
        ),
      })),
  );

forEachDatabase('membership property: /members and /mutual_rooms against a model', (dialect) => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer(dialect, { COMMONS_MUTUAL_ROOMS_BATCH_SIZE: '2' });
  });
  after(async () => server.close());

  const r = (roomId: string) => encodeURIComponent(roomId);

  interface Built {
    users: TestUser[];
    roomIds: string[];
    /** A room only users[0] is in (joined), used for tokens. */
    anchorId: string;
    model: Model;
    /** Recorded `at` tokens with the model's history length at that moment. */
    tokens: { token: string; upTo: number }[];
    log: string[];
  }

  /** Creates the scenario through the API and keeps the model in step. */
  async function build(scenario: Scenario): Promise<Built> {
    const users: TestUser[] = [];
    for (let i = 0; i < scenario.users; i++) users.push(await registerUser(server));
    const model = new Model();
    const log: string[] = [];
    const roomIds: string[] = [];
    // A room only users[0] is in, that nobody leaves: a place to read stream tokens from.
    const anchor = await server.request<{ room_id: string }>('POST', `${C}/createRoom`, {
      token: (users[0] as TestUser).accessToken,
      body: { preset: 'private_chat' },
    });
    assert.equal(anchor.status, 200, JSON.stringify(anchor.body));
    for (const [index, room] of scenario.rooms.entries()) {
      const creator = users[room.creator] as TestUser;
      const res = await server.request<{ room_id: string }>('POST', `${C}/createRoom`, {
        token: creator.accessToken,
        body: { preset: room.preset === 'public' ? 'public_chat' : 'private_chat' },
      });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      roomIds.push(res.body.room_id);
      model.createdAt.push(model.history.length);
      model.record(index, room.creator, 'join', room.creator);
      if (room.preset === 'knock') {
        const rule = await server.request(
          'PUT',
          `${C}/rooms/${r(res.body.room_id)}/state/m.room.join_rules/`,
          { token: creator.accessToken, body: { join_rule: 'knock' } },
        );
        assert.equal(rule.status, 200, JSON.stringify(rule.body));
      }
      log.push(`create room${index} by u${room.creator} (${room.preset})`);
    }
    const tokens: { token: string; upTo: number }[] = [];
    const recordToken = async () => {
      const res = await server.request<{ start: string }>(
        'GET',
        `${C}/rooms/${r(anchor.body.room_id)}/messages?dir=b&limit=1`,
        { token: (users[0] as TestUser).accessToken },
      );
      assert.equal(res.status, 200, JSON.stringify(res.body));
      tokens.push({ token: res.body.start, upTo: model.history.length });
      log.push(`token ${res.body.start} (#${tokens.length - 1}, after ${model.history.length})`);
    };
    await recordToken();
    for (const action of scenario.actions) {
      if (action.kind === 'token') {
        await recordToken();
        continue;
      }
      if (action.kind === 'forget') {
        const roomId = roomIds[action.room] as string;
        const res = await server.request('POST', `${C}/rooms/${r(roomId)}/forget`, {
          token: (users[action.actor] as TestUser).accessToken,
          body: {},
        });
        assert.ok(res.status < 500, `forget → ${res.status} ${JSON.stringify(res.body)}`);
        if (res.status === 200) model.forget(action.room, action.actor);
        log.push(`forget room${action.room} u${action.actor}: ${res.status}`);
        continue;
      }
      const actor = users[action.actor] as TestUser;
      const target = users[action.target] as TestUser;
      const roomId = roomIds[action.room] as string;
      const targeted = { user_id: target.userId };
      const [path, body, changed, result]: [string, unknown, number, Membership] = (() => {
        switch (action.kind) {
          case 'invite':
            return [`/rooms/${r(roomId)}/invite`, targeted, action.target, 'invite'];
          case 'join':
            return [`/join/${r(roomId)}`, {}, action.actor, 'join'];
          case 'leave':
            return [`/rooms/${r(roomId)}/leave`, {}, action.actor, 'leave'];
          case 'kick':
            return [`/rooms/${r(roomId)}/kick`, targeted, action.target, 'leave'];
          case 'ban':
            return [`/rooms/${r(roomId)}/ban`, targeted, action.target, 'ban'];
          case 'unban':
            return [`/rooms/${r(roomId)}/unban`, targeted, action.target, 'leave'];
          case 'knock':
            return [`/knock/${r(roomId)}`, {}, action.actor, 'knock'];
          default:
            throw new Error(`unexpected action ${action.kind}`);
        }
      })();
      const res = await server.request('POST', `${C}${path}`, { token: actor.accessToken, body });
      assert.ok(
        res.status === 200 || res.status === 403 || res.status === 400,
        `${action.kind} by u${action.actor} → ${res.status} ${JSON.stringify(res.body)}`,
      );
      const what = `${action.kind} room${action.room} u${action.actor}→u${action.target}`;
      if (res.status === 200) {
        model.record(action.room, changed, result, action.actor);
        log.push(`${what}: ok`);
      } else {
        log.push(`${what}: ${res.status} ${(res.body as { errcode?: string }).errcode}`);
      }
    }
    await recordToken();
    return { users, roomIds, anchorId: anchor.body.room_id, model, tokens, log };
  }

  it('/members with membership, not_membership, filter and `at` equals the model', async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArbitrary, async (scenario) => {
        const { users, roomIds, model, tokens, log } = await build(scenario);
        for (let room = 0; room < roomIds.length; room++) {
          const roomId = roomIds[room] as string;
          // Tokens recorded once the room exists.
          const roomTokens = tokens.filter((t) => t.upTo > (model.createdAt[room] as number));
          for (let viewer = 0; viewer < users.length; viewer++) {
            const access = model.access(room, viewer);
            if (access.kind === 'skip') continue;
            const token = (users[viewer] as TestUser).accessToken;
            if (access.kind === 'never') {
              const res = await server.request('GET', `${C}/rooms/${r(roomId)}/members`, {
                token,
              });
              assert.equal(
                res.status,
                403,
                `u${viewer} never in room${room}: ${JSON.stringify(res.body)}\n${log.join('\n')}`,
              );
              continue;
            }
            const usable =
              access.kind === 'departed'
                ? roomTokens.filter((t) => t.upTo >= access.since)
                : roomTokens;
            for (const query of scenario.queries) {
              const params = new URLSearchParams();
              for (const m of query.membership) params.append('membership', m);
              for (const m of query.notMembership) params.append('not_membership', m);
              const filter: Record<string, unknown> = {};
              const idOf = (i: number) => (users[i % users.length] as TestUser).userId;
              if (query.filterMembership !== null) filter.membership = query.filterMembership;
              if (query.senders !== null) filter.senders = query.senders.map(idOf);
              if (query.notSenders !== null) filter.not_senders = query.notSenders.map(idOf);
              if (query.limit !== null) filter.limit = query.limit;
              if (Object.keys(filter).length > 0) params.append('filter', JSON.stringify(filter));
              let upTo = model.history.length;
              if (query.at !== null && usable.length > 0) {
                const chosen = usable[query.at % usable.length] as { token: string; upTo: number };
                params.append('at', chosen.token);
                upTo = chosen.upTo;
              }
              if (access.kind === 'departed') upTo = Math.min(upTo, access.until);
              const expected = [...model.viewAt(room, upTo)]
                .filter(([, change]) => selects(change, query, users.length))
                .map(([user, change]) => `${(users[user] as TestUser).userId}=${change.membership}`)
                .sort();
              const res = await server.request<{
                chunk: { state_key: string; content: { membership: string } }[];
              }>('GET', `${C}/rooms/${r(roomId)}/members?${params}`, { token });
              const where: string = `u${viewer} (${access.kind}) GET /rooms/room${room}/members?${params}`;
              assert.equal(res.status, 200, `${where}: ${JSON.stringify(res.body)}`);
              const actual = res.body.chunk.map((e) => `${e.state_key}=${e.content.membership}`);
              const context = `${where}\nusers: ${users.map((u, i) => `u${i}=${u.userId}`).join(' ')}\n${log.join('\n')}`;
              if (query.limit !== null && query.limit < expected.length) {
                assert.equal(actual.length, query.limit, `${context}\nlimit`);
                assert.equal(new Set(actual).size, actual.length, `${context}\nrepeats`);
                for (const entry of actual)
                  assert.ok(expected.includes(entry), `${context}\n${entry} not expected`);
                continue;
              }
              assert.deepEqual(
                [...actual].sort(),
                expected,
                `${where}\nusers: ${users.map((u, i) => `u${i}=${u.userId}`).join(' ')}\n${log.join('\n')}`,
              );
            }
          }
        }
      }),
      { numRuns: 15, endOnFailure: true },
    );
  });

  it('/v1/mutual_rooms for every pair, walked page by page, equals the model', async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArbitrary, async (scenario) => {
        const { users, roomIds, model, log } = await build(scenario);
        const joined = users.map((_, u) => new Set(model.joinedRooms(u, roomIds.length)));
        for (let a = 0; a < users.length; a++) {
          for (let b = 0; b < users.length; b++) {
            if (a === b) continue;
            const requester = users[a] as TestUser;
            const other = users[b] as TestUser;
            const expected = [...(joined[a] as Set<number>)]
              .filter((room) => (joined[b] as Set<number>).has(room))
              .map((room) => roomIds[room] as string)
              .sort();
            const seen: string[] = [];
            let from: string | undefined;
            for (let page = 0; ; page++) {
              assert.ok(page <= expected.length + 1, 'paging must end');
              const query = new URLSearchParams({ user_id: other.userId });
              if (from !== undefined) query.set('from', from);
              const res = await server.request<{
                joined: string[];
                count: number;
                next_batch?: string;
              }>('GET', `/_matrix/client/v1/mutual_rooms?${query}`, {
                token: requester.accessToken,
              });
              const where: string = `u${a} → u${b}, page ${page}: GET /v1/mutual_rooms?${query}`;
              assert.equal(res.status, 200, `${where}: ${JSON.stringify(res.body)}`);
              assert.ok(res.body.joined.length <= 2, `${where}: batch size 2`);
              assert.equal(res.body.count, expected.length, `${where}: count\n${log.join('\n')}`);
              seen.push(...res.body.joined);
              if (res.body.next_batch === undefined) break;
              assert.match(res.body.next_batch, /^[0-9a-zA-Z._~-]{1,255}$/);
              from = res.body.next_batch;
            }
            assert.equal(new Set(seen).size, seen.length, `u${a} → u${b}: each room once`);
            assert.deepEqual(
              [...seen].sort(),
              expected,
              `u${a} → u${b} mutual rooms\nrooms: ${roomIds.map((id, i) => `room${i}=${id}`).join(' ')}\n${log.join('\n')}`,
            );
          }
        }
      }),
      { numRuns: 12, endOnFailure: true },
    );
  });

  it('/joined_rooms, the MSC2895 room listing and /joined_members equal the model', async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArbitrary, async (scenario) => {
        const { users, roomIds, anchorId, model, log } = await build(scenario);
        const context = () =>
          `users: ${users.map((u, i) => `u${i}=${u.userId}`).join(' ')}\nrooms: ${roomIds
            .map((id, i) => `room${i}=${id}`)
            .join(' ')}\n${log.join('\n')}`;
        for (let u = 0; u < users.length; u++) {
          const user = users[u] as TestUser;
          const anchor: Record<string, string> = u === 0 ? { [anchorId]: 'join' } : {};
          const listed: Record<string, string> = { ...anchor };
          for (let room = 0; room < roomIds.length; room++) {
            const m = model.membershipAt(room, u);
            if (m !== undefined && !model.forgotten.has(`${room}/${u}`))
              listed[roomIds[room] as string] = m;
          }
          const joinedRooms = await server.request<{ joined_rooms: string[] }>(
            'GET',
            `${C}/joined_rooms`,
            { token: user.accessToken },
          );
          assert.equal(joinedRooms.status, 200);
          assert.deepEqual(
            [...joinedRooms.body.joined_rooms].sort(),
            [
              ...Object.keys(anchor),
              ...model.joinedRooms(u, roomIds.length).map((i) => roomIds[i] as string),
            ].sort(),
            `u${u} /joined_rooms\n${context()}`,
          );
          const listing = await server.request<{ rooms: Record<string, { membership: string }> }>(
            'GET',
            '/_matrix/client/unstable/org.matrix.msc2895/rooms',
            { token: user.accessToken },
          );
          assert.equal(listing.status, 200, JSON.stringify(listing.body));
          const actual = Object.fromEntries(
            Object.entries(listing.body.rooms).map(([id, v]) => [id, v.membership]),
          );
          assert.deepEqual(
            Object.entries(actual).sort(),
            Object.entries(listed).sort(),
            `u${u} MSC2895 /rooms\n${context()}`,
          );
          for (let room = 0; room < roomIds.length; room++) {
            const res = await server.request<{ joined: Record<string, unknown> }>(
              'GET',
              `${C}/rooms/${r(roomIds[room] as string)}/joined_members`,
              { token: user.accessToken },
            );
            if (model.membershipAt(room, u) !== 'join') {
              assert.equal(res.status, 403, `u${u} not joined in room${room}\n${context()}`);
              continue;
            }
            assert.equal(res.status, 200, JSON.stringify(res.body));
            const joinedNow = [...model.viewAt(room)]
              .filter(([, change]) => change.membership === 'join')
              .map(([member]) => (users[member] as TestUser).userId)
              .sort();
            assert.deepEqual(
              Object.keys(res.body.joined).sort(),
              joinedNow,
              `u${u} /joined_members room${room}\n${context()}`,
            );
          }
        }
      }),
      { numRuns: 12, endOnFailure: true },
    );
  });
});
