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
import * as m0005 from './0005-mutual-rooms-revision.js';
import * as m0006 from './0006-event-client-json.js';
import * as m0007 from './0007-membership-client-json.js';
import * as m0008 from './0008-joined-members-index.js';
import * as m0009 from './0009-joined-profiles-index.js';
import * as m0010 from './0010-pending-deactivations.js';
import * as m0011 from './0011-profile-room-updates.js';
import * as m0012 from './0012-server-metadata.js';
import * as m0013 from './0013-membership-history-by-position.js';
import * as m0014 from './0014-federation-pending-leaves.js';
import * as m0015 from './0015-knock-via-server.js';
import * as m0017 from './0017-redactions-by-room.js';
import * as m0020 from './0020-federation.js';
import * as m0021 from './0021-room-dag.js';
import * as m0022 from './0022-invite-room-state.js';
import * as m0023 from './0023-backfill-points.js';
import * as m0024 from './0024-removed-memberships.js';
import * as m0025 from './0025-remote-device-lists.js';
import * as m0028 from './0028-partial-state-rooms.js';
import * as m0030 from './0030-appservices.js';
import * as m0031 from './0031-appservice-room-directory.js';
import * as m0032 from './0032-appservice-registrations.js';
import * as m0033 from './0033-partial-state-lease.js';

import * as m0040 from './0040-media.js';
import * as m0041 from './0041-cross-signing.js';
import * as m0042 from './0042-key-backup.js';
import * as m0043 from './0043-user-directory.js';
import * as m0044 from './0044-remote-media-and-previews.js';
import * as m0045 from './0045-dehydrated-devices.js';
import * as m0046 from './0046-user-directory-reach.js';
import * as m0047 from './0047-user-directory-pending.js';

import * as m0050 from './0050-event-relations.js';
import * as m0051 from './0051-event-search.js';
import * as m0052 from './0052-event-push-actions.js';
import * as m0053 from './0053-pushers.js';
import * as m0054 from './0054-push-evaluation-pending.js';

import * as m0060 from './0060-admin.js';
import * as m0061 from './0061-room-purges.js';
import * as m0062 from './0062-moderation.js';
import * as m0070 from './0070-sliding-sync.js';
import * as m0071 from './0071-room-list-index.js';
import * as m0072 from './0072-partial-state-completions.js';
import * as m0078 from './0078-presence-timeouts.js';
import * as m0080 from './0080-state-resolutions.js';

/**
 * Each area has its own range of numbers (0020s federation, 0030s application services, 0040s
 * media and keys, 0050s relations, search and push, 0060s admin, 0070s sliding sync), so a
 * release can add a migration below one an existing database already ran: pending migrations
 * run in name order whatever has run before (`allowUnorderedMigrations`).
 */
export const migrations: Readonly<Record<string, Migration>> = {
  '0001-accounts': m0001,
  '0002-rooms': m0002,
  '0003-membership-queries': m0003,
  '0004-sync': m0004,
  '0005-mutual-rooms-revision': m0005,
  '0006-event-client-json': m0006,
  '0007-membership-client-json': m0007,
  '0008-joined-members-index': m0008,
  '0009-joined-profiles-index': m0009,
  '0010-pending-deactivations': m0010,
  '0011-profile-room-updates': m0011,
  '0012-server-metadata': m0012,
  '0013-membership-history-by-position': m0013,
  '0014-federation-pending-leaves': m0014,
  '0015-knock-via-server': m0015,
  '0017-redactions-by-room': m0017,
  '0020-federation': m0020,
  '0021-room-dag': m0021,
  '0022-invite-room-state': m0022,
  '0023-backfill-points': m0023,
  '0024-removed-memberships': m0024,
  '0025-remote-device-lists': m0025,
  '0028-partial-state-rooms': m0028,
  '0030-appservices': m0030,
  '0031-appservice-room-directory': m0031,
  '0032-appservice-registrations': m0032,
  '0033-partial-state-lease': m0033,

  '0040-media': m0040,
  '0041-cross-signing': m0041,
  '0042-key-backup': m0042,
  '0043-user-directory': m0043,
  '0044-remote-media-and-previews': m0044,
  '0045-dehydrated-devices': m0045,
  '0046-user-directory-reach': m0046,
  '0047-user-directory-pending': m0047,

  '0050-event-relations': m0050,
  '0051-event-search': m0051,
  '0052-event-push-actions': m0052,
  '0053-pushers': m0053,
  '0054-push-evaluation-pending': m0054,

  '0060-admin': m0060,
  '0061-room-purges': m0061,
  '0062-moderation': m0062,
  '0070-sliding-sync': m0070,
  '0071-room-list-index': m0071,
  '0072-partial-state-completions': m0072,
  '0078-presence-timeouts': m0078,
  '0080-state-resolutions': m0080,
};

export async function migrateToLatest(db: Kysely<unknown>): Promise<void> {
  await migrate(db, (migrator) => migrator.migrateToLatest());
}

/**
 * Brings the schema up or down to the named migration (for tests of a migration's data
 * changes: down to the one before it, write old-form data, then up again).
 */
export async function migrateTo(db: Kysely<unknown>, name: string): Promise<void> {
  if (!(name in migrations)) throw new Error(`no migration named ${name}`);
  await migrate(db, (migrator) => migrator.migrateTo(name));
}

async function migrate(
  db: Kysely<unknown>,
  run: (migrator: Migrator) => ReturnType<Migrator['migrateToLatest']>,
): Promise<void> {
  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => ({ ...migrations }) },
    allowUnorderedMigrations: true,
  });
  const { error, results } = await run(migrator);
  const failed = results?.find((r) => r.status === 'Error');
  if (error || failed) {
    const reason = error instanceof Error ? error.message : String(error ?? 'unknown error');
    throw new Error(`database migration ${failed?.migrationName ?? ''} failed: ${reason}`);
  }
}
