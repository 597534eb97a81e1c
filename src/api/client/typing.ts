import { Type } from 'typebox';
import { invalidParam } from '../../core/errors.js';
import { parseUserId } from '../../core/identifiers.js';
import { requesterOf } from '../../http/request-context.js';
import { RoomParams, roomIdParam } from './params.js';
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
      const user = parseUserId(request.params.userId);
      if (!user) throw invalidParam('Invalid user ID');
      await services.typing.set(
        requesterOf(request),
        roomId,
        user.userId,
        request.body.typing,
        request.body.timeout,
      );
      return {};
    },
  );
};
