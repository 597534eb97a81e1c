/**
 * Pushers (issue #24): each user's HTTP pushers (`/pushers/set`), the durable queue of
 * notifications owed to them (written with the event by the push deriver), and the lease that
 * lets one process of several send.
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('pushers')
    .addColumn('pusher_id', 'text', (c) => c.primaryKey())
    .addColumn('user_id', 'text', (c) => c.notNull())
    /** The device whose access token set it ('' for none): it goes with the device. */
    .addColumn('device_id', 'text', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('app_id', 'text', (c) => c.notNull())
    .addColumn('pushkey', 'text', (c) => c.notNull())
    .addColumn('app_display_name', 'text', (c) => c.notNull())
    .addColumn('device_display_name', 'text', (c) => c.notNull())
    .addColumn('profile_tag', 'text')
    .addColumn('lang', 'text', (c) => c.notNull())
    /** The pusher's `data` as JSON (with `url`). */
    .addColumn('data', 'text', (c) => c.notNull())
    /** When the pushkey was last set (ms). */
    .addColumn('pushkey_ts', 'bigint', (c) => c.notNull())
    .addUniqueConstraint('pushers_by_key', ['user_id', 'app_id', 'pushkey'])
    .execute();
  await db.schema
    .createIndex('pushers_by_app_key')
    .on('pushers')
    .columns(['app_id', 'pushkey'])
    .execute();
  await db.schema
    .createTable('push_queue')
    .addColumn('pusher_id', 'text', (c) => c.notNull())
    .addColumn('stream_ordering', 'bigint', (c) => c.notNull())
    .addColumn('event_id', 'text', (c) => c.notNull())
    .addColumn('room_id', 'text', (c) => c.notNull())
    /** The actions of the rule that matched, as JSON (their tweaks go to the gateway). */
    .addColumn('actions', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('push_queue_pk', ['pusher_id', 'stream_ordering'])
    .execute();
  await db.schema
    .createTable('push_sender_lease')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('lease_owner', 'text')
    .addColumn('lease_until', 'bigint', (c) => c.notNull().defaultTo(sql.lit(0)))
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('push_sender_lease').execute();
  await db.schema.dropTable('push_queue').execute();
  await db.schema.dropTable('pushers').execute();
}
