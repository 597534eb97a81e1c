/**
 * A revision per indexed mutual-rooms pair: a fresh random number whenever the pair's rooms
 * change (and when it is built), so a process can keep pages it answered and know, from the
 * pair row it reads anyway, whether they still hold. Existing pairs start at 0; no process
 * has a page cached across the upgrade.
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('mutual_room_pairs')
    .addColumn('revision', 'bigint', (c) => c.notNull().defaultTo(sql.lit(0)))
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('mutual_room_pairs').dropColumn('revision').execute();
}
