/**
 * Moderation by admins (issue #27, second part): shadow-banned users and per-user rate-limit
 * overrides (both read with the user's session, so a change announces `sessions`), each
 * user's server-notices room, quarantined media, and the leases that let one process of
 * several run each background job (a room purge, a retention pass).
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('user_moderation')
    .addColumn('user_id', 'text', (c) => c.primaryKey())
    .addColumn('shadow_banned', 'integer', (c) => c.notNull().defaultTo(0))
    /** Null: no override. 0 and 0: never limited (as Synapse). */
    .addColumn('messages_per_second', 'integer')
    .addColumn('burst_count', 'integer')
    .execute();
  await db.schema
    .createTable('server_notice_rooms')
    .addColumn('user_id', 'text', (c) => c.primaryKey())
    .addColumn('room_id', 'text', (c) => c.notNull())
    .execute();
  await db.schema
    .createTable('media_quarantine')
    .addColumn('media_id', 'text', (c) => c.primaryKey())
    .addColumn('quarantined_by', 'text', (c) => c.notNull())
    .addColumn('quarantined_ts', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createTable('job_leases')
    .addColumn('job', 'text', (c) => c.primaryKey())
    .addColumn('owner', 'text', (c) => c.notNull())
    .addColumn('until_ts', 'bigint', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('job_leases').execute();
  await db.schema.dropTable('media_quarantine').execute();
  await db.schema.dropTable('server_notice_rooms').execute();
  await db.schema.dropTable('user_moderation').execute();
}
