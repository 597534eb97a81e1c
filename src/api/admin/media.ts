/**
 * Synapse's media admin API: quarantine, deletion and a user's media.
 * https://element-hq.github.io/synapse/latest/admin_api/media_admin_api.html
 * https://element-hq.github.io/synapse/latest/admin_api/user_admin_api.html#list-media-uploaded-by-a-user
 */
import { Type } from 'typebox';
import { requesterOf } from '../../http/request-context.js';
import type { UserMediaOrder, UserMediaRow } from '../../services/admin/index.js';
import { RoomParams, roomIdParam } from '../client/params.js';
import type { RoutePlugin } from '../client/plugin.js';
import { Direction, Limit, Offset } from './paging.js';

const V1 = '/_synapse/admin/v1';

const MediaParams = Type.Object({
  serverName: Type.String({ minLength: 1, maxLength: 255 }),
  mediaId: Type.String({ minLength: 1, maxLength: 255 }),
});
const UserParams = Type.Object({ userId: Type.String({ minLength: 1, maxLength: 255 }) });
const MEDIA_ORDERS: readonly UserMediaOrder[] = [
  'media_id',
  'upload_name',
  'created_ts',
  'media_length',
  'media_type',
  'quarantined_by',
];

const mediaJson = (row: UserMediaRow) => ({
  media_id: row.mediaId,
  media_type: row.contentType,
  media_length: row.size,
  upload_name: row.uploadName,
  created_ts: row.createdTs,
  last_access_ts: null,
  quarantined_by: row.quarantinedBy,
  safe_from_quarantine: false,
});

export const adminMediaRoutes: RoutePlugin = async (app, { services }) => {
  const media = services.admin.media;
  const auth = { auth: 'required' } as const;

  app.post(
    `${V1}/media/quarantine/:serverName/:mediaId`,
    { config: auth, schema: { params: MediaParams } },
    async (request) => {
      const { serverName, mediaId } = request.params;
      await media.quarantine(requesterOf(request).userId, serverName, mediaId);
      return {};
    },
  );

  app.post(
    `${V1}/media/unquarantine/:serverName/:mediaId`,
    { config: auth, schema: { params: MediaParams } },
    async (request) => {
      await media.unquarantine(request.params.serverName, request.params.mediaId);
      return {};
    },
  );

  const quarantineRoom = async (admin: string, roomId: string) => ({
    num_quarantined: await media.quarantineRoom(admin, roomIdParam(roomId)),
  });
  app.post(
    `${V1}/room/:roomId/media/quarantine`,
    { config: auth, schema: { params: RoomParams } },
    async (request) => quarantineRoom(requesterOf(request).userId, request.params.roomId),
  );
  // Synapse's older path.
  app.post(
    `${V1}/quarantine_media/:roomId`,
    { config: auth, schema: { params: RoomParams } },
    async (request) => quarantineRoom(requesterOf(request).userId, request.params.roomId),
  );

  app.get(
    `${V1}/room/:roomId/media`,
    { config: auth, schema: { params: RoomParams } },
    async (request) => media.roomMedia(roomIdParam(request.params.roomId)),
  );

  app.post(
    `${V1}/user/:userId/media/quarantine`,
    { config: auth, schema: { params: UserParams } },
    async (request) => ({
      num_quarantined: await media.quarantineUser(
        requesterOf(request).userId,
        request.params.userId,
      ),
    }),
  );

  app.delete(
    `${V1}/media/:serverName/:mediaId`,
    { config: auth, schema: { params: MediaParams } },
    async (request) => {
      const deleted = await media.deleteOne(request.params.serverName, request.params.mediaId);
      return { deleted_media: deleted, total: deleted.length };
    },
  );

  const DeleteQuery = Type.Object({
    before_ts: Type.Integer({ minimum: 0 }),
    size_gt: Type.Optional(Type.Integer({ minimum: 0 })),
    keep_profiles: Type.Optional(Type.Boolean()),
  });
  const deleteBefore = async (query: { before_ts: number; size_gt?: number | undefined }) => {
    const deleted = await media.deleteBefore(query.before_ts, query.size_gt ?? 0);
    return { deleted_media: deleted, total: deleted.length };
  };
  app.post(
    `${V1}/media/delete`,
    { config: auth, schema: { querystring: DeleteQuery } },
    async (request) => deleteBefore(request.query),
  );
  app.post(
    `${V1}/media/:serverName/delete`,
    {
      config: auth,
      schema: {
        params: Type.Object({ serverName: Type.String({ minLength: 1, maxLength: 255 }) }),
        querystring: DeleteQuery,
      },
    },
    async (request) => deleteBefore(request.query),
  );

  app.get(
    `${V1}/users/:userId/media`,
    {
      config: auth,
      schema: {
        params: UserParams,
        querystring: Type.Object({
          from: Offset,
          limit: Limit,
          order_by: Type.Optional(Type.Union(MEDIA_ORDERS.map((o) => Type.Literal(o)))),
          dir: Direction,
        }),
      },
    },
    async (request) => {
      const q = request.query;
      const page = await media.userMedia(request.params.userId, {
        orderBy: q.order_by ?? 'created_ts',
        dir: q.dir ?? 'f',
        offset: q.from ?? 0,
        limit: q.limit ?? 100,
      });
      return {
        media: page.rows.map(mediaJson),
        total: page.total,
        ...(page.nextOffset !== null ? { next_token: page.nextOffset } : {}),
      };
    },
  );

  app.delete(
    `${V1}/users/:userId/media`,
    { config: auth, schema: { params: UserParams } },
    async (request) => {
      const deleted = await media.deleteUserMedia(request.params.userId);
      return { deleted_media: deleted, total: deleted.length };
    },
  );
};
