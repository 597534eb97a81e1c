/**
 * The current member event's client form and sender on its `room_memberships` row, so a
 * room's member list (a 100,000-member room's /members) is one range scan of that table,
 * with no lookup of every member's event. NULL client form where the event is redacted (the
 * list then presents the event from its PDU). Filled in from `events` (migration 0006).
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('room_memberships').addColumn('client_json', 'text').execute();
  await db.schema.alterTable('room_memberships').addColumn('sender', 'text').execute();
  await sql`UPDATE room_memberships SET
              client_json = (SELECT e.client_json FROM events e WHERE e.event_id = room_memberships.event_id),
              sender = (SELECT e.sender FROM events e WHERE e.event_id = room_memberships.event_id)`.execute(
    db,
  );
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('room_memberships').dropColumn('sender').execute();
  await db.schema.alterTable('room_memberships').dropColumn('client_json').execute();
}
