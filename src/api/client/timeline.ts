import { Type } from 'typebox';
import { requesterOf } from '../../http/request-context.js';
import { FilterParam, RoomParams, roomIdParam } from './params.js';
import { parseRoomEventFilter } from './room-filter.js';
import type { RoutePlugin } from './plugin.js';

const roomIdSchema = RoomParams.properties.roomId;
const EventParams = Type.Object({
  roomId: roomIdSchema,
  eventId: Type.String({ minLength: 1, maxLength: 255 }),
});
const RedactParams = Type.Object({
  roomId: roomIdSchema,
  eventId: Type.String({ minLength: 1, maxLength: 255 }),
  txnId: Type.String({ minLength: 1, maxLength: 255 }),
});

// https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3roomsroomidmessages
// https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3roomsroomidcontexteventid
// https://spec.matrix.org/v1.19/client-server-api/#put_matrixclientv3roomsroomidredacteventidtxnid
// https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3roomsroomideventeventid
export const timelineRoutes: RoutePlugin = async (app, { services }) => {
  const { timeline } = services;

  app.get(
    '/rooms/:roomId/messages',
    {
      config: { auth: 'required', rateLimit: 'query' },
      schema: {
        params: RoomParams,
        querystring: Type.Object({
          from: Type.Optional(Type.String({ maxLength: 64 })),
          to: Type.Optional(Type.String({ maxLength: 64 })),
          dir: Type.Union([Type.Literal('b'), Type.Literal('f')]),
          limit: Type.Optional(Type.Integer({ minimum: 0, maximum: 1000 })),
          filter: FilterParam,
        }),
      },
    },
    async (request) =>
      timeline.messages(requesterOf(request), roomIdParam(request.params.roomId), {
        // An empty token is an absent one (Quaternion sends `from=`; other servers agree).
        from: request.query.from || undefined,
        to: request.query.to || undefined,
        dir: request.query.dir,
        limit: request.query.limit ?? 10,
        filter: parseRoomEventFilter(request.query.filter),
      }),
  );

  app.get(
    '/rooms/:roomId/context/:eventId',
    {
      config: { auth: 'required', rateLimit: 'query' },
      schema: {
        params: EventParams,
        querystring: Type.Object({
          limit: Type.Optional(Type.Integer({ minimum: 0, maximum: 100 })),
          filter: FilterParam,
        }),
      },
    },
    async (request) =>
      timeline.context(
        requesterOf(request),
        roomIdParam(request.params.roomId),
        request.params.eventId,
        request.query.limit ?? 10,
        parseRoomEventFilter(request.query.filter),
      ),
  );

  app.get(
    '/rooms/:roomId/event/:eventId',
    { config: { auth: 'required' }, schema: { params: EventParams } },
    async (request) =>
      timeline.event(
        requesterOf(request),
        roomIdParam(request.params.roomId),
        request.params.eventId,
      ),
  );

  app.put(
    '/rooms/:roomId/redact/:eventId/:txnId',
    {
      config: { auth: 'required', rateLimit: 'message' },
      schema: {
        params: RedactParams,
        body: Type.Object({ reason: Type.Optional(Type.String({ maxLength: 2048 })) }),
      },
    },
    async (request) => ({
      event_id: await timeline.redact(
        requesterOf(request),
        roomIdParam(request.params.roomId),
        request.params.eventId,
        request.params.txnId,
        request.body.reason,
      ),
    }),
  );
};
