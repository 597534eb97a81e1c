/** Server-side search of room events. */
import { Type } from 'typebox';
import { requesterOf } from '../../http/request-context.js';
import { parseRoomEventFilter } from './room-filter.js';
import type { RoutePlugin } from './plugin.js';

const Limit = Type.Optional(Type.Integer({ minimum: 0, maximum: 1000 }));
const RoomEvents = Type.Object({
  search_term: Type.String({ maxLength: 1000 }),
  keys: Type.Optional(Type.Array(Type.String({ maxLength: 64 }), { maxItems: 3 })),
  filter: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  order_by: Type.Optional(Type.Union([Type.Literal('rank'), Type.Literal('recent')])),
  event_context: Type.Optional(
    Type.Object({
      before_limit: Limit,
      after_limit: Limit,
      include_profile: Type.Optional(Type.Boolean()),
    }),
  ),
  include_state: Type.Optional(Type.Boolean()),
  groupings: Type.Optional(
    Type.Object({
      group_by: Type.Optional(
        Type.Array(Type.Object({ key: Type.Optional(Type.String({ maxLength: 64 })) }), {
          maxItems: 2,
        }),
      ),
    }),
  ),
});

// https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3search
export const searchRoutes: RoutePlugin = async (app, { services }) => {
  const { search } = services;
  app.post(
    '/search',
    {
      config: { auth: 'required', rateLimit: 'query' },
      schema: {
        querystring: Type.Object({ next_batch: Type.Optional(Type.String({ maxLength: 64 })) }),
        body: Type.Object({
          search_categories: Type.Object({ room_events: Type.Optional(RoomEvents) }),
        }),
      },
    },
    async (request) => {
      const criteria = request.body.search_categories.room_events;
      // Only room events are searchable: other categories are answered by their absence.
      if (!criteria) return { search_categories: {} };
      const filter =
        criteria.filter === undefined
          ? undefined
          : parseRoomEventFilter(JSON.stringify(criteria.filter));
      return search.search(
        requesterOf(request),
        { ...criteria, filter },
        request.query.next_batch || undefined,
      );
    },
  );
};
