/**
 * `checkJoinAnswer` (src/core/pdu-checks/join-answer.ts): a send_join answer is taken only
 * when its state holds together — real signed events of rooms of versions 10, 11 and 12.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { stateKeyOf, type RoomVersionId } from '../../src/core/pdu.js';
import {
  checkJoinAnswer,
  type FetchedEvent,
  type JoinAnswer,
} from '../../src/core/pdu-checks/index.js';
import { ALICE, BOB, CAROL, SignedRoom, type BuiltEvent } from '../fixtures/signed-room.js';

const VERSIONS: readonly RoomVersionId[] = ['10', '11', '12'];

const fetched = (e: BuiltEvent): FetchedEvent => ({ eventId: e.eventId, pdu: e.pdu });

/** Carol's join, authorised by the room's public join rule. */
const carolJoin = (room: SignedRoom): BuiltEvent =>
  room.build({
    type: 'm.room.member',
    sender: CAROL,
    stateKey: CAROL,
    content: { membership: 'join' },
    authEvents: [...room.createAuth(), room.powerLevels.eventId, room.joinRules.eventId],
  });

/** The room's whole state, an answer as a resident server gives it. */
function answerOf(
  room: SignedRoom,
  parts: { state?: BuiltEvent[]; chain?: BuiltEvent[]; membersOmitted?: boolean } = {},
): JoinAnswer {
  const state = parts.state ?? [
    room.create,
    room.aliceJoin,
    room.powerLevels,
    room.joinRules,
    room.bobJoin,
  ];
  const chain = parts.chain ?? [room.create, room.aliceJoin, room.powerLevels, room.joinRules];
  return {
    roomId: room.roomId,
    roomVersion: room.version,
    stateIds: state.map((e) => e.eventId),
    events: [...new Map([...state, ...chain].map((e) => [e.eventId, fetched(e)])).values()],
    dropped: new Set(),
    join: fetched(carolJoin(room)),
    membersOmitted: parts.membersOmitted ?? false,
  };
}

function refusal(answer: JoinAnswer): string {
  const verdict = checkJoinAnswer(answer);
  assert.equal(verdict.valid, false, 'the answer is refused');
  return verdict.valid ? '' : verdict.reason;
}

for (const version of VERSIONS) {
  describe(`send_join answers (v${version})`, () => {
    it('a whole, consistent state is taken, keyed by type and state key', () => {
      const room = new SignedRoom(version);
      const verdict = checkJoinAnswer(answerOf(room));
      assert.ok(verdict.valid, JSON.stringify(verdict));
      assert.deepEqual(
        new Map(verdict.state),
        new Map([
          [stateKeyOf('m.room.create', ''), room.create.eventId],
          [stateKeyOf('m.room.member', ALICE), room.aliceJoin.eventId],
          [stateKeyOf('m.room.power_levels', ''), room.powerLevels.eventId],
          [stateKeyOf('m.room.join_rules', ''), room.joinRules.eventId],
          [stateKeyOf('m.room.member', BOB), room.bobJoin.eventId],
        ]),
      );
      assert.ok(verdict.accepted.has(room.bobJoin.eventId));
    });

    it('a tampered power levels event (a grab its sender may not make) is refused', () => {
      const room = new SignedRoom(version);
      const grab = room.build({
        type: 'm.room.power_levels',
        sender: BOB,
        stateKey: '',
        content: { users: { [BOB]: 100, [CAROL]: 100 } },
        authEvents: room.authFor(BOB),
      });
      const reason = refusal(
        answerOf(room, {
          state: [room.create, room.aliceJoin, grab, room.joinRules, room.bobJoin],
        }),
      );
      assert.match(reason, /not authorised/);
      assert.match(reason, /m\.room\.power_levels/);
    });

    it('a state event whose auth events are not in the answer is refused', () => {
      const room = new SignedRoom(version);
      const topic = room.build({
        type: 'm.room.topic',
        sender: BOB,
        stateKey: '',
        content: { topic: 'hello' },
        authEvents: room.authFor(BOB),
      });
      // Bob's join is neither in the state nor in the auth chain.
      const reason = refusal(
        answerOf(room, {
          state: [room.create, room.aliceJoin, room.powerLevels, room.joinRules, topic],
        }),
      );
      assert.match(reason, /not in the answer/);
      assert.ok(reason.includes(room.bobJoin.eventId), reason);
    });

    it('a state event relying only on events whose signatures failed is dropped, not refused', () => {
      const room = new SignedRoom(version);
      const topic = room.build({
        type: 'm.room.topic',
        sender: BOB,
        stateKey: '',
        content: { topic: 'hello' },
        authEvents: room.authFor(BOB),
      });
      const answer = answerOf(room, {
        state: [room.create, room.aliceJoin, room.powerLevels, room.joinRules, topic],
      });
      const verdict = checkJoinAnswer({
        ...answer,
        stateIds: [...answer.stateIds, room.bobJoin.eventId],
        dropped: new Set([room.bobJoin.eventId]),
      });
      assert.ok(verdict.valid, JSON.stringify(verdict));
      assert.equal(verdict.state.get(stateKeyOf('m.room.topic', '')), undefined);
      assert.equal(verdict.state.get(stateKeyOf('m.room.member', BOB)), undefined);
      assert.equal(verdict.state.size, 4);
    });

    it('two events for one state key are refused', () => {
      const room = new SignedRoom(version);
      const second = room.build({
        type: 'm.room.join_rules',
        sender: ALICE,
        stateKey: '',
        content: { join_rule: 'public' },
        authEvents: [...room.createAuth(), room.aliceJoin.eventId, room.powerLevels.eventId],
      });
      const reason = refusal(
        answerOf(room, {
          state: [room.create, room.aliceJoin, room.powerLevels, room.joinRules, second],
        }),
      );
      assert.match(reason, /two events/);
    });

    it('a state without the create event is refused', () => {
      const room = new SignedRoom(version);
      const reason = refusal(
        answerOf(room, { state: [room.aliceJoin, room.powerLevels, room.joinRules] }),
      );
      assert.match(reason, /m\.room\.create/);
    });

    it('a join the state does not allow (the room became invite-only) is refused', () => {
      const room = new SignedRoom(version);
      const inviteOnly = room.build({
        type: 'm.room.join_rules',
        sender: ALICE,
        stateKey: '',
        content: { join_rule: 'invite' },
        authEvents: [...room.createAuth(), room.aliceJoin.eventId, room.powerLevels.eventId],
      });
      // The join's own auth events (the public join rule) allow it; the state answered does not.
      const reason = refusal(
        answerOf(room, {
          state: [room.create, room.aliceJoin, room.powerLevels, inviteOnly, room.bobJoin],
          chain: [room.create, room.aliceJoin, room.powerLevels, room.joinRules],
        }),
      );
      assert.match(reason, /not authorised by the state/);
    });

    it('a join whose auth events are not in the answer is refused', () => {
      const room = new SignedRoom(version);
      const reason = refusal(
        answerOf(room, {
          state: [room.create, room.aliceJoin, room.powerLevels, room.bobJoin],
          chain: [room.create, room.aliceJoin, room.powerLevels],
        }),
      );
      assert.ok(reason.includes(room.joinRules.eventId), reason);
    });

    it('with members omitted, the member events in the auth chain suffice', () => {
      const room = new SignedRoom(version);
      const verdict = checkJoinAnswer(
        answerOf(room, {
          state: [room.create, room.powerLevels, room.joinRules],
          chain: [room.aliceJoin],
          membersOmitted: true,
        }),
      );
      assert.ok(verdict.valid, JSON.stringify(verdict));
      assert.equal(verdict.state.size, 3);
    });
  });
}

describe('send_join answers: the create event', () => {
  it('a create event of another room version is refused', () => {
    const room = new SignedRoom('11');
    const reason = refusal({ ...answerOf(room), roomVersion: '10' });
    assert.match(reason, /room version 11, not 10/);
  });

  it('a create event of another room is refused', () => {
    const room = new SignedRoom('11');
    const reason = refusal({ ...answerOf(room), roomId: '!other:a.test' });
    assert.match(reason, /not the one of this room/);
  });
});
