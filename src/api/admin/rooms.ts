/**
 * Synapse's room admin API: pages of rooms, one room's details, members and state.
 * https://element-hq.github.io/synapse/latest/admin_api/rooms.html
 */
import { Type } from 'typebox';
import { requesterOf } from '../../http/request-context.js';
import type { RoomOrder } from '../../services/admin/index.js';
import { RoomParams, roomIdParam } from '../client/params.js';
import type { RoutePlugin } from '../client/plugin.js';
import { Direction, Limit, Offset } from './paging.js';

const V1 = '/_synapse/admin/v1';

const ROOM_ORDERS: readonly RoomOrder[] = [
  'name',
  'canonical_alias',
  'joined_members',
  'joined_local_members',
  'version',
  'creator',
  'public',
  'state_events',
];
/** Synapse's older names of two orderings. */
const ORDER_ALIASES: Record<string, RoomOrder> = { alphabetical: 'name', size: 'joined_members' };

export const adminRoomRoutes: RoutePlugin = async (app, { services }) => {
  const rooms = services.admin.rooms;
  const auth = { auth: 'required' } as const;

  app.get(
    `${V1}/rooms`,
    {
      config: auth,
      schema: {
        querystring: Type.Object({
          from: Offset,
          limit: Limit,
          order_by: Type.Optional(
            Type.Union([...ROOM_ORDERS, ...Object.keys(ORDER_ALIASES)].map((o) => Type.Literal(o))),
          ),
          dir: Direction,
          search_term: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
        }),
      },
    },
    async (request) => {
      const q = request.query;
      const order = q.order_by ?? 'name';
      return rooms.list({
        searchTerm: q.search_term,
        orderBy: ORDER_ALIASES[order] ?? (order as RoomOrder),
        dir: q.dir ?? 'f',
        offset: q.from ?? 0,
        limit: q.limit ?? 100,
      });
    },
  );

  app.get(
    `${V1}/rooms/:roomId`,
    { config: auth, schema: { params: RoomParams } },
    async (request) => rooms.details(roomIdParam(request.params.roomId)),
  );

  app.get(
    `${V1}/rooms/:roomId/members`,
    { config: auth, schema: { params: RoomParams } },
    async (request) => rooms.members(roomIdParam(request.params.roomId)),
  );

  app.post(
    `${V1}/rooms/:roomId/make_room_admin`,
    {
      config: auth,
      schema: {
        params: RoomParams,
        body: Type.Optional(
          Type.Object({ user_id: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })) }),
        ),
      },
    },
    async (request) => {
      // Without user_id: the requesting admin.
      const target = request.body?.user_id ?? requesterOf(request).userId;
      const { userId } = services.admin.users.localUser(target);
      await services.admin.roomAdmin.makeRoomAdmin(roomIdParam(request.params.roomId), userId);
      return {};
    },
  );

  app.get(
    `${V1}/rooms/:roomId/state`,
    { config: auth, schema: { params: RoomParams } },
    async (request) => ({ state: await rooms.state(roomIdParam(request.params.roomId)) }),
  );
};
