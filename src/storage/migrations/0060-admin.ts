/**
 * The admin API's tables: registration tokens (Synapse's `registration_tokens`: uses allowed,
 * pending and completed registrations, expiry) and reports of events, rooms and users sent by
 * clients, read by admins. Report IDs come from their own counter in `stream_positions`.
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('registration_tokens')
    .addColumn('token', 'text', (c) => c.primaryKey())
    .addColumn('uses_allowed', 'integer')
    .addColumn('pending', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('completed', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('expiry_time', 'bigint')
    .execute();
  await db.schema
    .createTable('content_reports')
    .addColumn('id', 'bigint', (c) => c.primaryKey())
    .addColumn('received_ts', 'bigint', (c) => c.notNull())
    .addColumn('reporter', 'text', (c) => c.notNull())
    .addColumn('room_id', 'text')
    .addColumn('event_id', 'text')
    .addColumn('target_user_id', 'text')
    .addColumn('reason', 'text')
    .addColumn('score', 'integer')
    .execute();
  await db.schema
    .createIndex('content_reports_by_room')
    .on('content_reports')
    .columns(['room_id', 'id'])
    .execute();
  await sql`INSERT INTO stream_positions (stream, position) VALUES ('content_reports', 0)`.execute(
    db,
  );
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DELETE FROM stream_positions WHERE stream = 'content_reports'`.execute(db);
  await db.schema.dropTable('content_reports').execute();
  await db.schema.dropTable('registration_tokens').execute();
}
