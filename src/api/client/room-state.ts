import { Type } from 'typebox';
import type { JsonObject } from '../../core/pdu.js';
import type { MemberEventContent } from '../../services/membership.js';
import { requesterOf } from '../../http/request-context.js';
import {
  EventContent,
  FilterParam,
  MemberContent,
  RoomParams,
  roomIdParam,
  userIdParam,
} from './params.js';
import type { RoutePlugin } from './plugin.js';
import { parseRoomEventFilter } from './room-filter.js';

const TypeParam = Type.String({ minLength: 1, maxLength: 255 });
const StateParams = Type.Object({
  roomId: RoomParams.properties.roomId,
  eventType: TypeParam,
  stateKey: Type.String({ maxLength: 255 }),
});
const MemberParams = Type.Object({
  roomId: RoomParams.properties.roomId,
  stateKey: StateParams.properties.stateKey,
});
const TypeOnlyParams = Type.Object({ roomId: RoomParams.properties.roomId, eventType: TypeParam });
const SendParams = Type.Object({
  roomId: RoomParams.properties.roomId,
  eventType: TypeParam,
  txnId: Type.String({ minLength: 1, maxLength: 255 }),
});

/** An application service's `ts` (timestamp massaging); others' is ignored. */
const TsQuery = Type.Object({
  ts: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })),
});

// https://spec.matrix.org/v1.19/client-server-api/#getting-events-for-a-room
// https://spec.matrix.org/v1.19/client-server-api/#sending-events-to-a-room
/** `format` of GET /state/{type}/{key} (v1.16): the content (default) or the whole event. */
const StateFormatQuery = Type.Object({
  format: Type.Optional(Type.Union([Type.Literal('content'), Type.Literal('event')])),
});

export const roomStateRoutes: RoutePlugin = async (app, { services }) => {
  const { roomEvents, membership } = services;
  const auth = { auth: 'required' } as const;

  app.get(
    '/rooms/:roomId/state',
    {
      config: auth,
      schema: {
        params: RoomParams,
        querystring: Type.Object({ filter: FilterParam }),
      },
    },
    async (request) =>
      roomEvents.getState(
        requesterOf(request),
        roomIdParam(request.params.roomId),
        parseRoomEventFilter(request.query.filter),
      ),
  );

  app.get(
    '/rooms/:roomId/state/:eventType/:stateKey',
    { config: auth, schema: { params: StateParams, querystring: StateFormatQuery } },
    async (request) =>
      roomEvents.getStateContent(
        requesterOf(request),
        roomIdParam(request.params.roomId),
        request.params.eventType,
        request.params.stateKey,
        request.query.format,
      ),
  );
  app.get(
    '/rooms/:roomId/state/:eventType',
    { config: auth, schema: { params: TypeOnlyParams, querystring: StateFormatQuery } },
    async (request) =>
      roomEvents.getStateContent(
        requesterOf(request),
        roomIdParam(request.params.roomId),
        request.params.eventType,
        '',
        request.query.format,
      ),
  );

  const putState = {
    config: { auth: 'required', rateLimit: 'message' } as const,
    schema: { params: StateParams, body: EventContent, querystring: TsQuery },
  };
  // A member event (a per-room display name, or any membership the auth rules allow) goes
  // through the membership service; the router prefers this path to the one below.
  app.put(
    '/rooms/:roomId/state/m.room.member/:stateKey',
    {
      config: putState.config,
      schema: { params: MemberParams, body: MemberContent, querystring: TsQuery },
    },
    async (request) => ({
      event_id: await membership.setMemberEvent(
        requesterOf(request),
        roomIdParam(request.params.roomId),
        userIdParam(request.params.stateKey),
        request.body as MemberEventContent,
        request.query.ts,
      ),
    }),
  );
  app.put('/rooms/:roomId/state/:eventType/:stateKey', putState, async (request) => ({
    event_id: await roomEvents.setState(
      requesterOf(request),
      roomIdParam(request.params.roomId),
      request.params.eventType,
      request.params.stateKey,
      request.body as JsonObject,
      request.query.ts,
    ),
  }));
  app.put(
    '/rooms/:roomId/state/:eventType',
    {
      config: putState.config,
      schema: { params: TypeOnlyParams, body: EventContent, querystring: TsQuery },
    },
    async (request) => ({
      event_id: await roomEvents.setState(
        requesterOf(request),
        roomIdParam(request.params.roomId),
        request.params.eventType,
        '',
        request.body as JsonObject,
        request.query.ts,
      ),
    }),
  );

  app.put(
    '/rooms/:roomId/send/:eventType/:txnId',
    {
      config: { auth: 'required', rateLimit: 'message' },
      schema: { params: SendParams, body: EventContent, querystring: TsQuery },
    },
    async (request) => {
      const requester = requesterOf(request);
      const eventId = await roomEvents.sendMessage(
        requester,
        roomIdParam(request.params.roomId),
        request.params.eventType,
        request.params.txnId,
        request.body as JsonObject,
        request.query.ts,
      );
      // A user sending a message is active (presence); a bridge acting for one is not.
      if (!requester.appservice) await services.presence.activity(requester.userId, false);
      return { event_id: eventId };
    },
  );
};
