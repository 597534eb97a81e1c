/**
 * Deactivations begun and not yet finished. Deactivating marks the user (`users.deactivated`),
 * ends their sessions and records a row here in one transaction; leaving their rooms follows,
 * room by room, and the row goes when every room is left. A row found at start-up (the process
 * stopped in between) is finished then.
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('pending_deactivations')
    .addColumn('user_id', 'text', (c) => c.primaryKey().references('users.user_id'))
    .addColumn('requested_ts', 'bigint', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('pending_deactivations').execute();
}
