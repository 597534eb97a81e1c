import { Type } from 'typebox';
import { LOGIN_FLOWS } from '../../services/sessions.js';
import { requesterOf } from '../../http/request-context.js';
import { accessTokenOf } from '../../http/access.js';
import type { RoutePlugin } from './plugin.js';

const LoginBody = Type.Object({
  type: Type.String(),
  identifier: Type.Optional(Type.Unknown()),
  user: Type.Optional(Type.Unknown()),
  password: Type.Optional(Type.String({ maxLength: 512 })),
  device_id: Type.Optional(
    Type.String({ minLength: 1, maxLength: 255, pattern: '^[\\x21-\\x7e]+$' }),
  ),
  initial_device_display_name: Type.Optional(Type.String({ maxLength: 512 })),
  refresh_token: Type.Optional(Type.Boolean()),
});

// https://spec.matrix.org/v1.19/client-server-api/#login
// https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3logout
export const loginRoutes: RoutePlugin = async (app, { services, config }) => {
  const flows =
    services.appservices.registrations.length > 0
      ? [...LOGIN_FLOWS, { type: 'm.login.application_service' }]
      : LOGIN_FLOWS;
  app.get('/login', { config: { rateLimit: 'login' } }, async () => ({ flows }));

  app.post(
    '/login',
    { config: { rateLimit: 'login' }, schema: { body: LoginBody } },
    async (request) => {
      const body = request.body;
      const login = {
        deviceId: body.device_id,
        displayName: body.initial_device_display_name,
        ip: request.ip,
      };
      // https://spec.matrix.org/v1.19/client-server-api/#appservice-login
      const result =
        body.type === 'm.login.application_service'
          ? await services.appservices.login(
              services.appservices.serviceOf(accessTokenOf(request)),
              body,
              login,
            )
          : await services.sessions.login({
              type: body.type,
              identifier: body.identifier,
              user: body.user,
              password: body.password,
              deviceId: body.device_id,
              initialDeviceDisplayName: body.initial_device_display_name,
              ip: request.ip,
            });
      return {
        user_id: result.userId,
        access_token: result.accessToken,
        device_id: result.deviceId,
        home_server: config.server_name,
      };
    },
  );

  app.post('/logout', { config: { auth: 'required' } }, async (request) => {
    await services.sessions.logout(requesterOf(request));
    return {};
  });

  app.post('/logout/all', { config: { auth: 'required' } }, async (request) => {
    await services.sessions.logoutAll(requesterOf(request));
    return {};
  });
};
