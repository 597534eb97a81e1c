/**
 * User-directory reach moved after the event (migration 0046 keeps a reach per user): a join
 * rule change of a room bigger than the inline limit leaves a `user_directory_pending` row in
 * its own transaction, and a worker recomputes its joined members' reach in pages from it
 * (services/user-directory-reach.ts), each page a short transaction moving `after_user` on.
 * `restrictive` (1 when the room stopped being public, at any change the row stands for):
 * until a member's page has run, searches do not show them by their public reach.
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('user_directory_pending')
    .addColumn('room_id', 'text', (c) => c.primaryKey())
    .addColumn('restrictive', 'integer', (c) => c.notNull().defaultTo(sql.lit(0)))
    /** The last member done (members go in user ID order); '' before the first page. */
    .addColumn('after_user', 'text', (c) => c.notNull().defaultTo(''))
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('user_directory_pending').execute();
}
