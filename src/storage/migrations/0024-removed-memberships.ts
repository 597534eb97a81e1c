/**
 * Memberships that state resolution removed altogether (no event holds the member entry any
 * more) are recorded in `membership_history` as `leave` with an empty event ID, and the
 * entry in `state_history` with an empty event ID too ("no event here from this position").
 * /sync finds a user's removed memberships by this index, which holds only those rows.
 */
import { sql, type Kysely, type RawBuilder, type SqlBool } from 'kysely';

/** The index's condition, a literal, so that the store's query carrying it may use it. */
export const removedMembership: RawBuilder<SqlBool> = sql<SqlBool>`event_id = ${sql.lit('')}`;

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createIndex('membership_history_removed')
    .on('membership_history')
    .columns(['user_id', 'stream_ordering'])
    .where(removedMembership)
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex('membership_history_removed').execute();
}
