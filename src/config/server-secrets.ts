/**
 * Secrets generated on first start into data_dir and reused after: the key that
 * authenticates paging tokens. Written atomically with mode 0600; when several processes
 * start at once, the first file written wins and all of them read it.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync, linkSync, unlinkSync } from 'node:fs';
import path from 'node:path';

/** Reads `name` from `dataDir`, creating it with `create()` if absent. */
export function loadOrCreateSecretFile(dataDir: string, name: string, create: () => string): string {
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
}

export function loadServerSecrets(dataDir: string): ServerSecrets {
  const hex = loadOrCreateSecretFile(dataDir, 'token.key', () => `${randomBytes(32).toString('hex')}\n`).trim();
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new Error(`${path.join(dataDir, 'token.key')} is not a 32-byte hex key`);
  return { tokenKey: Buffer.from(hex, 'hex') };
}
