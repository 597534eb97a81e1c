import { Type } from 'typebox';
import type { JsonObject } from '../../core/pdu.js';
import { availableRoomVersions } from '../../core/room-versions.js';
import { requesterOf } from '../../http/request-context.js';
import { EventContent } from './params.js';
import type { RoutePlugin } from './plugin.js';

const CreateRoomBody = Type.Object({
  visibility: Type.Optional(Type.Union([Type.Literal('public'), Type.Literal('private')])),
  room_alias_name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  name: Type.Optional(Type.String({ maxLength: 1000 })),
  topic: Type.Optional(Type.String({ maxLength: 10000 })),
  invite: Type.Optional(Type.Array(Type.String({ maxLength: 255 }), { maxItems: 1000 })),
  invite_3pid: Type.Optional(Type.Array(Type.Unknown(), { maxItems: 0 })),
  room_version: Type.Optional(Type.String({ minLength: 1, maxLength: 32 })),
  creation_content: Type.Optional(EventContent),
  initial_state: Type.Optional(
    Type.Array(
      Type.Object({
        type: Type.String({ minLength: 1, maxLength: 255 }),
        state_key: Type.Optional(Type.String({ maxLength: 255 })),
        content: EventContent,
      }),
      { maxItems: 100 },
    ),
  ),
  preset: Type.Optional(
    Type.Union([
      Type.Literal('private_chat'),
      Type.Literal('public_chat'),
      Type.Literal('trusted_private_chat'),
    ]),
  ),
  is_direct: Type.Optional(Type.Boolean()),
  power_level_content_override: Type.Optional(EventContent),
});

// https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3createroom
// https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3capabilities
export const roomRoutes: RoutePlugin = async (app, { services }) => {
  app.post(
    '/createRoom',
    { config: { auth: 'required', rateLimit: 'membership' }, schema: { body: CreateRoomBody } },
    async (request) => {
      const body = request.body;
      const result = await services.rooms.createRoom(requesterOf(request), {
        preset: body.preset,
        visibility: body.visibility,
        roomAliasName: body.room_alias_name,
        name: body.name,
        topic: body.topic,
        invite: body.invite,
        isDirect: body.is_direct,
        initialState: body.initial_state?.map((e) => ({
          type: e.type,
          state_key: e.state_key,
          content: e.content as JsonObject,
        })),
        creationContent: body.creation_content as JsonObject | undefined,
        powerLevelContentOverride: body.power_level_content_override as JsonObject | undefined,
        roomVersion: body.room_version,
      });
      // Other servers' users are invited through their servers once the room exists; one
      // that cannot be invited leaves the room created (as Synapse does), and is logged.
      for (const invitee of result.remoteInvitees) {
        await services.membership
          .invite(
            requesterOf(request),
            result.roomId,
            invitee,
            undefined,
            body.is_direct ? { is_direct: true } : {},
          )
          .catch((err: unknown) =>
            request.log.warn({ invitee, err: (err as Error).message }, 'remote invite failed'),
          );
      }
      return { room_id: result.roomId, ...(result.alias ? { room_alias: result.alias } : {}) };
    },
  );

  app.get('/capabilities', { config: { auth: 'required' } }, async () => ({
    capabilities: {
      'm.room_versions': {
        default: services.settings.defaultRoomVersion,
        available: availableRoomVersions(),
      },
      'm.change_password': { enabled: true },
      'm.set_displayname': { enabled: true },
      'm.set_avatar_url': { enabled: true },
      'm.3pid_changes': { enabled: false },
      'm.get_login_token': { enabled: false },
    },
  }));
};
