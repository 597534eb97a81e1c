import { Type } from 'typebox';
import { requesterOf } from '../../http/request-context.js';
import type { RoutePlugin } from './plugin.js';

// https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3accountwhoami
// https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3accountpassword
// https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3accountdeactivate
// https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3account3pid
export const accountRoutes: RoutePlugin = async (app, { services }) => {
  app.get('/account/whoami', { config: { auth: 'required' } }, async (request) => {
    const requester = requesterOf(request);
    // An application service acting without a device has none to name.
    return {
      user_id: requester.userId,
      ...(requester.deviceId !== '' ? { device_id: requester.deviceId } : {}),
      is_guest: false,
    };
  });

  app.post(
    '/account/password',
    {
      config: { auth: 'required', rateLimit: 'login' },
      schema: {
        body: Type.Object({
          auth: Type.Optional(Type.Unknown()),
          new_password: Type.String({ minLength: 1, maxLength: 512 }),
          logout_devices: Type.Optional(Type.Boolean()),
        }),
      },
    },
    async (request) => {
      await services.accounts.changePassword(requesterOf(request), {
        auth: request.body.auth,
        newPassword: request.body.new_password,
        logoutDevices: request.body.logout_devices ?? true,
      });
      return {};
    },
  );

  app.post(
    '/account/deactivate',
    {
      config: { auth: 'required', rateLimit: 'login' },
      schema: {
        body: Type.Object({
          auth: Type.Optional(Type.Unknown()),
          erase: Type.Optional(Type.Boolean()),
          id_server: Type.Optional(Type.String({ maxLength: 255 })),
        }),
      },
    },
    async (request) => {
      await services.deactivation.deactivate(requesterOf(request), {
        auth: request.body.auth,
        erase: request.body.erase ?? false,
      });
      // No identity server is ever bound: there was nothing to unbind.
      return { id_server_unbind_result: 'no-support' };
    },
  );

  // No third-party identifiers are kept (`m.3pid_changes` is disabled); Element's settings
  // ask anyway.
  app.get('/account/3pid', { config: { auth: 'required' } }, async () => ({ threepids: [] }));
};
