import { Type } from 'typebox';
import { requesterOf } from '../../http/request-context.js';
import type { RoutePlugin } from './plugin.js';

// https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3accountwhoami
// https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3accountpassword
export const accountRoutes: RoutePlugin = async (app, { services }) => {
  app.get('/account/whoami', { config: { auth: 'required' } }, async (request) => {
    const requester = requesterOf(request);
    return { user_id: requester.userId, device_id: requester.deviceId, is_guest: false };
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
};
