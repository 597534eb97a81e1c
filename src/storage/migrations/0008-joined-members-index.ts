/**
 * On SQLite, the by-room index of `room_memberships` also carries each member's display name
 * and avatar, so `/joined_members` reads the index alone: the table's rows of a big room lie
 * all over the file (in insertion order), and fetching each was most of the time of a
 * 100,000-member room's list. PostgreSQL keeps the narrower index: its B-tree entries must fit
 * a third of a page, and a member event's display name can be far longer (SQLite's entries
 * spill to overflow pages instead), and PostgreSQL answered the list in time without it.
 */
import { SqliteAdapter, type Kysely } from 'kysely';

const onSqlite = (db: Kysely<unknown>) => db.getExecutor().adapter instanceof SqliteAdapter;

async function byRoomIndex(db: Kysely<unknown>, columns: string[]): Promise<void> {
  await db.schema.dropIndex('room_memberships_by_room').execute();
  await db.schema
    .createIndex('room_memberships_by_room')
    .on('room_memberships')
    .columns(columns)
    .execute();
}

export async function up(db: Kysely<unknown>): Promise<void> {
  if (onSqlite(db))
    await byRoomIndex(db, ['room_id', 'membership', 'user_id', 'displayname', 'avatar_url']);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  if (onSqlite(db)) await byRoomIndex(db, ['room_id', 'membership', 'user_id']);
}
