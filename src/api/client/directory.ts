import { Type } from 'typebox';
import { parseRoomAlias } from '../../core/identifiers.js';
import { requesterOf } from '../../http/request-context.js';
import { RoomParams, roomIdParam } from './params.js';
import { networkOfRequest } from '../../services/appservice/index.js';
import type { RoutePlugin } from './plugin.js';

const AliasParams = Type.Object({ roomAlias: Type.String({ minLength: 1, maxLength: 255 }) });
const SetAliasBody = Type.Object({ room_id: Type.String({ minLength: 1, maxLength: 255 }) });
const VisibilityEnum = Type.Union([Type.Literal('public'), Type.Literal('private')]);
const SetVisibilityBody = Type.Object({ visibility: Type.Optional(VisibilityEnum) });
const ServerQuery = Type.Object({ server: Type.Optional(Type.String({ maxLength: 255 })) });
const PublicRoomsQuery = Type.Object({
  limit: Type.Optional(Type.Integer()),
  since: Type.Optional(Type.String({ maxLength: 1000 })),
  server: ServerQuery.properties.server,
});
const PublicRoomsBody = Type.Object({
  limit: Type.Optional(Type.Integer()),
  since: Type.Optional(Type.String({ maxLength: 1000 })),
  filter: Type.Optional(
    Type.Object({
      generic_search_term: Type.Optional(Type.String({ maxLength: 1000 })),
      room_types: Type.Optional(
        Type.Array(Type.Union([Type.String({ maxLength: 255 }), Type.Null()]), { maxItems: 50 }),
      ),
    }),
  ),
  include_all_networks: Type.Optional(Type.Boolean()),
  third_party_instance_id: Type.Optional(Type.String({ maxLength: 255 })),
});

/** Room aliases and the published room directory; each route is linked to its spec section. */
export const directoryRoutes: RoutePlugin = async (app, { services }) => {
  const { directory } = services;
  const ownServer = services.settings.serverName;

  // https://spec.matrix.org/v1.19/client-server-api/#put_matrixclientv3directoryroomroomalias
  app.put(
    '/directory/room/:roomAlias',
    { config: { auth: 'required' }, schema: { params: AliasParams, body: SetAliasBody } },
    async (request) => {
      await directory.setAlias(
        requesterOf(request),
        request.params.roomAlias,
        roomIdParam(request.body.room_id),
      );
      return {};
    },
  );

  // https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3directoryroomroomalias
  app.get(
    '/directory/room/:roomAlias',
    { config: { rateLimit: 'query' }, schema: { params: AliasParams } },
    async (request) => {
      const raw = request.params.roomAlias;
      // Another server's alias is asked of that server (when federating): /query/directory.
      const alias = parseRoomAlias(raw);
      const server = alias?.slice(alias.indexOf(':') + 1);
      const { roomId, servers } =
        alias && server !== ownServer && services.federation
          ? await services.federation.joins.resolveAlias(alias)
          : await directory.resolveAlias(raw);
      return { room_id: roomId, servers };
    },
  );

  // https://spec.matrix.org/v1.19/client-server-api/#delete_matrixclientv3directoryroomroomalias
  app.delete(
    '/directory/room/:roomAlias',
    { config: { auth: 'required' }, schema: { params: AliasParams } },
    async (request) => {
      await directory.deleteAlias(requesterOf(request), request.params.roomAlias);
      return {};
    },
  );

  // https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3roomsroomidaliases
  app.get(
    '/rooms/:roomId/aliases',
    { config: { auth: 'required' }, schema: { params: RoomParams } },
    async (request) => ({
      aliases: await directory.roomAliases(
        requesterOf(request),
        roomIdParam(request.params.roomId),
      ),
    }),
  );

  // https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3directorylistroomroomid
  app.get(
    '/directory/list/room/:roomId',
    { config: { rateLimit: 'query' }, schema: { params: RoomParams } },
    async (request) => ({
      visibility: await directory.visibility(roomIdParam(request.params.roomId)),
    }),
  );

  // https://spec.matrix.org/v1.19/client-server-api/#put_matrixclientv3directorylistroomroomid
  app.put(
    '/directory/list/room/:roomId',
    { config: { auth: 'required' }, schema: { params: RoomParams, body: SetVisibilityBody } },
    async (request) => {
      await directory.setVisibility(
        requesterOf(request),
        roomIdParam(request.params.roomId),
        request.body.visibility ?? 'public',
      );
      return {};
    },
  );

  // https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3publicrooms
  app.get(
    '/publicRooms',
    { config: { rateLimit: 'query' }, schema: { querystring: PublicRoomsQuery } },
    async (request) => {
      const { limit, since, server } = request.query;
      // Another server's directory is asked of that server (when federating).
      if (server !== undefined && server !== ownServer && services.federation)
        return services.federation.publicRooms.query(server, { limit, since });
      return directory.publicRooms({ limit, since, server });
    },
  );

  // https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3publicrooms
  // include_all_networks and third_party_instance_id: the networks of application services.
  app.post(
    '/publicRooms',
    {
      config: { auth: 'required', rateLimit: 'query' },
      schema: { querystring: ServerQuery, body: PublicRoomsBody },
    },
    async (request) => {
      const { limit, since, filter } = request.body;
      const { server } = request.query;
      if (server !== undefined && server !== ownServer && services.federation)
        return services.federation.publicRooms.query(server, {
          limit,
          since,
          searchTerm: filter?.generic_search_term,
          roomTypes: filter?.room_types,
          includeAllNetworks: request.body.include_all_networks,
          thirdPartyInstanceId: request.body.third_party_instance_id,
        });
      const network = networkOfRequest(
        request.body.include_all_networks,
        request.body.third_party_instance_id,
      );
      return directory.publicRooms({
        limit,
        since,
        server: request.query.server,
        filter: {
          searchTerm: filter?.generic_search_term,
          roomTypes: filter?.room_types,
          network,
        },
      });
    },
  );
};
