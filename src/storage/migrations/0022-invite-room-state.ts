/**
 * Invites from rooms on other servers: the stripped state the inviting server sent
 * (`invite_room_state`), shown to the invitee in /sync until they join or leave.
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('invite_room_state')
    .addColumn('room_id', 'text', (c) => c.notNull())
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('event_id', 'text', (c) => c.notNull())
    /** The stripped state events, as a JSON array. */
    .addColumn('state_json', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('invite_room_state_pk', ['room_id', 'user_id'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('invite_room_state').execute();
}
