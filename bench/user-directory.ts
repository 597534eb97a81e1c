/**
 * The user directory at scale: fills a fresh database with N local users (names drawn from
 * small lists, so common words match thousands), then times `/user_directory/search`'s
 * query through the store, as the service runs it (limit 10 + 1).
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
import { searchWords } from '../src/core/user-directory.js';
import { openStorage } from '../src/storage/index.js';

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

async function main(): Promise<void> {
  const users = Number(process.argv[2] ?? 100_000);
  const given = process.argv[3];
  const dir = given ? null : mkdtempSync(path.join(tmpdir(), 'commons-directory-bench-'));
  const url = given ?? `sqlite:${path.join(dir ?? '', 'bench.db')}`;
  const storage = await openStorage(url, { poolSize: 2 });
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
    const requester = '@user0:bench.local';
    for (const term of ['user12345', 'user5', 'smith', 'chloe garcia', 'zzz']) {
      for (const searchAll of [true, false]) {
        const words = searchWords(term);
        const times: number[] = [];
        let found = 0;
        for (let run = 0; run < RUNS; run++) {
          const t0 = performance.now();
          found = (await storage.stores.userDirectory.searchUsers(requester, words, 11, searchAll))
            .length;
          times.push(performance.now() - t0);
        }
        times.sort((a, b) => a - b);
        const median = times[Math.floor(RUNS / 2)] ?? 0;
        const p95 = times[Math.floor(RUNS * 0.95)] ?? 0;
        console.log(
          `  "${term}" search_all=${searchAll}: ${found} rows, median ${median.toFixed(2)} ms, p95 ${p95.toFixed(2)} ms`,
        );
      }
    }
  } finally {
    await storage.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
}

await main();
