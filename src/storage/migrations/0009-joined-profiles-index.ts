/**
 * `/joined_members` reads an index alone on both databases: a partial index of the joined
 * members whose display name and avatar fit an index entry, carrying them, beside a partial
 * index of the joined members whose profile is too long for one (read with their table row).
 * A page is the first index's range scan; the database merges in the second only when an
 * over-long profile falls within the page (member-list-store.ts).
 *
 * Why two: a PostgreSQL B-tree entry must fit a third of a page (2,704 bytes), and an index
 * carrying every joined member's profile would refuse the join of a member whose profile is
 * longer (the profile API keeps them short today, but the store should not depend on it). The
 * bound of 2,048 bytes leaves room for the room ID and user ID (255 bytes each at most).
 * SQLite's entries would spill to overflow pages instead; it gets the same two indexes, so the
 * same queries read the same indexes on both, and its by-room index of migration 0008 goes back
 * to the narrow one of migration 0002.
 *
 * The keys differ. The carried profiles' index has no `membership` column: PostgreSQL leaves
 * out of the index conditions what the index's own condition implies, so with `(room_id,
 * membership, user_id, …)` it could not use `user_id > …` to find a page's start and read the
 * room's list up to it (833 buffers and 4 ms for the 50th page of a 100,000-member room). The
 * over-long profiles' index keeps `membership` after the room, as in the by-room index: SQLite
 * has no statistics (nothing here runs ANALYZE), and between two indexes with the same key
 * columns its planner rates the partial one as holding fewer rows and takes it; with
 * `(room_id, user_id)` it took the by-room index, which matches one more condition, and would
 * have walked every joined member of the room for the few over-long profiles. (That index
 * holds only those few, so PostgreSQL's walk from the room's first entry in it costs nothing.)
 */
import { sql, type Kysely, type RawBuilder, type SqlBool } from 'kysely';
import { onSqlite, rebuildByRoomIndex } from './helpers.js';

/** At most this many bytes of display name and avatar URL together are carried in the index. */
export const JOINED_PROFILE_INDEX_BYTES = 2048;

const profileBytes = sql`octet_length(coalesce(displayname, '')) + octet_length(coalesce(avatar_url, ''))`;
const joined = sql`membership = ${sql.lit('join')}`;

/**
 * The two indexes' conditions, written out with literals (not parameters) so that each
 * database's planner sees that a query carrying the same condition may use the index. The
 * store's query uses these same expressions; changing them needs a new migration.
 */
export const joinedProfileFits: RawBuilder<SqlBool> = sql<SqlBool>`(${joined} AND ${profileBytes} <= ${sql.lit(JOINED_PROFILE_INDEX_BYTES)})`;
export const joinedProfileTooLong: RawBuilder<SqlBool> = sql<SqlBool>`(${joined} AND ${profileBytes} > ${sql.lit(JOINED_PROFILE_INDEX_BYTES)})`;

export async function up(db: Kysely<unknown>): Promise<void> {
  if (onSqlite(db)) await rebuildByRoomIndex(db, ['room_id', 'membership', 'user_id']);
  await db.schema
    .createIndex('room_memberships_joined_profiles')
    .on('room_memberships')
    .columns(['room_id', 'user_id', 'displayname', 'avatar_url'])
    .where(joinedProfileFits)
    .execute();
  await db.schema
    .createIndex('room_memberships_joined_long_profiles')
    .on('room_memberships')
    .columns(['room_id', 'membership', 'user_id'])
    .where(joinedProfileTooLong)
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex('room_memberships_joined_long_profiles').execute();
  await db.schema.dropIndex('room_memberships_joined_profiles').execute();
  if (onSqlite(db))
    await rebuildByRoomIndex(db, ['room_id', 'membership', 'user_id', 'displayname', 'avatar_url']);
}
