/**
 * A user's sliding sync room list read from one index: each membership's user, membership,
 * forgotten flag, position and room, so that counting a list and ordering a window of it never
 * read the memberships' rows (which carry the member event). Found by the sliding sync bench:
 * for a user in 10,000 rooms, the rows' reads made a list's count 34 ms and a window 63 ms,
 * from this index 0.4 ms and 11-17 ms (SQLite, load average 12).
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createIndex('room_memberships_room_list')
    .on('room_memberships')
    .columns(['user_id', 'membership', 'forgotten', 'stream_ordering', 'room_id'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex('room_memberships_room_list').execute();
}
