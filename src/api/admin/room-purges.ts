/**
 * Synapse's room deletion, history purge and room block endpoints; both purges run in the
 * background with status endpoints.
 * https://element-hq.github.io/synapse/latest/admin_api/rooms.html#delete-room-api
 * https://element-hq.github.io/synapse/latest/admin_api/purge_history_api.html
 */
import type { FastifyRequest } from 'fastify';
import { Type, type Static } from 'typebox';
import { invalidParam } from '../../core/errors.js';
import { requesterOf } from '../../http/request-context.js';
import { RoomParams, roomIdParam } from '../client/params.js';
import type { RoutePlugin } from '../client/plugin.js';

const V1 = '/_synapse/admin/v1';
const V2 = '/_synapse/admin/v2';

const DeleteBody = Type.Optional(
  Type.Object({
    block: Type.Optional(Type.Boolean()),
    purge: Type.Optional(Type.Boolean()),
    force_purge: Type.Optional(Type.Boolean()),
    message: Type.Optional(Type.String({ maxLength: 2048 })),
    room_name: Type.Optional(Type.String({ maxLength: 255 })),
    new_room_user_id: Type.Optional(Type.Union([Type.String({ maxLength: 255 }), Type.Null()])),
  }),
);
type DeleteRequest = NonNullable<Static<typeof DeleteBody>>;
const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) });

export const adminRoomPurgeRoutes: RoutePlugin = async (app, { services }) => {
  const purges = services.admin.purges;
  const auth = { auth: 'required' } as const;

  const schedule = async (request: FastifyRequest, roomId: string, body: DeleteRequest = {}) => {
    if (body.new_room_user_id !== undefined && body.new_room_user_id !== null) {
      throw invalidParam('new_room_user_id is not supported: members are removed, not moved');
    }
    return purges.deleteRoom(requesterOf(request), roomIdParam(roomId), {
      block: body.block ?? false,
      purge: body.purge ?? true,
      forcePurge: body.force_purge ?? false,
    });
  };

  app.delete(
    `${V2}/rooms/:roomId`,
    { config: auth, schema: { params: RoomParams, body: DeleteBody } },
    async (request) => ({
      delete_id: await schedule(request, request.params.roomId, request.body),
    }),
  );

  // The older form: answers once the deletion is over.
  app.delete(
    `${V1}/rooms/:roomId`,
    { config: auth, schema: { params: RoomParams, body: DeleteBody } },
    async (request) => {
      const id = await schedule(request, request.params.roomId, request.body);
      await purges.wait(id);
      const status = await purges.deletionStatus(id);
      if (status.status === 'failed') throw invalidParam(status.error ?? 'Deletion failed');
      return status.shutdown_room;
    },
  );

  app.get(
    `${V2}/rooms/:roomId/delete_status`,
    { config: auth, schema: { params: RoomParams } },
    async (request) => ({
      results: await purges.deletionsOfRoom(roomIdParam(request.params.roomId)),
    }),
  );

  app.get(
    `${V2}/rooms/delete_status/:id`,
    { config: auth, schema: { params: IdParams } },
    async (request) => {
      const found = await purges.deletionStatus(request.params.id);
      return {
        status: found.status,
        ...(found.error !== undefined ? { error: found.error } : {}),
        shutdown_room: found.shutdown_room,
      };
    },
  );

  const PurgeBody = Type.Optional(
    Type.Object({
      delete_local_events: Type.Optional(Type.Boolean()),
      purge_up_to_event_id: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
      purge_up_to_ts: Type.Optional(Type.Integer({ minimum: 0 })),
    }),
  );
  for (const path of [`${V1}/purge_history/:roomId`, `${V1}/purge_history/:roomId/:eventId`]) {
    app.post(
      path,
      {
        config: auth,
        schema: {
          params: Type.Object({
            roomId: RoomParams.properties.roomId,
            eventId: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
          }),
          body: PurgeBody,
        },
      },
      async (request) => {
        const body = request.body ?? {};
        const purgeId = await purges.purgeHistory(
          requesterOf(request),
          roomIdParam(request.params.roomId),
          { eventId: request.params.eventId ?? body.purge_up_to_event_id, ts: body.purge_up_to_ts },
          body.delete_local_events ?? false,
        );
        return { purge_id: purgeId };
      },
    );
  }

  app.get(
    `${V1}/purge_history_status/:id`,
    { config: auth, schema: { params: IdParams } },
    async (request) => purges.historyPurgeStatus(request.params.id),
  );

  app.get(
    `${V1}/rooms/:roomId/block`,
    { config: auth, schema: { params: RoomParams } },
    async (request) => purges.blockOf(roomIdParam(request.params.roomId)),
  );

  app.put(
    `${V1}/rooms/:roomId/block`,
    {
      config: auth,
      schema: { params: RoomParams, body: Type.Object({ block: Type.Boolean() }) },
    },
    async (request) => {
      await purges.setBlocked(
        requesterOf(request),
        roomIdParam(request.params.roomId),
        request.body.block,
      );
      return { block: request.body.block };
    },
  );
};
