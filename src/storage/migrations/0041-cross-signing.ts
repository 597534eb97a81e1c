/**
 * Cross-signing: each user's master, self-signing and user-signing keys (the JSON uploaded,
 * the latest of each kind), and the signatures uploaded for device keys and master keys,
 * kept apart from what they sign so a key re-uploaded keeps its signatures.
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('cross_signing_keys')
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('key_type', 'text', (c) => c.notNull())
    .addColumn('key_json', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('cross_signing_keys_pk', ['user_id', 'key_type'])
    .execute();
  await db.schema
    .createTable('key_signatures')
    .addColumn('target_user_id', 'text', (c) => c.notNull())
    .addColumn('target_key_id', 'text', (c) => c.notNull())
    .addColumn('signer_user_id', 'text', (c) => c.notNull())
    .addColumn('signer_key_id', 'text', (c) => c.notNull())
    .addColumn('signature', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('key_signatures_pk', [
      'target_user_id',
      'target_key_id',
      'signer_user_id',
      'signer_key_id',
    ])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('key_signatures').execute();
  await db.schema.dropTable('cross_signing_keys').execute();
}
