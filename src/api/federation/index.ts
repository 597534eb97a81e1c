/**
 * The server-server API's routes: `/_matrix/key/v2/*` (our keys, and as a notary) and
 * `/_matrix/federation/v1/*` (version, queries). Registered only when `federation.enabled`.
 */
import { Type } from 'typebox';
import { invalidParam } from '../../core/errors.js';
import { isValidServerName } from '../../core/identifiers.js';
import type { FederationService } from '../../services/federation/index.js';
import type { KeyQuery } from '../../services/federation/keys.js';
import type { RoutePlugin } from '../client/plugin.js';
import { VERSION } from '../../version.js';
import { originOf, registerFederationAuth } from './auth.js';
import { registerFederationMediaRoutes } from './media.js';
import { networkOfRequest } from '../../services/appservice/index.js';
import { registerRoomFederationRoutes } from './rooms.js';

const KeyCriteria = Type.Object({
  minimum_valid_until_ts: Type.Optional(Type.Integer({ minimum: 0 })),
});
const KeyQueryBody = Type.Object({
  server_keys: Type.Record(Type.String(), Type.Record(Type.String(), KeyCriteria)),
});

/** Key queries ask about at most this many servers at once. */
const MAX_QUERIED_SERVERS = 100;

export const federationRoutes: RoutePlugin = async (app, { services, config }) => {
  const federation: FederationService | null = services.federation;
  if (!federation) return;
  const inbound = config.federation.inbound_rate_limit;
  registerFederationAuth(app, federation, { perSecond: inbound.per_second, burst: inbound.burst });
  const noLimit = { rateLimit: false } as const;

  // https://spec.matrix.org/v1.19/server-server-api/#get_matrixkeyv2server
  app.get('/_matrix/key/v2/server', { config: noLimit }, async () => federation.keys.ownKeys());

  // https://spec.matrix.org/v1.19/server-server-api/#post_matrixkeyv2query
  app.post(
    '/_matrix/key/v2/query',
    { config: noLimit, schema: { body: KeyQueryBody } },
    async (request) => {
      const query = request.body.server_keys as KeyQuery;
      const servers = Object.keys(query);
      if (servers.length > MAX_QUERIED_SERVERS)
        throw invalidParam(`At most ${MAX_QUERIED_SERVERS} servers per query`);
      for (const server of servers)
        if (!isValidServerName(server)) throw invalidParam(`${server} is not a server name`);
      return { server_keys: await federation.keys.query(query) };
    },
  );

  // https://spec.matrix.org/v1.19/server-server-api/#get_matrixkeyv2queryservername
  app.get(
    '/_matrix/key/v2/query/:serverName',
    {
      config: noLimit,
      schema: {
        params: Type.Object({ serverName: Type.String({ minLength: 1 }) }),
        querystring: Type.Object({
          minimum_valid_until_ts: Type.Optional(Type.Integer({ minimum: 0 })),
        }),
      },
    },
    async (request) => {
      const { serverName } = request.params;
      if (!isValidServerName(serverName)) throw invalidParam(`${serverName} is not a server name`);
      const minimum = request.query.minimum_valid_until_ts;
      return { server_keys: await federation.keys.query({ [serverName]: {} }, minimum ?? 0) };
    },
  );

  // https://spec.matrix.org/v1.19/server-server-api/#get_matrixfederationv1version
  app.get('/_matrix/federation/v1/version', { config: noLimit }, async () => ({
    server: { name: 'Commons', version: VERSION },
  }));

  // https://spec.matrix.org/v1.19/server-server-api/#get_matrixfederationv1queryprofile
  app.get(
    '/_matrix/federation/v1/query/profile',
    {
      config: { ...noLimit, federationAuth: true },
      schema: {
        querystring: Type.Object({
          user_id: Type.String({ minLength: 1 }),
          field: Type.Optional(Type.String()),
        }),
      },
    },
    async (request) => federation.queries.profile(request.query.user_id, request.query.field),
  );

  // https://spec.matrix.org/v1.19/server-server-api/#get_matrixfederationv1querydirectory
  app.get(
    '/_matrix/federation/v1/query/directory',
    {
      config: { ...noLimit, federationAuth: true },
      schema: { querystring: Type.Object({ room_alias: Type.String({ minLength: 1 }) }) },
    },
    async (request) => federation.queries.directory(request.query.room_alias),
  );

  // Our media for other servers (MSC3916): ./media.ts.
  registerFederationMediaRoutes(app, services);
  // https://spec.matrix.org/v1.19/server-server-api/#get_matrixfederationv1publicrooms
  app.get(
    '/_matrix/federation/v1/publicRooms',
    {
      config: { ...noLimit, federationAuth: true },
      schema: {
        querystring: Type.Object({
          limit: Type.Optional(Type.Integer()),
          since: Type.Optional(Type.String({ maxLength: 1000 })),
          include_all_networks: Type.Optional(Type.Boolean()),
          third_party_instance_id: Type.Optional(Type.String({ maxLength: 255 })),
        }),
      },
    },
    async (request) =>
      services.directory.publicRooms({
        limit: request.query.limit,
        since: request.query.since,
        filter: {
          network: networkOfRequest(
            request.query.include_all_networks,
            request.query.third_party_instance_id,
          ),
        },
      }),
  );

  // https://spec.matrix.org/v1.19/server-server-api/#post_matrixfederationv1publicrooms
  app.post(
    '/_matrix/federation/v1/publicRooms',
    {
      config: { ...noLimit, federationAuth: true },
      schema: {
        body: Type.Object({
          limit: Type.Optional(Type.Integer()),
          since: Type.Optional(Type.String({ maxLength: 1000 })),
          filter: Type.Optional(
            Type.Object({
              generic_search_term: Type.Optional(Type.String({ maxLength: 1000 })),
              room_types: Type.Optional(
                Type.Array(Type.Union([Type.String({ maxLength: 255 }), Type.Null()]), {
                  maxItems: 50,
                }),
              ),
            }),
          ),
          include_all_networks: Type.Optional(Type.Boolean()),
          third_party_instance_id: Type.Optional(Type.String({ maxLength: 255 })),
        }),
      },
    },
    async (request) =>
      services.directory.publicRooms({
        limit: request.body.limit,
        since: request.body.since,
        filter: {
          searchTerm: request.body.filter?.generic_search_term,
          roomTypes: request.body.filter?.room_types,
          network: networkOfRequest(
            request.body.include_all_networks,
            request.body.third_party_instance_id,
          ),
        },
      }),
  );

  const devices = services.federationDevices;
  if (devices) {
    const UserIdString = Type.String({ minLength: 1, maxLength: 255 });
    // https://spec.matrix.org/v1.19/server-server-api/#get_matrixfederationv1userdevicesuserid
    app.get(
      '/_matrix/federation/v1/user/devices/:userId',
      {
        config: { ...noLimit, federationAuth: true },
        schema: { params: Type.Object({ userId: UserIdString }) },
      },
      async (request) => devices.localDevices(request.params.userId),
    );

    // https://spec.matrix.org/v1.19/server-server-api/#post_matrixfederationv1userkeysquery
    app.post(
      '/_matrix/federation/v1/user/keys/query',
      {
        config: { ...noLimit, federationAuth: true },
        schema: {
          body: Type.Object({
            device_keys: Type.Record(UserIdString, Type.Array(UserIdString)),
          }),
        },
      },
      async (request) => devices.localKeysQuery(request.body.device_keys),
    );

    // https://spec.matrix.org/v1.19/server-server-api/#post_matrixfederationv1userkeysclaim
    app.post(
      '/_matrix/federation/v1/user/keys/claim',
      {
        config: { ...noLimit, federationAuth: true },
        schema: {
          body: Type.Object({
            one_time_keys: Type.Record(UserIdString, Type.Record(UserIdString, UserIdString)),
          }),
        },
      },
      async (request) => devices.localKeysClaim(request.body.one_time_keys),
    );
  }
  registerRoomFederationRoutes(app, federation, noLimit);

  // https://spec.matrix.org/v1.19/server-server-api/#get_matrixfederationv1hierarchyroomid
  app.get(
    '/_matrix/federation/v1/hierarchy/:roomId',
    {
      config: { ...noLimit, federationAuth: true },
      schema: {
        params: Type.Object({ roomId: Type.String({ minLength: 1, maxLength: 255 }) }),
        querystring: Type.Object({ suggested_only: Type.Optional(Type.Boolean()) }),
      },
    },
    async (request) =>
      services.roomSummary.hierarchy(
        originOf(request),
        request.params.roomId,
        request.query.suggested_only ?? false,
      ),
  );
};
