import { Type } from 'typebox';
import { requesterOf } from '../../http/request-context.js';
import type { RoutePlugin } from './plugin.js';

// https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3user_directorysearch
export const userDirectoryRoutes: RoutePlugin = async (app, { services }) => {
  app.post(
    '/user_directory/search',
    {
      config: { auth: 'required', rateLimit: 'query' },
      schema: {
        body: Type.Object({
          search_term: Type.String({ maxLength: 1000 }),
          limit: Type.Optional(Type.Integer({ minimum: 0 })),
        }),
      },
    },
    async (request) =>
      services.userDirectory.search(
        requesterOf(request),
        request.body.search_term,
        request.body.limit,
      ),
  );
};
