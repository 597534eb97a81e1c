/**
 * The server-server API's room routes: `PUT /send/{txnId}`, make_/send_ join, leave and
 * knock, and the reads of our rooms (/state, /state_ids, /event, /event_auth, /backfill,
 * /get_missing_events). Every one is authenticated (X-Matrix); the rules are in
 * `services/federation/rooms.ts`.
 */
import { Type } from 'typebox';
import { invalidParam } from '../../core/errors.js';
import type { FederationService } from '../../services/federation/index.js';
import type { RoutePlugin } from '../client/plugin.js';
import { originOf } from './auth.js';

type App = Parameters<RoutePlugin>[0];

const RoomParams = Type.Object({ roomId: Type.String({ minLength: 1 }) });
const RoomUser = Type.Object({
  roomId: Type.String({ minLength: 1 }),
  userId: Type.String({ minLength: 1 }),
});
const RoomEvent = Type.Object({
  roomId: Type.String({ minLength: 1 }),
  eventId: Type.String({ minLength: 1 }),
});
const Versions = Type.Object({
  ver: Type.Optional(Type.Union([Type.String(), Type.Array(Type.String())])),
});
/** send_join's `omit_members` (MSC3706): `true` asks for a partial-state answer. */
const OmitMembers = Type.Object({
  omit_members: Type.Optional(Type.Union([Type.Literal('true'), Type.Literal('false')])),
});
const AtEvent = Type.Object({ event_id: Type.String({ minLength: 1 }) });
const Transaction = Type.Object({
  origin: Type.Optional(Type.String()),
  origin_server_ts: Type.Optional(Type.Integer()),
  pdus: Type.Array(Type.Unknown()),
  edus: Type.Optional(Type.Array(Type.Unknown())),
});
const MissingEvents = Type.Object({
  earliest_events: Type.Array(Type.String(), { maxItems: 100 }),
  latest_events: Type.Array(Type.String(), { minItems: 1, maxItems: 100 }),
  limit: Type.Optional(Type.Integer({ minimum: 0 })),
  min_depth: Type.Optional(Type.Integer({ minimum: 0 })),
});
const Backfill = Type.Object({
  v: Type.Union([Type.String({ minLength: 1 }), Type.Array(Type.String(), { minItems: 1 })]),
  limit: Type.Integer({ minimum: 0 }),
});

/** The most events /backfill and /get_missing_events answer with. */
const MAX_EVENTS = 100;

const list = (value: string | string[] | undefined): string[] =>
  value === undefined ? [] : Array.isArray(value) ? value : [value];

export function registerRoomFederationRoutes(
  app: App,
  federation: FederationService,
  config: { rateLimit: false },
): void {
  const rooms = federation.rooms;
  const auth = { ...config, federationAuth: true } as const;

  // https://spec.matrix.org/v1.16/server-server-api/#put_matrixfederationv1sendtxnid
  app.put(
    '/_matrix/federation/v1/send/:txnId',
    {
      config: auth,
      schema: { params: Type.Object({ txnId: Type.String({ minLength: 1 }) }), body: Transaction },
    },
    async (request) =>
      rooms.receiveTransaction(originOf(request), request.params.txnId, request.body),
  );

  // https://spec.matrix.org/v1.16/server-server-api/#get_matrixfederationv1make_joinroomiduserid
  app.get(
    '/_matrix/federation/v1/make_join/:roomId/:userId',
    { config: auth, schema: { params: RoomUser, querystring: Versions } },
    async (request) => {
      const versions = list(request.query.ver);
      return rooms.makeJoin(
        request.params.roomId,
        request.params.userId,
        originOf(request),
        versions.length === 0 ? ['1'] : versions,
      );
    },
  );

  // https://spec.matrix.org/v1.16/server-server-api/#put_matrixfederationv2send_joinroomideventid
  app.put(
    '/_matrix/federation/v2/send_join/:roomId/:eventId',
    {
      config: auth,
      schema: { params: RoomEvent, querystring: OmitMembers, body: Type.Unknown() },
    },
    async (request) =>
      rooms.sendJoin(
        originOf(request),
        request.params.roomId,
        request.params.eventId,
        request.body,
        request.query.omit_members === 'true',
      ),
  );

  app.get(
    '/_matrix/federation/v1/make_leave/:roomId/:userId',
    { config: auth, schema: { params: RoomUser } },
    async (request) =>
      rooms.makeLeave(request.params.roomId, request.params.userId, originOf(request)),
  );

  app.put(
    '/_matrix/federation/v2/send_leave/:roomId/:eventId',
    { config: auth, schema: { params: RoomEvent, body: Type.Unknown() } },
    async (request) =>
      rooms.sendLeave(
        originOf(request),
        request.params.roomId,
        request.params.eventId,
        request.body,
      ),
  );

  app.get(
    '/_matrix/federation/v1/make_knock/:roomId/:userId',
    { config: auth, schema: { params: RoomUser, querystring: Versions } },
    async (request) => {
      const versions = list(request.query.ver);
      if (versions.length === 0) throw invalidParam('ver is required');
      return rooms.makeKnock(
        request.params.roomId,
        request.params.userId,
        originOf(request),
        versions,
      );
    },
  );

  app.put(
    '/_matrix/federation/v1/send_knock/:roomId/:eventId',
    { config: auth, schema: { params: RoomEvent, body: Type.Unknown() } },
    async (request) =>
      rooms.sendKnock(
        originOf(request),
        request.params.roomId,
        request.params.eventId,
        request.body,
      ),
  );

  // https://spec.matrix.org/v1.16/server-server-api/#put_matrixfederationv1inviteroomideventid
  // The deprecated v1 invite: the body is the event; the answer `[200, { event }]`.
  app.put(
    '/_matrix/federation/v1/invite/:roomId/:eventId',
    { config: auth, schema: { params: RoomEvent, body: Type.Unknown() } },
    async (request) => [
      200,
      await rooms.inviteV1(
        originOf(request),
        request.params.roomId,
        request.params.eventId,
        request.body,
      ),
    ],
  );

  // https://spec.matrix.org/v1.16/server-server-api/#put_matrixfederationv2inviteroomideventid
  app.put(
    '/_matrix/federation/v2/invite/:roomId/:eventId',
    {
      config: auth,
      schema: {
        params: RoomEvent,
        body: Type.Object({
          room_version: Type.String({ minLength: 1 }),
          event: Type.Unknown(),
          invite_room_state: Type.Optional(Type.Array(Type.Unknown(), { maxItems: 100 })),
        }),
      },
    },
    async (request) =>
      rooms.invite(originOf(request), request.params.roomId, request.params.eventId, request.body),
  );

  app.get(
    '/_matrix/federation/v1/state/:roomId',
    { config: auth, schema: { params: RoomParams, querystring: AtEvent } },
    async (request) =>
      rooms.state(originOf(request), request.params.roomId, request.query.event_id),
  );

  app.get(
    '/_matrix/federation/v1/state_ids/:roomId',
    { config: auth, schema: { params: RoomParams, querystring: AtEvent } },
    async (request) =>
      rooms.stateIds(originOf(request), request.params.roomId, request.query.event_id),
  );

  app.get(
    '/_matrix/federation/v1/event/:eventId',
    { config: auth, schema: { params: Type.Object({ eventId: Type.String({ minLength: 1 }) }) } },
    async (request) => rooms.event(originOf(request), request.params.eventId),
  );

  app.get(
    '/_matrix/federation/v1/event_auth/:roomId/:eventId',
    { config: auth, schema: { params: RoomEvent } },
    async (request) =>
      rooms.eventAuth(originOf(request), request.params.roomId, request.params.eventId),
  );

  app.get(
    '/_matrix/federation/v1/backfill/:roomId',
    { config: auth, schema: { params: RoomParams, querystring: Backfill } },
    async (request) =>
      rooms.backfill(
        originOf(request),
        request.params.roomId,
        list(request.query.v),
        Math.min(request.query.limit, MAX_EVENTS),
      ),
  );

  app.post(
    '/_matrix/federation/v1/get_missing_events/:roomId',
    { config: auth, schema: { params: RoomParams, body: MissingEvents } },
    async (request) =>
      rooms.getMissingEvents(originOf(request), request.params.roomId, {
        earliest_events: request.body.earliest_events,
        latest_events: request.body.latest_events,
        limit: Math.min(request.body.limit ?? 10, MAX_EVENTS),
        min_depth: request.body.min_depth ?? 0,
      }),
  );
}
