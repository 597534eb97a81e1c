/**
 * Facts about the server the database belongs to, recorded at its first start: for now its
 * `server_name`, which every user ID, room ID and event in it names, so that a start with
 * another name is refused instead of serving accounts nobody can log in to.
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('server_metadata')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('value', 'text', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('server_metadata').execute();
}
