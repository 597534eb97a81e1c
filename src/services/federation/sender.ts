/**
 * Sends what the outbox holds to each destination as transactions (at most 50 PDUs and 100
 * EDUs, oldest first) with `PUT /_matrix/federation/v1/send/{txnId}`. An entry leaves the
 * outbox only once the destination answered 200; a failure waits 5 s, doubling up to the
 * configured cap, and the wait ends early when the destination contacts us. All state is in
 * the database, so a restart resumes where the last process stopped; with several processes,
 * a lease row lets only one send to a destination at a time. Runs beside request handling and
 * never inside it: local requests only add outbox rows.
 * https://spec.matrix.org/v1.19/server-server-api/#transactions
 */
import type { FederationSettings, ServiceContext } from '../context.js';
import type { OutboxEntry } from '../../storage/index.js';
import type { FederationClient } from './client.js';

export const MAX_PDUS_PER_TRANSACTION = 50;
export const MAX_EDUS_PER_TRANSACTION = 100;
const FIRST_RETRY_MS = 5000;
/**
 * How long a process's right to send to a destination lasts without renewal. It is renewed
 * while a transaction is in flight, so a process killed mid-send holds it this long at most.
 */
const LEASE_MS = 30_000;
const LEASE_RENEW_MS = LEASE_MS / 3;
/** Outbox rows another process wrote (or retries whose timer was lost) are found this often. */
const SCAN_INTERVAL_MS = 30_000;

export interface SenderLog {
  warn(fields: Record<string, unknown>, message: string): void;
}

/** The wait after `failures` failed attempts in a row. */
export function retryDelayMs(failures: number, maxMs: number): number {
  return Math.min(FIRST_RETRY_MS * 2 ** Math.min(Math.max(failures - 1, 0), 30), maxMs);
}

export function createFederationSender(
  ctx: ServiceContext,
  settings: FederationSettings,
  client: FederationClient,
  owner: string,
  log?: SenderLog,
) {
  const { serverName } = ctx.settings;
  const outbox = () => ctx.storage.stores.federationOutbox;
  const running = new Map<string, Promise<void>>();
  const again = new Set<string>();
  const timers = new Map<string, NodeJS.Timeout>();
  let started = false;
  let unsubscribe: (() => void) | null = null;
  let interval: NodeJS.Timeout | null = null;
  let scanning: Promise<void> | null = null;

  function schedule(destination: string, at: number): void {
    clearTimeout(timers.get(destination));
    const timer = setTimeout(
      () => {
        timers.delete(destination);
        run(destination);
      },
      Math.max(0, at - ctx.now()),
    );
    timer.unref();
    timers.set(destination, timer);
  }

  async function transaction(destination: string, batch: OutboxEntry[]): Promise<boolean> {
    const first = batch[0]?.position ?? 0;
    const last = batch[batch.length - 1]?.position ?? 0;
    // The same batch keeps its ID across retries, so a destination that took it once and
    // lost our copy of its answer recognises it (transactions are idempotent per ID).
    const txnId = `${first}-${last}`;
    const parse = (e: OutboxEntry) => JSON.parse(e.payload) as unknown;
    const pdus = batch.filter((e) => e.kind === 'pdu').map(parse);
    const edus = batch.filter((e) => e.kind === 'edu').map(parse);
    try {
      const response = await client.request(
        destination,
        'PUT',
        `/_matrix/federation/v1/send/${encodeURIComponent(txnId)}`,
        { body: { origin: serverName, origin_server_ts: ctx.now(), pdus, edus } },
      );
      if (response.status === 200) return true;
      log?.warn({ destination, txnId, status: response.status }, 'federation transaction refused');
    } catch (err) {
      log?.warn(
        { destination, txnId, err: (err as Error).message },
        'federation transaction failed',
      );
    }
    return false;
  }

  async function drain(destination: string): Promise<void> {
    for (;;) {
      if (!started) {
        await outbox().releaseLease(destination, owner);
        return;
      }
      const now = ctx.now();
      if (!(await outbox().updateLease(destination, owner, now, now + LEASE_MS))) {
        // Another process sends to it, or a killed one held it: look again once it may lapse.
        if (started) schedule(destination, now + LEASE_MS / 2);
        return;
      }
      const batch = await outbox().selectOutbox(
        destination,
        MAX_PDUS_PER_TRANSACTION,
        MAX_EDUS_PER_TRANSACTION,
      );
      if (batch.length === 0) {
        await outbox().releaseLease(destination, owner);
        return;
      }
      // A destination may take up to the request timeout to answer: keep the lease meanwhile.
      const renew = setInterval(() => {
        const at = ctx.now();
        void outbox()
          .updateLease(destination, owner, at, at + LEASE_MS)
          .catch(() => undefined);
      }, LEASE_RENEW_MS);
      renew.unref();
      const delivered = await transaction(destination, batch).finally(() => clearInterval(renew));
      if (delivered) {
        await ctx.storage.tx('federationDelivered', async (stores) => {
          await stores.federationOutbox.deleteOutbox(
            destination,
            batch.map((e) => e.position),
          );
          await stores.federationOutbox.updateDestinationSuccess(destination, ctx.now());
        });
        continue;
      }
      const state = await outbox().selectDestination(destination);
      const failures = (state?.failures ?? 0) + 1;
      const retryAt = ctx.now() + retryDelayMs(failures, settings.retryMaxMs);
      await outbox().updateDestinationFailure(destination, failures, retryAt);
      await outbox().releaseLease(destination, owner);
      if (started) schedule(destination, retryAt);
      return;
    }
  }

  /** Sends to `destination` now, unless this process is already doing so (then once more after). */
  function run(destination: string): void {
    if (!started) return;
    if (running.has(destination)) {
      again.add(destination);
      return;
    }
    const pending = drain(destination)
      .catch((err: unknown) =>
        log?.warn({ destination, err: (err as Error).message }, 'federation sender error'),
      )
      .finally(() => {
        running.delete(destination);
        if (again.delete(destination)) run(destination);
      });
    running.set(destination, pending);
  }

  /** Finds destinations with waiting entries: due ones are sent to, others scheduled. */
  function scan(): Promise<void> {
    scanning ??= (async () => {
      try {
        for (const d of await outbox().selectPendingDestinations()) {
          if (d.retryAtTs <= ctx.now()) run(d.destination);
          else if (!timers.has(d.destination) && !running.has(d.destination))
            schedule(d.destination, d.retryAtTs);
        }
      } catch (err) {
        log?.warn({ err: (err as Error).message }, 'federation outbox scan failed');
      } finally {
        scanning = null;
      }
    })();
    return scanning;
  }

  return {
    /** Starts sending: what the outbox holds now, and what events add to it as they commit. */
    start(): void {
      if (started) return;
      started = true;
      unsubscribe = ctx.storage.changes.subscribe((change) => {
        if (
          (change.rooms?.length ?? 0) > 0 ||
          (change.destinations?.length ?? 0) > 0 ||
          change.everyone
        )
          void scan();
      });
      interval = setInterval(() => void scan(), SCAN_INTERVAL_MS);
      interval.unref();
      void scan();
    },

    /** A destination reached us: it is up, so its backoff ends and its entries go now. */
    async wake(destination: string): Promise<void> {
      if (!started) return;
      const state = (await outbox().selectPendingDestinations()).find(
        (d) => d.destination === destination,
      );
      if (!state) return;
      clearTimeout(timers.get(destination));
      timers.delete(destination);
      if (state.failures > 0) await outbox().updateDestinationSuccess(destination, ctx.now());
      run(destination);
    },

    /** Looks at the outbox now (after entries were added outside an event, e.g. EDUs). */
    poke: scan,

    /** Stops starting new transactions and waits for those in flight. */
    async stop(): Promise<void> {
      started = false;
      unsubscribe?.();
      if (interval) clearInterval(interval);
      for (const timer of timers.values()) clearTimeout(timer);
      timers.clear();
      await scanning;
      await Promise.allSettled([...running.values()]);
    },
  };
}

export type FederationSender = ReturnType<typeof createFederationSender>;
