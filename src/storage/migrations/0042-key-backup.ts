/**
 * Server-side key backup: a user's backup versions (numbered per user; deleted ones are
 * kept, marked, so a number is never reused) and the room keys stored in each.
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('key_backup_versions')
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('version', 'bigint', (c) => c.notNull())
    .addColumn('algorithm', 'text', (c) => c.notNull())
    .addColumn('auth_data', 'text', (c) => c.notNull())
    .addColumn('etag', 'bigint', (c) => c.notNull())
    .addColumn('deleted', 'integer', (c) => c.notNull())
    .addPrimaryKeyConstraint('key_backup_versions_pk', ['user_id', 'version'])
    .execute();
  await db.schema
    .createTable('key_backup_keys')
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('version', 'bigint', (c) => c.notNull())
    .addColumn('room_id', 'text', (c) => c.notNull())
    .addColumn('session_id', 'text', (c) => c.notNull())
    .addColumn('first_message_index', 'bigint', (c) => c.notNull())
    .addColumn('forwarded_count', 'bigint', (c) => c.notNull())
    .addColumn('is_verified', 'integer', (c) => c.notNull())
    .addColumn('session_data', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('key_backup_keys_pk', ['user_id', 'version', 'room_id', 'session_id'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('key_backup_keys').execute();
  await db.schema.dropTable('key_backup_versions').execute();
}
