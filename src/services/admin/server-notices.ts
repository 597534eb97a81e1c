/**
 * Server notices (Synapse's `POST /_synapse/admin/v1/send_server_notice`): a message from the
 * server to one local user, in a room of their own with the configured system user. The room
 * is made on the first notice (named as configured, the user invited, tagged
 * `m.server_notice` in the user's room account data) and reused after; the user's power level
 * is below every action's (-10, as Synapse), so they can read it and leave it, not write in it.
 * A user who left it is invited again by the next notice; a room gone (deleted) is made anew.
 * https://element-hq.github.io/synapse/latest/admin_api/server_notices.html
 */
import { randomBytes } from 'node:crypto';
import { MatrixError, invalidParam, notFound } from '../../core/errors.js';
import { parseUserId } from '../../core/identifiers.js';
import type { JsonObject } from '../../core/pdu.js';
import type { Requester, ServiceContext } from '../context.js';
import type { EventWriter } from '../event-writer.js';
import { createRoomEventService } from '../room-events.js';
import type { RoomService } from '../rooms.js';

export interface ServerNoticeSettings {
  systemLocalpart: string;
  systemDisplayname: string | null;
  systemAvatarUrl: string | null;
  roomName: string;
  roomTopic: string | null;
  roomAvatarUrl: string | null;
}

/** The tag clients show the room under. */
export const SERVER_NOTICE_TAG = 'm.server_notice';
/** The user's power level in their notices room: below every action. */
const USER_POWER_LEVEL = -10;
/** The device the system user's notices are sent from (their transaction IDs are kept by it). */
const SYSTEM_DEVICE = 'SERVER_NOTICES';

export interface ServerNotice {
  userId: string;
  type: string;
  stateKey?: string | undefined;
  content: JsonObject;
  /** The admin's transaction ID (the PUT form); a repeat answers the first event's ID. */
  txnId?: string | undefined;
  /** The admin sending it (transaction IDs are the admin's own). */
  admin: string;
}

export function createServerNoticeService(
  ctx: ServiceContext,
  deps: { writer: EventWriter; rooms: RoomService },
) {
  const stores = ctx.storage.stores;
  const roomEvents = createRoomEventService(ctx, deps.writer);
  /** Rooms being made in this process, by user, so that two notices at once make one room. */
  const making = new Map<string, Promise<string>>();

  const settings = (): ServerNoticeSettings => {
    const configured = ctx.settings.serverNotices;
    if (!configured)
      throw new MatrixError(400, 'M_UNKNOWN', 'Server notices are not enabled on this server');
    return configured;
  };

  const systemUserId = (s: ServerNoticeSettings) =>
    `@${s.systemLocalpart}:${ctx.settings.serverName}`;

  /** The system user, made on first use with the configured profile. */
  async function systemUser(s: ServerNoticeSettings): Promise<Requester> {
    const userId = systemUserId(s);
    if (!(await stores.accounts.selectUser(userId))) {
      const inserted = await stores.accounts.insertUser({
        userId,
        localpart: s.systemLocalpart,
        passwordHash: null,
        isAdmin: false,
        displayname: s.systemDisplayname ?? s.systemLocalpart,
        createdTs: ctx.now(),
      });
      if (inserted && s.systemAvatarUrl)
        await stores.accounts.updateAvatarUrl(userId, s.systemAvatarUrl);
    }
    return { userId, deviceId: SYSTEM_DEVICE, isAdmin: false };
  }

  async function makeRoom(
    s: ServerNoticeSettings,
    system: Requester,
    userId: string,
  ): Promise<string> {
    const initialState: { type: string; state_key: string; content: JsonObject }[] = [];
    if (s.roomAvatarUrl)
      initialState.push({
        type: 'm.room.avatar',
        state_key: '',
        content: { url: s.roomAvatarUrl },
      });
    const { roomId } = await deps.rooms.createRoom(system, {
      preset: 'private_chat',
      name: s.roomName,
      ...(s.roomTopic !== null ? { topic: s.roomTopic } : {}),
      invite: [userId],
      initialState,
      powerLevelContentOverride: { users_default: USER_POWER_LEVEL },
    });
    await ctx.storage.tx('recordServerNoticeRoom', async (tx) => {
      await tx.moderation.insertNoticeRoom(userId, roomId);
      const position = await tx.stream.nextPosition();
      await tx.accountData.upsertAccountData(
        userId,
        roomId,
        'm.tag',
        JSON.stringify({ tags: { [SERVER_NOTICE_TAG]: {} } }),
        position,
      );
      await tx.stream.notify({ users: [userId] });
    });
    return roomId;
  }

  /** Invites the user back into their notices room if they left or rejected it. */
  async function reinvite(system: Requester, roomId: string, userId: string): Promise<void> {
    await ctx.storage.tx('reinviteToServerNotices', async (tx) => {
      await tx.rooms.lockRoom(roomId);
      const membership = (await tx.rooms.selectMembership(roomId, userId))?.membership;
      if (membership === 'join' || membership === 'invite') return;
      await deps.writer.append(tx, roomId, {
        type: 'm.room.member',
        stateKey: userId,
        sender: system.userId,
        content: await deps.rooms.memberContent(tx, userId, 'invite'),
      });
    });
  }

  /** The user's notices room: the recorded one while the system user is still in it, or a new one. */
  async function roomFor(
    s: ServerNoticeSettings,
    system: Requester,
    userId: string,
  ): Promise<string> {
    const known = await stores.moderation.selectNoticeRoom(userId);
    if (known !== undefined) {
      const own = await stores.rooms.selectMembership(known, system.userId);
      if (own?.membership === 'join') {
        await reinvite(system, known, userId);
        return known;
      }
    }
    const pending = making.get(userId);
    if (pending) return pending;
    const made = makeRoom(s, system, userId).finally(() => making.delete(userId));
    making.set(userId, made);
    return made;
  }

  return {
    /** Whether notices are configured (`server_notices.system_mxid_localpart`). */
    enabled: () => (ctx.settings.serverNotices ?? null) !== null,

    /** Sends a notice; resolves with its event ID. */
    async send(notice: ServerNotice): Promise<string> {
      const s = settings();
      const parsed = parseUserId(notice.userId);
      if (!parsed) throw invalidParam('Invalid user ID');
      if (parsed.serverName !== ctx.settings.serverName) {
        throw new MatrixError(400, 'M_UNKNOWN', 'Server notices can only be sent to local users');
      }
      const target = await stores.accounts.selectUser(parsed.userId);
      if (!target) throw notFound('User not found');
      if (target.deactivated) throw new MatrixError(400, 'M_UNKNOWN', 'The user is deactivated');
      const system = await systemUser(s);
      const roomId = await roomFor(s, system, parsed.userId);
      const txnId =
        notice.txnId === undefined
          ? randomBytes(12).toString('hex')
          : `${notice.admin}/${notice.txnId}`;
      if (notice.stateKey !== undefined) {
        return roomEvents.setState(system, roomId, notice.type, notice.stateKey, notice.content);
      }
      return roomEvents.sendMessage(system, roomId, notice.type, txnId, notice.content);
    },
  };
}

export type ServerNoticeService = ReturnType<typeof createServerNoticeService>;
