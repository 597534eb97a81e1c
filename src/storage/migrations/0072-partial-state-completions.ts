/**
 * Partial-state rooms that became complete, with the stream position of their completion and
 * of our join: an incremental /sync from a token before the completion sends what a client
 * could not have had during the gap (the room as newly joined for clients that do not
 * lazy-load members, the member events of the gap's senders for those that do).
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('partial_state_completions')
    .addColumn('room_id', 'text', (c) => c.notNull())
    /** The position at which the last of the full state was applied. */
    .addColumn('stream_ordering', 'bigint', (c) => c.notNull())
    /** The position of our join (the gap is between the two). */
    .addColumn('join_stream_ordering', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('partial_state_completions_pk', ['room_id', 'stream_ordering'])
    .execute();
  await db.schema
    .createIndex('partial_state_completions_by_position')
    .on('partial_state_completions')
    .columns(['stream_ordering'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('partial_state_completions').execute();
}
