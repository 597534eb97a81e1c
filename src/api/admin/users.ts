/**
 * Synapse's user admin API: accounts, their admin flag, rooms, devices, sessions.
 * https://element-hq.github.io/synapse/latest/admin_api/user_admin_api.html
 */
import { Type } from 'typebox';
import { invalidParam, unknown } from '../../core/errors.js';
import { requesterOf } from '../../http/request-context.js';
import type { AdminUserRow, DeviceRow } from '../../services/admin/index.js';
import { ColumnText, MAX_AVATAR_URL_LENGTH, MAX_DISPLAYNAME_LENGTH } from '../client/params.js';
import type { RoutePlugin } from '../client/plugin.js';
import { Direction, Offset, Limit } from './paging.js';

const V1 = '/_synapse/admin/v1';
const V2 = '/_synapse/admin/v2';

const UserParams = Type.Object({ userId: Type.String({ minLength: 1, maxLength: 255 }) });
const DeviceParams = Type.Object({
  userId: Type.String({ minLength: 1, maxLength: 255 }),
  deviceId: Type.String({ minLength: 1, maxLength: 255 }),
});

const USER_ORDERS = ['name', 'admin', 'deactivated', 'displayname', 'avatar_url', 'creation_ts'];

/** A user as the list shows it. */
function listedUser(user: AdminUserRow) {
  return {
    name: user.userId,
    user_type: null,
    is_guest: false,
    admin: user.isAdmin,
    deactivated: user.deactivated,
    shadow_banned: user.shadowBanned,
    displayname: user.displayname,
    avatar_url: user.avatarUrl,
    creation_ts: user.creationTs,
    approved: true,
    erased: false,
    locked: false,
    last_seen_ts: null,
  };
}

/** A user as GET /v2/users/{userId} shows it. */
function userDetails(user: AdminUserRow) {
  return {
    ...listedUser(user),
    threepids: [],
    external_ids: [],
    appservice_id: null,
    consent_server_notice_sent: null,
    consent_version: null,
    consent_ts: null,
    suspended: false,
  };
}

const deviceJson = (userId: string, device: DeviceRow) => ({
  device_id: device.deviceId,
  display_name: device.displayName,
  last_seen_ip: device.lastSeenIp,
  last_seen_ts: device.lastSeenTs,
  last_seen_user_agent: null,
  user_id: userId,
});

export const adminUserRoutes: RoutePlugin = async (app, { services }) => {
  const users = services.admin.users;
  const auth = { auth: 'required' } as const;

  app.get(
    `${V2}/users`,
    {
      config: auth,
      schema: {
        querystring: Type.Object({
          from: Offset,
          limit: Limit,
          user_id: Type.Optional(Type.String({ maxLength: 255 })),
          name: Type.Optional(Type.String({ maxLength: 255 })),
          guests: Type.Optional(Type.Boolean()),
          admins: Type.Optional(Type.Boolean()),
          deactivated: Type.Optional(Type.Boolean()),
          order_by: Type.Optional(Type.Union(USER_ORDERS.map((o) => Type.Literal(o)))),
          dir: Direction,
        }),
      },
    },
    async (request) => {
      const q = request.query;
      const offset = q.from ?? 0;
      const page = await users.list({
        userIdContains: q.user_id,
        nameContains: q.name,
        admins: q.admins,
        includeDeactivated: q.deactivated ?? false,
        orderBy: (q.order_by ?? 'name') as 'name',
        dir: q.dir ?? 'f',
        offset,
        limit: q.limit ?? 100,
      });
      // `guests` (include guests, default true) changes nothing: there are no guests.
      return {
        users: page.users.map(listedUser),
        total: page.total,
        ...(page.nextOffset !== null ? { next_token: String(page.nextOffset) } : {}),
      };
    },
  );

  app.get(
    `${V2}/users/:userId`,
    { config: auth, schema: { params: UserParams } },
    async (request) => userDetails(await users.get(request.params.userId)),
  );

  app.put(
    `${V2}/users/:userId`,
    {
      config: auth,
      schema: {
        params: UserParams,
        body: Type.Object({
          password: Type.Optional(Type.String({ minLength: 1, maxLength: 512 })),
          logout_devices: Type.Optional(Type.Boolean()),
          displayname: Type.Optional(
            Type.Union([ColumnText({ maxLength: MAX_DISPLAYNAME_LENGTH }), Type.Null()]),
          ),
          avatar_url: Type.Optional(
            Type.Union([ColumnText({ maxLength: MAX_AVATAR_URL_LENGTH }), Type.Null()]),
          ),
          admin: Type.Optional(Type.Boolean()),
          deactivated: Type.Optional(Type.Boolean()),
          // Accepted for Synapse's tools, not kept: Commons has no third-party IDs or SSO.
          threepids: Type.Optional(Type.Array(Type.Unknown(), { maxItems: 100 })),
          external_ids: Type.Optional(Type.Array(Type.Unknown(), { maxItems: 100 })),
          user_type: Type.Optional(Type.Union([Type.String({ maxLength: 64 }), Type.Null()])),
          locked: Type.Optional(Type.Boolean()),
        }),
      },
    },
    async (request, reply) => {
      const body = request.body;
      const result = await users.upsert(request.params.userId, {
        password: body.password,
        logoutDevices: body.logout_devices,
        displayname: body.displayname,
        avatarUrl: body.avatar_url,
        admin: body.admin,
        deactivated: body.deactivated,
      });
      reply.code(result.created ? 201 : 200);
      return userDetails(result.user);
    },
  );

  app.get(
    `${V1}/users/:userId/admin`,
    { config: auth, schema: { params: UserParams } },
    async (request) => ({ admin: await users.isAdmin(request.params.userId) }),
  );

  app.put(
    `${V1}/users/:userId/admin`,
    {
      config: auth,
      schema: { params: UserParams, body: Type.Object({ admin: Type.Boolean() }) },
    },
    async (request) => {
      const { userId } = users.localUser(request.params.userId);
      if (userId === requesterOf(request).userId && !request.body.admin) {
        // As Synapse: an admin cannot demote themselves (someone must stay admin).
        throw unknown('You may not demote yourself');
      }
      await users.setAdmin(userId, request.body.admin);
      return {};
    },
  );

  app.get(
    `${V1}/users/:userId/joined_rooms`,
    { config: auth, schema: { params: UserParams } },
    async (request) => {
      const joined = await users.joinedRooms(request.params.userId);
      return { joined_rooms: joined, total: joined.length };
    },
  );

  app.get(
    `${V2}/users/:userId/devices`,
    { config: auth, schema: { params: UserParams } },
    async (request) => {
      const { userId } = users.localUser(request.params.userId);
      const devices = await users.devices(userId);
      return { devices: devices.map((d) => deviceJson(userId, d)), total: devices.length };
    },
  );

  app.get(
    `${V2}/users/:userId/devices/:deviceId`,
    { config: auth, schema: { params: DeviceParams } },
    async (request) => {
      const { userId } = users.localUser(request.params.userId);
      return deviceJson(userId, await users.device(userId, request.params.deviceId));
    },
  );

  app.put(
    `${V2}/users/:userId/devices/:deviceId`,
    {
      config: auth,
      schema: {
        params: DeviceParams,
        body: Type.Object({ display_name: Type.Optional(ColumnText({ maxLength: 256 })) }),
      },
    },
    async (request) => {
      const { userId, deviceId } = request.params;
      if (request.body.display_name !== undefined) {
        await users.renameDevice(userId, deviceId, request.body.display_name);
      } else {
        await users.device(userId, deviceId);
      }
      return {};
    },
  );

  app.delete(
    `${V2}/users/:userId/devices/:deviceId`,
    { config: auth, schema: { params: DeviceParams } },
    async (request) => {
      await users.deleteDevices(request.params.userId, [request.params.deviceId]);
      return {};
    },
  );

  app.post(
    `${V2}/users/:userId/delete_devices`,
    {
      config: auth,
      schema: {
        params: UserParams,
        body: Type.Object({
          devices: Type.Array(Type.String({ minLength: 1, maxLength: 255 }), { maxItems: 1000 }),
        }),
      },
    },
    async (request) => {
      await users.deleteDevices(request.params.userId, request.body.devices);
      return {};
    },
  );

  app.get(
    `${V1}/whois/:userId`,
    { config: auth, schema: { params: UserParams } },
    async (request) => users.whois(request.params.userId),
  );

  app.post(
    `${V1}/users/:userId/login`,
    {
      config: auth,
      schema: {
        params: UserParams,
        body: Type.Optional(Type.Object({ valid_until_ms: Type.Optional(Type.Integer()) })),
      },
    },
    async (request) => {
      if (request.body?.valid_until_ms !== undefined) {
        throw invalidParam('valid_until_ms is not supported: tokens do not expire');
      }
      const session = await users.loginAs(request.params.userId);
      return { access_token: session.accessToken };
    },
  );

  app.post(
    `${V1}/deactivate/:userId`,
    {
      config: auth,
      schema: {
        params: UserParams,
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
