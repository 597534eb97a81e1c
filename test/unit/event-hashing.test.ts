import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { canonicalJson } from '../../src/core/canonical-json.js';
import {
  addContentHash,
  checkContentHash,
  computeContentHash,
  computeEventId,
  computeReferenceHash,
  roomIdFromCreateEvent,
} from '../../src/core/event-hashing.js';
import { parseEventId, parseRoomId } from '../../src/core/identifiers.js';
import type { JsonObject, Pdu } from '../../src/core/pdu.js';
import { redactPdu } from '../../src/core/redaction.js';

// The minimal event of https://spec.matrix.org/v1.19/appendices/#event-signing
const minimalEvent: JsonObject = {
  room_id: '!x:domain',
  sender: '@a:domain',
  origin: 'domain',
  origin_server_ts: 1000000,
  signatures: {},
  hashes: {},
  type: 'X',
  content: {},
  prev_events: [],
  auth_events: [],
  depth: 3,
  unsigned: { age_ts: 1000000 },
};

// A create event as Synapse sent it over federation (room version 5, whose event IDs and
// redaction of create events match room version 10); its event ID is known from the
// homeserver that created it. Data only, used to check our reference hash.
const realCreateEvent: JsonObject = {
  auth_events: [],
  prev_events: [],
  type: 'm.room.create',
  room_id: '!uXDCzlYgCTHtiWCkEx:jki.re',
  sender: '@erikj:jki.re',
  content: {
    room_version: '5',
    predecessor: {
      room_id: '!gdRMqOrTFdOCYHNwOo:half-shot.uk',
      event_id: '$LP7ROBc4b+cMc1UE9haIz8q5AK2AIW4eJ90FfKLvyZI',
    },
    creator: '@erikj:jki.re',
  },
  depth: 1,
  prev_state: [],
  state_key: '',
  origin: 'jki.re',
  origin_server_ts: 1560284621137,
  hashes: { sha256: 'IX6zuNiJpJPNf70BLleL3HSCpjKeq9Uhu7uUpyDjBmc' },
  signatures: {
    'jki.re': {
      'ed25519:auto':
        'O4IyFfF2PPtGp5uaDm8t57dZbdh8vc8Q64LgCwvzYRVItAMI0uisfiAFaxkVT7MRpzh6N2QNN5NMRXZKmgPYDA',
    },
  },
  unsigned: { age: 1321650 },
};

const sha256 = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

describe('content hash', () => {
  it('matches the spec example for the minimal event', () => {
    assert.equal(
      computeContentHash(minimalEvent).toString('base64'),
      '5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos=',
    );
    const hashed = addContentHash(minimalEvent);
    assert.deepEqual(hashed.hashes, { sha256: '5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos' });
    assert.deepEqual(minimalEvent['hashes'], {}, 'input untouched');
    assert.ok(checkContentHash(hashed));
  });

  it('matches the spec example for the event with redactable content', () => {
    const event: JsonObject = {
      content: { body: 'Here is the message content' },
      event_id: '$0:domain',
      origin: 'domain',
      origin_server_ts: 1000000,
      type: 'm.room.message',
      room_id: '!r:domain',
      sender: '@u:domain',
      signatures: {},
      unsigned: { age_ts: 1000000 },
    };
    assert.equal(
      addContentHash(event).hashes.sha256,
      'onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g',
    );
  });

  it('covers everything but unsigned, signatures and hashes', () => {
    const hashed = addContentHash(minimalEvent);
    assert.ok(
      checkContentHash({ ...hashed, unsigned: { other: 1 }, signatures: { s: { k: 'v' } } }),
    );
    assert.ok(!checkContentHash({ ...hashed, content: { body: 'changed' } }));
    assert.ok(!checkContentHash({ ...hashed, extra: 1 }));
  });

  it('agrees with a real event received over federation', () => {
    assert.ok(checkContentHash(realCreateEvent));
  });

  it('reports a missing or malformed hash as a mismatch', () => {
    assert.ok(!checkContentHash(minimalEvent));
    assert.ok(!checkContentHash({ ...minimalEvent, hashes: { sha256: '!!' } }));
    assert.ok(!checkContentHash({ ...minimalEvent, hashes: { sha256: 'AAAA' } }));
    assert.ok(!checkContentHash({ ...minimalEvent, hashes: [] }));
  });
});

describe('reference hash and event ID', () => {
  it('is the SHA-256 of the redacted event without signatures and unsigned', () => {
    const hashed = addContentHash(minimalEvent) as unknown as Pdu;
    const redacted: JsonObject = { ...(redactPdu(hashed, '10') as unknown as JsonObject) };
    delete redacted['signatures'];
    delete redacted['unsigned'];
    assert.deepEqual(computeReferenceHash(hashed, '10'), sha256(canonicalJson(redacted)));
  });

  it('gives the known event ID of a real event (v10 rules)', () => {
    assert.equal(
      computeEventId(realCreateEvent, '10'),
      '$RrGxF28UrHLmoASHndYb9Jb_1SFww2ptmtur9INS438',
    );
  });

  it('is URL-safe unpadded Base64 of 32 bytes after `$`', () => {
    for (const version of ['10', '11', '12'] as const) {
      const eventId = computeEventId(addContentHash(minimalEvent), version);
      assert.match(eventId, /^\$[A-Za-z0-9_-]{43}$/);
      assert.ok(parseEventId(eventId));
    }
  });

  it('ignores what redaction removes, and signatures and unsigned', () => {
    const hashed = addContentHash({
      ...minimalEvent,
      type: 'm.room.message',
      content: { body: 'a' },
    });
    const id = computeEventId(hashed, '11');
    assert.equal(computeEventId({ ...hashed, content: {} }, '11'), id);
    assert.equal(
      computeEventId({ ...hashed, signatures: { x: { y: 'z' } }, unsigned: { a: 1 } }, '11'),
      id,
    );
    assert.notEqual(computeEventId({ ...hashed, depth: 4 }, '11'), id);
  });

  it('depends on the room version where redaction differs (`origin` kept in v10, not v11)', () => {
    const hashed = addContentHash(minimalEvent);
    assert.notEqual(computeEventId(hashed, '10'), computeEventId(hashed, '11'));
    assert.equal(computeEventId(hashed, '11'), computeEventId(hashed, '12'));
    assert.equal(
      computeEventId({ ...hashed, origin: 'other' }, '11'),
      computeEventId(hashed, '11'),
    );
  });
});

describe('room version 12 room IDs', () => {
  const createEvent: JsonObject = {
    type: 'm.room.create',
    state_key: '',
    sender: '@alice:example.org',
    origin_server_ts: 1700000000000,
    content: { room_version: '12', additional_creators: ['@bob:example.org'] },
    prev_events: [],
    auth_events: [],
    depth: 1,
  };

  it('is `!` + the reference hash of the create event, with no server name', () => {
    const hashed = addContentHash(createEvent);
    const roomId = roomIdFromCreateEvent(hashed, '12');
    assert.equal(roomId, `!${computeEventId(hashed, '12').slice(1)}`);
    assert.equal(roomId, `!${computeReferenceHash(hashed, '12').toString('base64url')}`);
    assert.match(roomId, /^![A-Za-z0-9_-]{43}$/);
    assert.ok(!roomId.includes(':'));
    assert.ok(parseRoomId(roomId));
  });

  it('covers the whole create content (v11+ redaction keeps it)', () => {
    const hashed = addContentHash(createEvent);
    const other = addContentHash({ ...createEvent, content: { room_version: '12' } });
    assert.notEqual(roomIdFromCreateEvent(hashed, '12'), roomIdFromCreateEvent(other, '12'));
  });

  it('is refused for other room versions and other event types', () => {
    assert.throws(() => roomIdFromCreateEvent(createEvent, '11'));
    assert.throws(() => roomIdFromCreateEvent({ ...createEvent, type: 'm.room.member' }, '12'));
  });
});
