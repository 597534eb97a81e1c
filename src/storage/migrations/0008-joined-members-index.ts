/**
 * On SQLite, the by-room index of `room_memberships` also carries each member's display name
 * and avatar, so `/joined_members` reads the index alone: the table's rows of a big room lie
 * all over the file (in insertion order), and fetching each was most of the time of a
 * 100,000-member room's list. PostgreSQL keeps the narrower index: its B-tree entries must fit
 * a third of a page, and a member event's display name can be far longer (SQLite's entries
 * spill to overflow pages instead), and PostgreSQL answered the list in time without it.
 */
import { type Kysely } from 'kysely';
import { onSqlite, rebuildByRoomIndex } from './helpers.js';

export async function up(db: Kysely<unknown>): Promise<void> {
  if (onSqlite(db))
    await rebuildByRoomIndex(db, ['room_id', 'membership', 'user_id', 'displayname', 'avatar_url']);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  if (onSqlite(db)) await rebuildByRoomIndex(db, ['room_id', 'membership', 'user_id']);
}
