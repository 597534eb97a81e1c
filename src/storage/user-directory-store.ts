/**
 * The user directory (migration 0043): who can be found, by which folded words, and which
 * rooms are public. A search starts from the index of words (a prefix is a range of it) and
 * keeps the users the requester may see: those sharing a room with them, those in a public
 * room, and (with `searchAll`) every local user.
 */
import { sql, type Kysely } from 'kysely';
import { directoryTerms, prefixUpperBound } from '../core/user-directory.js';
import type { Database } from './schema.js';

export interface DirectoryUserRow {
  userId: string;
  displayName: string | null;
  avatarUrl: string | null;
}

export interface UserDirectoryStore {
  /** Puts a user in the directory under the name given (or updates their entry). */
  upsertUser(userId: string, displayName: string | null, avatarUrl: string | null): Promise<void>;
  deleteUser(userId: string): Promise<void>;
  setRoomPublic(roomId: string, isPublic: boolean): Promise<void>;
  /**
   * Up to `limit` users matching every word (each a prefix of one of the user's words) whom
   * `requesterId` may see, by user ID.
   */
  searchUsers(
    requesterId: string,
    words: readonly string[],
    limit: number,
    searchAll: boolean,
  ): Promise<DirectoryUserRow[]>;
}

/** Rewrites a user's entry and words, in the caller's transaction. */
export async function writeDirectoryEntry(
  db: Kysely<Database>,
  userId: string,
  displayName: string | null,
  avatarUrl: string | null,
): Promise<void> {
  await db
    .insertInto('user_directory')
    .values({ user_id: userId, display_name: displayName, avatar_url: avatarUrl })
    .onConflict((oc) =>
      oc.column('user_id').doUpdateSet({ display_name: displayName, avatar_url: avatarUrl }),
    )
    .execute();
  await db.deleteFrom('user_directory_terms').where('user_id', '=', userId).execute();
  const terms = directoryTerms(userId, displayName);
  if (terms.length > 0)
    await db
      .insertInto('user_directory_terms')
      .values(terms.map((term) => ({ term, user_id: userId })))
      .execute();
}

/** A local user's entry from their profile now (none when deactivated). */
export async function refreshLocalDirectoryEntry(
  db: Kysely<Database>,
  userId: string,
): Promise<void> {
  const row = await db
    .selectFrom('users')
    .leftJoin('profiles', 'profiles.user_id', 'users.user_id')
    .select(['users.deactivated', 'profiles.displayname', 'profiles.avatar_url'])
    .where('users.user_id', '=', userId)
    .executeTakeFirst();
  if (!row || Number(row.deactivated) === 1) {
    await deleteDirectoryEntry(db, userId);
    return;
  }
  await writeDirectoryEntry(db, userId, row.displayname, row.avatar_url);
}

export async function deleteDirectoryEntry(db: Kysely<Database>, userId: string): Promise<void> {
  await db.deleteFrom('user_directory_terms').where('user_id', '=', userId).execute();
  await db.deleteFrom('user_directory').where('user_id', '=', userId).execute();
}

export function userDirectoryStore(db: Kysely<Database>): UserDirectoryStore {
  return {
    upsertUser: (userId, displayName, avatarUrl) =>
      writeDirectoryEntry(db, userId, displayName, avatarUrl),

    deleteUser: (userId) => deleteDirectoryEntry(db, userId),

    async setRoomPublic(roomId, isPublic) {
      if (isPublic) {
        await db
          .insertInto('user_directory_public_rooms')
          .values({ room_id: roomId })
          .onConflict((oc) => oc.column('room_id').doNothing())
          .execute();
      } else {
        await db.deleteFrom('user_directory_public_rooms').where('room_id', '=', roomId).execute();
      }
    },

    async searchUsers(requesterId, words, limit, searchAll) {
      const [first, ...rest] = words;
      if (first === undefined) return [];
      const termMatch = (word: string) =>
        sql`SELECT t.user_id FROM user_directory_terms t WHERE t.term >= ${word} AND t.term < ${prefixUpperBound(word)}`;
      const others = rest.map(
        (word) =>
          sql`AND EXISTS (SELECT 1 FROM user_directory_terms w WHERE w.user_id = d.user_id AND w.term >= ${word} AND w.term < ${prefixUpperBound(word)})`,
      );
      const everyone = searchAll
        ? sql`OR EXISTS (SELECT 1 FROM users u WHERE u.user_id = d.user_id AND u.deactivated = 0)`
        : sql``;
      const result = await sql<{
        user_id: string;
        display_name: string | null;
        avatar_url: string | null;
      }>`
        SELECT d.user_id, d.display_name, d.avatar_url
        FROM user_directory d
        WHERE d.user_id IN (${termMatch(first)})
        ${sql.join(others, sql` `)}
        AND (
          d.user_id = ${requesterId}
          OR EXISTS (
            SELECT 1 FROM room_memberships b
            JOIN room_memberships a ON a.room_id = b.room_id
            WHERE b.user_id = d.user_id AND b.membership = 'join'
              AND a.user_id = ${requesterId} AND a.membership = 'join')
          OR EXISTS (
            SELECT 1 FROM room_memberships m
            JOIN user_directory_public_rooms p ON p.room_id = m.room_id
            WHERE m.user_id = d.user_id AND m.membership = 'join')
          ${everyone}
        )
        ORDER BY d.user_id
        LIMIT ${limit}
      `.execute(db);
      return result.rows.map((row) => ({
        userId: row.user_id,
        displayName: row.display_name,
        avatarUrl: row.avatar_url,
      }));
    },
  };
}
