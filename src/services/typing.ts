/**
 * Typing notifications: a joined member says they are typing for a while, or stopped.
 * A start that runs out is written as a stop when it expires, so waiting /sync requests
 * learn of it like of any other change.
 */
import { forbidden, MatrixError } from '../core/errors.js';
import type { Stores } from '../storage/index.js';
import type { Requester, ServiceContext } from './context.js';
import { appServiceEphemeralQueue } from './appservice/interest.js';
import { queueRoomEdu } from './federation/edu-queue.js';

/** The longest a single typing notification lasts, whatever the client asks. */
export const MAX_TYPING_TIMEOUT_MS = 120_000;
/** How long another server's typing notification lasts unless renewed (as Synapse's). */
export const REMOTE_TYPING_TIMEOUT_MS = 60_000;
/**
 * How often a local user still typing is told again to the room's other servers, so that it
 * outlives their timeout (REMOTE_TYPING_TIMEOUT_MS on ours, Synapse's alike), as Synapse does.
 */
export const FEDERATION_TYPING_PING_MS = 40_000;
/** How long a start without `timeout` lasts. */
export const DEFAULT_TYPING_TIMEOUT_MS = 30_000;

export interface TypingEvent {
  type: 'm.typing';
  content: { user_ids: string[] };
}

async function assertJoined(stores: Stores, roomId: string, userId: string): Promise<void> {
  const membership = await stores.rooms.selectMembership(roomId, userId);
  if (membership?.membership !== 'join') throw forbidden('You are not in this room');
}

export function createTypingService(ctx: ServiceContext) {
  /** One timer per user typing in a room (in this process), to write the stop at expiry. */
  const timers = new Map<string, NodeJS.Timeout>();
  /** One timer per local user typing in a room, to tell other servers again (pingTyping). */
  const pings = new Map<string, NodeJS.Timeout>();
  const bridges = appServiceEphemeralQueue(ctx.settings.appServices ?? []);
  const isLocal = (userId: string) => userId.endsWith(`:${ctx.settings.serverName}`);

  /** Bridges that receive ephemeral events get the room's typing users (MSC2409). */
  async function tellBridges(stores: Stores, roomId: string, position: number): Promise<void> {
    if (!bridges.active) return;
    const typing = await stores.typing.selectTypingNow([roomId], ctx.now());
    await bridges.queue(stores, roomId, position, {
      type: 'm.typing',
      room_id: roomId,
      content: { user_ids: typing.map((row) => row.userId).sort() },
    });
  }

  async function expire(roomId: string, userId: string, expiresTs: number): Promise<void> {
    await ctx.storage.tx('expireTyping', async (stores) => {
      const row = await stores.typing.selectTyping(roomId, userId);
      if (row?.expiresTs !== expiresTs) return; // renewed or stopped since
      const position = await stores.stream.nextPosition();
      if (await stores.typing.updateTypingStopped(roomId, userId, expiresTs, position)) {
        await stores.stream.notify({ rooms: [roomId] });
        await tellBridges(stores, roomId, position);
        if (isLocal(userId))
          await queueRoomEdu(ctx, stores, roomId, 'm.typing', {
            room_id: roomId,
            user_id: userId,
            typing: false,
          });
      }
    });
  }

  /** Tells the room's other servers again that a local user is still typing: until when (0: not). */
  async function ping(roomId: string, userId: string): Promise<number> {
    return ctx.storage.tx('pingTyping', async (stores) => {
      const row = await stores.typing.selectTyping(roomId, userId);
      if (!row || row.expiresTs <= ctx.now()) return 0;
      await queueRoomEdu(ctx, stores, roomId, 'm.typing', {
        room_id: roomId,
        user_id: userId,
        typing: true,
      });
      return row.expiresTs;
    });
  }

  /** While a local user types longer than other servers wait, their servers are told again. */
  function schedulePings(key: string, roomId: string, userId: string, expiresTs: number): void {
    clearTimeout(pings.get(key));
    pings.delete(key);
    if (expiresTs === 0 || !ctx.settings.federation || !isLocal(userId)) return;
    if (expiresTs - ctx.now() <= FEDERATION_TYPING_PING_MS) return;
    const timer = setTimeout(() => {
      pings.delete(key);
      ping(roomId, userId)
        .then((until) => schedulePings(key, roomId, userId, until))
        .catch(() => undefined);
    }, FEDERATION_TYPING_PING_MS);
    timer.unref();
    pings.set(key, timer);
  }

  function scheduleExpiry(roomId: string, userId: string, expiresTs: number): void {
    const key = `${roomId}\u0000${userId}`;
    clearTimeout(timers.get(key));
    timers.delete(key);
    // A renewal keeps the ping already due (it was told to others within the interval).
    if (expiresTs === 0 || !pings.has(key)) schedulePings(key, roomId, userId, expiresTs);
    if (expiresTs === 0) return;
    const timer = setTimeout(
      () => {
        timers.delete(key);
        // A failure here (the database closing at shutdown) loses only the wake-up: readers
        // compare expires_ts with the clock, so the user no longer shows as typing anyway.
        expire(roomId, userId, expiresTs).catch(() => undefined);
      },
      Math.max(0, expiresTs - ctx.now()),
    );
    timer.unref();
    timers.set(key, timer);
  }

  /**
   * Starts (until `expiresTs`) or stops a joined member's typing, in the caller's transaction;
   * a change made by a local user is queued for the room's other servers (m.typing).
   */
  async function write(
    stores: Stores,
    roomId: string,
    userId: string,
    typing: boolean,
    expiresTs: number,
  ): Promise<void> {
    const now = ctx.now();
    await assertJoined(stores, roomId, userId);
    const row = await stores.typing.selectTyping(roomId, userId);
    const typingNow = row !== undefined && row.expiresTs > now;
    if (typing && typingNow) {
      // Still typing: only the expiry moves, which nobody sees (as Synapse does).
      await stores.typing.updateTypingExpiry(roomId, userId, expiresTs);
      return;
    }
    if (!typing && !typingNow) return;
    const position = await stores.stream.nextPosition();
    await stores.typing.upsertTyping(roomId, userId, expiresTs, position);
    await stores.stream.notify({ rooms: [roomId] });
    await tellBridges(stores, roomId, position);
    if (isLocal(userId))
      await queueRoomEdu(ctx, stores, roomId, 'm.typing', {
        room_id: roomId,
        user_id: userId,
        typing,
      });
  }

  return {
    /**
     * A user of another server started or stopped typing (an m.typing EDU from their server):
     * it lasts REMOTE_TYPING_TIMEOUT_MS unless renewed or stopped. Ignored unless the user is
     * joined to the room.
     */
    async setRemote(roomId: string, userId: string, typing: boolean): Promise<void> {
      const expiresTs = typing ? ctx.now() + REMOTE_TYPING_TIMEOUT_MS : 0;
      try {
        await ctx.storage.tx('setRemoteTyping', (stores) =>
          write(stores, roomId, userId, typing, expiresTs),
        );
      } catch (err) {
        if (err instanceof MatrixError) return;
        throw err;
      }
      scheduleExpiry(roomId, userId, expiresTs);
    },

    /** Starts (for `timeoutMs`, capped) or stops the requester's typing in a room they joined. */
    async set(
      requester: Requester,
      roomId: string,
      userId: string,
      typing: boolean,
      timeoutMs?: number,
    ): Promise<void> {
      if (requester.userId !== userId) {
        throw forbidden('You can only set your own typing state');
      }
      // Shadow-banned (admin API): accepted, shown to no one.
      if (requester.shadowBanned) return;
      const now = ctx.now();
      const timeout = Math.min(
        Math.max(timeoutMs ?? DEFAULT_TYPING_TIMEOUT_MS, 0),
        MAX_TYPING_TIMEOUT_MS,
      );
      const expiresTs = typing ? now + timeout : 0;
      await ctx.storage.tx('setTyping', (stores) =>
        write(stores, roomId, userId, typing, expiresTs),
      );
      scheduleExpiry(roomId, userId, expiresTs);
    },

    /**
     * One m.typing event per room whose typing changed in (after, upTo] (after = 0: rooms where
     * someone is typing now), listing who is typing now.
     */
    async ephemeralSince(
      roomIds: readonly string[],
      after: number,
      upTo: number,
    ): Promise<Map<string, TypingEvent>> {
      const store = ctx.storage.stores.typing;
      const out = new Map<string, TypingEvent>();
      let rooms = roomIds;
      if (after > 0) {
        rooms = await store.selectRoomsChanged(roomIds, after, upTo);
        for (const roomId of rooms)
          out.set(roomId, { type: 'm.typing', content: { user_ids: [] } });
      }
      if (rooms.length === 0) return out;
      for (const row of await store.selectTypingNow(rooms, ctx.now())) {
        let event = out.get(row.roomId);
        if (!event) {
          event = { type: 'm.typing', content: { user_ids: [] } };
          out.set(row.roomId, event);
        }
        event.content.user_ids.push(row.userId);
      }
      return out;
    },
  };
}

export type TypingService = ReturnType<typeof createTypingService>;
