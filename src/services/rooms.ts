/**
 * Creating rooms (spec: POST /createRoom) and room state: presets, power levels, initial
 * state, name, topic, alias, invites — all in one transaction, each event through the auth rules.
 */
import { MatrixError, invalidParam } from '../core/errors.js';
import { parseRoomAlias, parseUserId } from '../core/identifiers.js';
import type { JsonObject, RoomVersionId } from '../core/pdu.js';
import { getRoomVersion, isSupportedRoomVersion } from '../core/room-versions.js';
import type { Stores } from '../storage/index.js';
import type { Requester, ServiceContext } from './context.js';
import type { EventWriter, NewEvent } from './event-writer.js';
import { invitesBlocked } from './invite-permission.js';

export type Preset = 'private_chat' | 'public_chat' | 'trusted_private_chat';

export interface CreateRoomRequest {
  preset?: Preset | undefined;
  visibility?: 'public' | 'private' | undefined;
  roomAliasName?: string | undefined;
  name?: string | undefined;
  topic?: string | undefined;
  invite?: string[] | undefined;
  isDirect?: boolean | undefined;
  initialState?:
    { type: string; state_key?: string | undefined; content: JsonObject }[] | undefined;
  creationContent?: JsonObject | undefined;
  powerLevelContentOverride?: JsonObject | undefined;
  roomVersion?: string | undefined;
}

/** The power levels a new room starts with, before `power_level_content_override`. */
function defaultPowerLevels(
  creator: string,
  preset: Preset,
  invitees: string[],
  creatorsHavePower: boolean,
): JsonObject {
  const users: JsonObject = creatorsHavePower ? {} : { [creator]: 100 };
  // Trusted invitees get full power; in room version 12 they become additional creators instead.
  if (preset === 'trusted_private_chat' && !creatorsHavePower) {
    for (const invitee of invitees) users[invitee] = 100;
  }
  return {
    users,
    users_default: 0,
    events: {
      'm.room.name': 50,
      'm.room.power_levels': 100,
      'm.room.history_visibility': 100,
      'm.room.canonical_alias': 50,
      'm.room.avatar': 50,
      'm.room.tombstone': 100,
      'm.room.server_acl': 100,
      'm.room.encryption': 100,
    },
    events_default: 0,
    state_default: 50,
    ban: 50,
    kick: 50,
    redact: 50,
    invite: 0,
    historical: 100,
  };
}

/**
 * While a room is being created, a refusal by the auth rules means the request's own
 * parameters give the room an invalid state: the spec's 400 M_INVALID_ROOM_STATE.
 */
async function invalidStateOnRefusal<T>(create: () => Promise<T>): Promise<T> {
  try {
    return await create();
  } catch (err) {
    if (err instanceof MatrixError && err.errcode === 'M_FORBIDDEN') {
      throw new MatrixError(
        400,
        'M_INVALID_ROOM_STATE',
        `The requested room state is invalid: ${err.message}`,
      );
    }
    throw err;
  }
}

export function createRoomService(ctx: ServiceContext, writer: EventWriter) {
  const { serverName } = ctx.settings;
  /** A user of another server, invited through their server when federating. */
  const isRemote = (userId: string) =>
    (ctx.settings.federation ?? null) !== null && parseUserId(userId)?.serverName !== serverName;

  async function memberContent(
    stores: Stores,
    userId: string,
    membership: string,
    extra: JsonObject = {},
  ): Promise<JsonObject> {
    const profile = await stores.accounts.selectProfile(userId);
    return {
      membership,
      ...(profile?.displayname ? { displayname: profile.displayname } : {}),
      ...(profile?.avatarUrl ? { avatar_url: profile.avatarUrl } : {}),
      ...extra,
    };
  }

  return {
    memberContent,

    async createRoom(
      requester: Requester,
      request: CreateRoomRequest,
    ): Promise<{ roomId: string; alias?: string; remoteInvitees: string[] }> {
      const versionId = request.roomVersion ?? ctx.settings.defaultRoomVersion;
      if (!isSupportedRoomVersion(versionId)) {
        throw new MatrixError(
          400,
          'M_UNSUPPORTED_ROOM_VERSION',
          `Room version ${versionId} is not supported`,
        );
      }
      const version: RoomVersionId = versionId;
      const rules = getRoomVersion(version);
      const preset: Preset =
        request.preset ?? (request.visibility === 'public' ? 'public_chat' : 'private_chat');
      // A shadow-banned creator's room is made, its invites silently dropped (as Synapse).
      const invitees = requester.shadowBanned ? [] : (request.invite ?? []);
      for (const invitee of invitees) {
        if (!parseUserId(invitee)) throw invalidParam(`Invalid user ID in invite: ${invitee}`);
      }
      let alias: string | undefined;
      if (request.roomAliasName !== undefined) {
        alias = `#${request.roomAliasName}:${serverName}`;
        if (!parseRoomAlias(alias)) {
          throw invalidParam('room_alias_name has characters an alias cannot hold, or is too long');
        }
      }
      const sender = requester.userId;
      return ctx.storage.tx('createRoom', async (stores) => {
        return invalidStateOnRefusal(async () => {
          if (alias !== undefined && (await stores.rooms.selectAliasRoom(alias))) {
            throw new MatrixError(400, 'M_ROOM_IN_USE', 'Room alias already taken');
          }
          const creation = { ...(request.creationContent ?? {}) };
          delete creation.room_version;
          delete creation.creator;
          if (
            preset === 'trusted_private_chat' &&
            rules.additionalCreators &&
            invitees.length > 0
          ) {
            const listed = Array.isArray(creation.additional_creators)
              ? creation.additional_creators
              : [];
            creation.additional_creators = [...new Set([...listed, ...invitees])];
          }
          const create = await writer.createRoom(stores, sender, version, creation);
          const roomId = create.roomId;
          await stores.rooms.lockRoom(roomId);
          const send = (event: Omit<NewEvent, 'sender'>) =>
            writer.append(stores, roomId, { ...event, sender });

          await send({
            type: 'm.room.member',
            stateKey: sender,
            content: await memberContent(stores, sender, 'join'),
          });
          const powerLevels = {
            ...defaultPowerLevels(sender, preset, invitees, rules.creatorsHavePower),
            ...(request.powerLevelContentOverride ?? {}),
          };
          await send({ type: 'm.room.power_levels', stateKey: '', content: powerLevels });
          if (alias !== undefined) {
            await stores.rooms.insertAlias(alias, roomId, sender);
            await send({ type: 'm.room.canonical_alias', stateKey: '', content: { alias } });
          }
          const presetState: [string, JsonObject][] = [
            ['m.room.join_rules', { join_rule: preset === 'public_chat' ? 'public' : 'invite' }],
            ['m.room.history_visibility', { history_visibility: 'shared' }],
          ];
          if (preset !== 'public_chat')
            presetState.push(['m.room.guest_access', { guest_access: 'can_join' }]);
          const initial = request.initialState ?? [];
          const overridden = new Set(initial.map((e) => `${e.type}\u0000${e.state_key ?? ''}`));
          for (const [type, content] of presetState) {
            if (!overridden.has(`${type}\u0000`)) await send({ type, stateKey: '', content });
          }
          for (const event of initial) {
            if (
              event.type === 'm.room.create' ||
              event.type === 'm.room.member' ||
              event.type === 'm.room.power_levels'
            ) {
              throw invalidParam(`initial_state may not contain ${event.type}`);
            }
            await send({
              type: event.type,
              stateKey: event.state_key ?? '',
              content: event.content,
            });
          }
          if (request.name !== undefined)
            await send({ type: 'm.room.name', stateKey: '', content: { name: request.name } });
          if (request.topic !== undefined)
            await send({ type: 'm.room.topic', stateKey: '', content: { topic: request.topic } });
          for (const invitee of invitees) {
            // Other servers' users are invited once the room exists, through their servers.
            if (isRemote(invitee)) continue;
            // One who blocks invites (MSC4380) is left out; the room is created all the same.
            if (await invitesBlocked(stores, invitee)) continue;
            const extra: JsonObject = request.isDirect ? { is_direct: true } : {};
            await send({
              type: 'm.room.member',
              stateKey: invitee,
              content: await memberContent(stores, invitee, 'invite', extra),
            });
          }
          if (request.visibility === 'public') await stores.rooms.updateRoomPublic(roomId, true);
          const remoteInvitees = invitees.filter(isRemote);
          return alias !== undefined
            ? { roomId, alias, remoteInvitees }
            : { roomId, remoteInvitees };
        });
      });
    },
  };
}

export type RoomService = ReturnType<typeof createRoomService>;
