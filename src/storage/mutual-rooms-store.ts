/**
 * The mutual-rooms index: for each pair of users someone asked about, the rooms both have
 * joined, ordered by room number, with the count. A page is one range scan of the pair's
 * entries, whatever the number of rooms either user is in.
 *
 * The index is built for a pair on first use and kept in step by `applyMembershipChange`,
 * which `persistEvent` calls in the transaction writing the membership event. On PostgreSQL
 * a build holds an exclusive advisory lock per user and a membership write a shared one, so
 * no change can fall between a build's snapshot and the pair becoming visible.
 */
import { randomInt } from 'node:crypto';
import { sql, type ExpressionBuilder, type Kysely } from 'kysely';
import type { DialectName } from './database.js';
import { prepareQuery } from './prepared-query.js';
import type { Database, MutualRoomEntriesTable } from './schema.js';

/** Advisory-lock class for users (rooms use the single-key form, a separate key space). */
const USER_LOCK_CLASS = 1;
/** Keeps IN lists well under every driver's parameter limit. */
const IN_LIST_CHUNK = 500;

export interface MutualRoomPair {
  roomCount: number;
  usedTs: number;
  /** Changes whenever the pair's rooms do (random, so a rebuilt pair never repeats one). */
  revision: number;
}

/** A new pair revision: 48 random bits, so two states of a pair never share one in practice. */
const newRevision = () => randomInt(2 ** 48 - 1);

export interface MutualRoomEntry {
  roomId: string;
  roomNid: number;
}

export interface MutualRoomsStore {
  /** Holds both users' locks until the transaction ends (PostgreSQL; SQLite has one writer). */
  lockUsersForBuild(users: readonly string[]): Promise<void>;
  selectPair(low: string, high: string): Promise<MutualRoomPair | undefined>;
  /**
   * Indexes the pair's shared rooms among the next `limit` rooms `low` has joined after
   * `afterRoomId` (by room ID; null: all of them); returns the last of those rooms, or null
   * when none were left after this part. A build is a run of these, then `insertPair`, in
   * one transaction.
   */
  insertEntries(
    low: string,
    high: string,
    afterRoomId: string,
    limit: number | null,
  ): Promise<string | null>;
  /** Records the pair, counting the entries `insertEntries` put in. */
  insertPair(low: string, high: string, now: number): Promise<MutualRoomPair>;
  updatePairUsed(low: string, high: string, now: number): Promise<void>;
  /** Up to `limit` pairs unused since `before`. */
  selectIdlePairs(before: number, limit: number): Promise<{ low: string; high: string }[]>;
  /** Forgets the pair (its entries go with `deleteEntries`, in the same transaction). */
  deletePair(low: string, high: string): Promise<void>;
  /** Deletes up to `limit` of the pair's entries, lowest room numbers first; returns how many. */
  deleteEntries(low: string, high: string, limit: number): Promise<number>;
  /**
   * The pair's rooms after room number `afterNid`, in order; with `alsoJoined`, only rooms
   * those users have joined too.
   */
  selectEntries(
    low: string,
    high: string,
    afterNid: number,
    limit: number,
    alsoJoined?: readonly string[],
  ): Promise<MutualRoomEntry[]>;
  /** How many of the pair's rooms `alsoJoined` have all joined as well. */
  countEntriesJoinedBy(low: string, high: string, alsoJoined: readonly string[]): Promise<number>;
  /** Whether the user has any membership of any room known here. */
  selectUserHasMemberships(userId: string): Promise<boolean>;
}

/** On `mutual_room_entries as e`: every one of `users` has joined the entry's room too. */
function joinedByAll(users: readonly string[]) {
  return ({
    and,
    exists,
    selectFrom,
  }: ExpressionBuilder<Database & { e: MutualRoomEntriesTable }, 'e'>) =>
    and(
      users.map((user) =>
        exists(
          selectFrom('room_memberships as m')
            .select('m.room_id')
            .whereRef('m.room_id', '=', 'e.room_id')
            .where('m.user_id', '=', user)
            .where('m.membership', '=', 'join'),
        ),
      ),
    );
}

export function mutualRoomsStore(db: Kysely<Database>, dialect: DialectName): MutualRoomsStore {
  // Every mutual_rooms request reads its pair row.
  const pairRow = prepareQuery(db, 2, (low: string, high: string) =>
    db
      .selectFrom('mutual_room_pairs')
      .select(['room_count', 'used_ts', 'revision'])
      .where('user_low', '=', low)
      .where('user_high', '=', high),
  );
  return {
    async lockUsersForBuild(users) {
      if (dialect !== 'postgres') return;
      for (const user of [...new Set(users)].sort()) {
        await sql`SELECT pg_advisory_xact_lock(${USER_LOCK_CLASS}, hashtext(${user}))`.execute(db);
      }
    },

    async selectPair(low, high) {
      const [row] = await pairRow(low, high);
      return row
        ? {
            roomCount: Number(row.room_count),
            usedTs: Number(row.used_ts),
            revision: Number(row.revision),
          }
        : undefined;
    },

    async insertEntries(low, high, afterRoomId, limit) {
      // The part's last room: the `limit`-th joined room of `low` after `afterRoomId` (one
      // step along the by-user index), or none when fewer are left (this part is the last).
      const bound =
        limit === null
          ? undefined
          : await db
              .selectFrom('room_memberships')
              .select('room_id')
              .where('user_id', '=', low)
              .where('membership', '=', 'join')
              .where('room_id', '>', afterRoomId)
              .orderBy('room_id')
              .limit(1)
              .offset(limit - 1)
              .executeTakeFirst();
      const upTo = bound?.room_id;
      await db
        .insertInto('mutual_room_entries')
        .columns(['user_low', 'user_high', 'room_nid', 'room_id'])
        .expression((eb) =>
          eb
            .selectFrom('room_memberships as a')
            .innerJoin('room_memberships as b', 'b.room_id', 'a.room_id')
            .innerJoin('rooms', 'rooms.room_id', 'a.room_id')
            .select([
              sql.lit(low).as('user_low'),
              sql.lit(high).as('user_high'),
              'rooms.room_nid',
              'a.room_id',
            ])
            .where('a.user_id', '=', low)
            .where('a.membership', '=', 'join')
            .where('b.user_id', '=', high)
            .where('b.membership', '=', 'join')
            // The part's range on every side: PostgreSQL carries only equalities across a
            // join, and given the range on one side it hashed all of the other user's rooms
            // and every room for each part (1.6 s instead of 0.6 s for 100,000 rooms each).
            .where((eb) =>
              eb.and(
                (['a.room_id', 'b.room_id', 'rooms.room_id'] as const).flatMap((column) => [
                  eb(column, '>', afterRoomId),
                  ...(upTo !== undefined ? [eb(column, '<=', upTo)] : []),
                ]),
              ),
            ),
        )
        .execute();
      return upTo ?? null;
    },

    async insertPair(low, high, now) {
      const counted = await db
        .selectFrom('mutual_room_entries')
        .select((eb) => eb.fn.countAll<number | string | bigint>().as('n'))
        .where('user_low', '=', low)
        .where('user_high', '=', high)
        .executeTakeFirstOrThrow();
      const pair = { roomCount: Number(counted.n), usedTs: now, revision: newRevision() };
      await db
        .insertInto('mutual_room_pairs')
        .values({
          user_low: low,
          user_high: high,
          room_count: pair.roomCount,
          used_ts: now,
          revision: pair.revision,
        })
        .execute();
      return pair;
    },

    async updatePairUsed(low, high, now) {
      await db
        .updateTable('mutual_room_pairs')
        .set({ used_ts: now })
        .where('user_low', '=', low)
        .where('user_high', '=', high)
        .execute();
    },

    async selectIdlePairs(before, limit) {
      const rows = await db
        .selectFrom('mutual_room_pairs')
        .select(['user_low', 'user_high'])
        .where('used_ts', '<', before)
        .limit(limit)
        .execute();
      return rows.map((row) => ({ low: row.user_low, high: row.user_high }));
    },

    async deletePair(low, high) {
      await db
        .deleteFrom('mutual_room_pairs')
        .where('user_low', '=', low)
        .where('user_high', '=', high)
        .execute();
    },

    async deleteEntries(low, high, limit) {
      // The part's last entry, then everything of the pair up to it (all, when fewer are left).
      const last = await db
        .selectFrom('mutual_room_entries')
        .select('room_nid')
        .where('user_low', '=', low)
        .where('user_high', '=', high)
        .orderBy('room_nid')
        .limit(1)
        .offset(limit - 1)
        .executeTakeFirst();
      const result = await db
        .deleteFrom('mutual_room_entries')
        .where('user_low', '=', low)
        .where('user_high', '=', high)
        .$if(last !== undefined, (qb) => qb.where('room_nid', '<=', Number(last?.room_nid)))
        .executeTakeFirst();
      return Number(result.numDeletedRows);
    },

    async selectEntries(low, high, afterNid, limit, alsoJoined = []) {
      const rows = await db
        .selectFrom('mutual_room_entries as e')
        .select(['e.room_id', 'e.room_nid'])
        .where('e.user_low', '=', low)
        .where('e.user_high', '=', high)
        .where('e.room_nid', '>', afterNid)
        .where(joinedByAll(alsoJoined))
        .orderBy('e.room_nid')
        .limit(limit)
        .execute();
      return rows.map((r) => ({ roomId: r.room_id, roomNid: Number(r.room_nid) }));
    },

    async countEntriesJoinedBy(low, high, alsoJoined) {
      const row = await db
        .selectFrom('mutual_room_entries as e')
        .select((eb) => eb.fn.countAll<number | string | bigint>().as('n'))
        .where('e.user_low', '=', low)
        .where('e.user_high', '=', high)
        .where(joinedByAll(alsoJoined))
        .executeTakeFirstOrThrow();
      return Number(row.n);
    },

    async selectUserHasMemberships(userId) {
      const row = await db
        .selectFrom('room_memberships')
        .select('room_id')
        .where('user_id', '=', userId)
        .limit(1)
        .executeTakeFirst();
      return row !== undefined;
    },
  };
}

/**
 * Keeps the index in step with one membership change of `userId` in `roomId`: when the user
 * starts or stops being joined, the room enters or leaves every indexed pair of theirs whose
 * other user is joined. Runs inside the transaction that persists the membership event.
 */
export async function applyMembershipChange(
  db: Kysely<Database>,
  dialect: DialectName,
  change: { roomId: string; userId: string; wasJoined: boolean; isJoined: boolean },
): Promise<void> {
  const { roomId, userId, wasJoined, isJoined } = change;
  if (wasJoined === isJoined) return;
  if (dialect === 'postgres') {
    await sql`SELECT pg_advisory_xact_lock_shared(${USER_LOCK_CLASS}, hashtext(${userId}))`.execute(
      db,
    );
  }
  const [asLow, asHigh] = await Promise.all([
    db
      .selectFrom('mutual_room_pairs')
      .select('user_high as other')
      .where('user_low', '=', userId)
      .execute(),
    db
      .selectFrom('mutual_room_pairs')
      .select('user_low as other')
      .where('user_high', '=', userId)
      .execute(),
  ]);
  const others = [...asLow, ...asHigh].map((r) => r.other);
  if (others.length === 0) return;
  const pairOf = (other: string): [string, string] =>
    userId < other ? [userId, other] : [other, userId];

  const room = await db
    .selectFrom('rooms')
    .select('room_nid')
    .where('room_id', '=', roomId)
    .executeTakeFirstOrThrow();

  if (!isJoined) {
    for (const other of others) {
      const [low, high] = pairOf(other);
      const deleted = await db
        .deleteFrom('mutual_room_entries')
        .where('user_low', '=', low)
        .where('user_high', '=', high)
        .where('room_nid', '=', room.room_nid)
        .executeTakeFirst();
      if (Number(deleted.numDeletedRows) > 0) await adjustCount(db, low, high, -1);
    }
    return;
  }

  for (let i = 0; i < others.length; i += IN_LIST_CHUNK) {
    const joined = await db
      .selectFrom('room_memberships')
      .select('user_id')
      .where('room_id', '=', roomId)
      .where('membership', '=', 'join')
      .where('user_id', 'in', others.slice(i, i + IN_LIST_CHUNK))
      .execute();
    for (const { user_id: other } of joined) {
      const [low, high] = pairOf(other);
      const inserted = await db
        .insertInto('mutual_room_entries')
        .values({ user_low: low, user_high: high, room_nid: room.room_nid, room_id: roomId })
        .onConflict((oc) => oc.doNothing())
        .executeTakeFirst();
      if (Number(inserted.numInsertedOrUpdatedRows ?? 0) > 0) await adjustCount(db, low, high, 1);
    }
  }
}

async function adjustCount(
  db: Kysely<Database>,
  low: string,
  high: string,
  delta: number,
): Promise<void> {
  await db
    .updateTable('mutual_room_pairs')
    .set((eb) => ({ room_count: eb('room_count', '+', delta), revision: newRevision() }))
    .where('user_low', '=', low)
    .where('user_high', '=', high)
    .execute();
}
