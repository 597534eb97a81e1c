/**
 * Presence: whether users are online, as they (or their /sync requests) say. Users see the
 * presence of those they share a joined room with; every change takes a stream position.
 */
import { forbidden, invalidParam } from '../core/errors.js';
import type { JsonObject } from '../core/pdu.js';
import type { PresenceRow } from '../storage/index.js';
import type { Requester, ServiceContext } from './context.js';
import { appServiceDeviceQueue } from './appservice/devices.js';
import { queueUserEdu } from './federation/edu-queue.js';

export const PRESENCE_STATES = ['online', 'offline', 'unavailable'] as const;
export type PresenceState = (typeof PRESENCE_STATES)[number];

export interface PresenceEvent {
  type: 'm.presence';
  sender: string;
  content: JsonObject;
}

/** Who came to share a joined room with a syncing user in the span of an incremental sync. */
export interface NewlyShared {
  /** Users who joined a room the syncing user is in. */
  users: readonly string[];
  /** Rooms the syncing user joined: all their members. */
  rooms: readonly string[];
}

const isPresenceState = (value: string): value is PresenceState =>
  (PRESENCE_STATES as readonly string[]).includes(value);

/** The content of an m.presence event, and the body of GET /presence/{userId}/status. */
export function presenceContent(row: PresenceRow, now: number): JsonObject {
  return {
    presence: row.presence,
    last_active_ago: Math.max(0, now - row.lastActiveTs),
    currently_active: row.presence === 'online',
    ...(row.statusMsg !== null ? { status_msg: row.statusMsg } : {}),
  };
}

export function createPresenceService(ctx: ServiceContext) {
  const stores = ctx.storage.stores;
  const bridges = appServiceDeviceQueue(ctx.settings.appServices ?? [], ctx.settings.serverName);

  async function write(
    name: string,
    userId: string,
    presence: PresenceState,
    statusMsg: string | null,
    lastActiveTs = ctx.now(),
  ): Promise<void> {
    await ctx.storage.tx(name, async (tx) => {
      const rooms = await tx.rooms.selectRoomsOfUser(userId, 'join');
      const position = await tx.stream.nextPosition();
      const row = {
        userId,
        presence,
        statusMsg,
        lastActiveTs,
        streamOrdering: position,
      };
      await tx.presence.upsertPresence(row);
      await bridges.presence(tx, userId, rooms, position, presenceContent(row, row.lastActiveTs));
      await tx.stream.notify({ users: [userId], rooms });
      // The servers sharing a room with a local user learn of the change (m.presence EDU).
      if (userId.endsWith(`:${ctx.settings.serverName}`))
        await queueUserEdu(ctx, tx, userId, 'm.presence', {
          push: [
            {
              user_id: userId,
              presence,
              last_active_ago: 0,
              currently_active: presence === 'online',
              ...(statusMsg !== null ? { status_msg: statusMsg } : {}),
            },
          ],
        });
    });
  }

  return {
    /**
     * Another server's user's presence (an m.presence EDU from their server), kept like a
     * local user's; an unknown state is ignored.
     */
    async setRemote(
      userId: string,
      presence: string,
      statusMsg: string | null,
      lastActiveAgo: number,
    ): Promise<void> {
      if (!isPresenceState(presence)) return;
      await write('setRemotePresence', userId, presence, statusMsg, ctx.now() - lastActiveAgo);
    },

    /** A user's presence, for themselves and for users sharing a joined room with them. */
    async get(requester: Requester, userId: string): Promise<JsonObject> {
      if (
        requester.userId !== userId &&
        !(await stores.presence.selectSharesJoinedRoom(requester.userId, userId))
      )
        throw forbidden('You are not allowed to see the presence of this user');
      const row = await stores.presence.selectPresence(userId);
      return row ? presenceContent(row, ctx.now()) : { presence: 'offline' };
    },

    /** PUT /presence/{userId}/status: the presence and status message the user chose. */
    async set(
      requester: Requester,
      userId: string,
      presence: string,
      statusMsg: string | null,
    ): Promise<void> {
      if (requester.userId !== userId)
        throw forbidden('You cannot set the presence of another user');
      if (!isPresenceState(presence))
        throw invalidParam(`"presence" must be one of ${PRESENCE_STATES.join(', ')}`);
      await write('setPresence', userId, presence, statusMsg);
    },

    /** Records the presence a /sync asked for (set_presence); writes only when it changes. */
    async setFromSync(userId: string, presence: PresenceState): Promise<void> {
      const current = await stores.presence.selectPresence(userId);
      if ((current?.presence ?? 'offline') === presence) return;
      await write('setPresenceFromSync', userId, presence, current?.statusMsg ?? null);
    },

    /**
     * m.presence events of users who share a room with userId (and userId itself), changed
     * in (after, upTo]; after = 0: all current. Users who came to share a room with userId
     * in that span (`newlyShared`: the users who joined, and everyone in the rooms userId
     * joined) are sent their current presence even if it did not change, since the client
     * has never been told it.
     */
    async changesSince(
      userId: string,
      after: number,
      upTo: number,
      newlyShared?: NewlyShared,
    ): Promise<PresenceEvent[]> {
      const rows = await stores.presence.selectPresenceChanges(userId, after, upTo);
      if (after > 0 && newlyShared) {
        const sent = new Set(rows.map((row) => row.userId));
        sent.add(userId);
        const current = await stores.presence.selectPresenceOfUsersAndMembers(
          newlyShared.users,
          newlyShared.rooms,
          upTo,
        );
        rows.push(...current.filter((row) => !sent.has(row.userId)));
      }
      const now = ctx.now();
      return rows.map((row) => ({
        type: 'm.presence',
        sender: row.userId,
        content: presenceContent(row, now),
      }));
    },
  };
}

export type PresenceService = ReturnType<typeof createPresenceService>;
