/**
 * Membership under concurrency: rounds of concurrent joins, leaves, invites, kicks, bans,
 * unbans, messages and power level changes by several users and two moderators, all at ONE
 * room, then checks of what was committed, read straight from the database over a second
 * connection:
 *   (a) every response is 200 or a Matrix 4xx error, never a 500;
 *   (b) each user's membership as GET /state/m.room.member reports it is that of the last
 *       member event for them in the log, and each 200 wrote exactly one event;
 *   (c) stream positions are unique and increasing, every prev_event is an earlier event,
 *       and — since every write holds the room lock — the room's DAG is one chain (one
 *       forward extremity) whose every event passes the auth rules against the state
 *       replayed from the log, citing that state's events as its auth_events;
 *   (d) room_memberships and membership_history agree with current_state for every member.
 * On PostgreSQL the pool has several connections and the room lock is an advisory lock, so
 * this is where the writers really race; on SQLite they queue on the one connection.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect } from 'kysely';
import pg from 'pg';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestResponse, type TestServer } from '../helpers/server.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import {
  authEventSelection,
  authorizeEvent,
  type AuthStateEvent,
} from '../../src/core/auth-rules.js';
import { stateKeyOf, type Pdu, type RoomVersionId, type StateKey } from '../../src/core/pdu.js';
import type { Database } from '../../src/storage/schema.js';

const C = '/_matrix/client/v3';
const VERSIONS: readonly RoomVersionId[] = ['10', '11', '12'];
const USERS = 8;
const ROUNDS = 3;
const OPS_PER_ROUND = 50;

/** A small seeded PRNG (mulberry32), so a failing run can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A second, read-only connection to the server's database. */
function openReader(url: string): Kysely<Database> {
  if (url.startsWith('sqlite:')) {
    const file = url.slice('sqlite:'.length);
    return new Kysely<Database>({
      dialect: new SqliteDialect({
        database: new SqliteDatabase(file, { readonly: true, fileMustExist: true }),
      }),
    });
  }
  return new Kysely<Database>({
    dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: url, max: 1 }) }),
  });
}

type OpKind =
  'join' | 'leave' | 'forget' | 'invite' | 'kick' | 'ban' | 'unban' | 'message' | 'power';

interface Op {
  kind: OpKind;
  /** Index into the actors: 0 alice (creator), 1 the moderator, 2.. the users. */
  by: number;
  target?: number;
  kickLevel?: number;
}

interface Outcome {
  op: Op;
  response: TestResponse<Record<string, unknown>>;
}

interface LoggedEvent {
  streamOrdering: number;
  eventId: string;
  depth: number;
  pdu: Pdu;
}

forEachDatabase('membership under concurrency', (dialect) => {
  let server: TestServer;
  /** alice (creator), mod (power 50), then the users. */
  let actors: TestUser[];

  before(async () => {
    server = await startTestServer(dialect);
    actors = [];
    for (let i = 0; i < USERS + 2; i++) actors.push(await registerUser(server));
  });
  after(async () => server.close());

  const actor = (index: number): TestUser => {
    const found = actors[index];
    assert.ok(found, `actor ${index}`);
    return found;
  };

  for (const version of VERSIONS) {
    it(`room version ${version}: ${ROUNDS} rounds of ${OPS_PER_ROUND} concurrent membership changes leave a consistent room`, async () => {
      const alice = actor(0);
      const mod = actor(1);
      const created = await server.request<{ room_id: string }>('POST', `${C}/createRoom`, {
        token: alice.accessToken,
        body: {
          preset: 'public_chat',
          room_version: version,
          power_level_content_override: {
            users:
              version === '12' ? { [mod.userId]: 50 } : { [alice.userId]: 100, [mod.userId]: 50 },
          },
        },
      });
      assert.equal(created.status, 200, JSON.stringify(created.body));
      const roomId = created.body.room_id;
      const r = encodeURIComponent(roomId);
      const levels = await server.request<Record<string, unknown>>(
        'GET',
        `${C}/rooms/${r}/state/m.room.power_levels`,
        { token: alice.accessToken },
      );
      assert.equal(levels.status, 200);
      // Half the users start in the room, and the moderator.
      for (let i = 1; i < actors.length; i += 1) {
        if (i > 1 && i % 2 === 1) continue;
        const join = await server.request('POST', `${C}/rooms/${r}/join`, {
          token: actor(i).accessToken,
          body: {},
        });
        assert.equal(join.status, 200);
      }
      const startPosition = await server.running.storage.stores.rooms.selectCurrentStreamPosition();

      const seed = 0xc0ffee + Number(version);
      const random = prng(seed);
      const pick = (from: number, to: number) => from + Math.floor(random() * (to - from));
      const user = () => pick(2, actors.length);
      const moderator = () => pick(0, 2);
      const nextOp = (): Op => {
        const roll = random();
        if (roll < 0.26) return { kind: 'join', by: user() };
        if (roll < 0.38) return { kind: 'leave', by: user() };
        if (roll < 0.46) return { kind: 'forget', by: user() };
        if (roll < 0.52) return { kind: 'invite', by: random() < 0.5 ? 1 : user(), target: user() };
        if (roll < 0.66)
          return { kind: 'kick', by: random() < 0.7 ? moderator() : user(), target: user() };
        if (roll < 0.74)
          return { kind: 'ban', by: random() < 0.8 ? moderator() : user(), target: user() };
        if (roll < 0.9)
          return { kind: 'unban', by: random() < 0.8 ? moderator() : user(), target: user() };
        if (roll < 0.96) return { kind: 'message', by: user() };
        // The creator moves the kick level above and back to the moderator's level.
        return { kind: 'power', by: 0, kickLevel: random() < 0.5 ? 60 : 50 };
      };

      let txn = 0;
      const perform = (op: Op): Promise<TestResponse<Record<string, unknown>>> => {
        const token = actor(op.by).accessToken;
        switch (op.kind) {
          case 'join':
          case 'leave':
          case 'forget':
            return server.request('POST', `${C}/rooms/${r}/${op.kind}`, { token, body: {} });
          case 'invite':
          case 'kick':
          case 'ban':
          case 'unban':
            return server.request('POST', `${C}/rooms/${r}/${op.kind}`, {
              token,
              body: { user_id: actor(op.target ?? 0).userId },
            });
          case 'message':
            return server.request('PUT', `${C}/rooms/${r}/send/m.room.message/c${++txn}`, {
              token,
              body: { msgtype: 'm.text', body: `message ${txn}` },
            });
          case 'power':
            return server.request('PUT', `${C}/rooms/${r}/state/m.room.power_levels`, {
              token,
              body: { ...levels.body, kick: op.kickLevel ?? 50 },
            });
        }
      };

      const outcomes: Outcome[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        const ops = Array.from({ length: OPS_PER_ROUND }, nextOp);
        const responses = await Promise.all(ops.map(perform));
        ops.forEach((op, i) => {
          const response = responses[i];
          assert.ok(response);
          outcomes.push({ op, response });
        });
      }

      // (a) 200, or a Matrix 4xx error; never a 500.
      for (const { op, response } of outcomes) {
        const what = `${JSON.stringify(op)} (seed ${seed}) → ${response.status} ${JSON.stringify(response.body)}`;
        if (response.status === 200) continue;
        assert.ok(response.status >= 400 && response.status < 500, what);
        assert.match(String(response.body.errcode), /^M_[A-Z_]+$/, what);
        assert.equal(typeof response.body.error, 'string', what);
      }
      const ok = outcomes.filter((o) => o.response.status === 200);
      assert.ok(ok.length > 0, 'some changes went through');
      assert.ok(ok.length < outcomes.length, 'some changes were refused');

      const reader = openReader(server.config.database.url);
      try {
        const rows = await reader
          .selectFrom('events')
          .select(['stream_ordering', 'event_id', 'depth', 'pdu'])
          .where('room_id', '=', roomId)
          .orderBy('stream_ordering')
          .execute();
        const log: LoggedEvent[] = rows.map((row) => ({
          streamOrdering: Number(row.stream_ordering),
          eventId: row.event_id,
          depth: Number(row.depth),
          pdu: JSON.parse(row.pdu) as Pdu,
        }));

        // (b) Each 200 wrote exactly one event, of its kind; refusals wrote nothing.
        const burst = log.filter((e) => e.streamOrdering > startPosition);
        const count = (pred: (e: LoggedEvent) => boolean) => burst.filter(pred).length;
        const okOf = (...kinds: OpKind[]) => ok.filter((o) => kinds.includes(o.op.kind)).length;
        assert.equal(
          burst.length,
          ok.filter((o) => o.op.kind !== 'forget').length,
          'one event per successful request (forget writes none)',
        );
        assert.equal(
          count((e) => e.pdu.type === 'm.room.member'),
          okOf('join', 'leave', 'invite', 'kick', 'ban', 'unban'),
        );
        assert.equal(
          count((e) => e.pdu.type === 'm.room.message'),
          okOf('message'),
        );
        assert.equal(
          count((e) => e.pdu.type === 'm.room.power_levels'),
          okOf('power'),
        );
        const logged = new Set(log.map((e) => e.eventId));
        for (const { response } of ok) {
          if (typeof response.body.event_id === 'string')
            assert.ok(logged.has(response.body.event_id));
        }

        // (b) The membership GET reports is that of the last member event in the log.
        const lastMember = new Map<string, LoggedEvent>();
        for (const e of log)
          if (e.pdu.type === 'm.room.member') lastMember.set(e.pdu.state_key ?? '', e);
        for (const who of actors) {
          const last = lastMember.get(who.userId);
          const res = await server.request<Record<string, unknown>>(
            'GET',
            `${C}/rooms/${r}/state/m.room.member/${encodeURIComponent(who.userId)}`,
            { token: alice.accessToken },
          );
          if (last === undefined) {
            assert.equal(res.status, 404, `${who.userId} never had a member event`);
            continue;
          }
          assert.equal(res.status, 200, JSON.stringify(res.body));
          assert.equal(res.body.membership, last.pdu.content.membership, who.userId);
          assert.deepEqual(res.body, last.pdu.content, who.userId);
        }
        for (const membership of ['join', 'leave', 'ban', 'invite']) {
          const expected = [...lastMember]
            .filter(([, e]) => e.pdu.content.membership === membership)
            .map(([userId]) => userId)
            .sort();
          const members = await server.running.storage.stores.rooms.selectMembersOfRoom(
            roomId,
            membership,
          );
          assert.deepEqual([...members].sort(), expected, `members with ${membership}`);
        }

        // (c) Stream positions: unique and increasing over the whole log.
        const all = await reader
          .selectFrom('events')
          .select(['stream_ordering', 'event_id'])
          .orderBy('stream_ordering')
          .execute();
        for (let i = 1; i < all.length; i++) {
          const prev = all[i - 1];
          const cur = all[i];
          assert.ok(prev && cur);
          assert.ok(Number(cur.stream_ordering) > Number(prev.stream_ordering), 'unique positions');
        }
        const position = await reader
          .selectFrom('stream_positions')
          .select('position')
          .where('stream', '=', 'events')
          .executeTakeFirstOrThrow();
        const lastEvent = all[all.length - 1];
        assert.ok(lastEvent);
        assert.ok(Number(position.position) >= Number(lastEvent.stream_ordering));

        // (c) Every prev_event is an earlier event; one chain, one forward extremity.
        const seen = new Map<string, LoggedEvent>();
        let previous: LoggedEvent | undefined;
        for (const e of log) {
          for (const prev of e.pdu.prev_events) {
            assert.ok(seen.has(prev), `${e.eventId} cites ${prev}, not an earlier event`);
          }
          if (previous === undefined) {
            assert.equal(e.pdu.type, 'm.room.create');
            assert.deepEqual(e.pdu.prev_events, []);
          } else {
            assert.deepEqual(
              e.pdu.prev_events,
              [previous.eventId],
              `${e.eventId} (${e.pdu.type}) follows the event before it`,
            );
            assert.equal(e.depth, previous.depth + 1);
          }
          assert.equal(e.depth, e.pdu.depth);
          seen.set(e.eventId, e);
          previous = e;
        }
        const extremities = await reader
          .selectFrom('room_extremities')
          .select('event_id')
          .where('room_id', '=', roomId)
          .execute();
        assert.deepEqual(
          extremities.map((x) => x.event_id),
          [previous?.eventId],
        );

        // (c) Replaying the log: each event is allowed by the state before it, and cites it.
        const state = new Map<StateKey, AuthStateEvent>();
        for (const e of log) {
          if (e.pdu.type !== 'm.room.create') {
            const result = authorizeEvent(e.pdu, state, version, { isSignedBy: () => true });
            assert.ok(
              result.allowed,
              `${e.pdu.type} ${JSON.stringify(e.pdu.content)} by ${e.pdu.sender}: ${result.allowed ? '' : result.reason}`,
            );
            const cited = authEventSelection(
              e.pdu.type,
              e.pdu.state_key,
              e.pdu.sender,
              e.pdu.content,
              version,
            )
              .map((key) => state.get(key)?.event_id)
              .filter((eventId): eventId is string => eventId !== undefined);
            assert.deepEqual(
              [...e.pdu.auth_events].sort(),
              cited.sort(),
              `auth_events of ${e.eventId}`,
            );
          }
          if (e.pdu.state_key !== undefined) {
            state.set(stateKeyOf(e.pdu.type, e.pdu.state_key), { ...e.pdu, event_id: e.eventId });
          }
        }

        // (d) current_state is the replayed state; room_memberships agrees with it.
        const current = await reader
          .selectFrom('current_state')
          .select(['type', 'state_key', 'event_id', 'stream_ordering'])
          .where('room_id', '=', roomId)
          .execute();
        assert.deepEqual(
          new Map(current.map((row) => [stateKeyOf(row.type, row.state_key), row.event_id])),
          new Map([...state].map(([key, event]) => [key, event.event_id])),
        );
        const memberships = await reader
          .selectFrom('room_memberships')
          .selectAll()
          .where('room_id', '=', roomId)
          .execute();
        const currentMembers = current.filter((row) => row.type === 'm.room.member');
        assert.equal(memberships.length, currentMembers.length);
        for (const row of currentMembers) {
          const member = memberships.find((m) => m.user_id === row.state_key);
          assert.ok(member, `room_memberships has ${row.state_key}`);
          const event = seen.get(row.event_id);
          assert.ok(event);
          assert.equal(member.event_id, row.event_id, row.state_key);
          assert.equal(Number(member.stream_ordering), Number(row.stream_ordering));
          assert.equal(Number(member.stream_ordering), event.streamOrdering);
          assert.equal(member.membership, event.pdu.content.membership, row.state_key);
        }

        // (d) membership_history holds each member event once, in the same order.
        const history = await reader
          .selectFrom('membership_history')
          .selectAll()
          .where('room_id', '=', roomId)
          .orderBy('stream_ordering')
          .execute();
        assert.deepEqual(
          history.map((h) => [h.user_id, h.membership, h.event_id, Number(h.stream_ordering)]),
          log
            .filter((e) => e.pdu.type === 'm.room.member')
            .map((e) => [e.pdu.state_key, e.pdu.content.membership, e.eventId, e.streamOrdering]),
        );
      } finally {
        await reader.destroy();
      }
    });
  }
  // forget holds the room lock, so a rejoin cannot be marked forgotten (PostgreSQL races).
  it('a forget racing a rejoin never leaves the joined membership forgotten', async () => {
    const alice = actor(0);
    const bob = actor(2);
    const created = await server.request<{ room_id: string }>('POST', `${C}/createRoom`, {
      token: alice.accessToken,
      body: { preset: 'public_chat' },
    });
    assert.equal(created.status, 200);
    const roomId = created.body.room_id;
    const r = encodeURIComponent(roomId);
    const send = (path: string) =>
      server.request<Record<string, unknown>>('POST', `${C}/rooms/${r}/${path}`, {
        token: bob.accessToken,
        body: {},
      });
    const forgottenJoins: number[] = [];
    for (let round = 0; round < 80; round++) {
      assert.equal((await send('join')).status, 200);
      assert.equal((await send('leave')).status, 200);
      // The forget starts a few milliseconds after the join, to land inside its transaction.
      const [join, forget] = await Promise.all([
        send('join'),
        new Promise((resolve) => setTimeout(resolve, round % 8)).then(() => send('forget')),
      ]);
      assert.equal(join.status, 200, JSON.stringify(join.body));
      assert.ok([200, 400].includes(forget.status), JSON.stringify(forget.body));
      const membership = await server.running.storage.stores.rooms.selectMembership(
        roomId,
        bob.userId,
      );
      assert.equal(membership?.membership, 'join');
      if (membership.forgotten) forgottenJoins.push(round);
    }
    assert.deepEqual(forgottenJoins, [], 'rounds that left a joined membership forgotten');
  });
});
