/**
 * Secrets generated on first start into data_dir and reused after: the server's ed25519
 * signing key (Synapse's key file format) and the key that authenticates opaque tokens. Written atomically with mode 0600; when several processes
 * start at once, the first file written wins and all of them read it.
 */
import { randomBytes } from 'node:crypto';
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  writeFileSync,
  linkSync,
  unlinkSync,
} from 'node:fs';
import path from 'node:path';
import { base64Unpadded, decodeBase64Unpadded } from '../core/canonical-json.js';
import type { OldVerifyKey } from '../core/server-keys.js';
import {
  formatSigningKeyFile,
  generateSigningKey,
  parseSigningKeyFile,
  type SigningKey,
} from '../core/signing.js';

/** Reads `name` from `dataDir`, creating it with `create()` if absent. */
export function loadOrCreateSecretFile(
  dataDir: string,
  name: string,
  create: () => string,
): string {
  mkdirSync(dataDir, { recursive: true });
  const file = path.join(dataDir, name);
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const temp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(temp, create(), { mode: 0o600 });
  try {
    linkSync(temp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    unlinkSync(temp);
  }
  return readFileSync(file, 'utf8');
}

export interface ServerSecrets {
  /** HMAC key for opaque tokens (paging tokens and the like). */
  tokenKey: Buffer;
  /** The key that signs this server's events. */
  signingKey: SigningKey;
  /** Keys used before a rotation (`old_signing.keys`), still published as `old_verify_keys`. */
  oldSigningKeys: OldVerifyKey[];
}

const OLD_KEYS_FILE = 'old_signing.keys';

/** Parses `old_signing.keys`: one `ed25519 <version> <base64 public key> <expired_ts>` a line. */
export function parseOldKeysFile(text: string): OldVerifyKey[] {
  const keys: OldVerifyKey[] = [];
  for (const [index, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '') continue;
    const [algorithm, version, key, expired, ...rest] = line.split(/\s+/);
    const expiredTs = Number(expired);
    if (
      algorithm !== 'ed25519' ||
      !version ||
      !key ||
      rest.length > 0 ||
      !Number.isSafeInteger(expiredTs)
    )
      throw new Error(
        `${OLD_KEYS_FILE} line ${index + 1}: expected "ed25519 <version> <base64 public key> <expired_ts>"`,
      );
    const publicKey = decodeBase64Unpadded(key);
    if (publicKey.length !== 32)
      throw new Error(`${OLD_KEYS_FILE} line ${index + 1}: the public key is not 32 bytes`);
    keys.push({ keyId: `ed25519:${version}`, publicKey, expiredTs });
  }
  return keys;
}

/**
 * Replaces the signing key with a new one (`commons rotate-signing-key`); the old one's public
 * half goes to `old_signing.keys` with `now` as its expiry, so it stays published in
 * `old_verify_keys` and events it signed can still be checked. Returns both key IDs.
 */
export function rotateSigningKey(dataDir: string, now: number): { old: string; new: string } {
  const file = path.join(dataDir, 'signing.key');
  if (!existsSync(file)) throw new Error(`${file} does not exist: there is no key to rotate`);
  const current = parseSigningKeyFile(readFileSync(file, 'utf8'))[0];
  if (!current) throw new Error(`${file} holds no ed25519 key`);
  const next = generateSigningKey();
  const version = current.keyId.slice('ed25519:'.length);
  appendFileSync(
    path.join(dataDir, OLD_KEYS_FILE),
    `ed25519 ${version} ${base64Unpadded(current.publicKey)} ${now}\n`,
    { mode: 0o600 },
  );
  const temp = `${file}.${process.pid}.tmp`;
  writeFileSync(temp, formatSigningKeyFile([next]), { mode: 0o600 });
  renameSync(temp, file);
  return { old: current.keyId, new: next.keyId };
}

export function loadServerSecrets(dataDir: string): ServerSecrets {
  const hex = loadOrCreateSecretFile(
    dataDir,
    'token.key',
    () => `${randomBytes(32).toString('hex')}\n`,
  ).trim();
  if (!/^[0-9a-f]{64}$/.test(hex))
    throw new Error(`${path.join(dataDir, 'token.key')} is not a 32-byte hex key`);
  const keyFile = loadOrCreateSecretFile(dataDir, 'signing.key', () =>
    formatSigningKeyFile([generateSigningKey()]),
  );
  const signingKey = parseSigningKeyFile(keyFile)[0];
  if (!signingKey) throw new Error(`${path.join(dataDir, 'signing.key')} holds no ed25519 key`);
  const oldFile = path.join(dataDir, OLD_KEYS_FILE);
  const oldSigningKeys = existsSync(oldFile) ? parseOldKeysFile(readFileSync(oldFile, 'utf8')) : [];
  return { tokenKey: Buffer.from(hex, 'hex'), signingKey, oldSigningKeys };
}
