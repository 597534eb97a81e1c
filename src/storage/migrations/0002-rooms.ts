/**
 * Rooms: the append-only event log with a global stream position, current state, and the
 * membership tables shaped for the membership queries (by user and by room, each a range scan),
 * with membership history so "members as of stream position N" is answerable.
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  // One row: the last stream position handed out. Taken with UPDATE … RETURNING inside the
  // writing transaction, so positions become visible in commit order on both databases.
  await db.schema
    .createTable('stream_positions')
    .addColumn('stream', 'text', (c) => c.primaryKey())
    .addColumn('position', 'bigint', (c) => c.notNull())
    .execute();
  await db
    .insertInto('stream_positions' as never)
    .values({ stream: 'events', position: 0 } as never)
    .execute();

  await db.schema
    .createTable('rooms')
    .addColumn('room_id', 'text', (c) => c.primaryKey())
    .addColumn('room_version', 'text', (c) => c.notNull())
    .addColumn('creator', 'text', (c) => c.notNull())
    .addColumn('is_public', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_ts', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('rooms_public')
    .on('rooms')
    .columns(['is_public', 'room_id'])
    .execute();

  await db.schema
    .createTable('events')
    .addColumn('stream_ordering', 'bigint', (c) => c.primaryKey())
    .addColumn('event_id', 'text', (c) => c.notNull().unique())
    .addColumn('room_id', 'text', (c) => c.notNull())
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('state_key', 'text')
    .addColumn('sender', 'text', (c) => c.notNull())
    .addColumn('origin_server_ts', 'bigint', (c) => c.notNull())
    .addColumn('depth', 'bigint', (c) => c.notNull())
    .addColumn('pdu', 'text', (c) => c.notNull())
    .addColumn('redacted_by', 'text')
    .execute();
  await db.schema
    .createIndex('events_by_room')
    .on('events')
    .columns(['room_id', 'stream_ordering'])
    .execute();

  // The room's forward extremities: events with no children yet (prev_events of the next).
  await db.schema
    .createTable('room_extremities')
    .addColumn('room_id', 'text', (c) => c.notNull())
    .addColumn('event_id', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('room_extremities_pk', ['room_id', 'event_id'])
    .execute();

  await db.schema
    .createTable('current_state')
    .addColumn('room_id', 'text', (c) => c.notNull())
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('state_key', 'text', (c) => c.notNull())
    .addColumn('event_id', 'text', (c) => c.notNull())
    .addColumn('stream_ordering', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('current_state_pk', ['room_id', 'type', 'state_key'])
    .execute();

  // Every state change, for state at a stream position (history visibility, `at`).
  await db.schema
    .createTable('state_history')
    .addColumn('room_id', 'text', (c) => c.notNull())
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('state_key', 'text', (c) => c.notNull())
    .addColumn('stream_ordering', 'bigint', (c) => c.notNull())
    .addColumn('event_id', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('state_history_pk', [
      'room_id',
      'type',
      'state_key',
      'stream_ordering',
    ])
    .execute();

  // Current membership, one row per (room, user). Two orders: by user, by room.
  await db.schema
    .createTable('room_memberships')
    .addColumn('room_id', 'text', (c) => c.notNull())
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('membership', 'text', (c) => c.notNull())
    .addColumn('event_id', 'text', (c) => c.notNull())
    .addColumn('stream_ordering', 'bigint', (c) => c.notNull())
    .addColumn('displayname', 'text')
    .addColumn('avatar_url', 'text')
    .addColumn('forgotten', 'integer', (c) => c.notNull().defaultTo(0))
    .addPrimaryKeyConstraint('room_memberships_pk', ['room_id', 'user_id'])
    .execute();
  await db.schema
    .createIndex('room_memberships_by_user')
    .on('room_memberships')
    .columns(['user_id', 'membership', 'room_id'])
    .execute();
  await db.schema
    .createIndex('room_memberships_by_room')
    .on('room_memberships')
    .columns(['room_id', 'membership', 'user_id'])
    .execute();

  // Membership history: each change with its stream position.
  await db.schema
    .createTable('membership_history')
    .addColumn('room_id', 'text', (c) => c.notNull())
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('stream_ordering', 'bigint', (c) => c.notNull())
    .addColumn('membership', 'text', (c) => c.notNull())
    .addColumn('event_id', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('membership_history_pk', ['room_id', 'user_id', 'stream_ordering'])
    .execute();
  await db.schema
    .createIndex('membership_history_by_room_position')
    .on('membership_history')
    .columns(['room_id', 'stream_ordering'])
    .execute();

  await db.schema
    .createTable('room_aliases')
    .addColumn('alias', 'text', (c) => c.primaryKey())
    .addColumn('room_id', 'text', (c) => c.notNull())
    .addColumn('creator', 'text', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('room_aliases_by_room')
    .on('room_aliases')
    .columns(['room_id'])
    .execute();

  // Idempotency of PUT /send per device, room and transaction ID.
  await db.schema
    .createTable('event_txns')
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('device_id', 'text', (c) => c.notNull())
    .addColumn('room_id', 'text', (c) => c.notNull())
    .addColumn('txn_id', 'text', (c) => c.notNull())
    .addColumn('event_id', 'text', (c) => c.notNull())
    .addColumn('created_ts', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('event_txns_pk', ['user_id', 'device_id', 'room_id', 'txn_id'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const table of [
    'event_txns',
    'room_aliases',
    'membership_history',
    'room_memberships',
    'state_history',
    'current_state',
    'room_extremities',
    'events',
    'rooms',
    'stream_positions',
  ]) {
    await db.schema.dropTable(table).execute();
  }
}
