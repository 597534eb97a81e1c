/**
 * The server a knock on a room of other servers went through (`knock_via_servers`), so that
 * rescinding it (and sending again a leave kept here alone) asks that server first. A table of
 * its own: this number runs before the room DAG's tables exist.
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('knock_via_servers')
    .addColumn('room_id', 'text', (c) => c.notNull())
    .addColumn('user_id', 'text', (c) => c.notNull())
    /** The knock event. */
    .addColumn('event_id', 'text', (c) => c.notNull())
    .addColumn('server', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('knock_via_servers_pk', ['room_id', 'user_id'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('knock_via_servers').execute();
}
