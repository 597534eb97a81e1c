/**
 * /sync and what clients call around it: stored filters, account data, receipts, typing,
 * presence, to-device messages and device keys. Every row that /sync delivers carries a
 * position from the one global stream (`stream_positions.events`), so a sync token `s<N>`
 * means "everything up to N" for events and for all of these alike.
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  // /sync reads a room's state changes between two positions.
  await db.schema
    .createIndex('state_history_by_room_position')
    .on('state_history')
    .columns(['room_id', 'stream_ordering'])
    .execute();

  await db.schema
    .createTable('filters')
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('filter_id', 'bigint', (c) => c.notNull())
    .addColumn('filter_json', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('filters_pk', ['user_id', 'filter_id'])
    .execute();

  // Global account data has room_id ''.
  await db.schema
    .createTable('account_data')
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('room_id', 'text', (c) => c.notNull())
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('content', 'text', (c) => c.notNull())
    .addColumn('stream_ordering', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('account_data_pk', ['user_id', 'room_id', 'type'])
    .execute();
  await db.schema
    .createIndex('account_data_by_position')
    .on('account_data')
    .columns(['user_id', 'stream_ordering'])
    .execute();

  // The latest receipt of each type per user, room and thread ('' when unthreaded).
  await db.schema
    .createTable('receipts')
    .addColumn('room_id', 'text', (c) => c.notNull())
    .addColumn('receipt_type', 'text', (c) => c.notNull())
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('thread_id', 'text', (c) => c.notNull())
    .addColumn('event_id', 'text', (c) => c.notNull())
    .addColumn('ts', 'bigint', (c) => c.notNull())
    .addColumn('stream_ordering', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('receipts_pk', ['room_id', 'receipt_type', 'user_id', 'thread_id'])
    .execute();
  await db.schema
    .createIndex('receipts_by_position')
    .on('receipts')
    .columns(['stream_ordering'])
    .execute();

  // Who is typing: a stop keeps the row (expires_ts 0) so the change has a position.
  await db.schema
    .createTable('typing')
    .addColumn('room_id', 'text', (c) => c.notNull())
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('expires_ts', 'bigint', (c) => c.notNull())
    .addColumn('stream_ordering', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('typing_pk', ['room_id', 'user_id'])
    .execute();
  await db.schema
    .createIndex('typing_by_position')
    .on('typing')
    .columns(['stream_ordering'])
    .execute();

  await db.schema
    .createTable('presence')
    .addColumn('user_id', 'text', (c) => c.primaryKey())
    .addColumn('presence', 'text', (c) => c.notNull())
    .addColumn('status_msg', 'text')
    .addColumn('last_active_ts', 'bigint', (c) => c.notNull())
    .addColumn('stream_ordering', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('presence_by_position')
    .on('presence')
    .columns(['stream_ordering'])
    .execute();

  // Messages waiting for a device; deleted once a sync past them shows they were received.
  await db.schema
    .createTable('to_device_messages')
    .addColumn('stream_ordering', 'bigint', (c) => c.notNull())
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('device_id', 'text', (c) => c.notNull())
    .addColumn('sender', 'text', (c) => c.notNull())
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('content', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('to_device_messages_pk', ['user_id', 'device_id', 'stream_ordering'])
    .execute();
  // Idempotency of PUT /sendToDevice per sender device and transaction ID.
  await db.schema
    .createTable('to_device_txns')
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('device_id', 'text', (c) => c.notNull())
    .addColumn('txn_id', 'text', (c) => c.notNull())
    .addColumn('created_ts', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('to_device_txns_pk', ['user_id', 'device_id', 'txn_id'])
    .execute();

  await db.schema
    .createTable('device_keys')
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('device_id', 'text', (c) => c.notNull())
    .addColumn('keys_json', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('device_keys_pk', ['user_id', 'device_id'])
    .execute();
  await db.schema
    .createTable('one_time_keys')
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('device_id', 'text', (c) => c.notNull())
    .addColumn('algorithm', 'text', (c) => c.notNull())
    .addColumn('key_id', 'text', (c) => c.notNull())
    .addColumn('key_json', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('one_time_keys_pk', ['user_id', 'device_id', 'algorithm', 'key_id'])
    .execute();
  await db.schema
    .createTable('fallback_keys')
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('device_id', 'text', (c) => c.notNull())
    .addColumn('algorithm', 'text', (c) => c.notNull())
    .addColumn('key_id', 'text', (c) => c.notNull())
    .addColumn('key_json', 'text', (c) => c.notNull())
    .addColumn('used', 'integer', (c) => c.notNull().defaultTo(0))
    .addPrimaryKeyConstraint('fallback_keys_pk', ['user_id', 'device_id', 'algorithm'])
    .execute();
  // A user's devices or keys changed at this position (device_lists.changed, /keys/changes).
  await db.schema
    .createTable('device_list_changes')
    .addColumn('stream_ordering', 'bigint', (c) => c.notNull())
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('device_list_changes_pk', ['stream_ordering', 'user_id'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const table of [
    'device_list_changes',
    'fallback_keys',
    'one_time_keys',
    'device_keys',
    'to_device_txns',
    'to_device_messages',
    'presence',
    'typing',
    'receipts',
    'account_data',
    'filters',
  ]) {
    await db.schema.dropTable(table).execute();
  }
  await db.schema.dropIndex('state_history_by_room_position').execute();
}
