/**
 * Cross-signing: each user's master, self-signing and user-signing keys, and the signatures
 * users upload (self-signing key over their devices, a device over their master key, their
 * user-signing key over other users' master keys). Every signature is checked before it is
 * kept. `/keys/query` answers gain the keys and the signatures the requester may see.
 */
import { canonicalJson } from '../core/canonical-json.js';
import { MatrixError, invalidParam, missingParam } from '../core/errors.js';
import type { JsonObject } from '../core/pdu.js';
import { verifyJsonSignature } from '../core/signing.js';
import type { CrossSigningKeyType, Stores } from '../storage/index.js';
import type { AccountService } from './accounts.js';
import type { Requester, ServiceContext } from './context.js';
import { recordDeviceListChange } from './device-keys.js';
import { queueUserEdu } from './federation/edu-queue.js';
import type { UiaService } from './uia.js';

/** A cross-signing key as uploaded (CrossSigningKey); other fields are kept as sent. */
export interface CrossSigningKey {
  user_id: string;
  usage: string[];
  keys: Record<string, string>;
  signatures?: Record<string, Record<string, string>>;
  [field: string]: unknown;
}

export interface SigningKeysUpload {
  master_key?: CrossSigningKey | undefined;
  self_signing_key?: CrossSigningKey | undefined;
  user_signing_key?: CrossSigningKey | undefined;
}

type Failures = Record<string, Record<string, { errcode: string; error: string }>>;

const invalidSignature = (message: string): MatrixError =>
  new MatrixError(400, 'M_INVALID_SIGNATURE', message);

/** The one Ed25519 public key of a cross-signing key, or 400 M_INVALID_PARAM. */
function publicKeyOf(key: CrossSigningKey, what: string): string {
  const entries = Object.entries(key.keys);
  const [first] = entries;
  if (entries.length !== 1 || !first || first[0] !== `ed25519:${first[1]}` || first[1] === '')
    throw invalidParam(`${what} must hold exactly one key, named ed25519:<public key>`);
  return first[1];
}

function keyBytes(publicKey: string): Uint8Array {
  return Buffer.from(publicKey, 'base64');
}

/** The JSON without `signatures` and `unsigned`: what a signature covers. */
function signedPart(value: Record<string, unknown>): string {
  return canonicalJson({ ...value, signatures: undefined, unsigned: undefined });
}

function checkKey(key: CrossSigningKey, userId: string, usage: string, what: string): string {
  if (key.user_id !== userId) throw invalidParam(`${what} must be the requesting user's`);
  if (!key.usage.includes(usage)) throw invalidParam(`${what} must have usage "${usage}"`);
  return publicKeyOf(key, what);
}

export function createCrossSigningService(
  ctx: ServiceContext,
  uia: UiaService,
  accounts: AccountService,
) {
  const stores = () => ctx.storage.stores;

  const keysOf = async (tx: Stores, userIds: readonly string[]) => {
    const out = new Map<string, Partial<Record<CrossSigningKeyType, CrossSigningKey>>>();
    for (const row of await tx.crossSigning.selectCrossSigningKeys(userIds)) {
      const entry = out.get(row.userId) ?? {};
      entry[row.keyType] = JSON.parse(row.keyJson) as CrossSigningKey;
      out.set(row.userId, entry);
    }
    return out;
  };

  /** Checks one uploaded signed object and keeps the requester's valid signatures on it. */
  const acceptSignatures = async (
    tx: Stores,
    requester: Requester,
    targetUser: string,
    targetKeyId: string,
    signed: Record<string, unknown>,
  ): Promise<void> => {
    const userId = requester.userId;
    const given = (signed.signatures as Record<string, Record<string, unknown>> | undefined)?.[
      userId
    ];
    if (!given || typeof given !== 'object' || Object.keys(given).length === 0)
      throw invalidSignature('The object carries no signature of the requesting user');
    const own = (await keysOf(tx, [userId])).get(userId) ?? {};
    let stored: Record<string, unknown> | undefined;
    /** The keys whose signatures count here: key ID → public key. */
    const signers = new Map<string, string>();
    if (targetUser === userId) {
      const master = own.master;
      if (master && publicKeyOf(master, 'master key') === targetKeyId) {
        stored = master;
        const devices = await tx.deviceKeys.selectDeviceKeysOfUsers([userId]);
        for (const device of devices) {
          const keys = (JSON.parse(device.keysJson) as { keys?: Record<string, string> }).keys;
          const publicKey = keys?.[`ed25519:${device.deviceId}`];
          if (publicKey) signers.set(`ed25519:${device.deviceId}`, publicKey);
        }
      } else {
        const deviceJson = await tx.deviceKeys.selectDeviceKeys(userId, targetKeyId);
        if (deviceJson !== undefined) stored = JSON.parse(deviceJson) as Record<string, unknown>;
        if (own.self_signing) {
          const publicKey = publicKeyOf(own.self_signing, 'self-signing key');
          signers.set(`ed25519:${publicKey}`, publicKey);
        }
      }
    } else {
      const theirs = (await keysOf(tx, [targetUser])).get(targetUser)?.master;
      if (theirs && publicKeyOf(theirs, 'master key') === targetKeyId) stored = theirs;
      if (own.user_signing) {
        const publicKey = publicKeyOf(own.user_signing, 'user-signing key');
        signers.set(`ed25519:${publicKey}`, publicKey);
      }
    }
    if (!stored) throw invalidParam('No such key to sign');
    if (signedPart(signed) !== signedPart(stored))
      throw invalidSignature('The signed object differs from the key stored');
    let kept = 0;
    for (const [signerKeyId, signature] of Object.entries(given)) {
      const publicKey = signers.get(signerKeyId);
      if (publicKey === undefined || typeof signature !== 'string') continue;
      const only = { ...signed, signatures: { [userId]: { [signerKeyId]: signature } } };
      if (!verifyJsonSignature(only, userId, signerKeyId, keyBytes(publicKey)))
        throw invalidSignature(`Invalid signature by ${signerKeyId}`);
      await tx.crossSigning.upsertSignature({
        targetUserId: targetUser,
        targetKeyId,
        signerUserId: userId,
        signerKeyId,
        signature,
      });
      kept++;
    }
    if (kept === 0) throw invalidSignature('No signature by a key that may sign this object');
  };

  return {
    /**
     * POST /keys/device_signing/upload. The first upload needs no further authentication
     * (there is no key to protect yet, as the spec allows since v1.11); replacing keys does.
     */
    async uploadSigningKeys(
      requester: Requester,
      upload: SigningKeysUpload,
      auth: unknown,
    ): Promise<void> {
      const userId = requester.userId;
      const existing = (await keysOf(stores(), [userId])).get(userId) ?? {};
      const masterKey = upload.master_key ?? existing.master;
      if (!masterKey) throw missingParam('A master key is required');
      const masterPublic = checkKey(masterKey, userId, 'master', 'master_key');
      const fresh: [CrossSigningKeyType, CrossSigningKey][] = [];
      if (upload.master_key) fresh.push(['master', upload.master_key]);
      for (const [type, key, usage] of [
        ['self_signing', upload.self_signing_key, 'self_signing'],
        ['user_signing', upload.user_signing_key, 'user_signing'],
      ] as const) {
        if (!key) continue;
        checkKey(key, userId, usage, `${type}_key`);
        if (!verifyJsonSignature(key, userId, `ed25519:${masterPublic}`, keyBytes(masterPublic)))
          throw invalidSignature(`${type}_key is not signed by the master key`);
        fresh.push([type, key]);
      }
      const changes = fresh.filter(
        ([type, key]) => canonicalJson(existing[type] ?? null) !== canonicalJson(key),
      );
      if (changes.length === 0) return;
      if (existing.master) {
        await uia.authenticate({
          auth,
          purpose: `device_signing_upload:${userId}`,
          flows: [['m.login.password']],
          stages: { 'm.login.password': accounts.passwordStage(userId) },
        });
      }
      await ctx.storage.tx('uploadSigningKeys', async (tx) => {
        for (const [type, key] of changes)
          await tx.crossSigning.upsertCrossSigningKey(userId, type, canonicalJson(key));
        await recordDeviceListChange(tx, userId);
        // Other servers sharing a room with the user learn its new master/self-signing keys.
        const shared = changes.filter(([type]) => type !== 'user_signing');
        if (shared.length > 0)
          await queueUserEdu(ctx, tx, userId, 'm.signing_key_update', {
            user_id: userId,
            ...Object.fromEntries(
              shared.map(([type, key]) => [`${type}_key`, key as unknown as JsonObject]),
            ),
          });
      });
    },

    /** POST /keys/signatures/upload: keeps each valid signature; the rest are failures. */
    async uploadSignatures(
      requester: Requester,
      body: Record<string, Record<string, Record<string, unknown>>>,
    ): Promise<{ failures: Failures }> {
      const failures: Failures = {};
      await ctx.storage.tx('uploadSignatures', async (tx) => {
        let changed = false;
        for (const [targetUser, byKey] of Object.entries(body)) {
          for (const [keyId, signed] of Object.entries(byKey)) {
            try {
              await acceptSignatures(tx, requester, targetUser, keyId, signed);
              changed = true;
            } catch (err) {
              if (!(err instanceof MatrixError)) throw err;
              (failures[targetUser] ??= {})[keyId] = { errcode: err.errcode, error: err.message };
            }
          }
        }
        if (changed) await recordDeviceListChange(tx, requester.userId);
      });
      return { failures };
    },

    /**
     * Adds cross-signing keys and kept signatures to a `/keys/query` answer: every user's
     * master and self-signing keys, the requester's own user-signing key, and signatures by
     * the key's owner (and, on master keys, by the requester).
     */
    async addToQuery<T extends { device_keys: Record<string, Record<string, JsonObject>> }>(
      requester: Requester,
      answer: T,
    ): Promise<
      T & {
        master_keys: Record<string, JsonObject>;
        self_signing_keys: Record<string, JsonObject>;
        user_signing_keys: Record<string, JsonObject>;
      }
    > {
      const userIds = Object.keys(answer.device_keys);
      const keys = await keysOf(stores(), userIds);
      const signatures = await stores().crossSigning.selectSignaturesOn(userIds);
      const masterKeys: Record<string, JsonObject> = {};
      const selfSigningKeys: Record<string, JsonObject> = {};
      const userSigningKeys: Record<string, JsonObject> = {};
      const addSignature = (target: JsonObject, signer: string, keyId: string, value: string) => {
        const all = (target.signatures ??= {}) as Record<string, Record<string, string>>;
        (all[signer] ??= {})[keyId] = value;
      };
      for (const userId of userIds) {
        const own = keys.get(userId);
        if (!own) continue;
        if (own.master) masterKeys[userId] = { ...own.master } as unknown as JsonObject;
        if (own.self_signing)
          selfSigningKeys[userId] = { ...own.self_signing } as unknown as JsonObject;
        if (own.user_signing && userId === requester.userId)
          userSigningKeys[userId] = { ...own.user_signing } as unknown as JsonObject;
      }
      for (const sig of signatures) {
        const master = masterKeys[sig.targetUserId];
        const masterPublic = keys.get(sig.targetUserId)?.master;
        if (
          master &&
          masterPublic &&
          publicKeyOf(masterPublic, 'master key') === sig.targetKeyId &&
          (sig.signerUserId === sig.targetUserId || sig.signerUserId === requester.userId)
        ) {
          master.signatures = JSON.parse(JSON.stringify(master.signatures ?? {})) as JsonObject;
          addSignature(master, sig.signerUserId, sig.signerKeyId, sig.signature);
          continue;
        }
        const device = answer.device_keys[sig.targetUserId]?.[sig.targetKeyId];
        if (device && sig.signerUserId === sig.targetUserId) {
          device.signatures = JSON.parse(JSON.stringify(device.signatures ?? {})) as JsonObject;
          addSignature(device, sig.signerUserId, sig.signerKeyId, sig.signature);
        }
      }
      return {
        ...answer,
        master_keys: masterKeys,
        self_signing_keys: selfSigningKeys,
        user_signing_keys: userSigningKeys,
      };
    },
  };
}

export type CrossSigningService = ReturnType<typeof createCrossSigningService>;
