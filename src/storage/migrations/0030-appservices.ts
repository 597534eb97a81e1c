/**
 * Application services: which namespaced users are joined or invited in each room (so the
 * event deriver knows, per event, which services want it), the durable per-service queue
 * of events and ephemeral events, and each service's sender state (the transaction in flight, who sends).
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('appservice_room_users')
    .addColumn('service_id', 'text', (c) => c.notNull())
    .addColumn('room_id', 'text', (c) => c.notNull())
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('appservice_room_users_pk', ['service_id', 'room_id', 'user_id'])
    .execute();
  await db.schema
    .createTable('appservice_queue')
    .addColumn('service_id', 'text', (c) => c.notNull())
    // The event's stream ordering: positions commit in order, so the queue is in stream order.
    .addColumn('position', 'bigint', (c) => c.notNull())
    // 'event' (a room event, in `events`) or 'ephemeral' (an EDU, MSC2409's `ephemeral`).
    .addColumn('kind', 'text', (c) => c.notNull().defaultTo('event'))
    .addColumn('event_json', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('appservice_queue_pk', ['service_id', 'position'])
    .execute();
  await db.schema
    .createTable('appservice_senders')
    .addColumn('service_id', 'text', (c) => c.primaryKey())
    .addColumn('last_txn_id', 'bigint', (c) => c.notNull().defaultTo(sql.lit(0)))
    // The transaction being delivered: its ID and the last position in it (null: none).
    .addColumn('in_flight_txn_id', 'bigint')
    .addColumn('in_flight_up_to', 'bigint')
    .addColumn('lease_owner', 'text')
    .addColumn('lease_until', 'bigint', (c) => c.notNull().defaultTo(sql.lit(0)))
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('appservice_senders').execute();
  await db.schema.dropTable('appservice_queue').execute();
  await db.schema.dropTable('appservice_room_users').execute();
}
