/**
 * Mutual rooms (spec v1.19, MSC2666): the rooms the requester and one user (or, when
 * enabled, several) have both joined, in room-creation order, paged with authenticated
 * tokens. Pages are read from the per-pair index in storage, so a page costs one range scan
 * however many rooms either user is in; the pair's first request builds its index.
 */
import { randomBytes } from 'node:crypto';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { LRUCache } from 'lru-cache';
import { invalidParam } from '../core/errors.js';
import { issuePagingToken, readPagingToken, type PagingTokenKey } from '../core/paging-token.js';
import { statementsHoldProcess, type Requester, type ServiceContext } from './context.js';
import { createUserCache } from './user-cache.js';

export interface MutualRoomsPage {
  joined: string[];
  count: number;
  nextBatch?: string;
}

interface PairState {
  low: string;
  high: string;
  roomCount: number;
  /** The index's revision of the pair's rooms (null when nothing is indexed). */
  revision: number | null;
  /** The other user has no membership anywhere: nothing is shared, and nothing is indexed. */
  empty: boolean;
}

/** A pair row as read from the index. */
interface CachedPair {
  roomCount: number;
  revision: number;
  usedTs: number;
}

/** A page answered before, kept while the pairs it was read from keep their revisions. */
interface CachedPage {
  revisions: string;
  page: MutualRoomsPage;
  /** When `page.nextBatch` was issued: it is reused for at most TOKEN_REUSE_MS. */
  issuedAt: number;
  /** When the `from` token the page answers expires (the page is not served after). */
  fromExpiresAt: number;
}

const TOKEN_SECRET_NAME = 'mutual_rooms_paging_key';
/** Idle pairs dropped per index build, so cleaning up never costs a request much. */
const IDLE_PAIRS_PER_BUILD = 16;
/**
 * Rooms of one user looked up per statement when building a pair's index: about 15 ms of
 * SQLite on the benchmark machine (a statement there holds the event loop).
 */
const BUILD_PART_ROOMS = 2500;
/** Rooms read per query when answering with every page at once (legacy paths). */
const FULL_LIST_BATCH = 1000;
/** Pages kept per process (a page of 100 room IDs is about 5 KiB). */
const PAGE_CACHE_ENTRIES = 4096;
/** Pair rows kept per process (a few hundred bytes each). */
const PAIR_CACHE_ENTRIES = 16_384;
/**
 * A cached page's next_batch token is handed out again for at most a minute (and a tenth of
 * its lifetime), then the page is read and the token issued afresh.
 */
const TOKEN_REUSE_MS = 60_000;

export function createMutualRoomsService(
  ctx: ServiceContext,
  /**
   * Waits until the requester's rooms joined with partial state are complete (their remote
   * members are not all known before): called when another server's user is asked about.
   */
  awaitRemoteMembers?: (requester: string, userIds: readonly string[]) => Promise<void>,
) {
  const settings = ctx.settings.mutualRooms;
  const store = () => ctx.storage.stores.mutualRooms;
  let key: Promise<PagingTokenKey> | null = null;
  /**
   * Pages by request (requester, users, `from` token as given). A hit is served only if the
   * pairs' revisions are unchanged: any membership change that alters a pair's rooms, in any
   * process, gives it a new revision.
   */
  const pages = new LRUCache<string, CachedPage>({ max: PAGE_CACHE_ENTRIES });
  /**
   * Pair rows, dropped in every process by any committed change naming either user (each
   * membership event names its user), so their revisions can be trusted without a read.
   */
  const pairRows = createUserCache<CachedPair>(ctx.storage.changes, {
    max: PAIR_CACHE_ENTRIES,
    usersNamedBy: (change) => change.users,
    stats: ctx.cacheStats?.counter('mutual_rooms_pairs'),
  });
  const pageStats = ctx.cacheStats?.counter('mutual_rooms_pages') ?? { hits: 0, misses: 0 };
  /**
   * A pair's last-use time is written at most this often. A cached row is read again once
   * it is this old, so no process can drop it as idle (after `cacheIdleSeconds`) while it is
   * cached here.
   */
  const usedRefreshMs = (settings.cacheIdleSeconds * 1000) / 8;
  const reuseMs = Math.min(TOKEN_REUSE_MS, (settings.tokenTtlSeconds * 1000) / 10);

  /** The key shared by every process on this database, created by the first to ask. */
  function tokenKey(): Promise<PagingTokenKey> {
    key ??= ctx.storage.stores.secrets
      .selectOrInsertSecret(TOKEN_SECRET_NAME, randomBytes(32).toString('hex'))
      .then((hex) => ({ secret: Buffer.from(hex, 'hex'), purpose: 'mutual_rooms' }))
      .catch((err: unknown) => {
        key = null;
        throw err;
      });
    return key;
  }

  async function pairState(requester: string, other: string): Promise<PairState> {
    const [low, high] = requester < other ? [requester, other] : [other, requester];
    const now = ctx.now();
    const pairKey = `${low}\n${high}`;
    const cached = pairRows.get(pairKey);
    if (cached && now - cached.usedTs <= usedRefreshMs)
      return { low, high, roomCount: cached.roomCount, revision: cached.revision, empty: false };
    const ticket = pairRows.ticket();
    const existing = await store().selectPair(low, high);
    if (existing) {
      // Refresh the last-use time now and then, not on every page (it is a write).
      let usedTs = existing.usedTs;
      if (now - usedTs > usedRefreshMs) {
        await store().updatePairUsed(low, high, now);
        usedTs = now;
      }
      const { roomCount, revision } = existing;
      pairRows.set(pairKey, { roomCount, revision, usedTs }, [low, high], ticket);
      return { low, high, roomCount, revision, empty: false };
    }
    if (!(await store().selectUserHasMemberships(other)))
      return { low, high, roomCount: 0, revision: null, empty: true };
    const built = await ctx.storage.tx('buildMutualRooms', async (stores) => {
      await stores.mutualRooms.lockUsersForBuild([low, high]);
      const raced = await stores.mutualRooms.selectPair(low, high);
      if (raced) return raced;
      // Where a statement holds the process (SQLite), in parts with the event loop free
      // between them: one over two users in 100,000 rooms each took 0.4-0.7 s. (PostgreSQL
      // takes twice as long in parts, and is not held up meanwhile.)
      const part = statementsHoldProcess(ctx) ? BUILD_PART_ROOMS : null;
      for (let after = ''; ;) {
        const last = await stores.mutualRooms.insertEntries(low, high, after, part);
        if (last === null) break;
        after = last;
        await yieldToEventLoop();
      }
      return stores.mutualRooms.insertPair(low, high, now);
    });
    await ctx.storage.tx('dropIdleMutualRooms', async (stores) => {
      const idle = await stores.mutualRooms.selectIdlePairs(
        now - settings.cacheIdleSeconds * 1000,
        IDLE_PAIRS_PER_BUILD,
      );
      for (const pair of idle) {
        await stores.mutualRooms.deletePair(pair.low, pair.high);
        // In parts too, like the build.
        while (
          (await stores.mutualRooms.deleteEntries(pair.low, pair.high, BUILD_PART_ROOMS)) ===
          BUILD_PART_ROOMS
        )
          await yieldToEventLoop();
      }
    });
    pairRows.set(pairKey, built, [low, high], ticket);
    return { low, high, roomCount: built.roomCount, revision: built.revision, empty: false };
  }

  /** The position a `from` token points at (the start without one); 400 when it is not valid. */
  async function readFrom(
    binding: readonly string[],
    from: string | undefined,
    now: number,
  ): Promise<{ cursor: number; expiresAt: number }> {
    if (from === undefined) return { cursor: 0, expiresAt: Number.POSITIVE_INFINITY };
    const check = readPagingToken(await tokenKey(), binding, from, now);
    if (!check.ok)
      throw invalidParam(
        check.reason === 'expired'
          ? 'The from token has expired'
          : 'The from token is not valid for this request',
      );
    return { cursor: check.cursor, expiresAt: check.expiresAt };
  }

  /** One page: rooms after `cursor` (a room number), at most `limit`, and the total count. */
  async function readPage(
    pairs: readonly PairState[],
    userIds: readonly string[],
    cursor: number,
    limit: number,
  ): Promise<{ rooms: { roomId: string; roomNid: number }[]; count: number; more: boolean }> {
    if (pairs.some((p) => p.empty || p.roomCount === 0))
      return { rooms: [], count: 0, more: false };
    // Drive from the smallest pair; the other users must have joined too.
    const order = pairs.map((pair, i) => ({ pair, userId: userIds[i] ?? '' }));
    order.sort((a, b) => a.pair.roomCount - b.pair.roomCount);
    const [driver, ...rest] = order;
    if (!driver) return { rooms: [], count: 0, more: false };
    const alsoJoined = rest.map((r) => r.userId);
    const rows = await store().selectEntries(
      driver.pair.low,
      driver.pair.high,
      cursor,
      limit + 1,
      alsoJoined,
    );
    const count =
      alsoJoined.length === 0
        ? driver.pair.roomCount
        : await store().countEntriesJoinedBy(driver.pair.low, driver.pair.high, alsoJoined);
    return { rooms: rows.slice(0, limit), count, more: rows.length > limit };
  }

  return {
    /**
     * One page of the rooms shared with `userIds` (distinct, valid, not the requester's own),
     * starting after the room the `from` token points at. A bad, altered, expired or foreign
     * token is 400 M_INVALID_PARAM.
     */
    async page(
      requester: Requester,
      userIds: readonly string[],
      from: string | undefined,
    ): Promise<MutualRoomsPage> {
      await awaitRemoteMembers?.(requester.userId, userIds);
      const binding = [requester.userId, ...[...userIds].sort()];
      const now = ctx.now();
      const cacheKey = `${binding.join('\n')}\n${from ?? ''}`;
      const cached = pages.get(cacheKey);
      // A cached page's token was checked when the page was read; any other token is
      // checked first, before a pair's index is looked up (or built).
      const position = cached ? null : await readFrom(binding, from, now);
      const pairs = await Promise.all(userIds.map((u) => pairState(requester.userId, u)));
      const revisions = pairs.map((p) => p.revision ?? 'none').join(',');
      if (
        cached &&
        cached.revisions === revisions &&
        now < cached.fromExpiresAt &&
        now - cached.issuedAt < reuseMs
      ) {
        pageStats.hits++;
        return cached.page;
      }
      pageStats.misses++;

      const tokens = await tokenKey();
      const { cursor, expiresAt: fromExpiresAt } = position ?? (await readFrom(binding, from, now));
      const page = await readPage(pairs, userIds, cursor, settings.batchSize);
      const result: MutualRoomsPage = {
        joined: page.rooms.map((r) => r.roomId),
        count: page.count,
      };
      const last = page.rooms[page.rooms.length - 1];
      if (page.more && last) {
        result.nextBatch = issuePagingToken(
          tokens,
          binding,
          last.roomNid,
          now + settings.tokenTtlSeconds * 1000,
        );
      }
      pages.set(cacheKey, { revisions, page: result, issuedAt: now, fromExpiresAt });
      return result;
    },

    /** Every shared room at once (the proposal's first, unpaged form). */
    async all(requester: Requester, userId: string): Promise<{ joined: string[]; count: number }> {
      await awaitRemoteMembers?.(requester.userId, [userId]);
      const joined: string[] = [];
      const pairs = [await pairState(requester.userId, userId)];
      let cursor = 0;
      for (;;) {
        const page = await readPage(pairs, [userId], cursor, FULL_LIST_BATCH);
        joined.push(...page.rooms.map((r) => r.roomId));
        const last = page.rooms[page.rooms.length - 1];
        if (!page.more || !last) break;
        cursor = last.roomNid;
      }
      return { joined, count: joined.length };
    },
  };
}

export type MutualRoomsService = ReturnType<typeof createMutualRoomsService>;
