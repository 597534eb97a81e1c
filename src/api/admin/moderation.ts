/**
 * Synapse's moderation admin API: shadow-banning and rate-limit overrides of users, server
 * notices, and a room's events read without the membership rules (`/v1/rooms/{id}/messages`).
 * https://element-hq.github.io/synapse/latest/admin_api/user_admin_api.html#controlling-whether-a-user-is-shadow-banned
 * https://element-hq.github.io/synapse/latest/admin_api/user_admin_api.html#override-ratelimiting-for-users
 * https://element-hq.github.io/synapse/latest/admin_api/server_notices.html
 * https://element-hq.github.io/synapse/latest/admin_api/rooms.html#room-messages-api
 */
import { Type, type Static } from 'typebox';
import type { JsonObject } from '../../core/pdu.js';
import { requesterOf } from '../../http/request-context.js';
import { FilterParam, RoomParams, roomIdParam } from '../client/params.js';
import type { RoutePlugin } from '../client/plugin.js';
import { parseRoomEventFilter } from '../client/room-filter.js';

const V1 = '/_synapse/admin/v1';

const UserParams = Type.Object({ userId: Type.String({ minLength: 1, maxLength: 255 }) });
/** Synapse takes any non-negative integer; a bound keeps the arithmetic exact. */
const RateValue = Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000 }));
const NoticeBody = Type.Object({
  user_id: Type.String({ minLength: 1, maxLength: 255 }),
  content: Type.Record(Type.String(), Type.Unknown()),
  type: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
  state_key: Type.Optional(Type.String({ maxLength: 255 })),
});

export const adminModerationRoutes: RoutePlugin = async (app, { services }) => {
  const { moderation, serverNotices, rooms } = services.admin;
  const auth = { auth: 'required' } as const;

  app.post(
    `${V1}/users/:userId/shadow_ban`,
    { config: auth, schema: { params: UserParams } },
    async (request) => {
      await moderation.setShadowBanned(request.params.userId, true);
      return {};
    },
  );

  app.delete(
    `${V1}/users/:userId/shadow_ban`,
    { config: auth, schema: { params: UserParams } },
    async (request) => {
      await moderation.setShadowBanned(request.params.userId, false);
      return {};
    },
  );

  app.get(
    `${V1}/users/:userId/override_ratelimit`,
    { config: auth, schema: { params: UserParams } },
    async (request) => {
      const override = await moderation.rateLimitOverride(request.params.userId);
      return override
        ? { messages_per_second: override.messagesPerSecond, burst_count: override.burstCount }
        : {};
    },
  );

  app.post(
    `${V1}/users/:userId/override_ratelimit`,
    {
      config: auth,
      schema: {
        params: UserParams,
        body: Type.Optional(
          Type.Object({ messages_per_second: RateValue, burst_count: RateValue }),
        ),
      },
    },
    async (request) => {
      const override = {
        messagesPerSecond: request.body?.messages_per_second ?? 0,
        burstCount: request.body?.burst_count ?? 0,
      };
      await moderation.setRateLimitOverride(request.params.userId, override);
      return {
        messages_per_second: override.messagesPerSecond,
        burst_count: override.burstCount,
      };
    },
  );

  app.delete(
    `${V1}/users/:userId/override_ratelimit`,
    { config: auth, schema: { params: UserParams } },
    async (request) => {
      await moderation.setRateLimitOverride(request.params.userId, null);
      return {};
    },
  );

  const sendNotice = async (
    admin: string,
    body: Static<typeof NoticeBody>,
    txnId: string | undefined,
  ) => ({
    event_id: await serverNotices.send({
      admin,
      userId: body.user_id,
      type: body.type ?? 'm.room.message',
      stateKey: body.state_key,
      content: body.content as JsonObject,
      txnId,
    }),
  });

  app.post(
    `${V1}/send_server_notice`,
    { config: auth, schema: { body: NoticeBody } },
    async (request) => sendNotice(requesterOf(request).userId, request.body, undefined),
  );

  app.put(
    `${V1}/send_server_notice/:txnId`,
    {
      config: auth,
      schema: {
        params: Type.Object({ txnId: Type.String({ minLength: 1, maxLength: 255 }) }),
        body: NoticeBody,
      },
    },
    async (request) => sendNotice(requesterOf(request).userId, request.body, request.params.txnId),
  );

  app.get(
    `${V1}/rooms/:roomId/messages`,
    {
      config: auth,
      schema: {
        params: RoomParams,
        querystring: Type.Object({
          from: Type.Optional(Type.String({ maxLength: 64 })),
          to: Type.Optional(Type.String({ maxLength: 64 })),
          // Synapse's admin /messages defaults to backwards.
          dir: Type.Optional(Type.Union([Type.Literal('b'), Type.Literal('f')])),
          limit: Type.Optional(Type.Integer({ minimum: 0, maximum: 1000 })),
          filter: FilterParam,
        }),
      },
    },
    async (request) =>
      rooms.messages(requesterOf(request), roomIdParam(request.params.roomId), {
        from: request.query.from || undefined,
        to: request.query.to || undefined,
        dir: request.query.dir ?? 'b',
        limit: request.query.limit ?? 10,
        filter: parseRoomEventFilter(request.query.filter),
      }),
  );
};
