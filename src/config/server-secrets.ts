/**
 * Secrets generated on first start into data_dir and reused after: the server's ed25519
 * signing key (Synapse's key file format) and the key that authenticates opaque tokens. Written atomically with mode 0600; when several processes
 * start at once, the first file written wins and all of them read it.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync, linkSync, unlinkSync } from 'node:fs';
import path from 'node:path';
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
  return { tokenKey: Buffer.from(hex, 'hex'), signingKey };
}
