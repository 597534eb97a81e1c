/**
 * Simplified sliding sync (MSC4186): what orders and filters a user's room list without
 * reading every room's events (`room_list_meta`: the position of the latest event that bumps
 * a room, its type from the create event, whether it is encrypted), and each connection's
 * state (`sliding_sync_connections`, the rooms and lazy members already sent on it).
 */
import { sql, type Kysely } from 'kysely';

/** The event types that move a room up the list (as Synapse and the proposal count them). */
const BUMP_TYPES = [
  'm.room.create',
  'm.room.message',
  'm.room.encrypted',
  'm.sticker',
  'm.call.invite',
  'm.poll.start',
  'm.beacon_info',
];

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('room_list_meta')
    .addColumn('room_id', 'text', (c) => c.primaryKey())
    .addColumn('bump_stamp', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('room_type', 'text')
    .addColumn('encrypted', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  await sql`
    INSERT INTO room_list_meta (room_id, bump_stamp)
    SELECT room_id, MAX(stream_ordering) FROM events
    WHERE type IN (${sql.join(BUMP_TYPES)})
    GROUP BY room_id`.execute(db);
  const creates = await sql<{ room_id: string; pdu: string }>`
    SELECT room_id, pdu FROM events WHERE type = 'm.room.create' AND state_key = ''`.execute(db);
  for (const row of creates.rows) {
    const content = (JSON.parse(row.pdu) as { content?: { type?: unknown } }).content;
    if (typeof content?.type === 'string')
      await sql`UPDATE room_list_meta SET room_type = ${content.type} WHERE room_id = ${row.room_id}`.execute(
        db,
      );
  }
  await sql`
    UPDATE room_list_meta SET encrypted = 1
    WHERE room_id IN (SELECT room_id FROM current_state WHERE type = 'm.room.encryption' AND state_key = '')`.execute(
    db,
  );

  await db.schema
    .createTable('sliding_sync_connections')
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('device_id', 'text', (c) => c.notNull())
    .addColumn('conn_id', 'text', (c) => c.notNull())
    .addColumn('connection_id', 'text', (c) => c.notNull().unique())
    .addColumn('pos', 'integer', (c) => c.notNull())
    .addColumn('stream_position', 'bigint', (c) => c.notNull())
    .addColumn('prev_stream_position', 'bigint')
    .addColumn('list_counts', 'text', (c) => c.notNull())
    .addColumn('last_used_ts', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('sliding_sync_connections_pk', ['user_id', 'device_id', 'conn_id'])
    .execute();
  await db.schema
    .createTable('sliding_sync_rooms')
    .addColumn('connection_id', 'text', (c) => c.notNull())
    .addColumn('room_id', 'text', (c) => c.notNull())
    .addColumn('sent_position', 'bigint', (c) => c.notNull())
    .addColumn('pos', 'integer', (c) => c.notNull())
    .addPrimaryKeyConstraint('sliding_sync_rooms_pk', ['connection_id', 'room_id'])
    .execute();
  await db.schema
    .createTable('sliding_sync_members')
    .addColumn('connection_id', 'text', (c) => c.notNull())
    .addColumn('room_id', 'text', (c) => c.notNull())
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('pos', 'integer', (c) => c.notNull())
    .addPrimaryKeyConstraint('sliding_sync_members_pk', ['connection_id', 'room_id', 'user_id'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('sliding_sync_members').execute();
  await db.schema.dropTable('sliding_sync_rooms').execute();
  await db.schema.dropTable('sliding_sync_connections').execute();
  await db.schema.dropTable('room_list_meta').execute();
}
