import { Type } from 'typebox';
import { requesterOf } from '../../http/request-context.js';
import { RoomParams, roomIdParam, userIdParam } from './params.js';
import type { RoutePlugin } from './plugin.js';

const TypingParams = Type.Object({
  roomId: RoomParams.properties.roomId,
  userId: Type.String({ minLength: 1, maxLength: 255 }),
});

// https://spec.matrix.org/v1.19/client-server-api/#typing-notifications
export const typingRoutes: RoutePlugin = async (app, { services }) => {
  app.put(
    '/rooms/:roomId/typing/:userId',
    {
      config: { auth: 'required' },
      schema: {
        params: TypingParams,
        body: Type.Object({
          typing: Type.Boolean(),
          timeout: Type.Optional(Type.Integer({ minimum: 0 })),
        }),
      },
    },
    async (request) => {
      const roomId = roomIdParam(request.params.roomId);
      await services.typing.set(
        requesterOf(request),
        roomId,
        userIdParam(request.params.userId),
        request.body.typing,
        request.body.timeout,
      );
      return {};
    },
  );
};
