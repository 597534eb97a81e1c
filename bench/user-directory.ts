/**
 * The user directory at scale: fills a fresh database with N local users (names drawn from
 * small lists, so common words match thousands), puts the requester in private rooms with
 * every 100th user and every 20th user in one public room, then times
 * `/user_directory/search`'s query through the store, as the service runs it (limit 10 + 1),
 * and, on the same data in the same run, what it would cost without the index of words
 * (`scanSearch` below: the same visibility rule, names matched by `LIKE` over every row).
 *
 *   node --import tsx bench/user-directory.ts [users=100000] [database URL]
 *
 * Without a URL: a fresh SQLite file in a temporary directory. With a PostgreSQL URL: that
 * database, which must be empty. Prints the median and p95 of each query over 30 runs.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { sql, type Kysely } from 'kysely';
import { searchWords } from '../src/core/user-directory.js';
import { openDatabase } from '../src/storage/database.js';
import { openStorage, storesFor } from '../src/storage/index.js';
import type { Database } from '../src/storage/schema.js';

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

/** The comparison: the same visibility rule, names matched by a scan (`LIKE`), no index. */
async function scanSearch(
  db: Kysely<Database>,
  requesterId: string,
  words: readonly string[],
  limit: number,
  searchAll: boolean,
): Promise<number> {
  if (words.length === 0) return 0;
  const matches = words.map(
    (word) =>
      sql`AND (lower(d.user_id) LIKE ${`@${word}%`} OR lower(d.display_name) LIKE ${`%${word}%`})`,
  );
  const everyone = searchAll
    ? sql`OR EXISTS (SELECT 1 FROM users u WHERE u.user_id = d.user_id AND u.deactivated = 0)`
    : sql``;
  const result = await sql<{ user_id: string }>`
    SELECT d.user_id, d.display_name, d.avatar_url
    FROM user_directory d
    WHERE 1 = 1
    ${sql.join(matches, sql` `)}
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
  return result.rows.length;
}

function stats(times: number[]): { median: number; p95: number } {
  times.sort((a, b) => a - b);
  return { median: times[Math.floor(RUNS / 2)] ?? 0, p95: times[Math.floor(RUNS * 0.95)] ?? 0 };
}

async function main(): Promise<void> {
  const users = Number(process.argv[2] ?? 100_000);
  const given = process.argv[3];
  const dir = given ? null : mkdtempSync(path.join(tmpdir(), 'commons-directory-bench-'));
  const url = given ?? `sqlite:${path.join(dir ?? '', 'bench.db')}`;
  const storage = await openStorage(url, { poolSize: 2 });
  let closed = false;
  try {
    const started = performance.now();
    const BATCH = 1000;
    for (let at = 0; at < users; at += BATCH) {
      await storage.tx('benchUsers', async (tx) => {
        for (let i = at; i < Math.min(users, at + BATCH); i++) {
          const first = FIRST[i % FIRST.length] ?? '';
          const last = LAST[Math.floor(i / FIRST.length) % LAST.length] ?? '';
          await tx.accounts.insertUser({
            userId: `@user${i}:bench.local`,
            localpart: `user${i}`,
            passwordHash: null,
            isAdmin: false,
            displayname: `${first} ${last} ${i}`,
            createdTs: 0,
          });
        }
      });
    }
    console.log(
      `${storage.dialect}: ${users} users written in ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );
    // Rooms: the requester with every 100th user (in private rooms of 100), every 20th user
    // in one public room. Written as membership rows (the bench measures the search).
    // A handle of the bench's own for the rows and the previous query (SQLite lets one
    // handle hold the file): the storage is closed first.
    await storage.close();
    closed = true;
    const raw = await openDatabase(url, { poolSize: 2 });
    const stores = storesFor(raw.db, raw.dialect, async () => undefined, 'bench');
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
    for (let at = 0; at < rows.length; at += 500) {
      await raw.db
        .insertInto('room_memberships')
        .values(
          rows.slice(at, at + 500).map((row, n) => ({
            ...row,
            membership: 'join',
            event_id: `$m${at + n}`,
            stream_ordering: at + n,
            forgotten: 0,
          })),
        )
        .execute();
    }
    await stores.userDirectory.setRoomPublic('!public:bench.local', true);
    console.log(
      `  rooms: the requester shares rooms with ${shared.length - 1} users; ${Math.ceil((users - 1) / 20)} are in a public room`,
    );
    console.log(
      '  search | search_all | rows (index / scan) | index: median / p95 ms | scan: median / p95 ms',
    );
    for (const term of ['user12345', 'user5', 'smith', 'chloe garcia', 'zzz']) {
      for (const searchAll of [true, false]) {
        const words = searchWords(term);
        const now: number[] = [];
        const before: number[] = [];
        let found = 0;
        let foundBefore = 0;
        for (let run = 0; run < RUNS; run++) {
          let t0 = performance.now();
          found = (await stores.userDirectory.searchUsers(requester, words, 11, searchAll)).length;
          now.push(performance.now() - t0);
          t0 = performance.now();
          foundBefore = await scanSearch(raw.db, requester, words, 11, searchAll);
          before.push(performance.now() - t0);
        }
        const a = stats(now);
        const b = stats(before);
        console.log(
          `  "${term}" | ${searchAll} | ${found} / ${foundBefore} | ${a.median.toFixed(2)} / ${a.p95.toFixed(2)} | ${b.median.toFixed(2)} / ${b.p95.toFixed(2)}`,
        );
      }
    }
    await raw.close();
  } finally {
    if (!closed) await storage.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
}

await main();
