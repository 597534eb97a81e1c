import { Type } from 'typebox';
import { accessTokenOf } from '../../http/access.js';
import type { LoginResult } from '../../services/accounts.js';
import type { RoutePlugin } from './plugin.js';

const RegisterBody = Type.Object({
  /** `m.login.application_service`: a service registering one of its users (its as_token). */
  type: Type.Optional(Type.String()),
  auth: Type.Optional(Type.Unknown()),
  // No maxLength: a name too long is M_INVALID_USERNAME (accounts service), not M_BAD_JSON.
  username: Type.Optional(Type.String()),
  password: Type.Optional(Type.String({ maxLength: 512 })),
  device_id: Type.Optional(
    Type.String({ minLength: 1, maxLength: 255, pattern: '^[\\x21-\\x7e]+$' }),
  ),
  initial_device_display_name: Type.Optional(Type.String({ maxLength: 512 })),
  inhibit_login: Type.Optional(Type.Boolean()),
  refresh_token: Type.Optional(Type.Boolean()),
});

// https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3register
// https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3registeravailable
export const registrationRoutes: RoutePlugin = async (app, { services, config }) => {
  app.post(
    '/register',
    {
      config: { rateLimit: 'registration' },
      schema: {
        body: RegisterBody,
        querystring: Type.Object({ kind: Type.Optional(Type.String()) }),
      },
    },
    async (request) => {
      const body = request.body;
      // https://spec.matrix.org/v1.19/application-service-api/#server-admin-style-permissions
      const result: LoginResult | { userId: string } =
        body.type === 'm.login.application_service'
          ? await services.appservices.register(
              services.appservices.serviceOf(accessTokenOf(request)),
              {
                username: body.username,
                deviceId: body.device_id,
                initialDeviceDisplayName: body.initial_device_display_name,
                inhibitLogin: body.inhibit_login,
                ip: request.ip,
              },
            )
          : await services.accounts.register({
              auth: body.auth,
              username: body.username,
              password: body.password,
              deviceId: body.device_id,
              initialDeviceDisplayName: body.initial_device_display_name,
              inhibitLogin: body.inhibit_login,
              kind: request.query.kind,
              ip: request.ip,
            });
      const login = 'accessToken' in result ? (result as LoginResult) : null;
      return login
        ? {
            user_id: login.userId,
            access_token: login.accessToken,
            device_id: login.deviceId,
            home_server: config.server_name,
          }
        : { user_id: result.userId, home_server: config.server_name };
    },
  );

  app.get(
    '/register/available',
    {
      config: { rateLimit: 'registration' },
      schema: { querystring: Type.Object({ username: Type.String() }) },
    },
    async (request) => {
      await services.accounts.checkAvailable(request.query.username);
      return { available: true };
    },
  );
};
