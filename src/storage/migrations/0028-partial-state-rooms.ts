/**
 * Rooms joined with partial state (send_join with `omit_members`, MSC3706): the room's
 * membership events other than the heroes' and ours were left out, and the full state is
 * being fetched in the background. A row stays until that state is in; a restart resumes
 * every room still listed.
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('partial_state_rooms')
    .addColumn('room_id', 'text', (c) => c.primaryKey())
    /** Our join, the event whose state before is fetched with `/state_ids`. */
    .addColumn('join_event_id', 'text', (c) => c.notNull())
    /** The resident server that answered send_join, asked first. */
    .addColumn('resident', 'text', (c) => c.notNull())
    /** send_join's `servers_in_room` (a JSON array): where our events go during the gap. */
    .addColumn('servers_json', 'text', (c) => c.notNull())
    .addColumn('joined_ts', 'bigint', (c) => c.notNull())
    /** Failed attempts so far (the retry delay grows with it). */
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('partial_state_rooms').execute();
}
