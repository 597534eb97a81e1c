/**
 * Leaves of rooms on other servers that were kept here alone (rejecting an invite, rescinding
 * a knock while no resident server answered): each waits here to be sent again through the
 * room's servers (make_leave / send_leave), with its own backoff.
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('federation_pending_leaves')
    .addColumn('room_id', 'text', (c) => c.notNull())
    .addColumn('user_id', 'text', (c) => c.notNull())
    /** The leave kept here; the row goes when the user's membership is another event. */
    .addColumn('event_id', 'text', (c) => c.notNull())
    /** JSON array of the servers to try, in order. */
    .addColumn('servers', 'text', (c) => c.notNull())
    /** JSON of the leave's content (its reason). */
    .addColumn('content', 'text', (c) => c.notNull())
    .addColumn('failures', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('retry_at_ts', 'bigint', (c) => c.notNull())
    .addColumn('created_ts', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('federation_pending_leaves_pk', ['room_id', 'user_id'])
    .execute();
  await db.schema
    .createIndex('federation_pending_leaves_by_retry')
    .on('federation_pending_leaves')
    .column('retry_at_ts')
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('federation_pending_leaves').execute();
}
