/**
 * Where a room's history has a hole: events named as prev events of events we hold but not
 * held themselves (the prev events of a remote join, or of received events whose gap was
 * not filled). `/messages` backfills from them (`/backfill`) when a client pages that far.
 * And each backfilled room's history floor: events below that (negative) position were
 * backfilled, those from it up to 0 are the state the room was joined with.
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('room_backfill_points')
    .addColumn('room_id', 'text', (c) => c.notNull())
    .addColumn('event_id', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('room_backfill_points_pk', ['room_id', 'event_id'])
    .execute();
  await db.schema
    .createTable('room_history_floors')
    .addColumn('room_id', 'text', (c) => c.primaryKey())
    .addColumn('position', 'bigint', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('room_history_floors').execute();
  await db.schema.dropTable('room_backfill_points').execute();
}
