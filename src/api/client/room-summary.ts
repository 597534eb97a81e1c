import { Type } from 'typebox';
import type { RoutePlugin } from './plugin.js';

const Params = Type.Object({ roomIdOrAlias: Type.String({ minLength: 1, maxLength: 255 }) });
const Query = Type.Object({
  via: Type.Optional(
    Type.Union([
      Type.String({ maxLength: 255 }),
      Type.Array(Type.String({ maxLength: 255 }), { maxItems: 50 }),
    ]),
  ),
});

/** The room summary's paths: the stable one (v1.15) and MSC3266's unstable one. */
export const ROOM_SUMMARY_PATHS = [
  '/_matrix/client/v1/room_summary/:roomIdOrAlias',
  '/_matrix/client/unstable/im.nheko.summary/summary/:roomIdOrAlias',
] as const;

// https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv1room_summaryroomidoralias
export const roomSummaryRoutes: RoutePlugin = async (app, { services }) => {
  for (const path of ROOM_SUMMARY_PATHS) {
    // https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv1room_summaryroomidoralias — a room's summary before joining.
    app.get(
      path,
      { config: { auth: 'optional' }, schema: { params: Params, querystring: Query } },
      async (request) => {
        const via = request.query.via;
        return services.roomSummary.summary(
          request.requester?.userId ?? null,
          request.params.roomIdOrAlias,
          via === undefined ? [] : Array.isArray(via) ? via : [via],
        );
      },
    );
  }
};
