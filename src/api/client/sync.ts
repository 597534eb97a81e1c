import { Type } from 'typebox';
import { invalidParam } from '../../core/errors.js';
import { requesterOf } from '../../http/request-context.js';
import type { PresenceState } from '../../services/sync.js';
import { userIdParam } from './params.js';
import type { RoutePlugin } from './plugin.js';

/** The longest a /sync long-poll is held, whatever the client asks. */
const MAX_TIMEOUT_MS = 120_000;

const SyncQuery = Type.Object({
  filter: Type.Optional(Type.String({ maxLength: 16384 })),
  since: Type.Optional(Type.String({ maxLength: 255 })),
  full_state: Type.Optional(Type.String()),
  set_presence: Type.Optional(Type.String()),
  timeout: Type.Optional(Type.String({ maxLength: 20 })),
  use_state_after: Type.Optional(Type.String()),
});

const FilterParams = Type.Object({
  userId: Type.String({ minLength: 1, maxLength: 255 }),
});

function flag(value: string | undefined, name: string): boolean {
  if (value === undefined || value === 'false') return false;
  if (value === 'true') return true;
  throw invalidParam(`${name} must be true or false`);
}

function presenceParam(value: string | undefined): PresenceState {
  if (value === undefined) return 'online';
  if (value === 'online' || value === 'offline' || value === 'unavailable') return value;
  throw invalidParam('set_presence must be online, offline or unavailable');
}

function timeoutParam(value: string | undefined): number {
  if (value === undefined) return 0;
  if (!/^\d+$/.test(value)) throw invalidParam('timeout must be a number of milliseconds');
  return Math.min(Number(value), MAX_TIMEOUT_MS);
}

// https://spec.matrix.org/v1.19/client-server-api/#syncing
export const syncRoutes: RoutePlugin = async (app, { services }) => {
  // https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3sync — changes since a token, long-polled.
  app.get(
    '/sync',
    { config: { auth: 'required', rateLimit: false }, schema: { querystring: SyncQuery } },
    async (request, reply) => {
      const requester = requesterOf(request);
      const query = request.query;
      const timeoutMs = timeoutParam(query.timeout);
      const fullState = flag(query.full_state, 'full_state');
      const setPresence = presenceParam(query.set_presence);
      const filter = await services.filters.resolve(requester, query.filter);
      // The client going away ends the long-poll.
      const gone = new AbortController();
      reply.raw.on('close', () => gone.abort());
      return services.sync.sync(requester, {
        since: query.since,
        timeoutMs,
        fullState,
        setPresence,
        filter,
        signal: gone.signal,
      });
    },
  );

  // https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3useruseridfilter — upload a filter.
  app.post(
    '/user/:userId/filter',
    { config: { auth: 'required' }, schema: { params: FilterParams } },
    async (request) => {
      const userId = userIdParam(request.params.userId);
      const filterId = await services.filters.create(requesterOf(request), userId, request.body);
      return { filter_id: filterId };
    },
  );

  // https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3useruseridfilterfilterid — download a filter.
  app.get(
    '/user/:userId/filter/:filterId',
    {
      config: { auth: 'required' },
      schema: {
        params: Type.Object({
          userId: Type.String({ minLength: 1, maxLength: 255 }),
          filterId: Type.String({ minLength: 1, maxLength: 64 }),
        }),
      },
    },
    async (request) => {
      const userId = userIdParam(request.params.userId);
      return services.filters.get(requesterOf(request), userId, request.params.filterId);
    },
  );
};
