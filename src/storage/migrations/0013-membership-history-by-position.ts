/**
 * Membership changes by stream position alone: an incremental /sync asks which memberships
 * changed in the user's rooms since its token, and a short span of the stream holds few
 * changes however many rooms the user is in — read by position, each checked against the
 * user's rooms, rather than one index probe per room.
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createIndex('membership_history_by_position')
    .on('membership_history')
    .columns(['stream_ordering'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex('membership_history_by_position').execute();
}
