import { Type } from 'typebox';
import { requesterOf } from '../../http/request-context.js';
import { RoomParams, roomIdParam } from './params.js';
import type { RoutePlugin } from './plugin.js';

const Reason = Type.String({ maxLength: 2048 });

// https://spec.matrix.org/v1.19/client-server-api/#reporting-content
export const reportRoutes: RoutePlugin = async (app, { services }) => {
  const reports = services.admin.reports;

  app.post(
    '/rooms/:roomId/report/:eventId',
    {
      config: { auth: 'required' },
      schema: {
        params: Type.Object({
          roomId: RoomParams.properties.roomId,
          eventId: Type.String({ minLength: 1, maxLength: 255 }),
        }),
        body: Type.Object({
          reason: Type.Optional(Reason),
          // Removed from the spec in v1.14; older clients still send it.
          score: Type.Optional(Type.Integer({ minimum: -100, maximum: 0 })),
        }),
      },
    },
    async (request) => {
      await reports.reportEvent(
        requesterOf(request),
        roomIdParam(request.params.roomId),
        request.params.eventId,
        request.body.reason ?? null,
        request.body.score ?? null,
      );
      return {};
    },
  );

  app.post(
    '/rooms/:roomId/report',
    {
      config: { auth: 'required' },
      schema: { params: RoomParams, body: Type.Object({ reason: Reason }) },
    },
    async (request) => {
      await reports.reportRoom(
        requesterOf(request),
        roomIdParam(request.params.roomId),
        request.body.reason,
      );
      return {};
    },
  );

  app.post(
    '/users/:userId/report',
    {
      config: { auth: 'required' },
      schema: {
        params: Type.Object({ userId: Type.String({ minLength: 1, maxLength: 255 }) }),
        body: Type.Object({ reason: Reason }),
      },
    },
    async (request) => {
      await reports.reportUser(requesterOf(request), request.params.userId, request.body.reason);
      return {};
    },
  );
};
