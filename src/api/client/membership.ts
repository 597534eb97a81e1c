import { Type } from 'typebox';
import { requesterOf } from '../../http/request-context.js';
import { ReasonBody, RoomParams, TargetBody, roomIdParam } from './params.js';
import type { RoutePlugin } from './plugin.js';

const AliasOrIdParams = Type.Object({
  roomIdOrAlias: Type.String({ minLength: 1, maxLength: 255 }),
});
const membershipConfig = { auth: 'required', rateLimit: 'membership' } as const;
const ServerNames = Type.Union([
  Type.String({ minLength: 1, maxLength: 255 }),
  Type.Array(Type.String({ minLength: 1, maxLength: 255 }), { maxItems: 50 }),
]);
/** Servers to join through: `via` (and the deprecated `server_name`), each repeatable. */
const ViaQuery = Type.Object({
  via: Type.Optional(ServerNames),
  server_name: Type.Optional(ServerNames),
});
const viaOf = (query: { via?: string | string[]; server_name?: string | string[] }) =>
  [query.via ?? [], query.server_name ?? []].flat();

// https://spec.matrix.org/v1.19/client-server-api/#room-membership
export const membershipRoutes: RoutePlugin = async (app, { services }) => {
  const { membership } = services;

  app.post(
    '/join/:roomIdOrAlias',
    {
      config: membershipConfig,
      schema: { params: AliasOrIdParams, querystring: ViaQuery, body: Type.Optional(ReasonBody) },
    },
    async (request) => ({
      room_id: await membership.join(
        requesterOf(request),
        request.params.roomIdOrAlias,
        request.body?.reason,
        viaOf(request.query),
      ),
    }),
  );

  app.post(
    '/rooms/:roomId/join',
    { config: membershipConfig, schema: { params: RoomParams, body: Type.Optional(ReasonBody) } },
    async (request) => ({
      room_id: await membership.join(
        requesterOf(request),
        roomIdParam(request.params.roomId),
        request.body?.reason,
      ),
    }),
  );

  app.post(
    '/knock/:roomIdOrAlias',
    {
      config: membershipConfig,
      schema: { params: AliasOrIdParams, querystring: ViaQuery, body: Type.Optional(ReasonBody) },
    },
    async (request) => ({
      room_id: await membership.knock(
        requesterOf(request),
        request.params.roomIdOrAlias,
        request.body?.reason,
        viaOf(request.query),
      ),
    }),
  );

  app.post(
    '/rooms/:roomId/leave',
    { config: membershipConfig, schema: { params: RoomParams, body: Type.Optional(ReasonBody) } },
    async (request) => {
      await membership.leave(
        requesterOf(request),
        roomIdParam(request.params.roomId),
        request.body?.reason,
      );
      return {};
    },
  );

  app.post(
    '/rooms/:roomId/forget',
    { config: membershipConfig, schema: { params: RoomParams } },
    async (request) => {
      await membership.forget(requesterOf(request), roomIdParam(request.params.roomId));
      return {};
    },
  );

  const targeted = {
    invite: membership.invite,
    kick: membership.kick,
    ban: membership.ban,
    unban: membership.unban,
  } as const;
  for (const [action, perform] of Object.entries(targeted)) {
    app.post(
      `/rooms/:roomId/${action}`,
      { config: membershipConfig, schema: { params: RoomParams, body: TargetBody } },
      async (request) => {
        await perform(
          requesterOf(request),
          roomIdParam(request.params.roomId),
          request.body.user_id,
          request.body.reason,
        );
        return {};
      },
    );
  }
};
