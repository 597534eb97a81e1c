import { Type } from 'typebox';
import { requesterOf } from '../../http/request-context.js';
import type { RoutePlugin } from './plugin.js';

const Id = Type.String({ minLength: 1, maxLength: 255 });
/** A one-time or fallback key: a bare key, or a signed key object. */
const KeyMap = Type.Record(
  Type.String({ minLength: 1, maxLength: 255 }),
  Type.Union([Type.String(), Type.Record(Type.String(), Type.Unknown())]),
);
const DeviceKeys = Type.Object({
  user_id: Id,
  device_id: Id,
  algorithms: Type.Array(Type.String()),
  keys: Type.Record(Type.String(), Type.String()),
  signatures: Type.Record(Type.String(), Type.Record(Type.String(), Type.String())),
});
const Timeout = Type.Optional(Type.Integer({ minimum: 0 }));

// https://spec.matrix.org/v1.19/client-server-api/#end-to-end-encryption
export const keyRoutes: RoutePlugin = async (app, { services }) => {
  const { deviceKeys } = services;

  app.post(
    '/keys/upload',
    {
      config: { auth: 'required' },
      schema: {
        body: Type.Object({
          device_keys: Type.Optional(DeviceKeys),
          one_time_keys: Type.Optional(KeyMap),
          fallback_keys: Type.Optional(KeyMap),
        }),
      },
    },
    async (request) => ({
      one_time_key_counts: await deviceKeys.upload(requesterOf(request), {
        deviceKeys: request.body.device_keys,
        oneTimeKeys: request.body.one_time_keys,
        fallbackKeys: request.body.fallback_keys,
      }),
    }),
  );

  app.post(
    '/keys/query',
    {
      config: { auth: 'required', rateLimit: 'query' },
      schema: {
        body: Type.Object({
          device_keys: Type.Record(Id, Type.Array(Id)),
          timeout: Timeout,
        }),
      },
    },
    async (request) => {
      const requester = requesterOf(request);
      const answer = await deviceKeys.query(requester, request.body.device_keys);
      const local = await services.crossSigning.addToQuery(requester, answer);
      // Users of other servers: asked of their servers (or their cached device lists).
      if (!services.federationDevices) return local;
      const remote = await services.federationDevices.queryRemote(
        request.body.device_keys,
        request.body.timeout,
      );
      return {
        ...local,
        device_keys: { ...local.device_keys, ...remote.device_keys },
        master_keys: { ...local.master_keys, ...remote.master_keys },
        self_signing_keys: { ...local.self_signing_keys, ...remote.self_signing_keys },
        failures: { ...local.failures, ...remote.failures },
      };
    },
  );

  app.post(
    '/keys/claim',
    {
      config: { auth: 'required' },
      schema: {
        body: Type.Object({
          one_time_keys: Type.Record(Id, Type.Record(Id, Id)),
          timeout: Timeout,
        }),
      },
    },
    async (request) => {
      const local = await deviceKeys.claim(requesterOf(request), request.body.one_time_keys);
      if (!services.federationDevices) return local;
      const remote = await services.federationDevices.claimRemote(
        request.body.one_time_keys,
        request.body.timeout,
      );
      return {
        one_time_keys: { ...local.one_time_keys, ...remote.one_time_keys },
        failures: { ...local.failures, ...remote.failures },
      };
    },
  );

  app.get(
    '/keys/changes',
    {
      config: { auth: 'required' },
      schema: {
        querystring: Type.Object({
          from: Type.String({ maxLength: 255 }),
          to: Type.String({ maxLength: 255 }),
        }),
      },
    },
    async (request) =>
      deviceKeys.changes(requesterOf(request), request.query.from, request.query.to),
  );
};
