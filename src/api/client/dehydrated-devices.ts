/**
 * Dehydrated devices, MSC3814 (`org.matrix.msc3814.v1`), as Synapse and the Rust crypto SDK
 * speak it: PUT/GET/DELETE `…/dehydrated_device` and POST `…/dehydrated_device/{deviceId}/events`.
 */
import { Type } from 'typebox';
import { requesterOf } from '../../http/request-context.js';
import type { JsonObject } from '../../core/pdu.js';
import type { RoutePlugin } from './plugin.js';

const PREFIX = '/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device';
const Id = Type.String({ minLength: 1, maxLength: 255, pattern: '^[\\x21-\\x7e]+$' });
const KeyMap = Type.Record(
  Type.String({ minLength: 1, maxLength: 255 }),
  Type.Union([Type.String(), Type.Record(Type.String(), Type.Unknown())]),
);
const DeviceKeys = Type.Object({
  user_id: Type.String({ minLength: 1, maxLength: 255 }),
  device_id: Type.String({ minLength: 1, maxLength: 255 }),
  algorithms: Type.Array(Type.String()),
  keys: Type.Record(Type.String(), Type.String()),
  signatures: Type.Record(Type.String(), Type.Record(Type.String(), Type.String())),
});
const PutBody = Type.Object({
  device_id: Id,
  device_data: Type.Record(Type.String(), Type.Unknown()),
  initial_device_display_name: Type.Optional(Type.String({ maxLength: 255 })),
  device_keys: Type.Optional(DeviceKeys),
  one_time_keys: Type.Optional(KeyMap),
  fallback_keys: Type.Optional(KeyMap),
});
const EventsBody = Type.Object({ next_batch: Type.Optional(Type.String({ maxLength: 64 })) });
const auth = { auth: 'required' } as const;

// https://github.com/matrix-org/matrix-spec-proposals/pull/3814
export const dehydratedDeviceRoutes: RoutePlugin = async (app, { services }) => {
  const { dehydratedDevices } = services;

  app.put(PREFIX, { config: auth, schema: { body: PutBody } }, async (request) => {
    const { body } = request;
    const deviceId = await dehydratedDevices.put(requesterOf(request), {
      deviceId: body.device_id,
      deviceData: body.device_data as JsonObject,
      displayName: body.initial_device_display_name,
      deviceKeys: body.device_keys,
      oneTimeKeys: body.one_time_keys,
      fallbackKeys: body.fallback_keys,
    });
    return { device_id: deviceId };
  });

  app.get(PREFIX, { config: auth }, async (request) => dehydratedDevices.get(requesterOf(request)));

  app.delete(PREFIX, { config: auth }, async (request) => ({
    device_id: await dehydratedDevices.delete(requesterOf(request)),
  }));

  app.post(
    `${PREFIX}/:deviceId/events`,
    {
      config: auth,
      schema: { params: Type.Object({ deviceId: Id }), body: EventsBody },
    },
    async (request) =>
      dehydratedDevices.events(
        requesterOf(request),
        request.params.deviceId,
        request.body.next_batch,
      ),
  );
};
