/**
 * Delivers each service's queue: `PUT /_matrix/app/v1/transactions/{txnId}` with the
 * `hs_token`, one transaction in flight per service, retried with the same ID and events
 * (doubling waits up to `retryMaxMs`) until the bridge answers 2xx. A transaction holds up
 * to BATCH events, so a bridge that fell behind catches up in few requests. With several
 * processes on one database, one holds each service's lease and sends; the others wait.
 * Nothing here runs inside a client's request.
 * https://spec.matrix.org/v1.19/application-service-api/#put_matrixappv1transactionstxnid
 */
import type { AppServiceRegistration } from '../../core/appservice.js';
import { randomString } from '../../core/secrets.js';
import type { QueuedEvent } from '../../storage/index.js';
import type { ServiceContext } from '../context.js';

/** Events per transaction at most. */
export const BATCH = 100;
/** How long a process keeps a service's lease without renewing it. */
const LEASE_MS = 30_000;
/** How often an idle sender looks for events other processes queued. */
const POLL_MS = 1000;
const FIRST_RETRY_MS = 1000;
const REQUEST_TIMEOUT_MS = 30_000;

export interface SenderOptions {
  retryMaxMs: number;
  log: { warn(fields: Record<string, unknown>, message: string): void };
}

interface Loop {
  wake(): void;
  done: Promise<void>;
}

/** A pause that `wake()` (or a stop) ends early. */
function pause(ms: number, setWaker: (wake: () => void) => void): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    setWaker(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/**
 * The body of a transaction: room events, then what else the service asked for — ephemeral
 * events (MSC2409, under the stable name and the unstable one bridges read), to-device
 * messages (MSC2409), device-list changes and the latest key counts per device (MSC3202).
 */
export function transactionBody(queued: readonly QueuedEvent[]): string {
  const of = (kind: QueuedEvent['kind']) =>
    queued.filter((q) => q.kind === kind).map((q) => q.eventJson);
  const parts = [`"events":[${of('event').join(',')}]`];
  const ephemeral = of('ephemeral');
  if (ephemeral.length > 0) {
    const list = `[${ephemeral.join(',')}]`;
    parts.push(`"ephemeral":${list}`, `"de.sorunome.msc2409.ephemeral":${list}`);
  }
  const toDevice = of('to_device').flatMap((json) => JSON.parse(json) as unknown[]);
  if (toDevice.length > 0)
    parts.push(`"de.sorunome.msc2409.to_device":${JSON.stringify(toDevice)}`);
  // In order: a user's later change (or leaving) replaces an earlier one.
  const changed = new Set<string>();
  const left = new Set<string>();
  for (const json of of('device_list')) {
    const item = JSON.parse(json) as { changed?: string[]; left?: string[] };
    for (const user of item.changed ?? []) {
      changed.add(user);
      left.delete(user);
    }
    for (const user of item.left ?? []) {
      left.add(user);
      changed.delete(user);
    }
  }
  if (changed.size > 0 || left.size > 0)
    parts.push(
      `"org.matrix.msc3202.device_lists":${JSON.stringify({ changed: [...changed], left: [...left] })}`,
    );
  type PerDevice<T> = Record<string, Record<string, T>>;
  const counts: PerDevice<Record<string, number>> = {};
  const fallback: PerDevice<string[]> = {};
  const keyCounts = of('key_counts');
  for (const json of keyCounts) {
    // Later counts of a device replace earlier ones.
    const item = JSON.parse(json) as {
      counts: PerDevice<Record<string, number>>;
      fallback: PerDevice<string[]>;
    };
    for (const [user, devices] of Object.entries(item.counts))
      Object.assign((counts[user] ??= {}), devices);
    for (const [user, devices] of Object.entries(item.fallback))
      Object.assign((fallback[user] ??= {}), devices);
  }
  if (keyCounts.length > 0) {
    // Synapse's two spellings of the counts; bridges read one or the other.
    const countsJson = JSON.stringify(counts);
    parts.push(
      `"org.matrix.msc3202.device_one_time_keys_count":${countsJson}`,
      `"org.matrix.msc3202.device_one_time_key_counts":${countsJson}`,
      `"org.matrix.msc3202.device_unused_fallback_key_types":${JSON.stringify(fallback)}`,
    );
  }
  return `{${parts.join(',')}}`;
}

export function createAppServiceSender(
  ctx: ServiceContext,
  registrations: readonly AppServiceRegistration[],
) {
  const owner = randomString(16);
  const loops = new Map<string, Loop>();
  let stopped = false;
  const stopping = new AbortController();
  let unsubscribe: (() => void) | null = null;

  async function deliver(r: AppServiceRegistration, txnId: number, queued: QueuedEvent[]) {
    const body = transactionBody(queued);
    const response = await fetch(
      `${r.url as string}/_matrix/app/v1/transactions/${encodeURIComponent(String(txnId))}`,
      {
        method: 'PUT',
        headers: { Authorization: `Bearer ${r.hsToken}`, 'Content-Type': 'application/json' },
        body,
        signal: AbortSignal.any([AbortSignal.timeout(REQUEST_TIMEOUT_MS), stopping.signal]),
      },
    );
    await response.arrayBuffer().catch(() => undefined);
    if (!response.ok) throw new Error(`the bridge answered ${response.status}`);
  }

  /** Until when this process holds each service's lease (renewed at half-time). */
  const leases = new Map<string, number>();
  /**
   * On SQLite one process owns the database (it holds the file's lock), so a lease recorded
   * there was left by a process that is gone (killed): it is taken over at once, not after
   * it runs out. On PostgreSQL another process may be sending: its lease is waited out.
   */
  const ownsDatabase = ctx.storage.dialect === 'sqlite';

  /** One step: true when there may be more to send at once. */
  async function step(r: AppServiceRegistration): Promise<boolean> {
    const stores = ctx.storage.stores.appservices;
    const now = ctx.now();
    // An idle sender holding the lease reads the queue without writing anything.
    if ((leases.get(r.id) ?? 0) - now < LEASE_MS / 2) {
      const expiredBefore = ownsDatabase ? Number.MAX_SAFE_INTEGER : now;
      if (!(await stores.claimSender(r.id, owner, expiredBefore, now + LEASE_MS))) {
        leases.delete(r.id);
        return false;
      }
      leases.set(r.id, now + LEASE_MS);
    }
    let txn = await stores.selectInFlight(r.id);
    if (txn === null) {
      const queued = await stores.selectQueued(r.id, null, BATCH);
      const last = queued[queued.length - 1];
      if (last === undefined) return false;
      txn = await stores.startTxn(r.id, last.position);
    }
    const events = await stores.selectQueued(r.id, txn.upTo, BATCH);
    await deliver(r, txn.txnId, events);
    const done = txn;
    await ctx.storage.tx('appserviceTxnDone', (tx) => tx.appservices.finishTxn(r.id, done));
    return true;
  }

  function run(r: AppServiceRegistration, options: SenderOptions): Loop {
    let waker: () => void = () => undefined;
    let woken = false;
    const setWaker = (wake: () => void) => {
      waker = wake;
      if (woken || stopped) wake();
    };
    const sleep = async (ms: number) => {
      await pause(ms, setWaker);
      woken = false;
    };
    const loop: Loop = {
      wake() {
        woken = true;
        waker();
      },
      done: (async () => {
        let retryMs = FIRST_RETRY_MS;
        while (!stopped) {
          try {
            if (await step(r)) {
              retryMs = FIRST_RETRY_MS;
              continue;
            }
            await sleep(POLL_MS);
          } catch (err) {
            if (stopped) break;
            options.log.warn(
              { appservice: r.id, err: (err as Error).message, retry_ms: retryMs },
              'appservice transaction not delivered; retrying',
            );
            // A wake-up does not cut the wait short: new events are no reason to retry sooner.
            await new Promise<void>((resolve) => {
              const timer = setTimeout(resolve, retryMs);
              setWaker(() => {
                if (stopped) {
                  clearTimeout(timer);
                  resolve();
                }
              });
            });
            retryMs = Math.min(retryMs * 2, options.retryMaxMs);
          }
        }
      })(),
    };
    return loop;
  }

  return {
    /** Starts a sender for every service that has a URL. */
    start(options: SenderOptions): void {
      if (stopped || loops.size > 0) return;
      const senders = registrations.filter((r) => r.url !== null);
      if (senders.length === 0) return;
      for (const r of senders) loops.set(r.id, run(r, options));
      // Changes committed by this process (or, on PostgreSQL, any) wake the senders: events
      // and receipts name rooms, to-device messages and key changes name users.
      unsubscribe = ctx.storage.changes.subscribe(() => {
        for (const loop of loops.values()) loop.wake();
      });
    },

    /** Stops sending (an attempt under way is abandoned) and gives the leases up. */
    async stop(): Promise<void> {
      stopped = true;
      stopping.abort();
      unsubscribe?.();
      for (const loop of loops.values()) loop.wake();
      await Promise.all([...loops.values()].map((loop) => loop.done));
      for (const id of loops.keys()) {
        await ctx.storage.stores.appservices.releaseSender(id, owner).catch(() => undefined);
      }
    },
  };
}
