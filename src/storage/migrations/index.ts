/**
 * Numbered migrations, recorded in `kysely_migration`, applied at start-up in one
 * transaction (both dialects have transactional DDL) under Kysely's migration lock, so
 * several processes starting at once apply each migration exactly once.
 */
import { Migrator, type Kysely, type Migration } from 'kysely';
import * as m0001 from './0001-accounts.js';
import * as m0002 from './0002-rooms.js';
import * as m0003 from './0003-membership-queries.js';
import * as m0004 from './0004-sync.js';

const migrations: Record<string, Migration> = {
  '0001-accounts': m0001,
  '0002-rooms': m0002,
  '0003-membership-queries': m0003,
  '0004-sync': m0004,
};

export async function migrateToLatest(db: Kysely<unknown>): Promise<void> {
  const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations } });
  const { error, results } = await migrator.migrateToLatest();
  const failed = results?.find((r) => r.status === 'Error');
  if (error || failed) {
    const reason = error instanceof Error ? error.message : String(error ?? 'unknown error');
    throw new Error(`database migration ${failed?.migrationName ?? ''} failed: ${reason}`);
  }
}
