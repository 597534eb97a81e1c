/**
 * Other servers' users' device lists as last fetched (`/user/devices`) or updated by their
 * `m.device_list_update` EDUs: the devices with their keys, the cross-signing keys, and the
 * stream ID the origin gave, so that a gap in its `prev_id`s is noticed (then fetched again).
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('remote_device_lists')
    .addColumn('user_id', 'text', (c) => c.primaryKey())
    /** The origin's stream ID of the list as held. */
    .addColumn('stream_id', 'bigint', (c) => c.notNull())
    /** `{devices: {deviceId: {keys?, device_display_name?}}, master_key?, self_signing_key?}`. */
    .addColumn('list_json', 'text', (c) => c.notNull())
    .addColumn('fetched_ts', 'bigint', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('remote_device_lists').execute();
}
