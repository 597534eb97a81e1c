/**
 * Secrets every process sharing the database must agree on (e.g. the key that
 * authenticates paging tokens), created once by whichever process asks first.
 */
import type { Kysely } from 'kysely';
import type { Database } from './schema.js';

export interface SecretStore {
  /** The secret named `name`, storing `candidate` first if there is none yet. */
  selectOrInsertSecret(name: string, candidate: string): Promise<string>;
}

export function secretStore(db: Kysely<Database>): SecretStore {
  return {
    async selectOrInsertSecret(name, candidate) {
      await db
        .insertInto('server_secrets')
        .values({ name, secret: candidate })
        .onConflict((oc) => oc.column('name').doNothing())
        .execute();
      const row = await db
        .selectFrom('server_secrets')
        .select('secret')
        .where('name', '=', name)
        .executeTakeFirstOrThrow();
      return row.secret;
    },
  };
}
