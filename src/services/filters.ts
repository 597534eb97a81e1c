/** Filters for /sync: uploaded and numbered per user, or given inline. */
import { badJson, forbidden, invalidParam, notFound, type MatrixError } from '../core/errors.js';
import { MAX_JSON_DEPTH, nestsDeeperThan } from '../core/json-depth.js';
import { FilterError, parseSyncFilter, type SyncFilter } from '../core/sync-filter.js';
import type { Requester, ServiceContext } from './context.js';

/** Concurrent uploads by one user can race for the next number; the loser tries again. */
const INSERT_ATTEMPTS = 5;

function checked(value: unknown, refuse: (message: string) => MatrixError): SyncFilter {
  try {
    return parseSyncFilter(value);
  } catch (err) {
    if (err instanceof FilterError) throw refuse(`Invalid filter: ${err.message}`);
    throw err;
  }
}

export function createFilterService(ctx: ServiceContext) {
  const filters = () => ctx.storage.stores.filters;

  /** The user's filter with this ID (IDs are decimal numbers), if there is one. */
  async function stored(userId: string, filterId: string): Promise<SyncFilter | undefined> {
    if (!/^\d{1,15}$/.test(filterId)) return undefined;
    const json = await filters().selectFilter(userId, Number(filterId));
    return json === undefined ? undefined : (JSON.parse(json) as SyncFilter);
  }

  function assertOwnUser(requester: Requester, userId: string): void {
    if (requester.userId !== userId) throw forbidden('You can only use your own filters');
  }

  return {
    /** Stores a filter and returns its ID. */
    async create(requester: Requester, userId: string, body: unknown): Promise<string> {
      assertOwnUser(requester, userId);
      const json = JSON.stringify(checked(body, badJson));
      for (let attempt = 1; ; attempt++) {
        try {
          return String(
            await ctx.storage.tx('createFilter', (s) => s.filters.insertFilter(userId, json)),
          );
        } catch (err) {
          if (attempt >= INSERT_ATTEMPTS) throw err;
        }
      }
    },

    /** A stored filter as it was uploaded (after parsing), or 404. */
    async get(requester: Requester, userId: string, filterId: string): Promise<SyncFilter> {
      assertOwnUser(requester, userId);
      const filter = await stored(userId, filterId);
      if (!filter) throw notFound('No such filter');
      return filter;
    },

    /** The filter a /sync names: a stored filter's ID, or the filter itself as JSON. */
    async resolve(requester: Requester, param: string | undefined): Promise<SyncFilter> {
      if (param === undefined || param === '') return {};
      if (param.trimStart().startsWith('{')) {
        let parsed: unknown;
        try {
          parsed = JSON.parse(param);
        } catch {
          throw invalidParam('filter is neither a filter ID nor valid JSON');
        }
        if (nestsDeeperThan(parsed))
          throw invalidParam(`filter may not nest more than ${MAX_JSON_DEPTH} levels deep`);
        return checked(parsed, invalidParam);
      }
      const filter = await stored(requester.userId, param);
      if (!filter) throw invalidParam('No such filter');
      return filter;
    },
  };
}

export type FilterService = ReturnType<typeof createFilterService>;
