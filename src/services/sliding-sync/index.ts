/**
 * Simplified sliding sync (MSC4186, `org.matrix.simplified_msc3575`): the lists of a user's
 * rooms by recency, windows of them and room subscriptions with their required state and
 * timelines, and the extensions (to-device, e2ee, account data, receipts, typing), over a
 * connection whose state (what each room was sent up to, the lazy members sent) is stored.
 * A long-poll waits on the same notifier as /sync.
 *
 * Cost: a list is counted and each of its windows read by the database (the user's
 * memberships joined to `room_list_meta`, kept with each event, filtered and ordered there):
 * only the window's rows come back; every other read is for the rooms of the windows and
 * subscriptions only. A long-poll watches the user's rooms, kept per process.
 */
import type { JsonObject } from '../../core/pdu.js';
import { randomString } from '../../core/secrets.js';
import {
  formatPos,
  mergeConfigs,
  parsePos,
  spansOfRanges,
  unknownPos,
  type RoomConfig,
  type SlidingSyncRequest,
} from '../../core/sliding-sync.js';
import type { ConnectionRow, SentRoom } from '../../storage/index.js';
import type { Requester, ServiceContext } from '../context.js';
import type { Notifier } from '../notifier.js';
import type { PresenceState } from '../sync.js';
import type { SyncSources } from '../sync-sources.js';
import type { TimelineService } from '../timeline.js';
import { buildExtensions, type ExtensionsResponse } from './extensions.js';
import { createUserCache } from '../user-cache.js';
import { invitesBlocked } from '../invite-permission.js';
import { filterFacts, listCriteria, orderRoomList, type ListedRoom } from './room-list.js';
import { buildRooms, type RoomResponse } from './rooms.js';

/** A connection unused this long is forgotten (its next request: M_UNKNOWN_POS). */
export const CONNECTION_TTL_MS = 7 * 24 * 3600 * 1000;
/** Users whose watched rooms are kept per process. */
const WATCHED_LISTS_KEPT = 10_000;

/** The rooms the extensions name one by one (`*` aside). */
function extensionRoomIds(request: SlidingSyncRequest): string[] {
  const { accountData, receipts, typing } = request.extensions;
  return [accountData, receipts, typing].flatMap((scope) =>
    scope.enabled ? (scope.rooms ?? []).filter((id) => id !== '*') : [],
  );
}

export interface SlidingSyncOptions {
  pos?: string | undefined;
  timeoutMs: number;
  setPresence: PresenceState;
  signal?: AbortSignal | undefined;
}

export interface SlidingSyncResponse {
  pos: string;
  txn_id?: string;
  lists: Record<string, { count: number }>;
  rooms: Record<string, RoomResponse>;
  extensions: ExtensionsResponse;
}

/** Where a request starts from: a new connection, or a stored one at a position it issued. */
interface Start {
  connection: ConnectionRow | null;
  connectionId: string;
  /** Stream position of the client's pos (null: new connection). */
  from: number | null;
  /** The counter the answer's pos gets. */
  counter: number;
  /** A retry of the previous request: what the lost answer wrote is forgotten first. */
  forgetPos: number | null;
}

export function createSlidingSyncService(
  ctx: ServiceContext,
  timeline: TimelineService,
  notifier: Notifier,
  sources: SyncSources,
) {
  const stores = () => ctx.storage.stores;
  const currentRooms = createUserCache<ReadonlySet<string>>(ctx.storage.changes, {
    max: WATCHED_LISTS_KEPT,
    usersNamedBy: (change) => change.users,
    stats: ctx.cacheStats?.counter('sliding_sync_rooms'),
  });

  async function start(
    requester: Requester,
    connId: string,
    pos: string | undefined,
  ): Promise<Start> {
    if (pos === undefined)
      return {
        connection: null,
        connectionId: randomString(24),
        from: null,
        counter: 1,
        forgetPos: null,
      };
    const parsed = parsePos(pos);
    if (!parsed) throw unknownPos();
    const connection = await stores().slidingSync.selectConnection(
      requester.userId,
      requester.deviceId,
      connId,
    );
    if (!connection || connection.lastUsedTs < ctx.now() - CONNECTION_TTL_MS) throw unknownPos();
    if (parsed.counter === connection.pos && parsed.streamPosition === connection.streamPosition)
      return {
        connection,
        connectionId: connection.connectionId,
        from: connection.streamPosition,
        counter: connection.pos + 1,
        forgetPos: null,
      };
    // The previous request again: its answer never reached the client.
    if (
      parsed.counter === connection.pos - 1 &&
      parsed.streamPosition === connection.prevStreamPosition
    )
      return {
        connection,
        connectionId: connection.connectionId,
        from: connection.prevStreamPosition,
        counter: connection.pos,
        forgetPos: connection.pos,
      };
    throw unknownPos();
  }

  async function build(
    requester: Requester,
    request: SlidingSyncRequest,
    begin: Start,
    upTo: number,
  ) {
    const { userId } = requester;
    const from = begin.from;
    const store = stores().slidingSync;
    const facts = filterFacts(stores, userId, await readDirect(userId));

    // Each list: its count, and the rooms of its windows with the config they ask for, each
    // window read from the database as it is (never the whole list).
    const lists: Record<string, { count: number }> = {};
    const configs = new Map<string, RoomConfig[]>();
    const listRooms = new Map<string, string[]>();
    const rooms = new Map<string, ListedRoom>();
    const addConfig = (roomId: string, config: RoomConfig) => {
      const list = configs.get(roomId);
      if (list) list.push(config);
      else configs.set(roomId, [config]);
    };
    // Invite blocking (MSC4380): no invite is listed while it is on.
    const invitesHidden = await invitesBlocked(stores(), userId);
    for (const [name, list] of request.lists) {
      const listed = await listCriteria(userId, from, list.filters, facts);
      const criteria = !invitesHidden
        ? listed
        : listed.isInvite === true
          ? { ...listed, onlyRooms: [] }
          : { ...listed, isInvite: false };
      const count = await store.countRoomList(criteria);
      lists[name] = { count };
      const window: string[] = [];
      for (const [start, end] of spansOfRanges(list.ranges, count))
        for (const room of await store.selectRoomListRange(criteria, start, end - start + 1)) {
          rooms.set(room.roomId, room);
          window.push(room.roomId);
          addConfig(room.roomId, list);
        }
      listRooms.set(name, window);
    }
    // Rooms named outside the windows: subscriptions, and the rooms extensions name.
    const named = [...request.roomSubscriptions.keys(), ...extensionRoomIds(request)].filter(
      (id) => !rooms.has(id),
    );
    for (const room of orderRoomList(
      await store.selectRoomListEntries(userId, [...new Set(named)]),
      from,
    ))
      if (!(invitesHidden && room.membership === 'invite')) rooms.set(room.roomId, room);
    for (const [roomId, config] of request.roomSubscriptions)
      if (rooms.has(roomId)) addConfig(roomId, config);

    const wanted = [...configs].map(([roomId, list]) => ({
      room: rooms.get(roomId) as ListedRoom,
      config: mergeConfigs(list),
    }));
    const built = await buildRooms(
      {
        ctx,
        timeline,
        unread: sources.unread,
        requester,
        connectionId: begin.connectionId,
        from,
        upTo,
      },
      wanted,
      facts.directRooms,
    );

    const extensions = await buildExtensions(sources, requester, request, {
      from,
      upTo,
      listRooms,
      subscribed: [...request.roomSubscriptions.keys()].filter(
        (id) => rooms.get(id)?.membership === 'join',
      ),
      joined: new Set(
        [...rooms.values()].filter((r) => r.membership === 'join').map((r) => r.roomId),
      ),
      initialRooms: built.initialRooms,
    });

    const previousCounts = begin.connection
      ? (JSON.parse(begin.connection.listCounts) as Record<string, number>)
      : {};
    const countsChanged = Object.entries(lists).some(
      ([name, { count }]) => previousCounts[name] !== count,
    );
    const empty = Object.keys(built.rooms).length === 0 && !countsChanged && extensions.empty;
    return { lists, built, extensions, empty };
  }

  /**
   * The rooms a long-poll of the user watches: those the user is in, invited to or knocking
   * on, kept per process until a change names the user (every membership event of theirs).
   */
  async function watchedRooms(userId: string): Promise<ReadonlySet<string>> {
    const kept = currentRooms.get(userId);
    if (kept) return kept;
    const ticket = currentRooms.ticket();
    const ids = new Set(await stores().slidingSync.selectCurrentRoomIds(userId));
    currentRooms.set(userId, ids, [userId], ticket);
    return ids;
  }

  async function readDirect(userId: string) {
    return ctx.storage.stores.accountData
      .selectAccountData(userId, '', 'm.direct')
      .then((text) => (text === undefined ? undefined : (JSON.parse(text) as JsonObject)));
  }

  return {
    async sync(
      requester: Requester,
      request: SlidingSyncRequest,
      options: SlidingSyncOptions,
    ): Promise<SlidingSyncResponse> {
      // While it runs (and a little after) the user is not timed out to offline.
      const ended = sources.presence.syncing(requester.userId, options.setPresence);
      try {
        return await syncOnce(requester, request, options);
      } finally {
        ended();
      }
    },
  };

  async function syncOnce(
    requester: Requester,
    request: SlidingSyncRequest,
    options: SlidingSyncOptions,
  ): Promise<SlidingSyncResponse> {
    const begin = await start(requester, request.connId, options.pos);
    if (begin.forgetPos !== null)
      await stores().slidingSync.deleteSentAt(begin.connectionId, begin.forgetPos);
    if (options.setPresence !== 'offline')
      await sources.presence.setFromSync(requester.userId, options.setPresence);
    if (options.setPresence === 'online') await sources.presence.activity(requester.userId, true);
    const deadline = ctx.now() + options.timeoutMs;
    for (;;) {
      const mark = notifier.mark();
      const upTo = await stores().stream.selectCurrentPosition();
      const result = await build(requester, request, begin, upTo);
      const remaining = deadline - ctx.now();
      const wait =
        result.empty &&
        begin.from !== null &&
        remaining > 0 &&
        !options.signal?.aborted &&
        !notifier.closed;
      if (wait) {
        const changed = await notifier.waitForChange(
          { userId: requester.userId, rooms: await watchedRooms(requester.userId) },
          mark,
          remaining,
          options.signal,
        );
        if (changed && options.signal?.aborted !== true) continue;
      }
      return answer(result, upTo, true);
    }

    async function answer(
      result: Awaited<ReturnType<typeof build>>,
      upTo: number,
      commit: boolean,
    ): Promise<SlidingSyncResponse> {
      const counts = Object.fromEntries(Object.entries(result.lists).map(([n, l]) => [n, l.count]));
      const row = {
        connectionId: begin.connectionId,
        pos: begin.counter,
        streamPosition: upTo,
        prevStreamPosition: begin.from,
        listCounts: JSON.stringify(counts),
        lastUsedTs: ctx.now(),
      };
      // A client gone before its answer: nothing of it is written (its pos is still good).
      if (commit && options.signal?.aborted !== true)
        await ctx.storage.tx('slidingSyncCommit', async (tx) => {
          if (begin.connection === null) {
            await tx.slidingSync.deleteConnectionsUnusedSince(ctx.now() - CONNECTION_TTL_MS);
            await tx.slidingSync.replaceConnection(
              requester.userId,
              requester.deviceId,
              request.connId,
              row,
            );
          } else {
            await tx.slidingSync.updateConnection(begin.connectionId, row);
          }
          await tx.slidingSync.upsertSentRooms(
            begin.connectionId,
            result.built.sentRooms,
            begin.counter,
          );
          await tx.slidingSync.insertSentMembers(
            begin.connectionId,
            result.built.sentMembers,
            begin.counter,
          );
        });
      return {
        pos: formatPos(begin.counter, upTo),
        ...(request.txnId !== undefined ? { txn_id: request.txnId } : {}),
        lists: result.lists,
        rooms: result.built.rooms,
        extensions: result.extensions.response,
      };
    }
  }
}

export type SlidingSyncService = ReturnType<typeof createSlidingSyncService>;
export type { SentRoom };
