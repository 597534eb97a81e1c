/** Filters users upload for /sync (POST /user/{userId}/filter), numbered per user. */
import type { Kysely } from 'kysely';
import type { Database } from './schema.js';

export interface FilterStore {
  /** Stores the filter under the user's next number and returns that number. */
  insertFilter(userId: string, filterJson: string): Promise<number>;
  selectFilter(userId: string, filterId: number): Promise<string | undefined>;
}

export function filterStore(db: Kysely<Database>): FilterStore {
  return {
    async insertFilter(userId, filterJson) {
      const row = await db
        .selectFrom('filters')
        .select((eb) => eb.fn.max('filter_id').as('latest'))
        .where('user_id', '=', userId)
        .executeTakeFirst();
      const filterId = Number(row?.latest ?? -1) + 1;
      await db
        .insertInto('filters')
        .values({ user_id: userId, filter_id: filterId, filter_json: filterJson })
        .execute();
      return filterId;
    },

    async selectFilter(userId, filterId) {
      const row = await db
        .selectFrom('filters')
        .select('filter_json')
        .where('user_id', '=', userId)
        .where('filter_id', '=', filterId)
        .executeTakeFirst();
      return row?.filter_json;
    },
  };
}
