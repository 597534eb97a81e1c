import { Type } from 'typebox';
import { notFound } from '../../core/errors.js';
import { requesterOf } from '../../http/request-context.js';
import type { RoutePlugin } from './plugin.js';

const Id = Type.String({ minLength: 1, maxLength: 255 });
const KeyBackupData = Type.Object({
  first_message_index: Type.Integer({ minimum: 0 }),
  forwarded_count: Type.Integer({ minimum: 0 }),
  is_verified: Type.Boolean(),
  session_data: Type.Record(Type.String(), Type.Unknown()),
});
const Sessions = Type.Record(Id, KeyBackupData);
const RoomKeyBackup = Type.Object({ sessions: Sessions });
const Rooms = Type.Record(Id, RoomKeyBackup);
const VersionQuery = Type.Object({ version: Type.String({ maxLength: 64 }) });
const VersionParams = Type.Object({ version: Type.String({ maxLength: 64 }) });
const RoomParams = Type.Object({ roomId: Id });
const SessionParams = Type.Object({ roomId: Id, sessionId: Id });
const VersionBody = Type.Object({
  algorithm: Type.String({ minLength: 1, maxLength: 255 }),
  auth_data: Type.Record(Type.String(), Type.Unknown()),
});
const auth = { auth: 'required' } as const;

// https://spec.matrix.org/v1.19/client-server-api/#server-side-key-backups
export const roomKeyRoutes: RoutePlugin = async (app, { services }) => {
  const { keyBackup } = services;

  // https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3room_keysversion
  app.post(
    '/room_keys/version',
    { config: auth, schema: { body: VersionBody } },
    async (request) => ({
      version: await keyBackup.createVersion(
        requesterOf(request),
        request.body.algorithm,
        request.body.auth_data,
      ),
    }),
  );
  app.get('/room_keys/version', { config: auth }, async (request) =>
    keyBackup.getVersion(requesterOf(request)),
  );
  app.get(
    '/room_keys/version/:version',
    { config: auth, schema: { params: VersionParams } },
    async (request) => keyBackup.getVersion(requesterOf(request), request.params.version),
  );
  app.put(
    '/room_keys/version/:version',
    {
      config: auth,
      schema: {
        params: VersionParams,
        body: Type.Object({
          algorithm: VersionBody.properties.algorithm,
          auth_data: VersionBody.properties.auth_data,
          version: Type.Optional(Type.String({ maxLength: 64 })),
        }),
      },
    },
    async (request) => {
      await keyBackup.updateVersion(requesterOf(request), request.params.version, request.body);
      return {};
    },
  );
  app.delete(
    '/room_keys/version/:version',
    { config: auth, schema: { params: VersionParams } },
    async (request) => {
      await keyBackup.deleteVersion(requesterOf(request), request.params.version);
      return {};
    },
  );

  // https://spec.matrix.org/v1.19/client-server-api/#put_matrixclientv3room_keyskeys
  app.put(
    '/room_keys/keys',
    { config: auth, schema: { querystring: VersionQuery, body: Type.Object({ rooms: Rooms }) } },
    async (request) =>
      keyBackup.putKeys(requesterOf(request), request.query.version, request.body.rooms),
  );
  app.put(
    '/room_keys/keys/:roomId',
    {
      config: auth,
      schema: { querystring: VersionQuery, params: RoomParams, body: RoomKeyBackup },
    },
    async (request) =>
      keyBackup.putKeys(requesterOf(request), request.query.version, {
        [request.params.roomId]: request.body,
      }),
  );
  app.put(
    '/room_keys/keys/:roomId/:sessionId',
    {
      config: auth,
      schema: { querystring: VersionQuery, params: SessionParams, body: KeyBackupData },
    },
    async (request) =>
      keyBackup.putKeys(requesterOf(request), request.query.version, {
        [request.params.roomId]: { sessions: { [request.params.sessionId]: request.body } },
      }),
  );

  app.get(
    '/room_keys/keys',
    { config: auth, schema: { querystring: VersionQuery } },
    async (request) => ({
      rooms: await keyBackup.getKeys(requesterOf(request), request.query.version),
    }),
  );
  app.get(
    '/room_keys/keys/:roomId',
    { config: auth, schema: { querystring: VersionQuery, params: RoomParams } },
    async (request) => {
      const { roomId } = request.params;
      const rooms = await keyBackup.getKeys(requesterOf(request), request.query.version, roomId);
      return { sessions: rooms[roomId]?.sessions ?? {} };
    },
  );
  app.get(
    '/room_keys/keys/:roomId/:sessionId',
    { config: auth, schema: { querystring: VersionQuery, params: SessionParams } },
    async (request) => {
      const { roomId, sessionId } = request.params;
      const rooms = await keyBackup.getKeys(
        requesterOf(request),
        request.query.version,
        roomId,
        sessionId,
      );
      const found = rooms[roomId]?.sessions[sessionId];
      if (!found) throw notFound('No room key backed up for this session');
      return found;
    },
  );

  app.delete(
    '/room_keys/keys',
    { config: auth, schema: { querystring: VersionQuery } },
    async (request) => keyBackup.deleteKeys(requesterOf(request), request.query.version),
  );
  app.delete(
    '/room_keys/keys/:roomId',
    { config: auth, schema: { querystring: VersionQuery, params: RoomParams } },
    async (request) =>
      keyBackup.deleteKeys(requesterOf(request), request.query.version, request.params.roomId),
  );
  app.delete(
    '/room_keys/keys/:roomId/:sessionId',
    { config: auth, schema: { querystring: VersionQuery, params: SessionParams } },
    async (request) =>
      keyBackup.deleteKeys(
        requesterOf(request),
        request.query.version,
        request.params.roomId,
        request.params.sessionId,
      ),
  );
};
