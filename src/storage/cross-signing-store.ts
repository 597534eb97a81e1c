/** Cross-signing keys and the signatures uploaded for keys (migration 0041). */
import type { Kysely } from 'kysely';
import type { Database } from './schema.js';

const IN_LIST_CHUNK = 500;

export type CrossSigningKeyType = 'master' | 'self_signing' | 'user_signing';

export interface CrossSigningKeyRow {
  userId: string;
  keyType: CrossSigningKeyType;
  keyJson: string;
}

export interface KeySignatureRow {
  targetUserId: string;
  /** A device ID, or the public key of a master key. */
  targetKeyId: string;
  signerUserId: string;
  /** `ed25519:<device ID or public key>`. */
  signerKeyId: string;
  signature: string;
}

export interface CrossSigningStore {
  selectCrossSigningKeys(userIds: readonly string[]): Promise<CrossSigningKeyRow[]>;
  upsertCrossSigningKey(
    userId: string,
    keyType: CrossSigningKeyType,
    keyJson: string,
  ): Promise<void>;
  upsertSignature(row: KeySignatureRow): Promise<void>;
  /** Signatures on the users' keys. */
  selectSignaturesOn(userIds: readonly string[]): Promise<KeySignatureRow[]>;
}

export function crossSigningStore(db: Kysely<Database>): CrossSigningStore {
  return {
    async selectCrossSigningKeys(userIds) {
      const out: CrossSigningKeyRow[] = [];
      for (let i = 0; i < userIds.length; i += IN_LIST_CHUNK) {
        const rows = await db
          .selectFrom('cross_signing_keys')
          .select(['user_id', 'key_type', 'key_json'])
          .where('user_id', 'in', userIds.slice(i, i + IN_LIST_CHUNK))
          .execute();
        for (const row of rows) {
          out.push({
            userId: row.user_id,
            keyType: row.key_type as CrossSigningKeyType,
            keyJson: row.key_json,
          });
        }
      }
      return out;
    },

    async upsertCrossSigningKey(userId, keyType, keyJson) {
      await db
        .insertInto('cross_signing_keys')
        .values({ user_id: userId, key_type: keyType, key_json: keyJson })
        .onConflict((oc) => oc.columns(['user_id', 'key_type']).doUpdateSet({ key_json: keyJson }))
        .execute();
    },

    async upsertSignature(row) {
      await db
        .insertInto('key_signatures')
        .values({
          target_user_id: row.targetUserId,
          target_key_id: row.targetKeyId,
          signer_user_id: row.signerUserId,
          signer_key_id: row.signerKeyId,
          signature: row.signature,
        })
        .onConflict((oc) =>
          oc
            .columns(['target_user_id', 'target_key_id', 'signer_user_id', 'signer_key_id'])
            .doUpdateSet({ signature: row.signature }),
        )
        .execute();
    },

    async selectSignaturesOn(userIds) {
      const out: KeySignatureRow[] = [];
      for (let i = 0; i < userIds.length; i += IN_LIST_CHUNK) {
        const rows = await db
          .selectFrom('key_signatures')
          .selectAll()
          .where('target_user_id', 'in', userIds.slice(i, i + IN_LIST_CHUNK))
          .execute();
        for (const row of rows) {
          out.push({
            targetUserId: row.target_user_id,
            targetKeyId: row.target_key_id,
            signerUserId: row.signer_user_id,
            signerKeyId: row.signer_key_id,
            signature: row.signature,
          });
        }
      }
      return out;
    },
  };
}
