/**
 * Background purges of the admin API: room deletions (Synapse's DELETE /v2/rooms/{roomId}:
 * members removed, then every row of the room deleted in small batches) and history purges
 * (events older than a point, by an admin or by the retention policy), each with its status
 * for the status endpoints and for resuming after a restart; and blocked rooms, which no one
 * may join.
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('room_purges')
    .addColumn('purge_id', 'text', (c) => c.primaryKey())
    /** 'delete_room' or 'purge_history'. */
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('room_id', 'text', (c) => c.notNull())
    .addColumn('requester', 'text', (c) => c.notNull())
    /** JSON: what was asked (block, purge; the history point). */
    .addColumn('params', 'text', (c) => c.notNull())
    /** 'scheduled', 'active', 'complete' or 'failed'. */
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('error', 'text')
    /** JSON: what was done (kicked users, local aliases). */
    .addColumn('result', 'text')
    .addColumn('created_ts', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('room_purges_by_room')
    .on('room_purges')
    .columns(['room_id', 'created_ts'])
    .execute();
  await db.schema
    .createIndex('room_purges_by_status')
    .on('room_purges')
    .columns(['status', 'created_ts'])
    .execute();
  await db.schema
    .createTable('blocked_rooms')
    .addColumn('room_id', 'text', (c) => c.primaryKey())
    .addColumn('blocked_by', 'text', (c) => c.notNull())
    .addColumn('blocked_ts', 'bigint', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('blocked_rooms').execute();
  await db.schema.dropTable('room_purges').execute();
}
