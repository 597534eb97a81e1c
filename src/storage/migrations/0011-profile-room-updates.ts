/**
 * Profile changes whose member events are still owed: a row per user, written in the same
 * transaction as the profile change and deleted once every joined room has a member event
 * with the new name and avatar. A process that dies in between leaves the row, and the next
 * start (or the user's next change) finishes the job (services/profiles.ts).
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('profile_room_updates')
    .addColumn('user_id', 'text', (c) => c.primaryKey())
    .addColumn('revision', 'bigint', (c) => c.notNull().defaultTo(sql.lit(0)))
    .addColumn('requested_ts', 'bigint', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('profile_room_updates').execute();
}
