/** The user's pushers: list, and create, update or delete one. */
import { Type } from 'typebox';
import { requesterOf } from '../../http/request-context.js';
import type { RoutePlugin } from './plugin.js';

// https://spec.matrix.org/v1.19/client-server-api/#push-notifications
export const pusherRoutes: RoutePlugin = async (app, { services }) => {
  const { pushers } = services;

  // https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3pushers
  app.get('/pushers', { config: { auth: 'required', rateLimit: 'query' } }, async (request) =>
    pushers.list(requesterOf(request)),
  );

  // https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3pushersset
  // The body is checked field by field in core/pushers.ts (spec errors: M_MISSING_PARAM, …).
  app.post(
    '/pushers/set',
    {
      config: { auth: 'required' },
      schema: { body: Type.Object({}, { additionalProperties: true }) },
    },
    async (request) => {
      await pushers.set(requesterOf(request), request.body);
      return {};
    },
  );
};
