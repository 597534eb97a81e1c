import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { it } from 'node:test';
import {
  loadServerSecrets,
  parseOldKeysFile,
  rotateSigningKey,
} from '../../src/config/server-secrets.js';
import { ownServerKeys, verifyServerKeys } from '../../src/core/server-keys.js';

it('rotating the signing key keeps the old one published in old_verify_keys', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'commons-rotate-'));
  try {
    const first = loadServerSecrets(dir);
    assert.deepEqual(first.oldSigningKeys, []);
    const rotated = rotateSigningKey(dir, 1_700_000_000_000);
    assert.equal(rotated.old, first.signingKey.keyId);
    const second = loadServerSecrets(dir);
    assert.equal(second.signingKey.keyId, rotated.new);
    assert.notEqual(rotated.new, rotated.old);
    assert.deepEqual(second.oldSigningKeys, [
      {
        keyId: first.signingKey.keyId,
        publicKey: first.signingKey.publicKey,
        expiredTs: 1_700_000_000_000,
      },
    ]);
    rotateSigningKey(dir, 1_700_000_000_001);
    assert.equal(loadServerSecrets(dir).oldSigningKeys.length, 2);
    const answer = ownServerKeys('a.example', second.signingKey, second.oldSigningKeys, 2e12);
    assert.deepEqual(Object.keys(answer.old_verify_keys), [first.signingKey.keyId]);
    assert.equal(answer.old_verify_keys[first.signingKey.keyId]?.expired_ts, 1_700_000_000_000);
    const verified = verifyServerKeys(answer, 'a.example');
    assert.ok('keys' in verified && verified.keys.length === 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

it('refuses a malformed old_signing.keys line', () => {
  assert.throws(() => parseOldKeysFile('ed25519 abc\n'), /old_signing.keys line 1/);
  assert.throws(() => parseOldKeysFile('ed25519 abc AAAA notanumber\n'), /line 1/);
  assert.deepEqual(parseOldKeysFile('\n'), []);
});

it('there is nothing to rotate without a key', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'commons-rotate-'));
  try {
    assert.throws(() => rotateSigningKey(dir, 1), /no key to rotate/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
