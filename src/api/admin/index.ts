/**
 * Synapse-compatible shared-secret registration, so existing tooling
 * (register_new_matrix_user, bridges' setup scripts) can create users, and deactivation.
 * https://element-hq.github.io/synapse/latest/admin_api/register_api.html
 * https://element-hq.github.io/synapse/latest/admin_api/user_admin_api.html#deactivate-account
 */
import { Type } from 'typebox';
import { requesterOf } from '../../http/request-context.js';
import type { RoutePlugin } from '../client/plugin.js';

export const adminRoutes: RoutePlugin = async (app, { services, config }) => {
  app.get('/_synapse/admin/v1/register', { config: { rateLimit: 'registration' } }, async () => ({
    nonce: await services.accounts.newAdminNonce(),
  }));

  app.post(
    '/_synapse/admin/v1/register',
    {
      config: { rateLimit: 'registration' },
      schema: {
        body: Type.Object({
          nonce: Type.String({ minLength: 1, maxLength: 128 }),
          username: Type.String({ minLength: 1, maxLength: 255 }),
          password: Type.String({ minLength: 1, maxLength: 512 }),
          mac: Type.String({ minLength: 1, maxLength: 128 }),
          admin: Type.Optional(Type.Boolean()),
          displayname: Type.Optional(Type.String({ maxLength: 256 })),
          user_type: Type.Optional(Type.Union([Type.String(), Type.Null()])),
        }),
      },
    },
    async (request) => {
      const body = request.body;
      const result = await services.accounts.adminRegister({
        nonce: body.nonce,
        username: body.username,
        password: body.password,
        admin: body.admin ?? false,
        mac: body.mac,
        displayname: body.displayname,
        userType: body.user_type ?? undefined,
      });
      return {
        user_id: result.userId,
        access_token: result.accessToken,
        device_id: result.deviceId,
        home_server: config.server_name,
      };
    },
  );

  app.post(
    '/_synapse/admin/v1/deactivate/:userId',
    {
      config: { auth: 'required' },
      schema: {
        params: Type.Object({ userId: Type.String() }),
        // Synapse's tools send no body at all as often as `{}`.
        body: Type.Optional(Type.Object({ erase: Type.Optional(Type.Boolean()) })),
      },
    },
    async (request) => {
      await services.deactivation.adminDeactivate(
        requesterOf(request),
        request.params.userId,
        request.body?.erase ?? false,
      );
      return { id_server_unbind_result: 'success' };
    },
  );
};
