/**
 * Resolutions of state already made: the group holding the resolved state of a set of state
 * groups. A room kept forked (a server that goes on sending on its own branch, never naming
 * the other forward extremity) resolves the same groups for every event it sends; with this
 * the resolution, which loads every event of the states and their auth chains, is made once.
 * Written in the transaction that writes the resulting group, so a rolled-back one leaves none.
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('state_resolutions')
    // The resolved groups' IDs, ascending, joined by ','.
    .addColumn('input_groups', 'text', (col) => col.primaryKey())
    .addColumn('room_id', 'text', (col) => col.notNull())
    .addColumn('result_group', 'bigint', (col) => col.notNull())
    .execute();
  await db.schema
    .createIndex('state_resolutions_by_room')
    .on('state_resolutions')
    .column('room_id')
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('state_resolutions').execute();
}
