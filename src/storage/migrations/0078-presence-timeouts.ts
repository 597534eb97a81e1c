/**
 * Presence time-outs: each presence row keeps whether the user is currently active, when a
 * /sync of theirs was last seen (local users) and when it was last written or heard of from
 * the user's server (remote users). Rows already there count as seen now, so that nobody is
 * timed out at once by the upgrade.
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('presence')
    .addColumn('currently_active', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema
    .alterTable('presence')
    .addColumn('last_sync_ts', 'bigint', (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema
    .alterTable('presence')
    .addColumn('last_update_ts', 'bigint', (c) => c.notNull().defaultTo(0))
    .execute();
  const now = Date.now();
  await sql`UPDATE presence SET last_sync_ts = ${now}, last_update_ts = ${now},
    currently_active = CASE WHEN presence = 'online' THEN 1 ELSE 0 END`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const column of ['last_update_ts', 'last_sync_ts', 'currently_active'])
    await db.schema.alterTable('presence').dropColumn(column).execute();
}
