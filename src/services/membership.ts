/**
 * Every membership transition: join (public, invite, restricted), invite, leave (and
 * rejecting invites, withdrawing knocks), kick, ban, unban, knock, forget. Each runs in one
 * transaction holding the room's lock, so the auth check sees the latest state.
 */
import { fakeEventId } from '../core/secrets.js';
import { MatrixError, forbidden, invalidParam, notFound } from '../core/errors.js';
import {
  actionLevel,
  joinRuleOf,
  roomCreators,
  membershipOf,
  powerLevelOf,
  type AuthStateEvent,
} from '../core/auth-rules.js';
import {
  isValidServerName,
  parseRoomAlias,
  parseRoomId,
  parseUserId,
} from '../core/identifiers.js';
import {
  stateKeyOf,
  type JsonObject,
  type Pdu,
  type RoomVersionId,
  type StateKey,
} from '../core/pdu.js';
import { computeEventId } from '../core/event-hashing.js';
import { STRIPPED_STATE_TYPES } from '../core/stripped-state.js';
import type { Stores } from '../storage/index.js';
import { createAppServiceCalls } from './appservice/calls.js';
import type { Requester, ServiceContext } from './context.js';
import type { AppendedEvent, EventWriter } from './event-writer.js';
import { assertInvitable } from './invite-permission.js';
import type { RoomService } from './rooms.js';

const JOIN_RULES_KEY = stateKeyOf('m.room.join_rules', '');
const POWER_LEVELS_KEY = stateKeyOf('m.room.power_levels', '');

/** A member event's content as the state route has checked it. */
export type MemberEventContent = JsonObject & { membership: string; reason?: string };

const profileField = (content: JsonObject, key: 'displayname' | 'avatar_url') => {
  const value = content[key];
  return typeof value === 'string' && value !== '' ? value : undefined;
};

/** Whether two member events' contents show the same display name and avatar. */
const sameProfile = (a: JsonObject, b: JsonObject): boolean =>
  profileField(a, 'displayname') === profileField(b, 'displayname') &&
  profileField(a, 'avatar_url') === profileField(b, 'avatar_url');

/** Sends an invite to the invitee's server and answers the event it countersigned. */
export interface RemoteInviteSender {
  send(
    roomId: string,
    roomVersion: RoomVersionId,
    eventId: string,
    pdu: Pdu,
    strippedState: readonly Pdu[],
  ): Promise<Pdu>;
}

/** What membership needs of federation: invites out, joins to other servers' rooms. */
export interface MembershipFederation {
  invites: RemoteInviteSender;
  joins: {
    resolveAlias(alias: string): Promise<{ roomId: string; servers: string[] }>;
    join(
      roomId: string,
      userId: string,
      servers: readonly string[],
      content: JsonObject,
    ): Promise<void>;
    serversOfRoomId(roomId: string): string[];
  };
  /** Knocks on other servers' rooms; leaves of rooms we are only invited to or knocking on. */
  leavesAndKnocks?: {
    serversFor(stores: Stores, roomId: string, userId: string): Promise<string[]>;
    knock(
      roomId: string,
      userId: string,
      servers: readonly string[],
      content: JsonObject,
    ): Promise<void>;
    leave(
      roomId: string,
      userId: string,
      servers: readonly string[],
      content: JsonObject,
    ): Promise<unknown>;
  };
}

export function createMembershipService(
  ctx: ServiceContext,
  writer: EventWriter,
  rooms: RoomService,
  /** Federation, when on (null, or none: rooms and users are all local). */
  federation: () => MembershipFederation | null = () => null,
) {
  const appserviceCalls = createAppServiceCalls(ctx);
  const isLocalUser = (userId: string) =>
    parseUserId(userId)?.serverName === ctx.settings.serverName;
  /** Runs `fn` in a transaction holding the room's lock; unknown rooms are `unknownRoom`. */
  function inRoom<T>(
    name: string,
    roomId: string,
    fn: (stores: Stores) => Promise<T>,
    unknownRoom: MatrixError,
  ): Promise<T> {
    return ctx.storage.tx(name, async (stores) => {
      await stores.rooms.lockRoom(roomId);
      if (!(await stores.rooms.selectRoom(roomId))) throw unknownRoom;
      return fn(stores);
    });
  }

  const notInRoom = () => forbidden('You are not in this room');

  function withReason(content: JsonObject, reason: string | undefined): JsonObject {
    return reason === undefined ? content : { ...content, reason };
  }

  async function setMembership(
    stores: Stores,
    roomId: string,
    sender: string,
    target: string,
    membership: string,
    reason: string | undefined,
    extra: JsonObject = {},
    originServerTs?: number,
  ): Promise<AppendedEvent> {
    // Invite blocking (MSC4380): an invite of a user who blocks them is refused.
    if (membership === 'invite' && sender !== target) await assertInvitable(stores, target);
    const content =
      sender === target || membership === 'invite'
        ? await rooms.memberContent(stores, target, membership, extra)
        : { membership, ...extra };
    return writer.append(stores, roomId, {
      type: 'm.room.member',
      stateKey: target,
      sender,
      content: withReason(content, reason),
      ...(originServerTs !== undefined ? { originServerTs } : {}),
    });
  }

  function targetUser(raw: string): string {
    const parsed = parseUserId(raw);
    if (!parsed) throw invalidParam('Invalid user_id');
    return parsed.userId;
  }

  /**
   * Sets another user's membership after `precondition` (given the target and their current
   * membership) has returned null; otherwise refuses with its sentence.
   */
  async function changeTarget(
    name: string,
    requester: Requester,
    roomId: string,
    userId: string,
    membership: string,
    reason: string | undefined,
    precondition: (target: string, current: string | undefined) => string | null,
  ): Promise<void> {
    const target = targetUser(userId);
    await inRoom(
      name,
      roomId,
      async (stores) => {
        const current = await stores.rooms.selectMembership(roomId, target);
        const refusal = precondition(target, current?.membership);
        if (refusal !== null) throw forbidden(refusal);
        await setMembership(stores, roomId, requester.userId, target, membership, reason);
      },
      notInRoom(),
    );
  }

  /** The room ID of a room ID or alias given in a path. */
  async function resolveRoom(roomIdOrAlias: string): Promise<string> {
    if (roomIdOrAlias.startsWith('#')) {
      if (!parseRoomAlias(roomIdOrAlias)) throw invalidParam('Invalid room alias');
      const roomId = await ctx.storage.stores.rooms.selectAliasRoom(roomIdOrAlias);
      if (!roomId) throw notFound('Room alias not found');
      return roomId;
    }
    if (!parseRoomId(roomIdOrAlias)) throw invalidParam('Invalid room ID or alias');
    return roomIdOrAlias;
  }

  /**
   * For restricted rooms: when the joiner is a member of a room the join rule allows, name a
   * joined local user who can invite as the authoriser (`join_authorised_via_users_server`).
   */
  async function restrictedAuthoriser(
    stores: Stores,
    roomId: string,
    userId: string,
    version: RoomVersionId,
  ): Promise<string | undefined> {
    const state = await stores.rooms.selectStateEvents(roomId, [
      ['m.room.join_rules', ''],
      ['m.room.create', ''],
      ['m.room.power_levels', ''],
      ['m.room.member', userId],
    ]);
    const authState = new Map<StateKey, AuthStateEvent>(
      state.map((row) => [
        stateKeyOf(row.pdu.type, row.pdu.state_key ?? ''),
        { ...row.pdu, event_id: row.eventId },
      ]),
    );
    const rule = joinRuleOf(authState);
    if (rule !== 'restricted' && rule !== 'knock_restricted') return undefined;
    const current = membershipOf(userId, authState);
    if (current === 'join' || current === 'invite') return undefined;
    const allow = authState.get(JOIN_RULES_KEY)?.content.allow;
    const allowedRooms = Array.isArray(allow)
      ? allow.flatMap((entry) =>
          typeof entry === 'object' &&
          entry !== null &&
          !Array.isArray(entry) &&
          entry.type === 'm.room_membership' &&
          typeof entry.room_id === 'string'
            ? [entry.room_id]
            : [],
        )
      : [];
    let qualifies = false;
    for (const allowed of allowedRooms) {
      if ((await stores.rooms.selectMembership(allowed, userId))?.membership === 'join') {
        qualifies = true;
        break;
      }
    }
    if (!qualifies) return undefined;
    // A user's power level depends only on the create and power levels events, so candidates
    // are ranked without reading their member events: creators and users named in
    // power_levels first (a handful), and only when users_default suffices, any local member.
    const inviteLevel = actionLevel('invite', authState);
    const canInvite = (candidate: string) =>
      candidate.endsWith(`:${ctx.settings.serverName}`) &&
      powerLevelOf(candidate, authState, version) >= inviteLevel;
    const powerLevels = authState.get(POWER_LEVELS_KEY)?.content;
    const users = powerLevels?.users;
    const named = [
      ...roomCreators(authState, version),
      ...(typeof users === 'object' && users !== null && !Array.isArray(users)
        ? Object.keys(users)
        : []),
    ];
    for (const candidate of named) {
      if (!canInvite(candidate)) continue;
      if ((await stores.rooms.selectMembership(roomId, candidate))?.membership === 'join')
        return candidate;
    }
    const usersDefault =
      typeof powerLevels?.users_default === 'number' ? powerLevels.users_default : 0;
    if (powerLevels === undefined || usersDefault < inviteLevel) return undefined;
    const joined = await stores.rooms.selectMembersOfRoom(roomId, 'join');
    return joined.find(canInvite);
  }

  /** Whether a local user is joined to the room (so this server has its state). */
  async function residentHere(stores: Stores, roomId: string): Promise<boolean> {
    return (
      (await stores.rooms.selectRoom(roomId)) !== undefined &&
      (await stores.rooms.selectMembersOfRoom(roomId, 'join')).some(isLocalUser)
    );
  }

  /**
   * A room ID or alias, with the servers to reach it through (`via`, and a remote alias's
   * servers from its server's /query/directory).
   */
  async function resolveWithServers(
    fed: MembershipFederation | null,
    roomIdOrAlias: string,
    via: readonly string[],
  ): Promise<{ roomId: string; servers: string[] }> {
    for (const server of via)
      if (!isValidServerName(server)) throw invalidParam(`${server} is not a server name`);
    const alias = roomIdOrAlias.startsWith('#') ? parseRoomAlias(roomIdOrAlias) : null;
    if (fed && alias && !roomIdOrAlias.endsWith(`:${ctx.settings.serverName}`)) {
      const resolved = await fed.joins.resolveAlias(roomIdOrAlias);
      return { roomId: resolved.roomId, servers: [...via, ...resolved.servers] };
    }
    return { roomId: await resolveRoom(roomIdOrAlias), servers: [...via] };
  }

  /**
   * An invite or a knock of a room this server is not in: the leave goes through the room's
   * servers (make_leave/send_leave), or is kept here alone if none answers. False (nothing
   * done) for any other membership or room.
   */
  async function leaveRemoteRoom(
    userId: string,
    roomId: string,
    reason?: string,
  ): Promise<boolean> {
    const remote = federation()?.leavesAndKnocks;
    if (!remote) return false;
    const stores = ctx.storage.stores;
    const current = await stores.rooms.selectMembership(roomId, userId);
    if (current?.membership !== 'invite' && current?.membership !== 'knock') return false;
    if (await residentHere(stores, roomId)) return false;
    const servers = await remote.serversFor(stores, roomId, userId);
    await remote.leave(roomId, userId, servers, withReason({}, reason));
    return true;
  }

  return {
    resolveRoom,

    /**
     * Joins a room: here when this server is in it (a local member joined), else through one
     * of its other servers (`via`, the alias's servers, the room ID's server) over federation.
     */
    async join(
      requester: Requester,
      roomIdOrAlias: string,
      reason?: string,
      via: readonly string[] = [],
    ): Promise<string> {
      const fed = federation();
      const { roomId, servers } = await resolveWithServers(fed, roomIdOrAlias, via);
      if (fed) {
        const stores = ctx.storage.stores;
        const here = await residentHere(stores, roomId);
        // Accepting an invite (or a knock that was accepted): the inviter's server, and the
        // servers of the room's stripped state, are candidates too.
        const pending = here
          ? []
          : ((await fed.leavesAndKnocks?.serversFor(stores, roomId, requester.userId)) ?? []);
        const candidates = [
          ...new Set([...servers, ...pending, ...fed.joins.serversOfRoomId(roomId)]),
        ].filter((server) => server !== ctx.settings.serverName);
        if (!here && candidates.length > 0) {
          const content = await rooms.memberContent(stores, requester.userId, 'join');
          await fed.joins.join(roomId, requester.userId, candidates, withReason(content, reason));
          return roomId;
        }
      }
      await inRoom(
        'joinRoom',
        roomId,
        async (stores) => {
          const room = await stores.rooms.selectRoom(roomId);
          const version = room?.roomVersion as RoomVersionId;
          const authoriser = await restrictedAuthoriser(stores, roomId, requester.userId, version);
          const extra: JsonObject = authoriser
            ? { join_authorised_via_users_server: authoriser }
            : {};
          await setMembership(
            stores,
            roomId,
            requester.userId,
            requester.userId,
            'join',
            reason,
            extra,
          );
        },
        notFound('Unknown room'),
      );
      return roomId;
    },

    /**
     * Knocks: here when this server is in the room, else through one of its servers (`via`,
     * the alias's servers, the room ID's server) with make_knock/send_knock.
     */
    async knock(
      requester: Requester,
      roomIdOrAlias: string,
      reason?: string,
      via: readonly string[] = [],
    ): Promise<string> {
      const fed = federation();
      const { roomId, servers } = await resolveWithServers(fed, roomIdOrAlias, via);
      const remote = fed?.leavesAndKnocks;
      if (fed && remote && !(await residentHere(ctx.storage.stores, roomId))) {
        const candidates = [...servers, ...fed.joins.serversOfRoomId(roomId)].filter(
          (server) => server !== ctx.settings.serverName,
        );
        if (candidates.length > 0) {
          const stores = ctx.storage.stores;
          const current = await stores.rooms.selectMembership(roomId, requester.userId);
          if (current?.membership === 'join' || current?.membership === 'ban')
            throw forbidden(
              `You are ${current.membership === 'join' ? 'in' : 'banned from'} the room`,
            );
          const content = await rooms.memberContent(stores, requester.userId, 'knock');
          await remote.knock(roomId, requester.userId, candidates, withReason(content, reason));
          return roomId;
        }
      }
      await inRoom(
        'knockRoom',
        roomId,
        (stores) =>
          setMembership(stores, roomId, requester.userId, requester.userId, 'knock', reason),
        notFound('Unknown room'),
      );
      return roomId;
    },

    async invite(
      requester: Requester,
      roomId: string,
      userId: string,
      reason?: string,
      /** More of the invite's content (`is_direct` of a new direct chat). */
      extra: JsonObject = {},
    ): Promise<void> {
      // A bridge's user that does not exist yet: the bridge is asked first (it creates it).
      if (
        appserviceCalls.mayQueryUser(userId) &&
        !(await ctx.storage.stores.accounts.selectUser(userId))
      )
        await appserviceCalls.queryUser(userId);
      // Shadow-banned (admin API): answered as if invited, nothing happens.
      if (requester.shadowBanned) return;
      const precondition = (target: string, current: string | undefined) => {
        if (current === 'join') return `${target} is already in the room`;
        if (current === 'ban') return `${target} is banned from the room`;
        return null;
      };
      const target = targetUser(userId);
      const sender =
        parseUserId(target)?.serverName !== ctx.settings.serverName
          ? (federation()?.invites ?? null)
          : null;
      if (!sender) {
        await changeTarget('inviteUser', requester, roomId, userId, 'invite', reason, precondition);
        return;
      }
      // Another server's user: the invite is built here, countersigned by their server (outside
      // any transaction: a slow server holds up nothing else), then checked again and kept.
      const check = async (stores: Stores) => {
        const current = await stores.rooms.selectMembership(roomId, target);
        const refusal = precondition(target, current?.membership);
        if (refusal !== null) throw forbidden(refusal);
      };
      const prepared = await inRoom(
        'prepareRemoteInvite',
        roomId,
        async (stores) => {
          await check(stores);
          const content = await rooms.memberContent(stores, target, 'invite', extra);
          const built = await writer.prepare(stores, roomId, {
            type: 'm.room.member',
            stateKey: target,
            sender: requester.userId,
            content: withReason(content, reason),
          });
          const stripped = await stores.rooms.selectStateEvents(roomId, [
            ...STRIPPED_STATE_TYPES.map((type) => [type, ''] as [string, string]),
            ['m.room.member', requester.userId],
          ]);
          return { ...built, stripped: stripped.map((row) => row.pdu) };
        },
        notInRoom(),
      );
      const eventId = computeEventId(prepared.pdu, prepared.version);
      const countersigned = await sender.send(
        roomId,
        prepared.version,
        eventId,
        prepared.pdu,
        prepared.stripped,
      );
      await inRoom(
        'inviteRemoteUser',
        roomId,
        async (stores) => {
          await check(stores);
          await writer.appendPrepared(stores, roomId, countersigned);
        },
        notInRoom(),
      );
    },

    /** Leaves, rejects an invite, or withdraws a knock. */
    leaveRemoteRoom,

    async leave(requester: Requester, roomId: string, reason?: string): Promise<void> {
      if (await leaveRemoteRoom(requester.userId, roomId, reason)) return;
      await inRoom(
        'leaveRoom',
        roomId,
        async (stores) => {
          const current = await stores.rooms.selectMembership(roomId, requester.userId);
          if (!current || current.membership === 'leave') throw notInRoom();
          await setMembership(stores, roomId, requester.userId, requester.userId, 'leave', reason);
        },
        notInRoom(),
      );
    },

    async kick(
      requester: Requester,
      roomId: string,
      userId: string,
      reason?: string,
    ): Promise<void> {
      await changeTarget(
        'kickUser',
        requester,
        roomId,
        userId,
        'leave',
        reason,
        (target, current) =>
          current === undefined || current === 'leave' || current === 'ban'
            ? `${target} is not in the room, invited or knocking`
            : null,
      );
    },

    async ban(
      requester: Requester,
      roomId: string,
      userId: string,
      reason?: string,
    ): Promise<void> {
      await changeTarget('banUser', requester, roomId, userId, 'ban', reason, () => null);
    },

    async unban(
      requester: Requester,
      roomId: string,
      userId: string,
      reason?: string,
    ): Promise<void> {
      await changeTarget(
        'unbanUser',
        requester,
        roomId,
        userId,
        'leave',
        reason,
        (target, current) => (current === 'ban' ? null : `${target} is not banned`),
      );
    },

    /**
     * `PUT /rooms/{roomId}/state/m.room.member/{userId}`: any membership with the content
     * given (a per-room display name or avatar, most often), judged by the auth rules alone.
     * As through the membership endpoints, a user's own event and an invite are filled in
     * with the target's profile where the content names none, and a restricted join gets
     * its authorising user.
     */
    async setMemberEvent(
      requester: Requester,
      roomId: string,
      target: string,
      content: MemberEventContent,
      /** `ts` of the request: the event's timestamp when an application service sends it. */
      ts?: number,
    ): Promise<string> {
      const { membership, reason, ...rest } = content;
      // Shadow-banned (admin API): an invite is answered as if sent, nothing happens.
      if (requester.shadowBanned && membership === 'invite' && target !== requester.userId) {
        return fakeEventId();
      }
      const originServerTs = ts !== undefined && requester.appservice ? ts : undefined;
      return inRoom(
        'setMemberEvent',
        roomId,
        async (stores) => {
          let extra: JsonObject = rest;
          if (
            membership === 'join' &&
            target === requester.userId &&
            rest.join_authorised_via_users_server === undefined
          ) {
            const room = await stores.rooms.selectRoom(roomId);
            const version = room?.roomVersion as RoomVersionId;
            const authoriser = await restrictedAuthoriser(stores, roomId, target, version);
            if (authoriser) extra = { ...rest, join_authorised_via_users_server: authoriser };
          }
          const appended = await setMembership(
            stores,
            roomId,
            requester.userId,
            target,
            membership,
            reason,
            extra,
            originServerTs,
          );
          return appended.eventId;
        },
        notInRoom(),
      );
    },

    async forget(requester: Requester, roomId: string): Promise<void> {
      await ctx.storage.tx('forgetRoom', async (stores) => {
        // Under the room lock, so a rejoin cannot slip in between the check and the update.
        await stores.rooms.lockRoom(roomId);
        const current = await stores.rooms.selectMembership(roomId, requester.userId);
        if (!current) throw notInRoom();
        if (
          current.membership === 'join' ||
          current.membership === 'invite' ||
          current.membership === 'knock'
        ) {
          throw new MatrixError(400, 'M_UNKNOWN', 'You must leave the room before forgetting it');
        }
        await stores.rooms.updateForgotten(roomId, requester.userId);
        // Caches of the user's memberships (/sync's) drop the room.
        await stores.stream.notify({ users: [requester.userId] });
      });
    },

    /**
     * After a profile change: a new member event in each joined room whose member event does
     * not show the profile's name and avatar. Each room is checked again in its own
     * transaction, under its lock, so refreshes that overlap (a change and the resumption of
     * an earlier one, in any process) send one event per room, and running it again after an
     * interruption only finishes what is left.
     */
    async refreshProfileInRooms(userId: string): Promise<void> {
      const roomIds = await ctx.storage.stores.profileUpdates.selectRoomsWithOtherProfile(userId);
      for (const roomId of roomIds) {
        await inRoom(
          'refreshProfile',
          roomId,
          async (stores) => {
            const [member] = await stores.rooms.selectStateEvents(roomId, [
              ['m.room.member', userId],
            ]);
            if (member?.pdu.content.membership !== 'join') return;
            const wanted = await rooms.memberContent(stores, userId, 'join');
            if (sameProfile(member.pdu.content, wanted)) return;
            await setMembership(stores, roomId, userId, userId, 'join', undefined);
          },
          notInRoom(),
        ).catch((err: unknown) => {
          if (!(err instanceof MatrixError)) throw err;
        });
      }
    },
  };
}

export type MembershipService = ReturnType<typeof createMembershipService>;
