/**
 * Synapse's admin API (`/_synapse/admin/…`), so that its tools (synapse-admin, Draupnir,
 * register_new_matrix_user, bridges' setup scripts) work unchanged: shared-secret registration
 * and the server version for anyone, the rest for server admins only (docs/admin.md).
 * https://element-hq.github.io/synapse/latest/admin_api/register_api.html
 */
import { Type } from 'typebox';
import { VERSION } from '../../version.js';
import type { RoutePlugin } from '../client/plugin.js';
import { adminOnly } from './gate.js';
import { adminRegistrationTokenRoutes } from './registration-tokens.js';
import { adminReportRoutes } from './reports.js';
import { adminRoomRoutes } from './rooms.js';
import { adminRoomPurgeRoutes } from './room-purges.js';
import { adminUserRoutes } from './users.js';
import { adminModerationRoutes } from './moderation.js';
import { adminMediaRoutes } from './media.js';

export const adminRoutes: RoutePlugin = async (app, options) => {
  const { services, config } = options;
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

  app.get('/_synapse/admin/v1/server_version', async () => ({ server_version: VERSION }));

  // Everything else: server admins only, each request logged with who made it.
  await app.register(async (scoped) => {
    adminOnly(scoped);
    await scoped.register(adminUserRoutes, options);
    await scoped.register(adminRoomRoutes, options);
    await scoped.register(adminRoomPurgeRoutes, options);
    await scoped.register(adminRegistrationTokenRoutes, options);
    await scoped.register(adminReportRoutes, options);
    await scoped.register(adminModerationRoutes, options);
    await scoped.register(adminMediaRoutes, options);
  });
};
