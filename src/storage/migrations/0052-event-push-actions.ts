/**
 * Notifications (issue #24): a row per event and member the member's push rules say to notify
 * of, written with the event by the push deriver. Unread counts are the rows after the member's
 * read receipt (threaded receipts for their thread); `/notifications` lists them.
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('event_push_actions')
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('room_id', 'text', (c) => c.notNull())
    .addColumn('stream_ordering', 'bigint', (c) => c.notNull())
    .addColumn('event_id', 'text', (c) => c.notNull())
    /** `main`, or the thread's root event. */
    .addColumn('thread_id', 'text', (c) => c.notNull())
    .addColumn('highlight', 'integer', (c) => c.notNull())
    /** The actions of the rule that matched, as JSON. */
    .addColumn('actions', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('event_push_actions_pk', ['user_id', 'room_id', 'stream_ordering'])
    .execute();
  await db.schema
    .createIndex('event_push_actions_by_user')
    .on('event_push_actions')
    .columns(['user_id', 'stream_ordering'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('event_push_actions').execute();
}
