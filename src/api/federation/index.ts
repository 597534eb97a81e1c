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
import { registerFederationAuth } from './auth.js';
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

  registerRoomFederationRoutes(app, federation, noLimit);
};
