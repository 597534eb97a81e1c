/** Small pieces several migrations share. */
import { SqliteAdapter, type Kysely } from 'kysely';

export const onSqlite = (db: Kysely<unknown>): boolean =>
  db.getExecutor().adapter instanceof SqliteAdapter;

/** Drops `room_memberships_by_room` and makes it again on `columns`. */
export async function rebuildByRoomIndex(db: Kysely<unknown>, columns: string[]): Promise<void> {
  await db.schema.dropIndex('room_memberships_by_room').execute();
  await db.schema
    .createIndex('room_memberships_by_room')
    .on('room_memberships')
    .columns(columns)
    .execute();
}
