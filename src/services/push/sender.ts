/**
 * Delivers the push queue to the gateways: `POST {data.url}` (`/_matrix/push/v1/notify`) per
 * queued notification, oldest first per pusher, one request in flight per pusher and at most
 * CONCURRENCY pushers at once. A gateway that fails (network, 5xx, 408, 429) is retried later,
 * the wait doubling from 1 s up to `retryMaxMs`, and meanwhile holds up nobody else; a
 * notification it refuses (another 4xx) is dropped; a pushkey it lists as `rejected` loses
 * its pusher. The queue is written with the events (notifications.ts), so what a stopped
 * process left is sent after a restart; with several processes on one database one holds the
 * lease and sends. Nothing here runs inside a client's request.
 * https://spec.matrix.org/v1.19/push-gateway-api/#post_matrixpushv1notify
 */
import type { JsonObject } from '../../core/pdu.js';
import { notifyBody, type NotifiedEvent } from '../../core/pushers.js';
import type { PusherRow, QueuedPush } from '../../storage/index.js';
import type { ServiceContext } from '../context.js';
import { createLeasedWorker, type WorkerLog } from '../background/leased-worker.js';

/** How long a process keeps the lease without renewing it. */
const LEASE_MS = 30_000;
/** How often the sender looks for work other processes queued (and renews the lease). */
const POLL_MS = 1000;
const FIRST_RETRY_MS = 1000;
/** Pushers sent to at once. */
const CONCURRENCY = 16;
/** Queue rows read at a time per pusher. */
const BATCH = 20;
/** Pushers with work looked at per round. */
const SCAN = 1000;
const REQUEST_TIMEOUT_MS = 30_000;

export interface PushSenderOptions {
  retryMaxMs: number;
  log: WorkerLog;
}

type Outcome = 'sent' | 'dropped' | 'rejected';

export function createPushSender(
  ctx: ServiceContext,
  unreadCount: (userId: string) => Promise<number>,
) {
  const stopping = new AbortController();
  const running = new Map<string, Promise<void>>();
  /** Pushers whose gateway failed: when to try again, and the wait after the next failure. */
  const backoff = new Map<string, { retryAt: number; nextMs: number }>();
  let options: PushSenderOptions | null = null;
  const worker = createLeasedWorker(ctx, {
    lease: 'push',
    what: 'push sender',
    leaseMs: LEASE_MS,
    pollMs: POLL_MS,
    takeOverOnSqlite: false,
    // Events committed by this process (or, on PostgreSQL, any) may have queued pushes.
    wakeOn: (change) => (change.rooms?.length ?? 0) > 0,
    round,
    // Requests under way are abandoned (they stay queued).
    afterLoop: async () => {
      await Promise.all(running.values());
    },
  });
  const holding = worker.holding;
  const wake = worker.wake;

  async function describe(row: QueuedPush): Promise<NotifiedEvent | null> {
    const stores = ctx.storage.stores;
    const [stored] = await stores.relations.selectEventsByIds([row.eventId]);
    if (!stored) return null;
    const pdu = stored.pdu;
    const state = await stores.rooms.selectStateEvents(row.roomId, [
      ['m.room.name', ''],
      ['m.room.canonical_alias', ''],
      ['m.room.member', pdu.sender],
    ]);
    const text = (type: string, key: string): string | undefined => {
      const value = state.find((s) => s.pdu.type === type)?.pdu.content[key];
      return typeof value === 'string' && value !== '' ? value : undefined;
    };
    return {
      eventId: row.eventId,
      roomId: row.roomId,
      type: pdu.type,
      sender: pdu.sender,
      stateKey: pdu.state_key,
      content: pdu.content,
      senderDisplayName: text('m.room.member', 'displayname'),
      roomName: text('m.room.name', 'name'),
      roomAlias: text('m.room.canonical_alias', 'alias'),
    };
  }

  async function deliver(pusher: PusherRow, row: QueuedPush): Promise<Outcome> {
    const event = await describe(row);
    if (event === null) return 'dropped';
    const data = JSON.parse(pusher.data) as JsonObject;
    const body = notifyBody(
      event,
      pusher.userId,
      { appId: pusher.appId, pushkey: pusher.pushkey, pushkeyTs: pusher.pushkeyTs, data },
      { unread: await unreadCount(pusher.userId) },
      JSON.parse(row.actions) as unknown[],
    );
    const response = await fetch(data.url as string, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
      redirect: 'error',
      signal: AbortSignal.any([AbortSignal.timeout(REQUEST_TIMEOUT_MS), stopping.signal]),
    });
    const text = await response.text().catch(() => '');
    if (response.ok) {
      let rejected: unknown;
      try {
        rejected = (JSON.parse(text) as { rejected?: unknown }).rejected;
      } catch {
        rejected = undefined;
      }
      return Array.isArray(rejected) && rejected.includes(pusher.pushkey) ? 'rejected' : 'sent';
    }
    if (response.status >= 400 && response.status < 500 && ![408, 429].includes(response.status)) {
      options?.log.warn(
        { pusher: pusher.pusherId, status: response.status, event_id: row.eventId },
        'push gateway refused a notification; dropped',
      );
      return 'dropped';
    }
    throw new Error(`the push gateway answered ${response.status}`);
  }

  /** Sends the pusher's queue until it is empty, it fails, or the lease is lost. */
  async function drain(pusherId: string): Promise<void> {
    const stores = ctx.storage.stores.pushers;
    const pusher = await stores.selectPusher(pusherId);
    if (!pusher) {
      await stores.deletePusherById(pusherId);
      return;
    }
    while (holding()) {
      const rows = await stores.selectQueued(pusherId, BATCH);
      if (rows.length === 0) return;
      for (const row of rows) {
        if (!holding()) return;
        let outcome: Outcome;
        try {
          outcome = await deliver(pusher, row);
        } catch (err) {
          if (worker.isStopped()) return;
          const wait = backoff.get(pusherId)?.nextMs ?? FIRST_RETRY_MS;
          const retryMaxMs = options?.retryMaxMs ?? FIRST_RETRY_MS;
          backoff.set(pusherId, {
            retryAt: ctx.now() + wait,
            nextMs: Math.min(wait * 2, retryMaxMs),
          });
          options?.log.warn(
            { pusher: pusherId, err: (err as Error).message, retry_ms: wait },
            'push notification not delivered; retrying',
          );
          return;
        }
        backoff.delete(pusherId);
        if (outcome === 'rejected') {
          await stores.deletePusherById(pusherId);
          options?.log.warn(
            { pusher: pusherId, user_id: pusher.userId, app_id: pusher.appId },
            'push gateway rejected the pushkey; pusher removed',
          );
          return;
        }
        await stores.deleteQueued(pusherId, row.streamOrdering);
      }
    }
  }

  /** One round: keep the lease, start a sender for each pusher with work (up to CONCURRENCY). */
  async function round(): Promise<void> {
    if (!(await worker.keepLease())) return;
    if (running.size >= CONCURRENCY) return;
    const ids = await ctx.storage.stores.pushers.selectPushersWithQueue(SCAN);
    for (const id of ids) {
      if (running.size >= CONCURRENCY || worker.isStopped()) break;
      if (running.has(id) || (backoff.get(id)?.retryAt ?? 0) > ctx.now()) continue;
      const task = drain(id)
        .catch((err: unknown) => {
          if (!worker.isStopped())
            options?.log.warn(
              { pusher: id, err: (err as Error).message },
              'push sender failed; retrying',
            );
        })
        .finally(() => {
          running.delete(id);
          wake();
        });
      running.set(id, task);
    }
  }

  return {
    /** Looks for queued notifications now (something was just queued). */
    wake,

    /** Starts sending (what earlier runs left queued first); not again once stopped. */
    start(opts: PushSenderOptions): void {
      if (worker.isStarted() || stopping.signal.aborted) return;
      options = opts;
      worker.start(opts.log);
    },

    /** Stops sending (requests under way are abandoned and stay queued) and gives the lease up. */
    async stop(): Promise<void> {
      const stopped = worker.stop();
      stopping.abort();
      await stopped;
    },
  };
}

export type PushSender = ReturnType<typeof createPushSender>;
