/**
 * Ed25519 signing keys and JSON/event signatures, with node:crypto only.
 * https://spec.matrix.org/v1.19/appendices/#signing-json
 * https://spec.matrix.org/v1.19/server-server-api/#signing-events
 */
import {
  createPrivateKey,
  createPublicKey,
  randomBytes,
  randomInt,
  sign,
  verify,
  type KeyObject,
} from 'node:crypto';
import { base64Unpadded, canonicalJsonBytes, decodeBase64Unpadded } from './canonical-json.js';
import { addContentHash } from './event-hashing.js';
import type { JsonObject, Pdu, RoomVersionId, UnsignedPdu } from './pdu.js';
import { redactEventJson, type PduLike } from './redaction.js';

export type Signatures = Record<string, Record<string, string>>;

export interface SigningKey {
  /** `ed25519:<version>`. */
  readonly keyId: string;
  /** The 32-byte Ed25519 seed (the private key). */
  readonly seed: Buffer;
  readonly privateKey: KeyObject;
  /** The 32-byte raw public key. */
  readonly publicKey: Buffer;
}

const ALGORITHM = 'ed25519';
const SEED_BYTES = 32;
const KEY_ID = /^ed25519:[A-Za-z0-9_]+$/;
const ALPHANUMERIC = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
// DER prefixes that wrap a raw 32-byte Ed25519 seed (PKCS#8) or public key (SPKI).
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** Builds a signing key from its 32-byte seed and key ID (`ed25519:<version>`). */
export function signingKeyFromSeed(seed: Uint8Array, keyId: string): SigningKey {
  if (seed.length !== SEED_BYTES)
    throw new Error(`An ed25519 seed is ${SEED_BYTES} bytes, got ${seed.length}`);
  if (!KEY_ID.test(keyId)) throw new Error(`Invalid ed25519 key ID: ${keyId}`);
  const seedCopy = Buffer.from(seed);
  const privateKey = createPrivateKey({
    key: Buffer.concat([PKCS8_PREFIX, seedCopy]),
    format: 'der',
    type: 'pkcs8',
  });
  const spki = createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
  return { keyId, seed: seedCopy, privateKey, publicKey: spki.subarray(SPKI_PREFIX.length) };
}

/** Public keys made into node:crypto key objects, by their bytes (a few servers' keys at a time). */
const publicKeyObjects = new Map<string, KeyObject>();
const MAX_PUBLIC_KEY_OBJECTS = 1024;

/**
 * The key object of an Ed25519 public key, kept: making one costs as much as a verification,
 * and checking a room's state verifies thousands of events signed with the same few keys.
 */
function publicKeyObject(publicKey: Uint8Array): KeyObject {
  const id = Buffer.from(publicKey).toString('base64');
  let key = publicKeyObjects.get(id);
  if (!key) {
    key = createPublicKey({
      key: Buffer.concat([SPKI_PREFIX, publicKey]),
      format: 'der',
      type: 'spki',
    });
    if (publicKeyObjects.size >= MAX_PUBLIC_KEY_OBJECTS) publicKeyObjects.clear();
    publicKeyObjects.set(id, key);
  }
  return key;
}

/** Generates a new signing key with a random six-character alphanumeric version. */
export function generateSigningKey(): SigningKey {
  let version = '';
  for (let i = 0; i < 6; i++) version += ALPHANUMERIC[randomInt(ALPHANUMERIC.length)];
  return signingKeyFromSeed(randomBytes(SEED_BYTES), `${ALGORITHM}:${version}`);
}

/** The public key as unpadded Base64, as published in `/_matrix/key/v2/server`. */
export function publicKeyBase64(key: SigningKey): string {
  return base64Unpadded(key.publicKey);
}

/** The bytes a JSON signature covers: canonical JSON of the object minus `signatures` and `unsigned`. */
function signedBytes(obj: object): Buffer {
  const copy: Record<string, unknown> = { ...obj };
  delete copy['signatures'];
  delete copy['unsigned'];
  return canonicalJsonBytes(copy);
}

function existingSignatures(obj: object): Signatures {
  const signatures = (obj as { signatures?: unknown }).signatures;
  if (typeof signatures !== 'object' || signatures === null) return {};
  const copy: Signatures = {};
  for (const [server, byKey] of Object.entries(signatures as Record<string, unknown>)) {
    if (typeof byKey === 'object' && byKey !== null)
      copy[server] = { ...(byKey as Record<string, string>) };
  }
  return copy;
}

/** Returns a copy of `obj` with this server's signature added to `signatures`. */
export function signJson<T extends object>(
  obj: T,
  serverName: string,
  key: SigningKey,
): T & { signatures: Signatures } {
  const signature = base64Unpadded(sign(null, signedBytes(obj), key.privateKey));
  const signatures = existingSignatures(obj);
  signatures[serverName] = { ...signatures[serverName], [key.keyId]: signature };
  return { ...obj, signatures };
}

/**
 * Checks `signatures[serverName][keyId]` on `obj` against a raw 32-byte Ed25519 public key;
 * false when the signature is missing, undecodable, or wrong, or the object is not canonical.
 */
export function verifyJsonSignature(
  obj: object,
  serverName: string,
  keyId: string,
  publicKey: Uint8Array,
): boolean {
  const signature = existingSignatures(obj)[serverName]?.[keyId];
  if (typeof signature !== 'string' || publicKey.length !== SEED_BYTES) return false;
  try {
    return verify(
      null,
      signedBytes(obj),
      publicKeyObject(publicKey),
      decodeBase64Unpadded(signature),
    );
  } catch {
    // Bad Base64, a public key node:crypto rejects, or an object that is not canonical JSON.
    return false;
  }
}

/** Signs a PDU the way the spec requires: the signature covers its redacted form. */
export function signPdu<T extends PduLike>(
  pdu: T,
  roomVersion: RoomVersionId,
  serverName: string,
  key: SigningKey,
): T {
  const redacted = redactEventJson(pdu as JsonObject, roomVersion);
  const { signatures } = signJson(redacted, serverName, key);
  return { ...pdu, signatures };
}

/** Adds the content hash, then signs: an outgoing PDU ready to send. */
export function hashAndSignPdu(
  pdu: UnsignedPdu,
  roomVersion: RoomVersionId,
  serverName: string,
  key: SigningKey,
): Pdu {
  const hashed: Pdu = { ...addContentHash(pdu), signatures: {} };
  return signPdu(hashed, roomVersion, serverName, key);
}

/** Checks the signature a server made on a PDU, over its redacted form. */
export function verifyPduSignature(
  pdu: PduLike,
  roomVersion: RoomVersionId,
  serverName: string,
  keyId: string,
  publicKey: Uint8Array,
): boolean {
  return verifyJsonSignature(
    redactEventJson(pdu as JsonObject, roomVersion),
    serverName,
    keyId,
    publicKey,
  );
}

/** Formats keys as Synapse's signing key file: one `ed25519 <version> <base64 seed>` line each. */
export function formatSigningKeyFile(keys: readonly SigningKey[]): string {
  return keys
    .map(
      (key) =>
        `${ALGORITHM} ${key.keyId.slice(ALGORITHM.length + 1)} ${base64Unpadded(key.seed)}\n`,
    )
    .join('');
}

/** Parses Synapse's signing key file format; blank lines are skipped, anything malformed throws. */
export function parseSigningKeyFile(text: string): SigningKey[] {
  const keys: SigningKey[] = [];
  for (const [index, rawLine] of text.split('\n').entries()) {
    const line = rawLine.trim();
    if (line === '') continue;
    const fields = line.split(/\s+/);
    const [algorithm, version, seed] = fields;
    if (
      fields.length !== 3 ||
      algorithm !== ALGORITHM ||
      version === undefined ||
      seed === undefined
    ) {
      throw new Error(
        `Signing key file line ${index + 1}: expected "ed25519 <version> <base64 seed>"`,
      );
    }
    keys.push(signingKeyFromSeed(decodeBase64Unpadded(seed), `${ALGORITHM}:${version}`));
  }
  return keys;
}
