/**
 * One fetch at a time per partial-state room across processes sharing the database: the
 * process fetching a room's full state holds a lease on its row until it is done (or the
 * lease runs out, when another may take it over).
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('partial_state_rooms').addColumn('lease_owner', 'text').execute();
  await db.schema
    .alterTable('partial_state_rooms')
    .addColumn('lease_until_ts', 'bigint', (c) => c.notNull().defaultTo(0))
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('partial_state_rooms').dropColumn('lease_until_ts').execute();
  await db.schema.alterTable('partial_state_rooms').dropColumn('lease_owner').execute();
}
