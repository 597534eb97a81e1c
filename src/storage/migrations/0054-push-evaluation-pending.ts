/**
 * Push evaluation after the event's transaction (issue #24): an event into a room bigger than
 * the inline limit leaves a `push_pending` row in its own transaction, and a worker evaluates
 * the room's members in pages from it, each page a short transaction that moves `after_user`
 * on (services/push/evaluation.ts). `event_push_actions.notified_at` is the stream position at
 * which a row became visible (the event's own for rows written with it), so /sync finds rooms
 * whose counts rose without a new event.
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('push_pending')
    .addColumn('stream_ordering', 'bigint', (c) => c.primaryKey())
    .addColumn('room_id', 'text', (c) => c.notNull())
    .addColumn('event_id', 'text', (c) => c.notNull())
    /** The last member evaluated (members go in user ID order); '' before the first page. */
    .addColumn('after_user', 'text', (c) => c.notNull().defaultTo(''))
    .execute();
  await db.schema
    .alterTable('event_push_actions')
    .addColumn('notified_at', 'bigint', (c) => c.notNull().defaultTo(sql.lit(0)))
    .execute();
  await sql`UPDATE event_push_actions SET notified_at = stream_ordering`.execute(db);
  await db.schema
    .createIndex('event_push_actions_by_notified')
    .on('event_push_actions')
    .columns(['user_id', 'notified_at'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex('event_push_actions_by_notified').execute();
  await db.schema.alterTable('event_push_actions').dropColumn('notified_at').execute();
  await db.schema.dropTable('push_pending').execute();
}
