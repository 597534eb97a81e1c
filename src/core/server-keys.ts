/**
 * Server signing keys as published at `/_matrix/key/v2/server`: our own answer, and the
 * checks a remote answer must pass before its keys are trusted (its server name, its
 * self-signatures, its validity).
 * https://spec.matrix.org/v1.19/server-server-api/#retrieving-server-keys
 */
import { base64Unpadded, decodeBase64Unpadded } from './canonical-json.js';
import { publicKeyBase64, signJson, verifyJsonSignature, type SigningKey } from './signing.js';

/** A key no longer used, published with the time it stopped being used. */
export interface OldVerifyKey {
  keyId: string;
  /** Raw 32-byte public key. */
  publicKey: Buffer;
  expiredTs: number;
}

export interface ServerKeysJson {
  server_name: string;
  verify_keys: Record<string, { key: string }>;
  old_verify_keys: Record<string, { key: string; expired_ts: number }>;
  valid_until_ts: number;
  signatures?: Record<string, Record<string, string>>;
}

/** This server's key answer, signed with its current key. */
export function ownServerKeys(
  serverName: string,
  key: SigningKey,
  oldKeys: readonly OldVerifyKey[],
  validUntilTs: number,
): ServerKeysJson {
  const old: ServerKeysJson['old_verify_keys'] = {};
  for (const k of oldKeys)
    old[k.keyId] = { key: base64Unpadded(k.publicKey), expired_ts: k.expiredTs };
  return signJson(
    {
      server_name: serverName,
      verify_keys: { [key.keyId]: { key: publicKeyBase64(key) } },
      old_verify_keys: old,
      valid_until_ts: validUntilTs,
    },
    serverName,
    key,
  );
}

/** One key of a verified answer, as it is cached. */
export interface VerifiedKey {
  serverName: string;
  keyId: string;
  publicKey: Buffer;
  /** Until when the key may be trusted for new signatures (old keys: their `expired_ts`). */
  validUntilTs: number;
  /** Set for keys from `old_verify_keys`. */
  expiredTs: number | null;
}

const KEY_ID = /^ed25519:[A-Za-z0-9_]+$/;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Checks a `/_matrix/key/v2/server` answer (direct, or a notary's copy) claimed to come from
 * `serverName`: well formed, naming that server, signed by every one of its ed25519
 * `verify_keys`. Returns the keys it vouches for, or the reason it is refused.
 */
export function verifyServerKeys(
  body: unknown,
  serverName: string,
): { keys: VerifiedKey[]; json: ServerKeysJson } | { error: string } {
  if (!isObject(body)) return { error: 'not a JSON object' };
  if (body.server_name !== serverName) return { error: `server_name is not ${serverName}` };
  const validUntil = body.valid_until_ts;
  if (typeof validUntil !== 'number' || !Number.isSafeInteger(validUntil))
    return { error: 'valid_until_ts is missing' };
  if (!isObject(body.verify_keys)) return { error: 'verify_keys is missing' };
  const keys: VerifiedKey[] = [];
  for (const [keyId, entry] of Object.entries(body.verify_keys)) {
    if (!KEY_ID.test(keyId)) continue; // other algorithms: not ours to check
    if (!isObject(entry) || typeof entry.key !== 'string')
      return { error: `verify_keys.${keyId} has no key` };
    let publicKey: Buffer;
    try {
      publicKey = decodeBase64Unpadded(entry.key);
    } catch {
      return { error: `verify_keys.${keyId} is not Base64` };
    }
    if (!verifyJsonSignature(body, serverName, keyId, publicKey))
      return { error: `not signed by ${keyId}` };
    keys.push({ serverName, keyId, publicKey, validUntilTs: validUntil, expiredTs: null });
  }
  if (keys.length === 0) return { error: 'no ed25519 verify key' };
  const old = isObject(body.old_verify_keys) ? body.old_verify_keys : {};
  for (const [keyId, entry] of Object.entries(old)) {
    if (!KEY_ID.test(keyId) || !isObject(entry)) continue;
    if (typeof entry.key !== 'string' || typeof entry.expired_ts !== 'number') continue;
    try {
      const publicKey = decodeBase64Unpadded(entry.key);
      keys.push({
        serverName,
        keyId,
        publicKey,
        validUntilTs: entry.expired_ts,
        expiredTs: entry.expired_ts,
      });
    } catch {
      // an unreadable old key is left out
    }
  }
  return { keys, json: body as unknown as ServerKeysJson };
}

/**
 * Whether a cached key may verify a signature made at `at` (a request now, or an event's
 * `origin_server_ts`): current keys until their `valid_until_ts`, old ones until they expired.
 */
export function keyValidAt(key: Pick<VerifiedKey, 'validUntilTs'>, at: number): boolean {
  return at <= key.validUntilTs;
}
