import { Type } from 'typebox';
import type { JsonObject } from '../../core/pdu.js';
import { requesterOf } from '../../http/request-context.js';
import { EventContent, RoomParams, roomIdParam } from './params.js';
import type { RoutePlugin } from './plugin.js';

const UserIdParam = Type.String({ minLength: 1, maxLength: 255 });
const TypeParam = Type.String({ minLength: 1, maxLength: 255 });
const GlobalParams = Type.Object({ userId: UserIdParam, type: TypeParam });
const RoomDataParams = Type.Object({
  userId: UserIdParam,
  roomId: RoomParams.properties.roomId,
  type: TypeParam,
});

// https://spec.matrix.org/v1.19/client-server-api/#client-config
export const accountDataRoutes: RoutePlugin = async (app, { services }) => {
  const { accountData } = services;
  const auth = { auth: 'required' } as const;

  app.get(
    '/user/:userId/account_data/:type',
    { config: auth, schema: { params: GlobalParams } },
    async (request) =>
      accountData.getGlobal(requesterOf(request), request.params.userId, request.params.type),
  );

  app.put(
    '/user/:userId/account_data/:type',
    { config: auth, schema: { params: GlobalParams, body: EventContent } },
    async (request) => {
      await accountData.putGlobal(
        requesterOf(request),
        request.params.userId,
        request.params.type,
        request.body as JsonObject,
      );
      return {};
    },
  );

  app.get(
    '/user/:userId/rooms/:roomId/account_data/:type',
    { config: auth, schema: { params: RoomDataParams } },
    async (request) =>
      accountData.getRoom(
        requesterOf(request),
        request.params.userId,
        roomIdParam(request.params.roomId),
        request.params.type,
      ),
  );

  app.put(
    '/user/:userId/rooms/:roomId/account_data/:type',
    { config: auth, schema: { params: RoomDataParams, body: EventContent } },
    async (request) => {
      await accountData.putRoom(
        requesterOf(request),
        request.params.userId,
        roomIdParam(request.params.roomId),
        request.params.type,
        request.body as JsonObject,
      );
      return {};
    },
  );
};
