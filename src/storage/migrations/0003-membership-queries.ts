/**
 * Membership queries: a compact number per room (the order and paging cursor of mutual
 * rooms), the per-pair mutual-rooms index kept in step with membership changes, and secrets
 * every process sharing the database must agree on (paging-token keys).
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('rooms').addColumn('room_nid', 'bigint').execute();
  // Number existing rooms in creation order; new rooms take the next from the counter.
  const rooms = await sql<{
    room_id: string;
  }>`SELECT room_id FROM rooms ORDER BY created_ts, room_id`.execute(db);
  let nid = 0;
  for (const room of rooms.rows) {
    nid += 1;
    await sql`UPDATE rooms SET room_nid = ${nid} WHERE room_id = ${room.room_id}`.execute(db);
  }
  await sql`INSERT INTO stream_positions (stream, position) VALUES ('rooms', ${nid})`.execute(db);
  await db.schema.createIndex('rooms_by_nid').unique().on('rooms').column('room_nid').execute();

  // Pairs of users whose shared rooms are indexed: built on the first /mutual_rooms request
  // for the pair, then updated by every membership change of either user.
  await db.schema
    .createTable('mutual_room_pairs')
    .addColumn('user_low', 'text', (c) => c.notNull())
    .addColumn('user_high', 'text', (c) => c.notNull())
    .addColumn('room_count', 'bigint', (c) => c.notNull())
    .addColumn('used_ts', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('mutual_room_pairs_pk', ['user_low', 'user_high'])
    .execute();
  await db.schema
    .createIndex('mutual_room_pairs_by_high')
    .on('mutual_room_pairs')
    .columns(['user_high', 'user_low'])
    .execute();
  await db.schema
    .createTable('mutual_room_entries')
    .addColumn('user_low', 'text', (c) => c.notNull())
    .addColumn('user_high', 'text', (c) => c.notNull())
    .addColumn('room_nid', 'bigint', (c) => c.notNull())
    .addColumn('room_id', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('mutual_room_entries_pk', ['user_low', 'user_high', 'room_nid'])
    .execute();

  await db.schema
    .createTable('server_secrets')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('secret', 'text', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('server_secrets').execute();
  await db.schema.dropTable('mutual_room_entries').execute();
  await db.schema.dropTable('mutual_room_pairs').execute();
  await db.schema.dropIndex('rooms_by_nid').execute();
  await db.schema.alterTable('rooms').dropColumn('room_nid').execute();
  await sql`DELETE FROM stream_positions WHERE stream = 'rooms'`.execute(db);
}
