/**
 * A room's events of one type: an event fetched from the room's past (backfill) is looked up
 * among the room's redactions held (`selectRedactionsOf`), which a redaction that arrived
 * before its target already redacts — read by room and type, not through the whole room.
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createIndex('events_by_room_type')
    .on('events')
    .columns(['room_id', 'type', 'stream_ordering'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex('events_by_room_type').execute();
}
