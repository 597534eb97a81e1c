/**
 * `checkFetchedEvents` (src/core/pdu-checks/fetched.ts): events fetched with /event_auth or
 * /state_ids and /event are checked against their own auth events, auth events first, before
 * they are kept — real signed events of rooms of versions 10, 11 and 12.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RoomVersionId } from '../../src/core/pdu.js';
import {
  checkFetchedEvents,
  type FetchedEvent,
  type KnownAuthEvent,
} from '../../src/core/pdu-checks/index.js';
import { BOB, SignedRoom, type BuiltEvent } from '../fixtures/signed-room.js';

const VERSIONS: readonly RoomVersionId[] = ['10', '11', '12'];

const fetched = (...events: BuiltEvent[]): FetchedEvent[] =>
  events.map((e) => ({ eventId: e.eventId, pdu: e.pdu }));
const nothingKnown = (): KnownAuthEvent | undefined => undefined;
const createIdOf = (room: SignedRoom) =>
  room.version === '12' ? { createEventId: room.create.eventId } : {};

/** Bob (power 50) raising himself to 100: refused by the power-levels rules. */
const bobsPowerGrab = (room: SignedRoom): BuiltEvent =>
  room.build({
    type: 'm.room.power_levels',
    sender: BOB,
    stateKey: '',
    content: { users: { [BOB]: 100 } },
    authEvents: room.authFor(BOB),
  });

for (const version of VERSIONS) {
  describe(`fetched events checked against their auth events (v${version})`, () => {
    it('a whole auth chain, newest first, is accepted', () => {
      const room = new SignedRoom(version);
      const chain = [room.bobJoin, room.joinRules, room.powerLevels, room.aliceJoin, room.create];
      const verdicts = checkFetchedEvents(
        fetched(...chain),
        nothingKnown,
        version,
        createIdOf(room),
      );
      for (const event of chain)
        assert.deepEqual(verdicts.get(event.eventId), { verdict: 'accepted' });
    });

    it('an event failing the auth rules is rejected, and so is one it authorises', () => {
      const room = new SignedRoom(version);
      const grab = bobsPowerGrab(room);
      const topic = room.build({
        type: 'm.room.topic',
        sender: BOB,
        stateKey: '',
        content: { topic: 'mine now' },
        authEvents: [...room.createAuth(), grab.eventId, room.bobJoin.eventId],
      });
      // The rest of the room is already known here.
      const verdicts = checkFetchedEvents(
        fetched(topic, grab),
        (id) =>
          id === grab.eventId || id === topic.eventId ? undefined : room.lookupAuthEvent(id),
        version,
        createIdOf(room),
      );
      assert.equal(verdicts.get(grab.eventId)?.verdict, 'rejected');
      const topicVerdict = verdicts.get(topic.eventId);
      assert.equal(topicVerdict?.verdict, 'rejected');
      assert.match((topicVerdict as { reason: string }).reason, /rejected/i);
    });

    it('an auth event known as rejected rejects what it authorises', () => {
      const room = new SignedRoom(version);
      const message = room.build({
        type: 'm.room.message',
        sender: BOB,
        content: { body: 'hi' },
        authEvents: room.authFor(BOB),
      });
      const verdicts = checkFetchedEvents(
        fetched(message),
        (id) => room.lookupAuthEvent(id, new Set([room.bobJoin.eventId])),
        version,
        createIdOf(room),
      );
      assert.equal(verdicts.get(message.eventId)?.verdict, 'rejected');
    });

    it('an auth event neither known nor fetched: missing, for it and what it authorises', () => {
      const room = new SignedRoom(version);
      const verdicts = checkFetchedEvents(
        fetched(room.bobJoin, room.joinRules),
        (id) => (id === room.powerLevels.eventId ? undefined : room.lookupAuthEvent(id)),
        version,
        createIdOf(room),
      );
      assert.deepEqual(verdicts.get(room.joinRules.eventId), {
        verdict: 'missing',
        missing: [room.powerLevels.eventId],
      });
      assert.equal(verdicts.get(room.bobJoin.eventId)?.verdict, 'missing');
    });

    it('a message by a user who never joined is rejected', () => {
      const room = new SignedRoom(version);
      const stranger = room.build({
        type: 'm.room.message',
        sender: '@carol:c.test',
        content: { body: 'let me in' },
        authEvents: [...room.createAuth(), room.powerLevels.eventId],
      });
      const verdicts = checkFetchedEvents(
        fetched(stranger),
        (id) => room.lookupAuthEvent(id),
        version,
        createIdOf(room),
      );
      assert.equal(verdicts.get(stranger.eventId)?.verdict, 'rejected');
      assert.equal(verdicts.size, 1);
    });
  });
}
