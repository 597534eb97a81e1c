/** The server a database belongs to (migration 0012): its `server_name`, recorded once. */
import type { Kysely } from 'kysely';
import type { Database } from './schema.js';

/**
 * The server name the database belongs to. The first start records `candidate`; a database
 * made before the name was recorded is taken to belong to the domain of its users, if any.
 */
export async function claimServerName(db: Kysely<Database>, candidate: string): Promise<string> {
  const recorded = () =>
    db
      .selectFrom('server_metadata')
      .select('value')
      .where('name', '=', 'server_name')
      .executeTakeFirst();
  const found = await recorded();
  if (found) return found.value;
  const user = await db.selectFrom('users').select('user_id').limit(1).executeTakeFirst();
  const domain = user ? user.user_id.slice(user.user_id.indexOf(':') + 1) : candidate;
  // Several processes may start at once: the first row written wins for all of them.
  await db
    .insertInto('server_metadata')
    .values({ name: 'server_name', value: domain })
    .onConflict((oc) => oc.column('name').doNothing())
    .execute();
  return (await recorded())?.value ?? domain;
}
