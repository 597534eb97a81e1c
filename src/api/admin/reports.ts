/**
 * Reports for admins: Synapse's event reports, and Commons' list of room and user reports.
 * https://element-hq.github.io/synapse/latest/admin_api/event_reports.html
 */
import { Type } from 'typebox';
import type { RoutePlugin } from '../client/plugin.js';
import { Direction, Limit, Offset } from './paging.js';

const ReportParams = Type.Object({ reportId: Type.Integer({ minimum: 0 }) });
const ListQuery = Type.Object({
  from: Offset,
  limit: Limit,
  dir: Direction,
  room_id: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
  user_id: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
});

export const adminReportRoutes: RoutePlugin = async (app, { services }) => {
  const reports = services.admin.reports;
  const auth = { auth: 'required' } as const;

  for (const [path, ofEvents, key] of [
    ['/_synapse/admin/v1/event_reports', true, 'event_reports'],
    ['/_commons/admin/v1/reports', false, 'reports'],
  ] as const) {
    app.get(path, { config: auth, schema: { querystring: ListQuery } }, async (request) => {
      const q = request.query;
      const page = await reports.list({
        roomId: q.room_id,
        userId: q.user_id,
        ofEvents,
        // Newest first unless asked otherwise, as Synapse.
        dir: q.dir ?? 'b',
        offset: q.from ?? 0,
        limit: q.limit ?? 100,
      });
      return {
        [key]: page.reports,
        total: page.total,
        ...(page.nextOffset !== null ? { next_token: page.nextOffset } : {}),
      };
    });
  }

  app.get(
    '/_synapse/admin/v1/event_reports/:reportId',
    { config: auth, schema: { params: ReportParams } },
    async (request) => reports.get(request.params.reportId),
  );

  app.delete(
    '/_synapse/admin/v1/event_reports/:reportId',
    { config: auth, schema: { params: ReportParams } },
    async (request) => {
      await reports.delete(request.params.reportId);
      return {};
    },
  );
};
