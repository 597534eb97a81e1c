/** Event relationships and threads (the v1 paths). */
import { Type } from 'typebox';
import { requesterOf } from '../../http/request-context.js';
import type { Requester } from '../../services/index.js';
import type { RelationsQuery } from '../../services/relations.js';
import { RoomParams, roomIdParam } from './params.js';
import type { RoutePlugin } from './plugin.js';

const V1 = '/_matrix/client/v1';
const config = { auth: 'required', rateLimit: 'query' } as const;
const Id = Type.String({ minLength: 1, maxLength: 255 });
const Token = Type.Optional(Type.String({ maxLength: 64 }));
const RelationsQueryString = Type.Object({
  from: Token,
  to: Token,
  dir: Type.Optional(Type.Union([Type.Literal('b'), Type.Literal('f')])),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
  recurse: Type.Optional(Type.Boolean()),
});
const roomId = RoomParams.properties.roomId;

// https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv1roomsroomidrelationseventid
// https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv1roomsroomidrelationseventidreltype
// https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv1roomsroomidrelationseventidreltypeeventtype
// https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv1roomsroomidthreads
export const relationRoutes: RoutePlugin = async (app, { services }) => {
  const { relations } = services;

  const relationsOf = (request: {
    requester: Requester | null;
    params: { roomId: string; eventId: string; relType?: string; eventType?: string };
    query: { from?: string; to?: string; dir?: 'b' | 'f'; limit?: number; recurse?: boolean };
  }) => {
    const { query, params } = request;
    const options: RelationsQuery = {
      relType: params.relType,
      eventType: params.eventType,
      // An empty token is an absent one, as in /messages.
      from: query.from || undefined,
      to: query.to || undefined,
      dir: query.dir ?? 'b',
      limit: query.limit ?? 50,
      recurse: query.recurse,
    };
    return relations.relations(
      requesterOf(request),
      roomIdParam(params.roomId),
      params.eventId,
      options,
    );
  };

  app.get(
    `${V1}/rooms/:roomId/relations/:eventId`,
    {
      config,
      schema: {
        params: Type.Object({ roomId, eventId: Id }),
        querystring: RelationsQueryString,
      },
    },
    async (request) => relationsOf(request),
  );
  app.get(
    `${V1}/rooms/:roomId/relations/:eventId/:relType`,
    {
      config,
      schema: {
        params: Type.Object({ roomId, eventId: Id, relType: Id }),
        querystring: RelationsQueryString,
      },
    },
    async (request) => relationsOf(request),
  );
  app.get(
    `${V1}/rooms/:roomId/relations/:eventId/:relType/:eventType`,
    {
      config,
      schema: {
        params: Type.Object({ roomId, eventId: Id, relType: Id, eventType: Id }),
        querystring: RelationsQueryString,
      },
    },
    async (request) => relationsOf(request),
  );

  app.get(
    `${V1}/rooms/:roomId/threads`,
    {
      config,
      schema: {
        params: RoomParams,
        querystring: Type.Object({
          include: Type.Optional(Type.Union([Type.Literal('all'), Type.Literal('participated')])),
          from: Token,
          limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
        }),
      },
    },
    async (request) =>
      relations.threads(requesterOf(request), roomIdParam(request.params.roomId), {
        include: request.query.include ?? 'all',
        from: request.query.from || undefined,
        limit: request.query.limit ?? 20,
      }),
  );
};
