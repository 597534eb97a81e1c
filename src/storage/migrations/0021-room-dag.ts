/**
 * Rooms as a DAG of events from several servers: the state at every event (state groups kept
 * as deltas on an earlier group, with a full snapshot every `MAX_STATE_GROUP_HOPS` hops),
 * each event's groups before and after it, every event's auth edges (for auth chains in one
 * recursive statement), each room's current state group, and the events known outside the
 * timeline: outliers (known without their state), rejected and soft-failed events.
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('state_groups')
    .addColumn('group_id', 'bigint', (c) => c.primaryKey())
    .addColumn('room_id', 'text', (c) => c.notNull())
    /** The group this one's entries are a delta on (null: the entries are the whole state). */
    .addColumn('prev_group', 'bigint')
    /** Deltas between this group and a full snapshot. */
    .addColumn('hops', 'integer', (c) => c.notNull())
    .execute();
  await db.schema
    .createTable('state_group_entries')
    .addColumn('group_id', 'bigint', (c) => c.notNull())
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('state_key', 'text', (c) => c.notNull())
    /** Null: the entry is removed from the state of `prev_group`. */
    .addColumn('event_id', 'text')
    .addPrimaryKeyConstraint('state_group_entries_pk', ['group_id', 'type', 'state_key'])
    .execute();
  await db.schema
    .createTable('event_state_groups')
    .addColumn('event_id', 'text', (c) => c.primaryKey())
    .addColumn('room_id', 'text', (c) => c.notNull())
    .addColumn('before_group', 'bigint', (c) => c.notNull())
    .addColumn('after_group', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createTable('event_auth_edges')
    .addColumn('event_id', 'text', (c) => c.notNull())
    .addColumn('auth_event_id', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('event_auth_edges_pk', ['event_id', 'auth_event_id'])
    .execute();
  await db.schema
    .createTable('room_state_heads')
    .addColumn('room_id', 'text', (c) => c.primaryKey())
    /** The state group of the room's current state (its forward extremities' resolved). */
    .addColumn('current_group', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createTable('room_dag_events')
    .addColumn('event_id', 'text', (c) => c.primaryKey())
    .addColumn('room_id', 'text', (c) => c.notNull())
    /** 'outlier', 'rejected' or 'soft_failed'. */
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('reason', 'text')
    .addColumn('pdu', 'text', (c) => c.notNull())
    .addColumn('received_ts', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('room_dag_events_by_room')
    .on('room_dag_events')
    .columns(['room_id', 'status'])
    .execute();
  /** Received transactions, for idempotent `PUT /send/{txnId}` per origin. */
  await db.schema
    .createTable('federation_received_txns')
    .addColumn('origin', 'text', (c) => c.notNull())
    .addColumn('txn_id', 'text', (c) => c.notNull())
    .addColumn('response', 'text', (c) => c.notNull())
    .addColumn('received_ts', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('federation_received_txns_pk', ['origin', 'txn_id'])
    .execute();
  await sql`INSERT INTO stream_positions (stream, position) VALUES ('state_groups', 0)`.execute(db);
  // Events of a room's past that enter the timeline after newer ones (the state a room was
  // joined with, state fetched to fill a gap) take negative stream positions, counting down.
  await sql`INSERT INTO stream_positions (stream, position) VALUES ('events_history', 0)`.execute(
    db,
  );
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DELETE FROM stream_positions WHERE stream IN ('state_groups', 'events_history')`.execute(
    db,
  );
  for (const table of [
    'federation_received_txns',
    'room_dag_events',
    'room_state_heads',
    'event_auth_edges',
    'event_state_groups',
    'state_group_entries',
    'state_groups',
  ])
    await db.schema.dropTable(table).execute();
}
