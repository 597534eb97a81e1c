/**
 * Presence: whether users are online, as they (or their /sync requests) say, and as time
 * says when they go quiet (core/presence-timeouts.ts; the pass is presence-timeouts.ts).
 * Users see the presence of those they share a joined room with; every change takes a
 * stream position.
 */
import { forbidden, invalidParam } from '../core/errors.js';
import type { JsonObject } from '../core/pdu.js';
import type { PresenceRow } from '../storage/index.js';
import { DEFAULT_PRESENCE_TIMERS, timedOutPresence } from '../core/presence-timeouts.js';
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
    currently_active: row.presence !== 'offline' && row.currentlyActive,
    ...(row.statusMsg !== null ? { status_msg: row.statusMsg } : {}),
  };
}

/** A presence to write, decided from the row as it is (locked) and the time. */
interface NextPresence {
  presence: PresenceState;
  statusMsg: string | null;
  lastActiveTs: number;
  currentlyActive: boolean;
  /** When a /sync of the user's was seen; absent: as it was. */
  lastSyncTs?: number;
}
/** `null`: nothing to write; `touch`: only the last activity moves (no stream position). */
type Decision = NextPresence | { touch: number } | null;

export function createPresenceService(ctx: ServiceContext) {
  const stores = ctx.storage.stores;
  const { serverName } = ctx.settings;
  const timers = ctx.settings.presenceTimers ?? DEFAULT_PRESENCE_TIMERS;
  const bridges = appServiceDeviceQueue(ctx.settings.appServices ?? [], serverName);
  const isLocal = (userId: string) => userId.endsWith(`:${serverName}`);
  /** Running /sync requests (that affect presence) per user, in this process. */
  const syncsNow = new Map<string, number>();
  /** Of those, the ones saying `set_presence=online` (activity while they run). */
  const onlineSyncsNow = new Map<string, number>();
  /** Users whose /sync ended in this process since their last sync time was written. */
  const syncsEnded = new Set<string>();
  /** Of those, the ones whose /sync said online. */
  const onlineSyncsEnded = new Set<string>();
  /** When this process last recorded each user's activity (so most activity costs nothing). */
  const activityNoted = new Map<string, number>();
  /** Activity this close to the last recorded is not recorded again. */
  const activityGranularityMs = Math.max(1, Math.floor(timers.activeMs / 4));

  /**
   * Writes the presence `decide` chooses from the user's row, read locked: a change takes a
   * stream position, wakes the syncs of those who share a room, and goes to application
   * services and (for a local user) to the servers sharing a room. Resolves with whether a
   * change was written.
   */
  async function write(
    name: string,
    userId: string,
    decide: (current: PresenceRow | undefined, now: number) => Decision,
  ): Promise<boolean> {
    return ctx.storage.tx(name, async (tx) => {
      const [current] = await tx.presence.selectPresenceLocked([userId]);
      const now = ctx.now();
      const next = decide(current, now);
      if (next === null) return false;
      if ('touch' in next) {
        if (current) await tx.presence.touchPresence(userId, next.touch, now);
        return false;
      }
      const rooms = await tx.rooms.selectRoomsOfUser(userId, 'join');
      const position = await tx.stream.nextPosition();
      const row: PresenceRow = {
        userId,
        presence: next.presence,
        statusMsg: next.statusMsg,
        lastActiveTs: next.lastActiveTs,
        currentlyActive: next.currentlyActive,
        lastSyncTs: next.lastSyncTs ?? current?.lastSyncTs ?? 0,
        lastUpdateTs: now,
        streamOrdering: position,
      };
      await tx.presence.upsertPresence(row);
      await bridges.presence(tx, userId, rooms, position, presenceContent(row, now));
      await tx.stream.notify({ users: [userId], rooms });
      // The servers sharing a room with a local user learn of the change (m.presence EDU).
      if (isLocal(userId))
        await queueUserEdu(ctx, tx, userId, 'm.presence', {
          push: [{ user_id: userId, ...presenceContent(row, now) }],
        });
      if (isLocal(userId) && next.currentlyActive) activityNoted.set(userId, next.lastActiveTs);
      return true;
    });
  }

  /** What recorded activity makes of the user's row (`fromSync`: a /sync said online). */
  function afterActivity(
    current: PresenceRow | undefined,
    now: number,
    fromSync: boolean,
  ): Decision {
    const presence = current?.presence ?? 'offline';
    // Sending an event does not bring an offline user online; a /sync saying online does.
    if (presence === 'offline' && !fromSync) return current ? { touch: now } : null;
    if (presence === 'online' && current?.currentlyActive) return { touch: now };
    return {
      presence: 'online',
      statusMsg: current?.statusMsg ?? null,
      lastActiveTs: now,
      currentlyActive: true,
      ...(fromSync ? { lastSyncTs: now } : {}),
    };
  }

  return {
    /**
     * Another server's user's presence (an m.presence EDU from their server), kept like a
     * local user's; an unknown state is ignored. An update that says what is kept already
     * (only `last_active_ago` differs) moves the times quietly: no stream position, no
     * wake-up, nothing sent on.
     */
    async setRemote(
      userId: string,
      presence: string,
      statusMsg: string | null,
      lastActiveAgo: number,
      currentlyActive = presence === 'online',
    ): Promise<void> {
      if (!isPresenceState(presence)) return;
      await write('setRemotePresence', userId, (current, now) => {
        const lastActiveTs = now - lastActiveAgo;
        if (
          current?.presence === presence &&
          current.statusMsg === statusMsg &&
          current.currentlyActive === currentlyActive
        )
          return { touch: lastActiveTs };
        return { presence, statusMsg, lastActiveTs, currentlyActive };
      });
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
      // Saying "online" is activity; another state keeps the time of the last.
      await write('setPresence', userId, (current, now) => ({
        presence,
        statusMsg,
        lastActiveTs: presence === 'online' ? now : (current?.lastActiveTs ?? now),
        currentlyActive: presence === 'online',
      }));
    },

    /** Records the presence a /sync asked for (set_presence); writes only when it changes. */
    async setFromSync(userId: string, presence: PresenceState): Promise<void> {
      const current = await stores.presence.selectPresence(userId);
      if ((current?.presence ?? 'offline') === presence) return;
      await write('setPresenceFromSync', userId, (locked, now) => {
        if ((locked?.presence ?? 'offline') === presence) return null;
        if (presence === 'online') return afterActivity(locked, now, true);
        return {
          presence,
          statusMsg: locked?.statusMsg ?? null,
          lastActiveTs: locked?.lastActiveTs ?? now,
          currentlyActive: false,
          lastSyncTs: now,
        };
      });
    },

    /**
     * The user did something (sent an event; `fromSync`: a /sync said `set_presence=online`):
     * an unavailable user (or, from a /sync, an offline one) comes online and currently
     * active. Looked at most every quarter of `activeMs` per user and process; when only the
     * last activity moves it takes no stream position (and for a /sync it is written by
     * `flushSyncs`, with the sync time). Resolves with whether a change was written.
     */
    async activity(userId: string, fromSync: boolean): Promise<boolean> {
      if (!isLocal(userId)) return false;
      const now = ctx.now();
      const noted = activityNoted.get(userId);
      if (noted !== undefined && now - noted < activityGranularityMs) return false;
      activityNoted.set(userId, now);
      const current = await stores.presence.selectPresence(userId);
      const quick = afterActivity(current, now, fromSync);
      if (quick === null) return false;
      if ('touch' in quick) {
        // A /sync's activity is written with its sync time (`flushSyncs`), not here.
        if (!fromSync) await stores.presence.touchPresence(userId, quick.touch, now);
        return false;
      }
      return write('presenceActivity', userId, (locked, at) => afterActivity(locked, at, fromSync));
    },

    /**
     * A /sync of the user's starts (one with `set_presence` other than offline keeps them
     * from timing out to offline); call the function returned when it ends. Nothing is
     * written here: `flushSyncs` writes the time for everyone syncing or just done.
     */
    syncing(userId: string, presence: PresenceState): () => void {
      if (presence === 'offline') return () => undefined;
      const online = presence === 'online';
      const count = (running: Map<string, number>, by: number) => {
        const left = (running.get(userId) ?? 0) + by;
        if (left > 0) running.set(userId, left);
        else running.delete(userId);
      };
      count(syncsNow, 1);
      if (online) count(onlineSyncsNow, 1);
      let ended = false;
      return () => {
        if (ended) return;
        ended = true;
        count(syncsNow, -1);
        syncsEnded.add(userId);
        if (online) {
          count(onlineSyncsNow, -1);
          onlineSyncsEnded.add(userId);
        }
      };
    },

    /**
     * Writes now as the last sync time of every user with a /sync running in this process
     * or ended since the last flush, and as the last activity of those whose /sync said
     * online and who are online and currently active (one statement each), so that the
     * process applying time-outs, whichever it is, sees them. Run every third of the sync
     * time-out; a /sync request itself writes only when the user's presence changes.
     */
    async flushSyncs(): Promise<number> {
      const users = new Set([...syncsNow.keys(), ...syncsEnded]);
      const active = new Set([...onlineSyncsNow.keys(), ...onlineSyncsEnded]);
      syncsEnded.clear();
      onlineSyncsEnded.clear();
      const now = ctx.now();
      for (const [userId, at] of activityNoted)
        if (now - at >= activityGranularityMs) activityNoted.delete(userId);
      if (users.size > 0) await stores.presence.updateLastSync([...users], [...active], now);
      return users.size;
    },

    /**
     * Applies the time-out the user's presence has reached, if any (see
     * core/presence-timeouts.ts), through the same path as every other change. Resolves
     * with whether a change was written.
     */
    async applyTimeout(userId: string): Promise<boolean> {
      return write('presenceTimeout', userId, (current, now) => {
        if (!current) return null;
        const next = timedOutPresence(current, isLocal(userId), now, timers);
        if (!next) return null;
        // A /sync of theirs running here (its time not written yet): not gone.
        if (next.presence === 'offline' && syncsNow.has(userId)) return null;
        return {
          presence: next.presence,
          statusMsg: current.statusMsg,
          lastActiveTs: current.lastActiveTs,
          currentlyActive: next.currentlyActive,
        };
      });
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
