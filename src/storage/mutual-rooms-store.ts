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
import { slices, valuesTable } from './values-table.js';

/** Advisory-lock class for users (rooms use the single-key form, a separate key space). */
const USER_LOCK_CLASS = 1;

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

/** One user's change of membership in a room: whether they were joined before and are now. */
export interface JoinedChange {
  userId: string;
  wasJoined: boolean;
  isJoined: boolean;
}

/**
 * Keeps the index in step with membership changes in `roomId` (one or a whole batch, as a
 * partial-state room's completion writes): for every indexed pair with a user who starts or
 * stops being joined, the room is an entry exactly when both users are joined after the
 * changes (the other user's membership as stored, or as changed here). Runs inside the
 * transaction that writes the memberships; a few statements per 500 users whatever the batch.
 */
export async function applyMembershipChanges(
  db: Kysely<Database>,
  dialect: DialectName,
  roomId: string,
  changes: readonly JoinedChange[],
): Promise<void> {
  const changed = new Map<string, boolean>();
  for (const c of changes) if (c.wasJoined !== c.isJoined) changed.set(c.userId, c.isJoined);
  if (changed.size === 0) return;
  const users = [...changed.keys()].sort();
  if (dialect === 'postgres') {
    // Shared locks in user order, as builds take theirs (see lockUsersForBuild).
    for (const part of slices(users)) {
      await sql`SELECT count(pg_advisory_xact_lock_shared(${USER_LOCK_CLASS}, hashtext(u.column1)))
        FROM (SELECT column1 FROM ${valuesTable(
          [...part].map((u) => [u]),
          ['text'],
        )}
              ORDER BY column1 OFFSET 0) u`.execute(db);
    }
  }
  const pairs = new Map<string, [string, string]>();
  for (const part of slices(users)) {
    const rows = await db
      .selectFrom('mutual_room_pairs')
      .select(['user_low', 'user_high'])
      .where((eb) => eb.or([eb('user_low', 'in', part), eb('user_high', 'in', part)]))
      .execute();
    for (const r of rows) pairs.set(`${r.user_low}\u0000${r.user_high}`, [r.user_low, r.user_high]);
  }
  if (pairs.size === 0) return;
  const others = new Set<string>();
  for (const [low, high] of pairs.values())
    for (const u of [low, high]) if (!changed.has(u)) others.add(u);
  const joinedOthers = new Set<string>();
  for (const part of slices([...others])) {
    const rows = await db
      .selectFrom('room_memberships')
      .select('user_id')
      .where('room_id', '=', roomId)
      .where('membership', '=', 'join')
      .where('user_id', 'in', part)
      .execute();
    for (const r of rows) joinedOthers.add(r.user_id);
  }
  const joined = (u: string) => changed.get(u) ?? joinedOthers.has(u);
  const room = await db
    .selectFrom('rooms')
    .select('room_nid')
    .where('room_id', '=', roomId)
    .executeTakeFirstOrThrow();
  const shared: [string, string][] = [];
  const apart: [string, string][] = [];
  for (const pair of pairs.values())
    (joined(pair[0]) && joined(pair[1]) ? shared : apart).push(pair);
  for (const part of slices(shared)) {
    const inserted = await db
      .insertInto('mutual_room_entries')
      .values(
        part.map(([low, high]) => ({
          user_low: low,
          user_high: high,
          room_nid: room.room_nid,
          room_id: roomId,
        })),
      )
      .onConflict((oc) => oc.doNothing())
      .returning(['user_low', 'user_high'])
      .execute();
    await adjustCounts(db, inserted, 1);
  }
  for (const part of slices(apart)) {
    const deleted = await db
      .deleteFrom('mutual_room_entries')
      .where('room_nid', '=', room.room_nid)
      .where((eb) =>
        eb.exists(
          eb
            .selectFrom(valuesTable<{ column1: string; column2: string }>(part, ['text', 'text']))
            .select('k.column1')
            .whereRef('k.column1', '=', 'mutual_room_entries.user_low')
            .whereRef('k.column2', '=', 'mutual_room_entries.user_high'),
        ),
      )
      .returning(['user_low', 'user_high'])
      .execute();
    await adjustCounts(db, deleted, -1);
  }
}

/** `applyMembershipChanges` for one user. */
export async function applyMembershipChange(
  db: Kysely<Database>,
  dialect: DialectName,
  change: { roomId: string; userId: string; wasJoined: boolean; isJoined: boolean },
): Promise<void> {
  await applyMembershipChanges(db, dialect, change.roomId, [change]);
}

/** Adds `delta` to the room count of each pair (each named once), with a new revision. */
async function adjustCounts(
  db: Kysely<Database>,
  pairs: ReadonlyArray<{ user_low: string; user_high: string }>,
  delta: number,
): Promise<void> {
  if (pairs.length === 0) return;
  await db
    .updateTable('mutual_room_pairs')
    .set((eb) => ({ room_count: eb('room_count', '+', delta), revision: newRevision() }))
    .where((eb) =>
      eb.exists(
        eb
          .selectFrom(
            valuesTable<{ column1: string; column2: string }>(
              pairs.map((p) => [p.user_low, p.user_high]),
              ['text', 'text'],
            ),
          )
          .select('k.column1')
          .whereRef('k.column1', '=', 'mutual_room_pairs.user_low')
          .whereRef('k.column2', '=', 'mutual_room_pairs.user_high'),
      ),
    )
    .execute();
}
