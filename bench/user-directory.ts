/**
 * The user directory at scale: fills a fresh database with N local users (names drawn from
 * small lists, so common words match thousands), puts the requester in private rooms with
 * every 100th user and every 20th user in one public room, then times
 * `/user_directory/search`'s query through the store, as the service runs it (limit 10 + 1),
 * and, on the same data in the same run, the query it replaced (migration 0043's index of
 * whole words, read by prefix range, visibility checked for each match in user ID order),
 * over a copy of that words table the bench writes itself.
 *
 *   node --import tsx bench/user-directory.ts [users=100000] [database URL]
 *
 * Without a URL: a fresh SQLite file in a temporary directory. With a PostgreSQL URL: that
 * database, which must be empty (COMMONS_BENCH_KEEP=1 keeps the SQLite file, to read query
 * plans). Prints the median and p95 of each query over 30 runs, and
 * what the writes cost: a profile change, a join to the public room, and the public room
 * (with its members) made private and public again.
 *
 * The users, their profiles and their directory entries are written in bulk (the entries as
 * the store writes them: every prefix of their words, all local users); the memberships as
 * rows, then the public room's join rule through the store, which sets its members' reach.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { sql, type Kysely } from 'kysely';
import {
  directoryPrefixes,
  directoryTerms,
  prefixUpperBound,
  searchWords,
} from '../src/core/user-directory.js';
import { openDatabase } from '../src/storage/database.js';
import { migrateToLatest } from '../src/storage/migrations/index.js';
import { storesFor } from '../src/storage/index.js';
import type { Database } from '../src/storage/schema.js';
import { REACH_LOCAL } from '../src/storage/user-directory-store.js';

const FIRST = [
  'Anna',
  'Björn',
  'Chloé',
  'David',
  'Émile',
  'Fatima',
  'Grace',
  'Hiro',
  'Inès',
  'Jonas',
];
const LAST = ['Smith', 'Müller', 'García', 'Nakamura', 'Okafor', 'Rossi', 'Novák', 'Dubois'];
const RUNS = 30;
const PRIVATE_ROOM_SIZE = 100;
const BATCH = 500;
const TERMS = [
  'user12345',
  'user5',
  'smith',
  'chloe garcia',
  'anna smith',
  'a',
  'us',
  'bench',
  'zzz',
];

/**
 * The query this bench compares with, as migration 0043's store ran it: the first word's
 * prefix range of whole words, then the other words and the visibility rule for each match,
 * walking the directory in user ID order.
 */
async function previousSearch(
  db: Kysely<Database>,
  requesterId: string,
  words: readonly string[],
  limit: number,
  searchAll: boolean,
): Promise<string[]> {
  const [first, ...rest] = words;
  if (first === undefined) return [];
  const termMatch = (word: string) =>
    sql`SELECT t.user_id FROM bench_directory_terms t WHERE t.term >= ${word} AND t.term < ${prefixUpperBound(word)}`;
  const others = rest.map(
    (word) =>
      sql`AND EXISTS (SELECT 1 FROM bench_directory_terms w WHERE w.user_id = d.user_id AND w.term >= ${word} AND w.term < ${prefixUpperBound(word)})`,
  );
  const everyone = searchAll
    ? sql`OR EXISTS (SELECT 1 FROM users u WHERE u.user_id = d.user_id AND u.deactivated = 0)`
    : sql``;
  const result = await sql<{ user_id: string }>`
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
  return result.rows.map((row) => row.user_id);
}

function stats(times: number[]): { median: number; p95: number } {
  times.sort((a, b) => a - b);
  return { median: times[Math.floor(RUNS / 2)] ?? 0, p95: times[Math.floor(RUNS * 0.95)] ?? 0 };
}

const ms = (t0: number) => (performance.now() - t0).toFixed(1);

async function insertAll<T>(rows: T[], write: (batch: T[]) => Promise<unknown>): Promise<void> {
  for (let at = 0; at < rows.length; at += BATCH) await write(rows.slice(at, at + BATCH));
}

async function main(): Promise<void> {
  const users = Number(process.argv[2] ?? 100_000);
  const given = process.argv[3];
  const dir = given ? null : mkdtempSync(path.join(tmpdir(), 'commons-directory-bench-'));
  const url = given ?? `sqlite:${path.join(dir ?? '', 'bench.db')}`;
  const raw = await openDatabase(url, { poolSize: 2 });
  try {
    await migrateToLatest(raw.db as unknown as Kysely<unknown>);
    const db = raw.db;
    const stores = storesFor(db, raw.dialect, async () => undefined, 'bench');
    const started = performance.now();
    // Migration 0043's words table, its words compared byte by byte; its user IDs compare as
    // user_directory's do since migration 0046 (byte by byte), so the old query's join from
    // words to entries reads an index as it did when both used the default collation.
    const bytewise = raw.dialect === 'postgres' ? sql`COLLATE "C"` : sql``;
    await sql`CREATE TABLE bench_directory_terms (term TEXT ${bytewise} NOT NULL, user_id TEXT ${bytewise} NOT NULL, PRIMARY KEY (term, user_id))`.execute(
      db,
    );
    await sql`CREATE INDEX bench_directory_terms_by_user ON bench_directory_terms (user_id)`.execute(
      db,
    );
    let keys = 0;
    for (let at = 0; at < users; at += BATCH) {
      const batch = Array.from({ length: Math.min(BATCH, users - at) }, (_, n) => {
        const i = at + n;
        const first = FIRST[i % FIRST.length] ?? '';
        const last = LAST[Math.floor(i / FIRST.length) % LAST.length] ?? '';
        return { userId: `@user${i}:bench.local`, name: `${first} ${last} ${i}`, i };
      });
      await db.transaction().execute(async (tx) => {
        await tx
          .insertInto('users')
          .values(
            batch.map((u) => ({
              user_id: u.userId,
              localpart: `user${u.i}`,
              password_hash: null,
              is_admin: 0,
              deactivated: 0,
              created_ts: 0,
            })),
          )
          .execute();
        await tx
          .insertInto('profiles')
          .values(batch.map((u) => ({ user_id: u.userId, displayname: u.name, avatar_url: null })))
          .execute();
        await tx
          .insertInto('user_directory')
          .values(
            batch.map((u) => ({
              user_id: u.userId,
              display_name: u.name,
              avatar_url: null,
              reach: REACH_LOCAL,
            })),
          )
          .execute();
        const search = batch.flatMap((u) =>
          directoryPrefixes(u.userId, u.name).map((prefix) => ({
            prefix,
            reach: REACH_LOCAL,
            user_id: u.userId,
          })),
        );
        keys += search.length;
        await insertAll(search, (rows) =>
          tx.insertInto('user_directory_search').values(rows).execute(),
        );
        const terms = batch.flatMap((u) =>
          directoryTerms(u.userId, u.name).map((term) => ({ term, user_id: u.userId })),
        );
        await insertAll(terms, (rows) =>
          sql`INSERT INTO bench_directory_terms (term, user_id) VALUES ${sql.join(
            rows.map((row) => sql`(${row.term}, ${row.user_id})`),
          )}`.execute(tx),
        );
      });
    }
    console.log(
      `${raw.dialect}: ${users} users (${keys} directory keys) written in ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );
    // Rooms: the requester with every 100th user (in private rooms of 100), every 20th user
    // in one public room. Written as membership rows (the bench measures the search).
    const requester = '@user0:bench.local';
    const rows: { room_id: string; user_id: string }[] = [];
    const shared = Array.from({ length: Math.floor(users / 100) }, (_, k) => k * 100);
    for (let k = 0; k < shared.length; k += PRIVATE_ROOM_SIZE - 1) {
      const room = `!private${k}:bench.local`;
      rows.push({ room_id: room, user_id: requester });
      for (const i of shared.slice(k, k + PRIVATE_ROOM_SIZE - 1))
        if (i !== 0) rows.push({ room_id: room, user_id: `@user${i}:bench.local` });
    }
    for (let i = 1; i < users; i += 20)
      rows.push({ room_id: '!public:bench.local', user_id: `@user${i}:bench.local` });
    await insertAll(rows, (batch) =>
      db
        .insertInto('room_memberships')
        .values(
          batch.map((row, n) => ({
            ...row,
            membership: 'join',
            event_id: `$m${row.room_id}${row.user_id}${n}`,
            stream_ordering: n,
            forgotten: 0,
          })),
        )
        .execute(),
    );
    const publicMembers = Math.ceil((users - 1) / 20);
    let t0 = performance.now();
    await db
      .transaction()
      .execute((tx) =>
        storesFor(tx, raw.dialect, async () => undefined, 'bench').userDirectory.setRoomPublic(
          '!public:bench.local',
          true,
        ),
      );
    const madePublic = ms(t0);
    // What autovacuum would have done by now on a server: statistics and the visibility map
    // after the bulk load (the queries read index-only).
    if (raw.dialect === 'postgres') await sql`VACUUM ANALYZE`.execute(db);
    console.log(
      `  rooms: the requester shares rooms with ${shared.length - 1} users; ${publicMembers} are in a public room (its join rule set in ${madePublic} ms)`,
    );
    console.log(
      '  search | search_all | rows (now / before) | same | now: median / p95 ms | before: median / p95 ms',
    );
    for (const term of TERMS) {
      for (const searchAll of [true, false]) {
        const words = searchWords(term);
        const now: number[] = [];
        const before: number[] = [];
        let found: string[] = [];
        let foundBefore: string[] = [];
        for (let run = 0; run < RUNS; run++) {
          t0 = performance.now();
          found = (await stores.userDirectory.searchUsers(requester, words, 11, searchAll)).map(
            (row) => row.userId,
          );
          now.push(performance.now() - t0);
          t0 = performance.now();
          foundBefore = await previousSearch(db, requester, words, 11, searchAll);
          before.push(performance.now() - t0);
        }
        const a = stats(now);
        const b = stats(before);
        const same =
          found.length === foundBefore.length && found.every((id, n) => id === foundBefore[n]);
        console.log(
          `  "${term}" | ${searchAll} | ${found.length} / ${foundBefore.length} | ${same ? 'yes' : `NO: ${found.join(',')} vs ${foundBefore.join(',')}`} | ${a.median.toFixed(2)} / ${a.p95.toFixed(2)} | ${b.median.toFixed(2)} / ${b.p95.toFixed(2)}`,
        );
      }
    }
    // What the writes cost: each in its own transaction, as the server runs it.
    const inTx = async (work: (s: typeof stores) => Promise<void>) => {
      const t = performance.now();
      await db
        .transaction()
        .execute((tx) => work(storesFor(tx, raw.dialect, async () => undefined, 'bench')));
      return ms(t);
    };
    const renamed = await inTx((s) =>
      s.userDirectory.upsertUser('@user77:bench.local', 'Zoë Ångström 77', null),
    );
    const joinedAt = users - 3; // not a member of the public room
    await db
      .insertInto('room_memberships')
      .values({
        room_id: '!public:bench.local',
        user_id: `@user${joinedAt}:bench.local`,
        membership: 'join',
        event_id: '$joined',
        stream_ordering: 0,
        forgotten: 0,
      })
      .execute();
    const { applyDirectoryMemberships } = await import('../src/storage/user-directory-store.js');
    t0 = performance.now();
    await db
      .transaction()
      .execute((tx) =>
        applyDirectoryMemberships(tx, '!public:bench.local', [`@user${joinedAt}:bench.local`]),
      );
    const joined = ms(t0);
    const privateAgain = await inTx((s) =>
      s.userDirectory.setRoomPublic('!public:bench.local', false),
    );
    const publicAgain = await inTx((s) =>
      s.userDirectory.setRoomPublic('!public:bench.local', true),
    );
    console.log(
      `  writes (ms): a display name change ${renamed}; a join to the public room ${joined}; the public room (${publicMembers + 1} members) made private ${privateAgain}, public again ${publicAgain}`,
    );
  } finally {
    await raw.close();
    if (dir && process.env.COMMONS_BENCH_KEEP) console.log(`  kept: ${url}`);
    else if (dir) rmSync(dir, { recursive: true, force: true });
  }
}

await main();
