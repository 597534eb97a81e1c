/**
 * A lease kept on a row (`lease_owner`, `lease_until_ts`): the process that holds it does the
 * row's work (sends to a destination, fetches a room's full state) and others leave it alone
 * until it is given up or runs out. One query for both databases.
 */
import type { Kysely } from 'kysely';
import type { Database } from './schema.js';

/** The tables whose rows carry a lease, and the column that names a row. */
const keyColumns = {
  federation_destinations: 'destination',
  partial_state_rooms: 'room_id',
} as const;

export type LeasedTable = keyof typeof keyColumns;

/**
 * Takes or renews the row's lease until `untilTs` when it is free, ours, or ran out before
 * `now`; false when another holds it (or there is no such row).
 */
export async function updateRowLease(
  db: Kysely<Database>,
  table: LeasedTable,
  key: string,
  owner: string,
  now: number,
  untilTs: number,
): Promise<boolean> {
  const result = await db
    .updateTable(table)
    .set({ lease_owner: owner, lease_until_ts: untilTs })
    .where(keyColumns[table], '=', key)
    .where((eb) =>
      eb.or([
        eb('lease_owner', 'is', null),
        eb('lease_owner', '=', owner),
        eb('lease_until_ts', '<', now),
      ]),
    )
    .executeTakeFirst();
  return Number(result.numUpdatedRows) > 0;
}

/** Gives the row's lease up, if we hold it. */
export async function releaseRowLease(
  db: Kysely<Database>,
  table: LeasedTable,
  key: string,
  owner: string,
): Promise<void> {
  await db
    .updateTable(table)
    .set({ lease_owner: null, lease_until_ts: 0 })
    .where(keyColumns[table], '=', key)
    .where('lease_owner', '=', owner)
    .execute();
}
