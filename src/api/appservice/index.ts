/**
 * Client-server routes of application services: the ping a service sends itself through
 * Commons, and third-party lookups passed through to the services that serve a protocol.
 */
import { Type } from 'typebox';
import { requesterOf } from '../../http/request-context.js';
import type { RoutePlugin } from '../client/plugin.js';
import { V3_PREFIXES } from '../client/plugin.js';

const ProtocolParams = Type.Object({ protocol: Type.String({ minLength: 1, maxLength: 255 }) });
/** Third-party fields are the protocol's own: any string parameters. */
const Fields = Type.Record(Type.String(), Type.String());

/** The query as given, without our own parameters (`access_token`, masquerading). */
function fieldsOf(query: Record<string, string>): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const [key, value] of Object.entries(query)) {
    if (key === 'access_token' || key === 'user_id' || key === 'device_id') continue;
    fields[key] = value;
  }
  return fields;
}

// https://spec.matrix.org/v1.19/client-server-api/#third-party-networks
const thirdPartyRoutes: RoutePlugin = async (app, { services }) => {
  const calls = services.appservices.calls;
  const auth = { auth: 'required' } as const;
  app.get('/thirdparty/protocols', { config: auth }, async () => calls.protocols());
  app.get(
    '/thirdparty/protocol/:protocol',
    { config: auth, schema: { params: ProtocolParams } },
    async (request) => calls.thirdParty('protocol', request.params.protocol, {}),
  );
  for (const kind of ['location', 'user'] as const) {
    app.get(
      `/thirdparty/${kind}/:protocol`,
      { config: auth, schema: { params: ProtocolParams, querystring: Fields } },
      async (request) => calls.thirdParty(kind, request.params.protocol, fieldsOf(request.query)),
    );
  }
  app.get(
    '/thirdparty/location',
    {
      config: auth,
      schema: { querystring: Type.Object({ alias: Type.String({ minLength: 1 }) }) },
    },
    async (request) => calls.thirdParty('location', null, { alias: request.query.alias }),
  );
  app.get(
    '/thirdparty/user',
    {
      config: auth,
      schema: { querystring: Type.Object({ userid: Type.String({ minLength: 1 }) }) },
    },
    async (request) => calls.thirdParty('user', null, { userid: request.query.userid }),
  );
};

// https://spec.matrix.org/v1.19/application-service-api/#put_matrixclientv3directorylistappservicenetworkidroomid
const networkDirectoryRoutes: RoutePlugin = async (app, { services }) => {
  app.put(
    '/directory/list/appservice/:networkId/:roomId',
    {
      config: { auth: 'required' },
      schema: {
        params: Type.Object({
          networkId: Type.String({ minLength: 1, maxLength: 255 }),
          roomId: Type.String({ minLength: 1, maxLength: 255 }),
        }),
        body: Type.Object({
          visibility: Type.Union([Type.Literal('public'), Type.Literal('private')]),
        }),
      },
    },
    async (request) => {
      await services.appservices.directory.setVisibility(
        requesterOf(request),
        request.params.networkId,
        request.params.roomId,
        request.body.visibility,
      );
      return {};
    },
  );
};

export const appserviceRoutes: RoutePlugin = async (app, options) => {
  // https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv1appserviceappserviceidping
  app.post(
    '/_matrix/client/v1/appservice/:appserviceId/ping',
    {
      config: { auth: 'required' },
      schema: {
        params: Type.Object({ appserviceId: Type.String({ minLength: 1, maxLength: 255 }) }),
        body: Type.Object({ transaction_id: Type.Optional(Type.String({ maxLength: 255 })) }),
      },
    },
    async (request) => {
      const result = await options.services.appservices.calls.ping(
        requesterOf(request).appservice,
        request.params.appserviceId,
        request.body.transaction_id,
      );
      return { duration_ms: result.durationMs };
    },
  );
  for (const prefix of V3_PREFIXES) {
    await app.register(thirdPartyRoutes, { ...options, prefix });
    await app.register(networkDirectoryRoutes, { ...options, prefix });
  }
};
