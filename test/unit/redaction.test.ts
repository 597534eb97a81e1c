import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { toClientEvent } from '../../src/core/client-event.js';
import type { JsonObject, Pdu, RoomVersionId } from '../../src/core/pdu.js';
import { redactEventJson, redactPdu } from '../../src/core/redaction.js';

/** A copy of an object without the given keys. */
function omit<T extends object>(obj: T, ...keys: string[]): T {
  const copy = { ...obj } as Record<string, unknown>;
  for (const key of keys) delete copy[key];
  return copy as T;
}

/** An event with every top-level key the redaction algorithms mention, and some they drop. */
const event = (type: string, content: JsonObject, extra: JsonObject = {}): JsonObject => ({
  event_id: '$e',
  type,
  room_id: '!r:example.org',
  sender: '@alice:example.org',
  state_key: '',
  content,
  hashes: { sha256: 'hash' },
  signatures: { 'example.org': { 'ed25519:1': 'sig' } },
  depth: 7,
  prev_events: ['$p'],
  prev_state: [],
  auth_events: ['$a'],
  origin: 'example.org',
  origin_server_ts: 1234,
  membership: 'join',
  unsigned: { age_ts: 1 },
  redacts: '$target',
  custom: 'dropped',
  ...extra,
});

const COMMON_TOP_LEVEL = [
  'auth_events',
  'content',
  'depth',
  'event_id',
  'hashes',
  'origin_server_ts',
  'prev_events',
  'room_id',
  'sender',
  'signatures',
  'state_key',
  'type',
];

describe('redaction: top-level keys', () => {
  // https://spec.matrix.org/v1.19/rooms/v10/#redactions and /rooms/v11/#redactions
  const cases: [RoomVersionId, string[]][] = [
    ['10', [...COMMON_TOP_LEVEL, 'membership', 'origin', 'prev_state'].sort()],
    ['11', COMMON_TOP_LEVEL],
    ['12', COMMON_TOP_LEVEL],
  ];
  for (const [version, kept] of cases) {
    it(`v${version} keeps exactly ${kept.length} keys`, () => {
      const redacted = redactEventJson(event('m.room.message', { body: 'hi' }), version);
      assert.deepEqual(Object.keys(redacted).sort(), kept);
      assert.deepEqual(redacted['content'], {});
      assert.deepEqual(redacted['signatures'], { 'example.org': { 'ed25519:1': 'sig' } });
    });
  }
});

describe('redaction: content kept per event type', () => {
  const memberContent: JsonObject = {
    membership: 'invite',
    join_authorised_via_users_server: '@bob:example.org',
    displayname: 'Alice',
    avatar_url: 'mxc://example.org/a',
    third_party_invite: {
      display_name: 'alice',
      signed: { mxid: '@alice:example.org', token: 'abc' },
    },
  };
  const powerLevels: JsonObject = {
    ban: 50,
    events: { 'm.room.name': 100 },
    events_default: 0,
    invite: 50,
    kick: 50,
    redact: 50,
    state_default: 50,
    users: { '@alice:example.org': 100 },
    users_default: 0,
    notifications: { room: 20 },
  };
  const powerLevelsV10 = omit(powerLevels, 'invite', 'notifications');
  const powerLevelsV11 = omit(powerLevels, 'notifications');
  const create: JsonObject = {
    creator: '@alice:example.org',
    room_version: '10',
    'm.federate': false,
    predecessor: { room_id: '!old:x', event_id: '$old' },
  };

  // [type, content, kept in v10, kept in v11 (and v12)]
  const cases: [string, JsonObject, JsonObject, JsonObject][] = [
    [
      'm.room.member',
      memberContent,
      { membership: 'invite', join_authorised_via_users_server: '@bob:example.org' },
      {
        membership: 'invite',
        join_authorised_via_users_server: '@bob:example.org',
        third_party_invite: { signed: { mxid: '@alice:example.org', token: 'abc' } },
      },
    ],
    ['m.room.create', create, { creator: '@alice:example.org' }, create],
    [
      'm.room.join_rules',
      {
        join_rule: 'restricted',
        allow: [{ type: 'm.room_membership', room_id: '!s:x' }],
        other: 1,
      },
      { join_rule: 'restricted', allow: [{ type: 'm.room_membership', room_id: '!s:x' }] },
      { join_rule: 'restricted', allow: [{ type: 'm.room_membership', room_id: '!s:x' }] },
    ],
    ['m.room.power_levels', powerLevels, powerLevelsV10, powerLevelsV11],
    [
      'm.room.history_visibility',
      { history_visibility: 'shared', other: 1 },
      { history_visibility: 'shared' },
      { history_visibility: 'shared' },
    ],
    ['m.room.redaction', { redacts: '$target', reason: 'spam' }, {}, { redacts: '$target' }],
    ['m.room.name', { name: 'Room' }, {}, {}],
    ['m.room.topic', { topic: 'Topic' }, {}, {}],
    ['m.room.encryption', { algorithm: 'm.megolm.v1.aes-sha2' }, {}, {}],
  ];

  for (const [type, content, v10, v11] of cases) {
    it(`${type}`, () => {
      assert.deepEqual(redactEventJson(event(type, content), '10')['content'], v10, 'v10');
      assert.deepEqual(redactEventJson(event(type, content), '11')['content'], v11, 'v11');
      assert.deepEqual(redactEventJson(event(type, content), '12')['content'], v11, 'v12');
    });
  }

  it('v11: drops a third_party_invite without `signed`, or one that is not an object', () => {
    for (const thirdPartyInvite of [{ display_name: 'x' }, 'text', null, ['signed']]) {
      const content: JsonObject = { membership: 'invite', third_party_invite: thirdPartyInvite };
      assert.deepEqual(redactEventJson(event('m.room.member', content), '11')['content'], {
        membership: 'invite',
      });
    }
  });

  it('keeps only the keys that are present', () => {
    assert.deepEqual(redactEventJson(event('m.room.power_levels', { ban: 50 }), '11')['content'], {
      ban: 50,
    });
  });

  it('sets content to {} when it is missing or not an object', () => {
    const withoutContent = omit(event('m.room.member', {}), 'content');
    assert.deepEqual(redactEventJson(withoutContent, '11')['content'], {});
    assert.deepEqual(redactEventJson({ ...withoutContent, content: [1] }, '11')['content'], {});
  });

  it('does not treat inherited names as event types', () => {
    assert.deepEqual(redactEventJson(event('constructor', { a: 1 }), '11')['content'], {});
    assert.deepEqual(redactEventJson(event('__proto__', { a: 1 }), '10')['content'], {});
  });
});

describe('redactPdu', () => {
  const pdu: Pdu = {
    room_id: '!r:example.org',
    sender: '@alice:example.org',
    origin_server_ts: 1,
    type: 'm.room.redaction',
    content: { redacts: '$target', reason: 'spam' },
    prev_events: ['$p'],
    auth_events: ['$a'],
    depth: 3,
    hashes: { sha256: 'h' },
    signatures: { 'example.org': { 'ed25519:1': 's' } },
    redacts: '$target',
    unsigned: { age: 1 },
  };

  it('returns a new object and leaves the input unchanged', () => {
    const before = structuredClone(pdu);
    const redacted = redactPdu(pdu, '11');
    assert.deepEqual(pdu, before);
    assert.deepEqual(redacted.content, { redacts: '$target' });
    assert.equal(redacted.redacts, undefined, 'top-level redacts is not kept from v11 on');
    assert.equal(redacted.unsigned, undefined);
    redacted.signatures['example.org'] = {};
    assert.deepEqual(
      pdu.signatures,
      { 'example.org': { 'ed25519:1': 's' } },
      'no shared nested objects',
    );
  });

  it('v10 drops redacts wherever it is', () => {
    const redacted = redactPdu(pdu, '10');
    assert.deepEqual(redacted.content, {});
    assert.equal(redacted.redacts, undefined);
  });

  it('is idempotent', () => {
    for (const version of ['10', '11', '12'] as const) {
      const once = redactPdu(pdu, version);
      assert.deepEqual(redactPdu(once, version), once);
    }
  });
});

describe('toClientEvent', () => {
  const base: Pdu = {
    sender: '@alice:example.org',
    origin_server_ts: 1000,
    type: 'm.room.message',
    content: { body: 'hi' },
    prev_events: [],
    auth_events: [],
    depth: 2,
    hashes: { sha256: 'h' },
    signatures: {},
    room_id: '!r',
    unsigned: { age_ts: 5 },
  };

  it('gives the client format, without federation-only keys', () => {
    const clientEvent = toClientEvent(
      { eventId: '$e', roomId: '!r', pdu: base },
      { unsigned: { age: 3 } },
    );
    assert.deepEqual(clientEvent, {
      event_id: '$e',
      room_id: '!r',
      sender: '@alice:example.org',
      origin_server_ts: 1000,
      type: 'm.room.message',
      content: { body: 'hi' },
      unsigned: { age: 3 },
    });
  });

  it('keeps state_key, and can leave out room_id', () => {
    const pdu: Pdu = { ...base, type: 'm.room.name', state_key: '', content: { name: 'n' } };
    const clientEvent = toClientEvent({ eventId: '$e', roomId: '!r', pdu }, { omitRoomId: true });
    assert.equal(clientEvent.state_key, '');
    assert.ok(!('room_id' in clientEvent));
    assert.deepEqual(clientEvent.unsigned, {});
  });

  it('serves `redacts` at the top level and in content, in every room version', () => {
    const v11: Pdu = { ...base, type: 'm.room.redaction', content: { redacts: '$t', reason: 'r' } };
    const fromV11 = toClientEvent({ eventId: '$e', roomId: '!r', pdu: v11 });
    assert.equal(fromV11.redacts, '$t');
    assert.deepEqual(fromV11.content, { redacts: '$t', reason: 'r' });

    const v10: Pdu = { ...base, type: 'm.room.redaction', content: { reason: 'r' }, redacts: '$t' };
    const fromV10 = toClientEvent({ eventId: '$e', roomId: '!r', pdu: v10 });
    assert.equal(fromV10.redacts, '$t');
    assert.deepEqual(fromV10.content, { reason: 'r', redacts: '$t' });
    assert.deepEqual(v10.content, { reason: 'r' }, 'stored PDU untouched');
  });

  it('uses the stored room ID for a v12 create event (which has none in the PDU)', () => {
    const create = omit(
      { ...base, type: 'm.room.create', state_key: '', content: { room_version: '12' } },
      'room_id',
    );
    const clientEvent = toClientEvent({ eventId: '$c', roomId: '!c', pdu: create });
    assert.equal(clientEvent.room_id, '!c');
  });
});
