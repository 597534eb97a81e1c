import { Type } from 'typebox';
import { requesterOf } from '../../http/request-context.js';
import type { DeviceRow } from '../../services/devices.js';
import type { RoutePlugin } from './plugin.js';

const DeviceParams = Type.Object({ deviceId: Type.String({ minLength: 1, maxLength: 255 }) });

const deviceJson = (device: DeviceRow) => ({
  device_id: device.deviceId,
  ...(device.displayName !== null ? { display_name: device.displayName } : {}),
  ...(device.lastSeenIp !== null ? { last_seen_ip: device.lastSeenIp } : {}),
  ...(device.lastSeenTs !== null ? { last_seen_ts: device.lastSeenTs } : {}),
});

// https://spec.matrix.org/v1.19/client-server-api/#device-management
export const deviceRoutes: RoutePlugin = async (app, { services }) => {
  app.get('/devices', { config: { auth: 'required' } }, async (request) => ({
    devices: (await services.devices.list(requesterOf(request))).map(deviceJson),
  }));

  app.get(
    '/devices/:deviceId',
    { config: { auth: 'required' }, schema: { params: DeviceParams } },
    async (request) =>
      deviceJson(await services.devices.get(requesterOf(request), request.params.deviceId)),
  );

  app.put(
    '/devices/:deviceId',
    {
      config: { auth: 'required' },
      schema: {
        params: DeviceParams,
        body: Type.Optional(
          Type.Object({ display_name: Type.Optional(Type.String({ maxLength: 512 })) }),
        ),
      },
    },
    async (request) => {
      const requester = requesterOf(request);
      const displayName = request.body?.display_name;
      // MSC4190: an application service creates its users' devices this way.
      if (
        requester.appservice &&
        (await services.appservices.createDevice(
          requester,
          request.params.deviceId,
          displayName,
          request.ip,
        ))
      ) {
        return {};
      }
      if (displayName === undefined) {
        await services.devices.get(requester, request.params.deviceId);
      } else {
        await services.devices.rename(requester, request.params.deviceId, displayName);
      }
      return {};
    },
  );

  app.delete(
    '/devices/:deviceId',
    {
      config: { auth: 'required' },
      schema: { params: DeviceParams },
    },
    async (request) => {
      const requester = requesterOf(request);
      await services.devices.get(requester, request.params.deviceId);
      const body = request.body as { auth?: unknown } | undefined;
      await services.devices.delete(requester, [request.params.deviceId], body?.auth);
      return {};
    },
  );

  app.post(
    '/delete_devices',
    {
      config: { auth: 'required' },
      schema: {
        body: Type.Object({
          devices: Type.Array(Type.String({ minLength: 1, maxLength: 255 }), { maxItems: 1000 }),
          auth: Type.Optional(Type.Unknown()),
        }),
      },
    },
    async (request) => {
      await services.devices.delete(requesterOf(request), request.body.devices, request.body.auth);
      return {};
    },
  );
};
