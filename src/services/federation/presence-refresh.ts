/**
 * Presence refreshed over federation: other servers time a remote user out to offline when
 * they hear nothing of them for a while (Synapse: 30 minutes), so the presence of each local
 * user who stays online or unavailable is sent again, with `currently_active` and a fresh
 * `last_active_ago`, to the servers sharing a room with them every `presenceRefreshMs`
 * (config `federation.presence_refresh_seconds`). Offline users are not sent again. The
 * users of a page are batched per destination (one `m.presence` EDU each, ≤ 100 users) in
 * the durable outbox, one transaction per page.
 *
 * With several processes on one database, one makes each pass: the `presence-refresh` job
 * lease marks when the next pass is due, and a process takes it, for one pass, only once it
 * has lapsed. Every process looks every tenth of the interval, so passes are at most the
 * interval apart while any process runs.
 */
import { canonicalJson } from '../../core/canonical-json.js';
import { createDuePass } from '../background/due-pass.js';
import type { ServiceContext } from '../context.js';
import { presenceContent } from '../presence.js';

/** The default interval: under Synapse's 30-minute federation timeout, as Synapse pings. */
export const DEFAULT_PRESENCE_REFRESH_MS = 25 * 60_000;
/** Local users read per page (and at most this many users per EDU). */
const USER_PAGE = 100;
const LEASE_JOB = 'presence-refresh';

export function createPresenceRefresher(ctx: ServiceContext, intervalMs: number) {
  const { serverName } = ctx.settings;
  const stores = ctx.storage.stores;
  const tickMs = Math.max(100, Math.floor(intervalMs / 10));
  let timer: NodeJS.Timeout | null = null;
  let stopping = false;

  /** The remote servers with members joined to the room, read once per pass. */
  async function serversOf(roomId: string, cache: Map<string, string[]>): Promise<string[]> {
    let servers = cache.get(roomId);
    if (!servers) {
      servers = await stores.federationOutbox.selectRemoteJoinedServers(roomId, serverName);
      cache.set(roomId, servers);
    }
    return servers;
  }

  /** Sends the presence of every local user not offline; resolves with how many were sent. */
  async function pass(): Promise<number> {
    const roomServers = new Map<string, string[]>();
    let after = '';
    let sent = 0;
    for (;;) {
      if (stopping) return sent;
      const rows = await stores.presence.selectNotOfflineOfServer(serverName, after, USER_PAGE);
      const destinationsOf = new Map<string, Set<string>>();
      for (const row of rows) {
        const servers = new Set<string>();
        for (const roomId of await stores.rooms.selectRoomsOfUser(row.userId, 'join'))
          for (const server of await serversOf(roomId, roomServers)) servers.add(server);
        servers.delete(serverName);
        if (servers.size > 0) destinationsOf.set(row.userId, servers);
      }
      if (destinationsOf.size > 0)
        sent += await ctx.storage.tx('refreshPresence', async (tx) => {
          // Read again with the rows locked: a change made since is sent as it is now (or
          // not at all once offline), and one made meanwhile is queued after this refresh.
          const current = await tx.presence.selectPresenceLocked([...destinationsOf.keys()]);
          const now = ctx.now();
          const byDestination = new Map<string, object[]>();
          let users = 0;
          for (const row of current) {
            const servers = destinationsOf.get(row.userId);
            if (row.presence === 'offline' || !servers) continue;
            const update = { user_id: row.userId, ...presenceContent(row, now) };
            for (const server of servers) {
              const updates = byDestination.get(server) ?? [];
              updates.push(update);
              byDestination.set(server, updates);
            }
            users++;
          }
          const destinations = [...byDestination.keys()].sort();
          for (const destination of destinations)
            await tx.federationOutbox.insertOutbox(
              [destination],
              'edu',
              canonicalJson({
                edu_type: 'm.presence',
                content: { push: byDestination.get(destination) ?? [] },
              }),
              now,
            );
          if (destinations.length > 0) await tx.stream.notify({ destinations });
          return users;
        });
      if (rows.length < USER_PAGE) return sent;
      after = rows[rows.length - 1]?.userId ?? after;
      // The event loop free between pages (SQLite's statements hold the process).
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  const due = createDuePass(ctx, LEASE_JOB, intervalMs, tickMs, pass);

  return {
    /**
     * A pass if one is due; resolves with how many users' presence was sent, or null when
     * no pass was due (the last one, by any process, is not an interval old).
     */
    runIfDue(): Promise<number | null> {
      return due.runIfDue();
    },

    /** Looks for a due pass every tenth of the interval; `onError` hears of a failed one. */
    start(onError: (err: unknown) => void): void {
      if (timer || stopping) return;
      timer = setInterval(() => {
        if (due.isRunning()) return;
        this.runIfDue().catch(onError);
      }, tickMs);
      timer.unref();
    },

    async stop(): Promise<void> {
      stopping = true;
      if (timer) clearInterval(timer);
      timer = null;
      await due.settled();
    },
  };
}

export type PresenceRefresher = ReturnType<typeof createPresenceRefresher>;
