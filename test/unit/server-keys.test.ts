import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { generateSigningKey, signJson } from '../../src/core/signing.js';
import { keyValidAt, ownServerKeys, verifyServerKeys } from '../../src/core/server-keys.js';

const key = generateSigningKey();
const old = generateSigningKey();
const NOW = 1_700_000_000_000;

describe('server key answers', () => {
  it('our answer verifies, with its old key listed', () => {
    const json = ownServerKeys(
      'a.example',
      key,
      [{ keyId: old.keyId, publicKey: old.publicKey, expiredTs: NOW - 5 }],
      NOW + 3600_000,
    );
    const result = verifyServerKeys(json, 'a.example');
    assert.ok('keys' in result, JSON.stringify(result));
    const current = result.keys.find((k) => k.keyId === key.keyId);
    const previous = result.keys.find((k) => k.keyId === old.keyId);
    assert.ok(current && previous);
    assert.deepEqual(current.publicKey, key.publicKey);
    assert.equal(current.validUntilTs, NOW + 3600_000);
    assert.equal(previous.expiredTs, NOW - 5);
  });

  const refusals: [string, (json: Record<string, unknown>) => unknown, string][] = [
    ['another server name', (j) => ({ ...j, server_name: 'b.example' }), 'server_name'],
    ['no valid_until_ts', (j) => ({ ...j, valid_until_ts: undefined }), 'valid_until_ts'],
    ['a changed validity', (j) => ({ ...j, valid_until_ts: NOW + 1 }), 'not signed'],
    ['no verify keys', (j) => ({ ...j, verify_keys: {} }), 'no ed25519'],
    [
      'a key it is not signed by',
      (j) => ({
        ...j,
        verify_keys: {
          ...(j.verify_keys as object),
          [old.keyId]: { key: Buffer.from(old.publicKey).toString('base64') },
        },
      }),
      'not signed',
    ],
    [
      'a signature of another server',
      (j) => signJson({ ...j, signatures: {} }, 'b.example', key),
      'not signed',
    ],
    ['not an object', () => [1], 'not a JSON object'],
  ];
  for (const [what, change, reason] of refusals) {
    it(`refuses an answer with ${what}`, () => {
      const json = ownServerKeys('a.example', key, [], NOW + 3600_000) as unknown as Record<
        string,
        unknown
      >;
      const result = verifyServerKeys(change(json), 'a.example');
      assert.ok('error' in result);
      assert.match(result.error, new RegExp(reason));
    });
  }

  it('a key is valid up to its valid_until_ts, not after', () => {
    assert.ok(keyValidAt({ validUntilTs: NOW }, NOW));
    assert.ok(!keyValidAt({ validUntilTs: NOW }, NOW + 1));
  });
});
