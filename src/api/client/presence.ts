import { Type } from 'typebox';
import { requesterOf } from '../../http/request-context.js';
import { ColumnText, userIdParam } from './params.js';
import type { RoutePlugin } from './plugin.js';

const UserParams = Type.Object({ userId: Type.String({ minLength: 1, maxLength: 255 }) });
const StatusBody = Type.Object({
  // Checked by the service, so that an unknown state is M_INVALID_PARAM.
  presence: Type.String({ maxLength: 64 }),
  status_msg: Type.Optional(Type.Union([ColumnText({ maxLength: 2048 }), Type.Null()])),
});

// https://spec.matrix.org/v1.19/client-server-api/#presence
export const presenceRoutes: RoutePlugin = async (app, { services }) => {
  const { presence } = services;

  app.get(
    '/presence/:userId/status',
    { config: { auth: 'required' }, schema: { params: UserParams } },
    async (request) => presence.get(requesterOf(request), userIdParam(request.params.userId)),
  );

  app.put(
    '/presence/:userId/status',
    { config: { auth: 'required' }, schema: { params: UserParams, body: StatusBody } },
    async (request) => {
      await presence.set(
        requesterOf(request),
        userIdParam(request.params.userId),
        request.body.presence,
        request.body.status_msg ?? null,
      );
      return {};
    },
  );
};
