/**
 * The user directory (migrations 0043, 0046): who can be found, under which keys (every
 * prefix of their folded words), by whom (their reach), and which rooms are public.
 *
 * A user's reach says who may find them without sharing a room: anyone when they are joined
 * to a public room (REACH_PUBLIC), every local user with `search_all_users` when they are a
 * local user (REACH_LOCAL), nobody else (REACH_ROOMS). It is kept with every change of their
 * profile, of their joined rooms when one is public, and of a room's join rule.
 *
 * A search reads the key `(prefix, reach, user_id)`: the public users matching a word are one
 * range of it in user ID order, and so are the local ones, so each read stops at `limit`
 * matches. Only the users sharing one of the requester's non-public rooms are found the other
 * way, from those rooms' joined members (membership by room), as their number is bounded by
 * the requester's rooms and not by the directory. The answer is the first `limit` of these
 * few lists merged, the same users in the same order as one query over the whole directory.
 */
import { sql, type Kysely, type RawBuilder } from 'kysely';
import { directoryPrefixes } from '../core/user-directory.js';
import type { Database } from './schema.js';

export interface DirectoryUserRow {
  userId: string;
  displayName: string | null;
  avatarUrl: string | null;
}

/** Found by those sharing a room with them. */
export const REACH_ROOMS = 0;
/** A local user: found by anyone when `search_all_users` is set. */
export const REACH_LOCAL = 1;
/** Joined to a public room: found by anyone. */
export const REACH_PUBLIC = 2;
const REACHES = [REACH_ROOMS, REACH_LOCAL, REACH_PUBLIC];
/** A word with at most this many keys of users only room-mates may find is read whole. */
const FEW_KEYS = 200;

const BATCH = 500;

export interface UserDirectoryStore {
  /** Puts a user in the directory under the name given (or updates their entry). */
  upsertUser(userId: string, displayName: string | null, avatarUrl: string | null): Promise<void>;
  deleteUser(userId: string): Promise<void>;
  /** Records a room's join rule; when it changes, its joined members' reach follows. */
  setRoomPublic(roomId: string, isPublic: boolean): Promise<void>;
  /**
   * Up to `limit` users matching every word (each a prefix of one of the user's words) whom
   * `requesterId` may see, by user ID (byte order).
   */
  searchUsers(
    requesterId: string,
    words: readonly string[],
    limit: number,
    searchAll: boolean,
  ): Promise<DirectoryUserRow[]>;
}

/** Who may find the user `userId` names now: from their joined rooms and whether they are local. */
const reachNow = (userId: RawBuilder<unknown>) => sql<number | string>`CASE
  WHEN EXISTS (
    SELECT 1 FROM room_memberships m
    JOIN user_directory_public_rooms p ON p.room_id = m.room_id
    WHERE m.user_id = ${userId} AND m.membership = 'join') THEN ${sql.lit(REACH_PUBLIC)}
  WHEN EXISTS (SELECT 1 FROM users u WHERE u.user_id = ${userId}) THEN ${sql.lit(REACH_LOCAL)}
  ELSE ${sql.lit(REACH_ROOMS)} END`;

async function reachOf(db: Kysely<Database>, userId: string): Promise<number> {
  const result = await sql<{
    reach: number | string;
  }>`SELECT ${reachNow(sql`${userId}`)} AS reach`.execute(db);
  return Number(result.rows[0]?.reach ?? REACH_ROOMS);
}

async function insertKeys(
  db: Kysely<Database>,
  userId: string,
  displayName: string | null,
  reach: number,
): Promise<void> {
  const keys = directoryPrefixes(userId, displayName).map((prefix) => ({
    prefix,
    reach,
    user_id: userId,
  }));
  for (let i = 0; i < keys.length; i += BATCH)
    await db
      .insertInto('user_directory_search')
      .values(keys.slice(i, i + BATCH))
      .execute();
}

/** Deletes a user's keys, known from the name and reach their entry was written with. */
async function deleteKeys(
  db: Kysely<Database>,
  userId: string,
  displayName: string | null,
  reach: number,
): Promise<void> {
  const prefixes = directoryPrefixes(userId, displayName);
  for (let i = 0; i < prefixes.length; i += BATCH)
    await db
      .deleteFrom('user_directory_search')
      .where('prefix', 'in', prefixes.slice(i, i + BATCH))
      .where('reach', '=', reach)
      .where('user_id', '=', userId)
      .execute();
}

async function selectEntry(db: Kysely<Database>, userId: string) {
  const row = await db
    .selectFrom('user_directory')
    .select(['display_name', 'reach'])
    .where('user_id', '=', userId)
    .executeTakeFirst();
  return row ? { displayName: row.display_name, reach: Number(row.reach) } : undefined;
}

/** Rewrites a user's entry and keys, in the caller's transaction. */
export async function writeDirectoryEntry(
  db: Kysely<Database>,
  userId: string,
  displayName: string | null,
  avatarUrl: string | null,
): Promise<void> {
  const [old, reach] = [await selectEntry(db, userId), await reachOf(db, userId)];
  await db
    .insertInto('user_directory')
    .values({ user_id: userId, display_name: displayName, avatar_url: avatarUrl, reach })
    .onConflict((oc) =>
      oc.column('user_id').doUpdateSet({ display_name: displayName, avatar_url: avatarUrl, reach }),
    )
    .execute();
  if (old?.displayName === displayName && old.reach === reach) return;
  if (old) await deleteKeys(db, userId, old.displayName, old.reach);
  await insertKeys(db, userId, displayName, reach);
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
  const old = await selectEntry(db, userId);
  if (!old) return;
  await deleteKeys(db, userId, old.displayName, old.reach);
  await db.deleteFrom('user_directory').where('user_id', '=', userId).execute();
}

/** Moves a user's keys to another reach (one statement: the keys' prefixes are known). */
async function updateReach(
  db: Kysely<Database>,
  userId: string,
  displayName: string | null,
  from: number,
  to: number,
): Promise<void> {
  const prefixes = directoryPrefixes(userId, displayName);
  for (let i = 0; i < prefixes.length; i += BATCH)
    await db
      .updateTable('user_directory_search')
      .set({ reach: to })
      .where('prefix', 'in', prefixes.slice(i, i + BATCH))
      .where('reach', '=', from)
      .where('user_id', '=', userId)
      .execute();
  await db.updateTable('user_directory').set({ reach: to }).where('user_id', '=', userId).execute();
}

/** Recomputes a user's reach (after they joined or left a public room). */
async function refreshReach(db: Kysely<Database>, userId: string): Promise<void> {
  const old = await selectEntry(db, userId);
  if (!old) return;
  const reach = await reachOf(db, userId);
  if (reach !== old.reach) await updateReach(db, userId, old.displayName, old.reach, reach);
}

/**
 * Users joined or left a room (called by the room store with the changes of joined
 * membership it writes, in its transaction): joining or leaving a public room may change
 * their reach. Only users with a directory entry have one to change (one read per 500).
 */
export async function applyDirectoryMemberships(
  db: Kysely<Database>,
  roomId: string,
  userIds: readonly string[],
): Promise<void> {
  if (userIds.length === 0) return;
  const isPublic = await db
    .selectFrom('user_directory_public_rooms')
    .select('room_id')
    .where('room_id', '=', roomId)
    .executeTakeFirst();
  if (!isPublic) return;
  for (let i = 0; i < userIds.length; i += BATCH) {
    const listed = await db
      .selectFrom('user_directory')
      .select('user_id')
      .where('user_id', 'in', userIds.slice(i, i + BATCH))
      .execute();
    for (const { user_id: userId } of listed) await refreshReach(db, userId);
  }
}

export function userDirectoryStore(db: Kysely<Database>): UserDirectoryStore {
  return {
    upsertUser: (userId, displayName, avatarUrl) =>
      writeDirectoryEntry(db, userId, displayName, avatarUrl),

    deleteUser: (userId) => deleteDirectoryEntry(db, userId),

    async setRoomPublic(roomId, isPublic) {
      let changed: boolean;
      if (isPublic) {
        const result = await db
          .insertInto('user_directory_public_rooms')
          .values({ room_id: roomId })
          .onConflict((oc) => oc.column('room_id').doNothing())
          .executeTakeFirst();
        changed = Number(result.numInsertedOrUpdatedRows ?? 0) > 0;
      } else {
        const result = await db
          .deleteFrom('user_directory_public_rooms')
          .where('room_id', '=', roomId)
          .executeTakeFirst();
        changed = Number(result.numDeletedRows) > 0;
      }
      if (!changed) return;
      // Every joined member's reach may change: the write cost of a join rule change grows
      // with the room (one statement per member whose reach changes), paid once, never by a
      // search.
      let after = '';
      for (;;) {
        const members = await db
          .selectFrom('user_directory as d')
          .innerJoin('room_memberships as r', 'r.user_id', 'd.user_id')
          .select(['d.user_id', 'd.display_name', 'd.reach'])
          .select(reachNow(sql.ref('d.user_id')).as('now'))
          .where('r.room_id', '=', roomId)
          .where('r.membership', '=', 'join')
          .where('d.user_id', '>', after)
          .orderBy('d.user_id')
          .limit(BATCH)
          .execute();
        for (const member of members) {
          const [from, to] = [Number(member.reach), Number(member.now)];
          if (from !== to) await updateReach(db, member.user_id, member.display_name, from, to);
        }
        const last = members[members.length - 1];
        if (!last || members.length < BATCH) break;
        after = last.user_id;
      }
    },

    async searchUsers(requesterId, words, limit, searchAll) {
      const [first, ...rest] = words;
      if (first === undefined || limit <= 0) return [];
      const reachIn = (reaches: number[]) =>
        sql`(${sql.join(reaches.map((reach) => sql.lit(reach)))})`;
      const hidden = searchAll ? [REACH_ROOMS] : [REACH_ROOMS, REACH_LOCAL];
      // The other words, each a key of the same user, probed per candidate. `OFFSET 0` keeps
      // PostgreSQL from making these a join that reads a common word's whole range.
      const alsoMatching = (userId: RawBuilder<unknown>, reaches: RawBuilder<unknown>) =>
        sql.join(
          rest.map(
            (word) =>
              sql`AND EXISTS (SELECT 1 FROM user_directory_search o WHERE o.prefix = ${word} AND ${reaches} AND o.user_id = ${userId} LIMIT 1 OFFSET 0)`,
          ),
          sql` `,
        );
      const ofReach = (reach: number) => sql<{ user_id: string }>`
        SELECT s.user_id FROM user_directory_search s
        WHERE s.prefix = ${first} AND s.reach = ${sql.lit(reach)}
          ${alsoMatching(sql.ref('s.user_id'), sql`o.reach = ${sql.lit(reach)}`)}
        ORDER BY s.user_id LIMIT ${limit}`;
      // Those only room-mates may find, two ways, whichever reads less: a word with few keys
      // that room-mates alone may see (at most FEW_KEYS) has each checked for a room shared
      // with the requester; a commoner one has each joined member of the requester's non-public
      // rooms probed for it (members of public rooms are all REACH_PUBLIC, found above), so
      // its cost is bounded by those rooms, never by how common the word is. The count is one
      // value, computed once; the way not taken reads nothing. (Scalar subqueries and `OFFSET
      // 0` keep PostgreSQL to probes: a join would let it read a common word's whole range.)
      const fewKeys = sql`((SELECT count(*) FROM (SELECT 1 FROM user_directory_search c
        WHERE c.prefix = ${first} AND c.reach IN ${reachIn(hidden)}
        LIMIT ${sql.lit(FEW_KEYS + 1)}) k) <= ${sql.lit(FEW_KEYS)})`;
      const roomMatesOfFew = sql<{ user_id: string }>`
        SELECT s.user_id FROM user_directory_search s
        WHERE ${fewKeys} AND s.prefix = ${first} AND s.reach IN ${reachIn(hidden)}
          AND EXISTS (SELECT 1 FROM room_memberships b
            JOIN room_memberships a ON a.room_id = b.room_id
            WHERE b.user_id = s.user_id AND b.membership = 'join'
              AND a.user_id = ${requesterId} AND a.membership = 'join'
              AND NOT EXISTS (SELECT 1 FROM user_directory_public_rooms p WHERE p.room_id = a.room_id)
            LIMIT 1 OFFSET 0)
          ${alsoMatching(sql.ref('s.user_id'), sql`o.reach = s.reach`)}
        ORDER BY s.user_id LIMIT ${limit}`;
      const roomMates = sql<{ user_id: string }>`
        SELECT x.user_id FROM (
          SELECT (SELECT s.user_id FROM user_directory_search s
                  WHERE s.prefix = ${first} AND s.reach IN ${reachIn(hidden)} AND s.user_id = m.user_id
                  LIMIT 1 OFFSET 0) AS user_id
          FROM room_mates m) x
        WHERE x.user_id IS NOT NULL ${alsoMatching(sql.ref('x.user_id'), sql`o.reach IN ${reachIn(hidden)}`)}
        ORDER BY x.user_id LIMIT ${limit}`;
      const self = sql<{ user_id: string }>`
        SELECT s.user_id FROM user_directory_search s
        WHERE s.prefix = ${first} AND s.user_id = ${requesterId} AND s.reach IN ${reachIn(REACHES)}
          ${alsoMatching(sql.ref('s.user_id'), sql`o.reach = s.reach`)}`;
      const lists = [ofReach(REACH_PUBLIC), roomMatesOfFew, roomMates, self];
      if (searchAll) lists.push(ofReach(REACH_LOCAL));
      // One statement (one round trip): the lists' union, in user ID order (the keys' byte
      // order, as each list was cut), with each user's entry.
      const result = await sql<{
        user_id: string;
        display_name: string | null;
        avatar_url: string | null;
      }>`
        WITH room_mates AS MATERIALIZED (
          SELECT DISTINCT b.user_id FROM room_memberships a
          JOIN room_memberships b ON b.room_id = a.room_id AND b.membership = 'join'
          WHERE a.user_id = ${requesterId} AND a.membership = 'join'
            AND NOT EXISTS (SELECT 1 FROM user_directory_public_rooms p WHERE p.room_id = a.room_id)
            AND NOT ${fewKeys})
        SELECT u.user_id, d.display_name, d.avatar_url
        FROM (${sql.join(
          lists.map((list, n) => sql`SELECT user_id FROM (${list}) ${sql.raw(`l${n}`)}`),
          sql` UNION `,
        )}) u
        JOIN user_directory d ON d.user_id = u.user_id
        ORDER BY u.user_id LIMIT ${limit}`.execute(db);
      return result.rows.map((row) => ({
        userId: row.user_id,
        displayName: row.display_name,
        avatarUrl: row.avatar_url,
      }));
    },
  };
}
