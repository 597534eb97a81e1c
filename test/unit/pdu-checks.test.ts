import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { authStateFrom, type AuthState } from '../../src/core/auth-rules.js';
import { computeEventId } from '../../src/core/event-hashing.js';
import type { JsonObject, JsonValue, Pdu, RoomVersionId } from '../../src/core/pdu.js';
import {
  MAX_PDU_BYTES,
  checkAgainstAuthEvents,
  checkAgainstState,
  checkPduContentHash,
  checkPduFormat,
  checkPduSignatures,
  checkReceivedPdu,
  requiredSigningServers,
  verifyThirdPartySigned,
  type KnownAuthEvent,
  type ReceiptInput,
} from '../../src/core/pdu-checks/index.js';
import { publicKeyBase64, signJson } from '../../src/core/signing.js';
import {
  ALICE,
  BOB,
  CAROL,
  KEYS,
  SignedRoom,
  lookupKey,
  type BuiltEvent,
} from '../fixtures/signed-room.js';

const VERSIONS: readonly RoomVersionId[] = ['10', '11', '12'];

/** A message from Bob, correctly signed and authorised. */
const message = (room: SignedRoom, content: JsonObject = { body: 'hi' }): BuiltEvent =>
  room.build({ type: 'm.room.message', sender: BOB, content, authEvents: room.authFor(BOB) });

/** The room's state after its first five events. */
const roomState = (room: SignedRoom, extra: readonly KnownAuthEvent[] = []): AuthState =>
  authStateFrom([
    room.entry(room.create),
    room.entry(room.aliceJoin),
    room.entry(room.powerLevels),
    room.entry(room.joinRules),
    room.entry(room.bobJoin),
    ...extra,
  ]);

const asJson = (pdu: Pdu): JsonObject => JSON.parse(JSON.stringify(pdu)) as JsonObject;
const fakeId = (n: number): string => `$${String(n).padStart(43, 'A')}`;

describe('PDU checks: 1. format and room version', () => {
  interface FormatCase {
    readonly name: string;
    readonly versions?: readonly RoomVersionId[];
    readonly mutate: (pdu: JsonObject, room: SignedRoom) => JsonValue;
    readonly expect: 'valid' | RegExp;
  }
  const cases: readonly FormatCase[] = [
    { name: 'a well-formed message', mutate: (pdu) => pdu, expect: 'valid' },
    { name: 'not an object', mutate: () => ['not', 'an', 'event'], expect: /JSON object/ },
    {
      name: 'larger than 65,536 bytes',
      mutate: (pdu) => ({ ...pdu, content: { body: 'x'.repeat(MAX_PDU_BYTES) } }),
      expect: /more than 65536/,
    },
    {
      name: 'a float, which canonical JSON forbids',
      mutate: (pdu) => ({ ...pdu, content: { n: 1.5 } }),
      expect: /canonical JSON/,
    },
    { name: 'no type', mutate: ({ type: _t, ...pdu }) => pdu, expect: /type must be/ },
    {
      name: 'a type longer than 255 bytes',
      mutate: (pdu) => ({ ...pdu, type: 'é'.repeat(128) }),
      expect: /type is longer/,
    },
    {
      name: 'a state_key longer than 255 bytes',
      mutate: (pdu) => ({ ...pdu, state_key: 'k'.repeat(256) }),
      expect: /state_key is longer/,
    },
    {
      name: 'a state_key that is not a string',
      mutate: (pdu) => ({ ...pdu, state_key: 5 }),
      expect: /state_key must be/,
    },
    {
      name: 'a sender that is not a user ID',
      mutate: (pdu) => ({ ...pdu, sender: 'bob' }),
      expect: /sender must be/,
    },
    {
      name: 'content that is not an object',
      mutate: (pdu) => ({ ...pdu, content: 'text' }),
      expect: /content must be/,
    },
    {
      name: 'an origin_server_ts that is not an integer',
      mutate: (pdu) => ({ ...pdu, origin_server_ts: '1700000000000' }),
      expect: /origin_server_ts/,
    },
    {
      name: 'a negative depth',
      mutate: (pdu) => ({ ...pdu, depth: -1 }),
      expect: /depth must be/,
    },
    { name: 'no hashes', mutate: ({ hashes: _h, ...pdu }) => pdu, expect: /hashes.sha256/ },
    {
      name: 'signatures that are not objects',
      mutate: (pdu) => ({ ...pdu, signatures: { 'b.test': 'sig' } }),
      expect: /signatures of b.test/,
    },
    {
      name: 'unsigned that is not an object',
      mutate: (pdu) => ({ ...pdu, unsigned: [] }),
      expect: /unsigned must be/,
    },
    {
      name: 'more than 10 auth events',
      mutate: (pdu) => ({ ...pdu, auth_events: Array.from({ length: 11 }, (_, i) => fakeId(i)) }),
      expect: /more than 10/,
    },
    {
      name: 'more than 20 prev events',
      mutate: (pdu) => ({ ...pdu, prev_events: Array.from({ length: 21 }, (_, i) => fakeId(i)) }),
      expect: /more than 20/,
    },
    {
      name: 'a prev event that is not a room-version-4 event ID',
      mutate: (pdu) => ({ ...pdu, prev_events: ['$event:a.test'] }),
      expect: /not an event ID/,
    },
    {
      name: 'no room_id',
      mutate: ({ room_id: _r, ...pdu }) => pdu,
      expect: /room_id must be/,
    },
    {
      name: 'a room ID without a server name before version 12',
      versions: ['10', '11'],
      mutate: (pdu) => ({ ...pdu, room_id: `!${'A'.repeat(43)}` }),
      expect: /not a room ID of room version/,
    },
    {
      name: 'a room ID with a server name in version 12',
      versions: ['12'],
      mutate: (pdu) => ({ ...pdu, room_id: '!room:a.test' }),
      expect: /not a room ID of room version 12/,
    },
    {
      name: 'a create event without room_id in version 12',
      versions: ['12'],
      mutate: (_pdu, room) => asJson(room.create.pdu),
      expect: 'valid',
    },
    {
      name: 'a create event with a room_id in version 12',
      versions: ['12'],
      mutate: (_pdu, room) => ({ ...asJson(room.create.pdu), room_id: room.roomId }),
      expect: /has no room_id/,
    },
    {
      name: 'a create event without room_id before version 12',
      versions: ['10', '11'],
      mutate: (_pdu, room) => {
        const create = asJson(room.create.pdu);
        delete create['room_id'];
        return create;
      },
      expect: /room_id must be/,
    },
  ];
  for (const c of cases) {
    for (const version of c.versions ?? VERSIONS) {
      it(`${c.name} [v${version}]`, () => {
        const room = new SignedRoom(version);
        const raw = c.mutate(asJson(message(room).pdu), room);
        const result = checkPduFormat(raw, version);
        if (c.expect === 'valid') {
          assert.equal(result.valid, true, result.valid ? '' : result.reason);
          if (result.valid) assert.equal(result.eventId, computeEventId(result.pdu, version));
        } else {
          assert.equal(result.valid, false);
          if (!result.valid) assert.match(result.reason, c.expect);
        }
      });
    }
  }
});

describe('PDU checks: 2. signatures', () => {
  for (const version of VERSIONS) {
    it(`accepts the sender's server's signature [v${version}]`, () => {
      const room = new SignedRoom(version);
      const result = checkPduSignatures(message(room).pdu, version, lookupKey);
      assert.equal(result.valid, true);
      if (result.valid) assert.deepEqual([...result.signedBy], ['b.test']);
    });

    it(`refuses an event not signed by the sender's server [v${version}]`, () => {
      const room = new SignedRoom(version);
      const pdu = room.build({
        type: 'm.room.message',
        sender: BOB,
        authEvents: room.authFor(BOB),
        signers: ['a.test'],
      }).pdu;
      const result = checkPduSignatures(pdu, version, lookupKey);
      assert.deepEqual(result, { valid: false, reason: 'The event is not signed by b.test' });
    });

    it(`refuses a forged signature [v${version}]`, () => {
      const room = new SignedRoom(version);
      const { pdu } = message(room);
      // The same key ID, signed with another server's key.
      const forged = room.build({
        type: 'm.room.message',
        sender: BOB,
        authEvents: room.authFor(BOB),
        signers: ['c.test'],
      }).pdu;
      const signature = forged.signatures['c.test']?.['ed25519:c1'] as string;
      const tampered: Pdu = { ...pdu, signatures: { 'b.test': { 'ed25519:b1': signature } } };
      const result = checkPduSignatures(tampered, version, lookupKey);
      assert.equal(result.valid, false);
      if (!result.valid) assert.match(result.reason, /ed25519:b1 is invalid/);
    });

    it(`refuses an event changed after signing (outside content) [v${version}]`, () => {
      const room = new SignedRoom(version);
      const pdu: Pdu = { ...message(room).pdu, origin_server_ts: 1 };
      assert.equal(checkPduSignatures(pdu, version, lookupKey).valid, false);
    });

    it(`skips unknown keys, and refuses when no known key signed [v${version}]`, () => {
      const room = new SignedRoom(version);
      const { pdu } = message(room);
      const withExtra: Pdu = {
        ...pdu,
        signatures: {
          'b.test': { ...pdu.signatures['b.test'], 'ed25519:unknown': 'AAAA' },
        },
      };
      assert.equal(checkPduSignatures(withExtra, version, lookupKey).valid, true);
      const onlyUnknown: Pdu = { ...pdu, signatures: { 'b.test': { 'ed25519:unknown': 'AAAA' } } };
      const result = checkPduSignatures(onlyUnknown, version, lookupKey);
      assert.equal(result.valid, false);
      if (!result.valid) assert.match(result.reason, /no signature of b.test by a known key/);
    });

    it(`ignores a key that expired before the event was sent [v${version}]`, () => {
      const room = new SignedRoom(version);
      const { pdu } = message(room);
      const expired = (server: string, keyId: string) => {
        const key = lookupKey(server, keyId);
        return key === undefined ? undefined : { ...key, validUntilTs: pdu.origin_server_ts - 1 };
      };
      assert.equal(checkPduSignatures(pdu, version, expired).valid, false);
      const stillValid = (server: string, keyId: string) => {
        const key = lookupKey(server, keyId);
        return key === undefined ? undefined : { ...key, validUntilTs: pdu.origin_server_ts };
      };
      assert.equal(checkPduSignatures(pdu, version, stillValid).valid, true);
    });

    it(`needs the authorising server's signature on a restricted join [v${version}]`, () => {
      const room = new SignedRoom(version);
      const spec = {
        type: 'm.room.member',
        sender: CAROL,
        stateKey: CAROL,
        content: { membership: 'join', join_authorised_via_users_server: ALICE },
        authEvents: room.authFor(ALICE),
      };
      const onlyCarol = room.build({ ...spec, signers: ['c.test'] }).pdu;
      assert.deepEqual(requiredSigningServers(onlyCarol, version), ['c.test', 'a.test']);
      const result = checkPduSignatures(onlyCarol, version, lookupKey);
      assert.deepEqual(result, { valid: false, reason: 'The event is not signed by a.test' });
      const both = room.build({ ...spec, signers: ['c.test', 'a.test'] }).pdu;
      assert.equal(checkPduSignatures(both, version, lookupKey).valid, true);
    });

    it(`does not need the sender's server on a third-party invite [v${version}]`, () => {
      const room = new SignedRoom(version);
      const pdu = room.build({
        type: 'm.room.member',
        sender: BOB,
        stateKey: CAROL,
        content: { membership: 'invite', third_party_invite: { display_name: 'c' } },
        authEvents: room.authFor(BOB),
        signers: ['c.test'],
      }).pdu;
      assert.deepEqual(requiredSigningServers(pdu, version), []);
    });
  }

  it('verifies a third-party invite signed block against the invite public keys', () => {
    const signed = signJson({ mxid: CAROL, sender: BOB, token: 'tok' }, 'id.test', {
      ...KEYS['c.test']!,
      keyId: 'ed25519:0',
    }) as unknown as JsonObject;
    const right = publicKeyBase64(KEYS['c.test']!);
    const wrong = publicKeyBase64(KEYS['a.test']!);
    assert.equal(verifyThirdPartySigned(signed, [wrong, right]), true);
    assert.equal(verifyThirdPartySigned(signed, [wrong]), false);
    assert.equal(verifyThirdPartySigned({ ...signed, token: 'other' }, [right]), false);
    assert.equal(verifyThirdPartySigned({ mxid: CAROL }, [right]), false);
  });
});

describe('PDU checks: 3. content hash', () => {
  for (const version of VERSIONS) {
    it(`passes an event whose hash matches [v${version}]`, () => {
      const { pdu } = message(new SignedRoom(version));
      assert.deepEqual(checkPduContentHash(pdu, version), { matches: true, pdu });
    });

    it(`redacts an event whose content was changed, whose signature still holds [v${version}]`, () => {
      const room = new SignedRoom(version);
      const original = message(room).pdu;
      const changed: Pdu = { ...original, content: { body: 'changed in transit' } };
      assert.equal(checkPduSignatures(changed, version, lookupKey).valid, true);
      const result = checkPduContentHash(changed, version);
      assert.equal(result.matches, false);
      assert.deepEqual(result.pdu.content, {});
      assert.equal(result.pdu.hashes.sha256, original.hashes.sha256);
      assert.equal(computeEventId(result.pdu, version), computeEventId(original, version));
    });
  }
});

describe('PDU checks: 4. auth against the auth events', () => {
  for (const version of VERSIONS) {
    const options = (room: SignedRoom) => ({ createEvent: room.entry(room.create) });

    it(`allows an event with the right auth events [v${version}]`, () => {
      const room = new SignedRoom(version);
      const { pdu, eventId } = message(room);
      const result = checkAgainstAuthEvents(
        pdu,
        eventId,
        room.lookupAuthEvent,
        version,
        options(room),
      );
      assert.deepEqual(result, { allowed: true });
    });

    it(`refuses an auth event of a type this event may not cite [v${version}]`, () => {
      const room = new SignedRoom(version);
      const { pdu, eventId } = room.build({
        type: 'm.room.message',
        sender: BOB,
        authEvents: [...room.authFor(BOB), room.joinRules.eventId],
      });
      const result = checkAgainstAuthEvents(
        pdu,
        eventId,
        room.lookupAuthEvent,
        version,
        options(room),
      );
      assert.equal(result.allowed, false);
      if (!result.allowed)
        assert.match(result.reason, /m.room.join_rules .* is not one this event may cite/);
    });

    it(`refuses an auth event listed twice [v${version}]`, () => {
      const room = new SignedRoom(version);
      const { pdu, eventId } = room.build({
        type: 'm.room.message',
        sender: BOB,
        authEvents: [...room.authFor(BOB), room.bobJoin.eventId],
      });
      const result = checkAgainstAuthEvents(
        pdu,
        eventId,
        room.lookupAuthEvent,
        version,
        options(room),
      );
      assert.equal(result.allowed, false);
      if (!result.allowed) assert.match(result.reason, /twice/);
    });

    it(`refuses a rejected auth event [v${version}]`, () => {
      const room = new SignedRoom(version);
      const { pdu, eventId } = message(room);
      const rejected = new Set([room.powerLevels.eventId]);
      const result = checkAgainstAuthEvents(
        pdu,
        eventId,
        (id) => room.lookupAuthEvent(id, rejected),
        version,
        options(room),
      );
      assert.equal(result.allowed, false);
      if (!result.allowed) assert.match(result.reason, /was itself rejected/);
    });

    it(`names auth events it does not have [v${version}]`, () => {
      const room = new SignedRoom(version);
      const { pdu, eventId } = message(room);
      const result = checkAgainstAuthEvents(
        pdu,
        eventId,
        (id) => (id === room.bobJoin.eventId ? undefined : room.lookupAuthEvent(id)),
        version,
        options(room),
      );
      assert.ok('missing' in result);
      assert.deepEqual(result.missing, [room.bobJoin.eventId]);
    });

    it(`refuses an event its auth events do not allow [v${version}]`, () => {
      const room = new SignedRoom(version);
      // Carol has no membership among the auth events.
      const { pdu, eventId } = room.build({
        type: 'm.room.message',
        sender: CAROL,
        authEvents: [...room.createAuth(), room.powerLevels.eventId],
      });
      const result = checkAgainstAuthEvents(
        pdu,
        eventId,
        room.lookupAuthEvent,
        version,
        options(room),
      );
      assert.equal(result.allowed, false);
      if (!result.allowed) assert.match(result.reason, /not in this room/);
    });
  }

  it('refuses a version 12 event that cites the create event', () => {
    const room = new SignedRoom('12');
    const { pdu, eventId } = room.build({
      type: 'm.room.message',
      sender: BOB,
      authEvents: [room.create.eventId, ...room.authFor(BOB)],
    });
    const result = checkAgainstAuthEvents(pdu, eventId, room.lookupAuthEvent, '12', {
      createEvent: room.entry(room.create),
    });
    assert.equal(result.allowed, false);
  });

  it('needs the create event in version 12, and refuses one from another room', () => {
    const room = new SignedRoom('12');
    const { pdu, eventId } = message(room);
    assert.ok('missing' in checkAgainstAuthEvents(pdu, eventId, room.lookupAuthEvent, '12'));
    const other = new SignedRoom('12');
    const otherCreate = other.build({
      type: 'm.room.create',
      sender: ALICE,
      stateKey: '',
      content: { room_version: '12', other: true },
      authEvents: [],
      prevEvents: [],
    });
    const result = checkAgainstAuthEvents(pdu, eventId, room.lookupAuthEvent, '12', {
      createEvent: other.entry(otherCreate),
    });
    assert.equal(result.allowed, false);
    if (!result.allowed) assert.match(result.reason, /not that of the room's m.room.create/);
  });
});

describe('PDU checks: 5–6. auth against a state', () => {
  for (const version of VERSIONS) {
    it(`allows and refuses by the given state [v${version}]`, () => {
      const room = new SignedRoom(version);
      const { pdu, eventId } = message(room);
      assert.deepEqual(checkAgainstState(pdu, eventId, roomState(room), version), {
        allowed: true,
      });
      const ban = room.build({
        type: 'm.room.member',
        sender: ALICE,
        stateKey: BOB,
        content: { membership: 'ban' },
        authEvents: [...room.authFor(ALICE), room.bobJoin.eventId],
      });
      const result = checkAgainstState(pdu, eventId, roomState(room, [room.entry(ban)]), version);
      assert.equal(result.allowed, false);
    });
  }
});

describe('PDU checks: all of them in order', () => {
  for (const version of VERSIONS) {
    const input = (
      room: SignedRoom,
      pdu: unknown,
      extra: Partial<ReceiptInput> = {},
    ): ReceiptInput => ({
      roomVersion: version,
      pdu,
      lookupKey,
      lookupAuthEvent: room.lookupAuthEvent,
      createEvent: room.entry(room.create),
      stateBefore: roomState(room),
      currentState: roomState(room),
      ...extra,
    });
    const banBob = (room: SignedRoom) =>
      room.entry(
        room.build({
          type: 'm.room.member',
          sender: ALICE,
          stateKey: BOB,
          content: { membership: 'ban' },
          authEvents: [...room.authFor(ALICE), room.bobJoin.eventId],
        }),
      );

    it(`accepts a good event [v${version}]`, () => {
      const room = new SignedRoom(version);
      const { pdu, eventId } = message(room);
      const verdict = checkReceivedPdu(input(room, asJson(pdu)));
      assert.equal(verdict.verdict, 'accepted');
      if (verdict.verdict === 'accepted') {
        assert.equal(verdict.eventId, eventId);
        assert.equal(verdict.redacted, false);
      }
    });

    it(`drops a malformed event without computing any state [v${version}]`, () => {
      const room = new SignedRoom(version);
      const verdict = checkReceivedPdu(
        input(
          room,
          { type: 'm.room.message' },
          {
            stateBefore: () => assert.fail('the state before is not needed'),
          },
        ),
      );
      assert.equal(verdict.verdict, 'dropped');
      if (verdict.verdict === 'dropped') assert.equal(verdict.step, 'format');
    });

    it(`drops an event with a bad signature [v${version}]`, () => {
      const room = new SignedRoom(version);
      const pdu = { ...asJson(message(room).pdu), origin_server_ts: 5 };
      const verdict = checkReceivedPdu(input(room, pdu));
      assert.equal(verdict.verdict, 'dropped');
      if (verdict.verdict === 'dropped') assert.equal(verdict.step, 'signatures');
    });

    it(`processes an event with a wrong content hash redacted [v${version}]`, () => {
      const room = new SignedRoom(version);
      const pdu = { ...asJson(message(room).pdu), content: { body: 'changed' } };
      const verdict = checkReceivedPdu(input(room, pdu));
      assert.equal(verdict.verdict, 'accepted');
      if (verdict.verdict === 'accepted') {
        assert.equal(verdict.redacted, true);
        assert.deepEqual(verdict.pdu.content, {});
      }
    });

    it(`asks for auth events it does not have [v${version}]`, () => {
      const room = new SignedRoom(version);
      const { pdu } = message(room);
      const verdict = checkReceivedPdu(
        input(room, asJson(pdu), { lookupAuthEvent: () => undefined }),
      );
      assert.equal(verdict.verdict, 'incomplete');
    });

    it(`rejects an event its auth events do not allow [v${version}]`, () => {
      const room = new SignedRoom(version);
      const { pdu } = room.build({
        type: 'm.room.message',
        sender: CAROL,
        authEvents: [...room.createAuth(), room.powerLevels.eventId],
      });
      const verdict = checkReceivedPdu(input(room, asJson(pdu)));
      assert.equal(verdict.verdict, 'rejected');
      if (verdict.verdict === 'rejected') assert.equal(verdict.step, 'auth-events');
    });

    it(`rejects an event the state before it does not allow [v${version}]`, () => {
      const room = new SignedRoom(version);
      const ban = banBob(room);
      const { pdu } = message(room);
      const verdict = checkReceivedPdu(
        input(room, asJson(pdu), { stateBefore: roomState(room, [ban]) }),
      );
      assert.equal(verdict.verdict, 'rejected');
      if (verdict.verdict === 'rejected') assert.equal(verdict.step, 'state-before');
    });

    it(`soft-fails an event the current state does not allow [v${version}]`, () => {
      const room = new SignedRoom(version);
      const ban = banBob(room);
      const { pdu } = message(room);
      const verdict = checkReceivedPdu(
        input(room, asJson(pdu), { currentState: () => roomState(room, [ban]) }),
      );
      assert.equal(verdict.verdict, 'soft-failed');
      const backfilled = checkReceivedPdu(input(room, asJson(pdu), { currentState: undefined }));
      assert.equal(backfilled.verdict, 'accepted');
    });

    it(`accepts a restricted join only with the authorising server's signature [v${version}]`, () => {
      const room = new SignedRoom(version);
      const restricted = room.build({
        type: 'm.room.join_rules',
        sender: ALICE,
        stateKey: '',
        content: { join_rule: 'restricted', allow: [] },
        authEvents: room.authFor(ALICE),
      });
      const spec = {
        type: 'm.room.member',
        sender: CAROL,
        stateKey: CAROL,
        content: { membership: 'join', join_authorised_via_users_server: ALICE },
        authEvents: [...room.authFor(ALICE), restricted.eventId],
      };
      const state = roomState(room, [room.entry(restricted)]);
      const signed = room.build({ ...spec, signers: ['c.test', 'a.test'] });
      const verdict = checkReceivedPdu(
        input(room, asJson(signed.pdu), { stateBefore: state, currentState: state }),
      );
      assert.equal(verdict.verdict, 'accepted');
      const unsigned = room.build({ ...spec, signers: ['c.test'] });
      const refused = checkReceivedPdu(input(room, asJson(unsigned.pdu), { stateBefore: state }));
      assert.equal(refused.verdict, 'dropped');
    });

    it(`accepts the room's create event [v${version}]`, () => {
      const room = new SignedRoom(version);
      const verdict = checkReceivedPdu(
        input(room, asJson(room.create.pdu), { stateBefore: new Map(), currentState: undefined }),
      );
      assert.equal(verdict.verdict, 'accepted');
    });
  }
});
