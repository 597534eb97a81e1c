/** The notifications a user's push rules gave them. */
import { Type } from 'typebox';
import { requesterOf } from '../../http/request-context.js';
import type { RoutePlugin } from './plugin.js';

// https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3notifications
export const notificationRoutes: RoutePlugin = async (app, { services }) => {
  const { notifications } = services;
  app.get(
    '/notifications',
    {
      config: { auth: 'required', rateLimit: 'query' },
      schema: {
        querystring: Type.Object({
          from: Type.Optional(Type.String({ maxLength: 64 })),
          limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
          only: Type.Optional(Type.String({ maxLength: 64 })),
        }),
      },
    },
    async (request) =>
      notifications.notifications(requesterOf(request), {
        from: request.query.from || undefined,
        limit: request.query.limit ?? 20,
        only: request.query.only,
      }),
  );
};
