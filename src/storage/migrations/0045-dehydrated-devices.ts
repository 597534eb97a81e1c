/**
 * Dehydrated devices (MSC3814): at most one per user, its device ID (a row in `devices`
 * too) and the opaque `device_data` its client stored (the pickled, encrypted account).
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('dehydrated_devices')
    .addColumn('user_id', 'text', (c) => c.primaryKey())
    .addColumn('device_id', 'text', (c) => c.notNull())
    .addColumn('device_data', 'text', (c) => c.notNull())
    .addColumn('created_ts', 'bigint', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('dehydrated_devices').execute();
}
