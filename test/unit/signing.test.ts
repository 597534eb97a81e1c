import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeBase64Unpadded } from '../../src/core/canonical-json.js';
import { addContentHash } from '../../src/core/event-hashing.js';
import type { JsonObject, UnsignedPdu } from '../../src/core/pdu.js';
import {
  formatSigningKeyFile,
  generateSigningKey,
  hashAndSignPdu,
  parseSigningKeyFile,
  publicKeyBase64,
  signingKeyFromSeed,
  signJson,
  signPdu,
  verifyJsonSignature,
  verifyPduSignature,
} from '../../src/core/signing.js';

// https://spec.matrix.org/v1.19/appendices/#cryptographic-test-vectors
const SEED_BASE64 = 'YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1';
const SERVER_NAME = 'domain';
const KEY_ID = 'ed25519:1';
const specKey = signingKeyFromSeed(decodeBase64Unpadded(SEED_BASE64), KEY_ID);

describe('the spec test vectors: JSON signing', () => {
  it('derives the public key of the test seed', () => {
    assert.equal(specKey.seed.length, 32);
    assert.equal(publicKeyBase64(specKey), 'XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gXDJA8kcJNI');
  });

  it('signs an empty object', () => {
    assert.deepEqual(signJson({}, SERVER_NAME, specKey), {
      signatures: {
        domain: {
          'ed25519:1':
            'K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ',
        },
      },
    });
  });

  it('signs an object with data values', () => {
    assert.deepEqual(signJson({ one: 1, two: 'Two' }, SERVER_NAME, specKey), {
      one: 1,
      signatures: {
        domain: {
          'ed25519:1':
            'KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw',
        },
      },
      two: 'Two',
    });
  });

  it('leaves `unsigned` and other signatures out of what it signs, and keeps them', () => {
    const input = {
      one: 1,
      two: 'Two',
      unsigned: { age_ts: 5 },
      signatures: { other: { 'ed25519:x': 'sig' } },
    };
    const signed = signJson(input, SERVER_NAME, specKey);
    assert.deepEqual(signed.unsigned, { age_ts: 5 });
    assert.equal(signed.signatures['other']?.['ed25519:x'], 'sig');
    assert.equal(
      signed.signatures['domain']?.['ed25519:1'],
      'KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw',
    );
    assert.deepEqual(input.signatures, { other: { 'ed25519:x': 'sig' } }, 'input untouched');
  });
});

describe('the spec test vectors: event signing (room version 10 redaction rules)', () => {
  it('hashes and signs the minimal event', () => {
    const event: JsonObject = {
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
    const signed = signPdu(addContentHash(event), '10', SERVER_NAME, specKey);
    assert.deepEqual(signed, {
      auth_events: [],
      content: {},
      depth: 3,
      hashes: { sha256: '5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos' },
      origin: 'domain',
      origin_server_ts: 1000000,
      prev_events: [],
      room_id: '!x:domain',
      sender: '@a:domain',
      signatures: {
        domain: {
          'ed25519:1':
            'KxwGjPSDEtvnFgU00fwFz+l6d2pJM6XBIaMEn81SXPTRl16AqLAYqfIReFGZlHi5KLjAWbOoMszkwsQma+lYAg',
        },
      },
      type: 'X',
      unsigned: { age_ts: 1000000 },
    });
    assert.ok(verifyPduSignature(signed, '10', SERVER_NAME, KEY_ID, specKey.publicKey));
  });

  it('hashes and signs the event with redactable content (signature covers the redacted form)', () => {
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
    const signed = signPdu(addContentHash(event), '10', SERVER_NAME, specKey);
    assert.deepEqual(signed, {
      content: { body: 'Here is the message content' },
      event_id: '$0:domain',
      hashes: { sha256: 'onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g' },
      origin: 'domain',
      origin_server_ts: 1000000,
      type: 'm.room.message',
      room_id: '!r:domain',
      sender: '@u:domain',
      signatures: {
        domain: {
          'ed25519:1':
            'Wm+VzmOUOz08Ds+0NTWb1d4CZrVsJSikkeRxh6aCcUwu6pNC78FunoD7KNWzqFn241eYHYMGCA5McEiVPdhzBA',
        },
      },
      unsigned: { age_ts: 1000000 },
    });
    // The signature survives redaction of the content.
    const redactedCopy = { ...signed, content: {} };
    assert.ok(verifyPduSignature(redactedCopy, '10', SERVER_NAME, KEY_ID, specKey.publicKey));
  });
});

describe('signing PDUs in rooms v11 and v12', () => {
  const unsignedPdu: UnsignedPdu = {
    room_id: '!r:domain',
    sender: '@u:domain',
    origin_server_ts: 1000000,
    type: 'm.room.message',
    content: { body: 'hello' },
    prev_events: ['$prev'],
    auth_events: ['$auth'],
    depth: 4,
  };

  for (const version of ['11', '12'] as const) {
    it(`v${version}: hashes, signs the redacted form, and verifies`, () => {
      const pdu = hashAndSignPdu(unsignedPdu, version, SERVER_NAME, specKey);
      assert.equal(typeof pdu.hashes.sha256, 'string');
      assert.ok(verifyPduSignature(pdu, version, SERVER_NAME, KEY_ID, specKey.publicKey));
      assert.ok(
        verifyPduSignature(
          { ...pdu, content: {} },
          version,
          SERVER_NAME,
          KEY_ID,
          specKey.publicKey,
        ),
      );
      assert.ok(
        !verifyPduSignature({ ...pdu, depth: 5 }, version, SERVER_NAME, KEY_ID, specKey.publicKey),
      );
    });
  }

  it('in v11 the signature does not cover `origin` (no longer kept by redaction)', () => {
    const pdu = hashAndSignPdu(unsignedPdu, '11', SERVER_NAME, specKey);
    const withOrigin = { ...pdu, origin: 'elsewhere' };
    assert.ok(verifyPduSignature(withOrigin, '11', SERVER_NAME, KEY_ID, specKey.publicKey));
    assert.ok(!verifyPduSignature(withOrigin, '10', SERVER_NAME, KEY_ID, specKey.publicKey));
  });
});

describe('verifyJsonSignature', () => {
  const signed = signJson({ one: 1 }, SERVER_NAME, specKey);

  it('accepts a good signature, also with `unsigned` changed', () => {
    assert.ok(verifyJsonSignature(signed, SERVER_NAME, KEY_ID, specKey.publicKey));
    assert.ok(
      verifyJsonSignature(
        { ...signed, unsigned: { x: 1 } },
        SERVER_NAME,
        KEY_ID,
        specKey.publicKey,
      ),
    );
  });

  it('fails for a changed object, another key, a missing entry or a mangled signature', () => {
    const other = generateSigningKey();
    assert.ok(!verifyJsonSignature({ ...signed, one: 2 }, SERVER_NAME, KEY_ID, specKey.publicKey));
    assert.ok(!verifyJsonSignature(signed, SERVER_NAME, KEY_ID, other.publicKey));
    assert.ok(!verifyJsonSignature(signed, 'other', KEY_ID, specKey.publicKey));
    assert.ok(!verifyJsonSignature(signed, SERVER_NAME, 'ed25519:2', specKey.publicKey));
    assert.ok(!verifyJsonSignature({ one: 1 }, SERVER_NAME, KEY_ID, specKey.publicKey));
    const mangled = { ...signed, signatures: { domain: { 'ed25519:1': '!!!' } } };
    assert.ok(!verifyJsonSignature(mangled, SERVER_NAME, KEY_ID, specKey.publicKey));
    assert.ok(!verifyJsonSignature({ ...signed, f: 1.5 }, SERVER_NAME, KEY_ID, specKey.publicKey));
    assert.ok(!verifyJsonSignature(signed, SERVER_NAME, KEY_ID, new Uint8Array(31)));
  });
});

describe('signing keys', () => {
  it('generates an ed25519 key with a six-character alphanumeric version', () => {
    const key = generateSigningKey();
    assert.match(key.keyId, /^ed25519:[A-Za-z0-9]{6}$/);
    assert.equal(key.seed.length, 32);
    assert.equal(key.publicKey.length, 32);
    assert.notDeepEqual(generateSigningKey().seed, key.seed);
    const signed = signJson({ a: 'b' }, 'example.org', key);
    assert.ok(verifyJsonSignature(signed, 'example.org', key.keyId, key.publicKey));
  });

  it('rebuilds the same key from its seed', () => {
    const key = generateSigningKey();
    const again = signingKeyFromSeed(key.seed, key.keyId);
    assert.deepEqual(again.publicKey, key.publicKey);
  });

  it('rejects bad seeds and key IDs', () => {
    assert.throws(() => signingKeyFromSeed(new Uint8Array(31), 'ed25519:a'));
    for (const keyId of ['ed25519:', 'curve25519:a', 'ed25519:a:b', 'ed25519:a b', 'ed25519']) {
      assert.throws(() => signingKeyFromSeed(new Uint8Array(32), keyId), Error, keyId);
    }
  });

  it("reads and writes Synapse's signing key file format", () => {
    const text = formatSigningKeyFile([specKey]);
    assert.equal(text, 'ed25519 1 YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA0\n');
    const [parsed, ...rest] = parseSigningKeyFile(`${text}\n`);
    assert.equal(rest.length, 0);
    assert.equal(parsed?.keyId, KEY_ID);
    assert.deepEqual(parsed?.publicKey, specKey.publicKey);
  });

  it('parses several keys, padded Base64, and CRLF line ends', () => {
    const a = generateSigningKey();
    const keys = parseSigningKeyFile(
      `ed25519 a_AbC ${a.seed.toString('base64')}\r\n\r\ned25519 1 ${SEED_BASE64}\r\n`,
    );
    assert.deepEqual(
      keys.map((k) => k.keyId),
      ['ed25519:a_AbC', KEY_ID],
    );
    assert.deepEqual(keys[0]?.seed, a.seed);
  });

  it('rejects malformed key files', () => {
    for (const bad of [
      'ed25519 1',
      'curve25519 1 AAAA',
      `ed25519 1 ${SEED_BASE64} extra`,
      'ed25519 1 !!!!',
      'ed25519 1 AAAA',
    ]) {
      assert.throws(() => parseSigningKeyFile(bad), Error, bad);
    }
  });
});
