/**
 * Committed changes, delivered to this process's listeners (its caches, its waiting /sync
 * requests). This process's own changes come straight from the commit; on PostgreSQL those of
 * every other process sharing the database arrive by LISTEN on one dedicated connection.
 * On SQLite there are no others: one process owns the file (see database.ts).
 *
 * Barriers (PostgreSQL): `barrier()` resolves once every other process listening has handled
 * every change committed before it was called — or after BARRIER_TIMEOUT_MS. It sends a
 * notification on a second channel; PostgreSQL keeps one queue for all channels, so each
 * listener gets it after the changes committed before it, handles those first (synchronously,
 * in order), and then acknowledges. The listeners are known by their connections'
 * `application_name` (`commons-feed-<origin>`) in `pg_stat_activity`.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { CHANGE_CHANNEL, decodeChange, type StreamChange } from './stream-store.js';
import type { DialectName, StorageLogger } from './database.js';

export type ChangeListener = (change: StreamChange) => void;

export interface ChangeFeed {
  /** This process's mark on the changes it sends, so that it skips them when they come back. */
  readonly origin: string;
  /**
   * Whether every change committed so far has reached the listeners, so a cache they keep
   * can be read: on SQLite always (one process owns the file); on PostgreSQL while the LISTEN
   * connection is up (what it missed is delivered as `everyone` once it is back).
   */
  current(): boolean;
  /** Calls `listener` with each committed change until the returned function is called. */
  subscribe(listener: ChangeListener): () => void;
  /** Resolves once changes from other processes are being received. */
  listen(): Promise<void>;
  /** Hands a committed change to this process's listeners. */
  publish(change: StreamChange): void;
  /**
   * Resolves once every other process listening on the database has handled every change
   * committed before the call (at most BARRIER_TIMEOUT_MS; at once on SQLite, or when this
   * process's own LISTEN connection is down).
   */
  barrier(): Promise<void>;
  close(): Promise<void>;
}

const RECONNECT_DELAY_MS = 1000;
/** How long `barrier()` waits for the other processes' acknowledgements. */
export const BARRIER_TIMEOUT_MS = 1000;
/** Barriers and their acknowledgements travel here (after the changes committed before them). */
const BARRIER_CHANNEL = 'commons_barrier';
const FEED_APPLICATION_NAME = 'commons-feed-';

interface PendingBarrier {
  /** The processes yet to acknowledge. */
  waiting: Set<string>;
  done(): void;
}

export function createChangeFeed(
  dialect: DialectName,
  url: string,
  logger: StorageLogger | undefined,
): ChangeFeed {
  const listeners = new Set<ChangeListener>();
  const origin = randomBytes(6).toString('hex');
  let client: pg.Client | null = null;
  let listening: Promise<void> | null = null;
  let closed = false;
  let retry: NodeJS.Timeout | null = null;
  const barriers = new Map<string, PendingBarrier>();

  function publish(change: StreamChange): void {
    for (const listener of [...listeners]) {
      try {
        listener(change);
      } catch (err) {
        logger?.warn({ err: (err as Error).message }, 'change listener failed');
      }
    }
  }

  function reconnectLater(): void {
    if (closed || retry) return;
    client = null;
    retry = setTimeout(() => {
      retry = null;
      listening = connect().catch((err: Error) => {
        logger?.warn({ err: err.message }, 'change feed: reconnecting failed');
        reconnectLater();
      });
    }, RECONNECT_DELAY_MS);
  }

  async function connect(): Promise<void> {
    const next = new pg.Client({
      connectionString: url,
      application_name: `${FEED_APPLICATION_NAME}${origin}`,
    });
    next.on('notification', (message) => {
      if (message.channel === BARRIER_CHANNEL) {
        onBarrierMessage(next, message.payload ?? '');
        return;
      }
      if (message.channel !== CHANGE_CHANNEL) return;
      const { change, origin: from } = decodeChange(message.payload);
      // This process published its own changes when they committed.
      if (from !== origin) publish(change);
    });
    next.on('error', (err) => {
      logger?.warn({ err: err.message }, 'change feed connection lost');
      reconnectLater();
    });
    next.on('end', () => reconnectLater());
    await next.connect();
    await next.query(`LISTEN ${CHANGE_CHANNEL}`);
    await next.query(`LISTEN ${BARRIER_CHANNEL}`);
    if (closed) {
      await next.end();
      return;
    }
    client = next;
    // Whatever committed while no connection listened is unknown: every waiter looks again.
    publish({ everyone: true });
  }

  /**
   * `b <origin> <id>`: another process's barrier — every change before it has been handled
   * (notifications are handled in order), so acknowledge it. `a <to> <from> <id>`: an
   * acknowledgement, of one of ours if `to` is this process.
   */
  function onBarrierMessage(connection: pg.Client, payload: string): void {
    const [kind, first, second, third] = payload.split(' ');
    if (kind === 'b' && first && second && first !== origin) {
      connection
        .query('SELECT pg_notify($1, $2)', [BARRIER_CHANNEL, `a ${first} ${origin} ${second}`])
        .catch((err: Error) => logger?.warn({ err: err.message }, 'change feed: ack failed'));
    } else if (kind === 'a' && first === origin && second && third) {
      const pending = barriers.get(third);
      pending?.waiting.delete(second);
      if (pending?.waiting.size === 0) pending.done();
    }
  }

  async function barrier(): Promise<void> {
    const connection = client;
    if (dialect !== 'postgres' || closed || !connection) return;
    let rows: { name: string }[];
    try {
      ({ rows } = await connection.query<{ name: string }>(
        `SELECT application_name AS name FROM pg_stat_activity
          WHERE datname = current_database() AND application_name LIKE $1`,
        [`${FEED_APPLICATION_NAME}%`],
      ));
    } catch (err) {
      // The change has committed: answer as before barriers rather than fail its request.
      logger?.warn({ err: (err as Error).message }, 'change feed: barrier not sent');
      return;
    }
    const others = rows
      .map((row) => row.name.slice(FEED_APPLICATION_NAME.length))
      .filter((name) => name !== origin);
    if (others.length === 0) return;
    const id = randomBytes(6).toString('hex');
    await new Promise<void>((resolve) => {
      const waiting = new Set(others);
      const timer = setTimeout(() => {
        logger?.warn(
          { processes: [...waiting] },
          `change feed: no acknowledgement of a barrier within ${BARRIER_TIMEOUT_MS} ms`,
        );
        done();
      }, BARRIER_TIMEOUT_MS);
      function done(): void {
        clearTimeout(timer);
        barriers.delete(id);
        resolve();
      }
      barriers.set(id, { waiting, done });
      connection
        .query('SELECT pg_notify($1, $2)', [BARRIER_CHANNEL, `b ${origin} ${id}`])
        .catch(() => done());
    });
  }

  return {
    origin,
    current() {
      return !closed && (dialect !== 'postgres' || client !== null);
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    listen() {
      if (dialect !== 'postgres' || closed) return Promise.resolve();
      listening ??= connect();
      return listening;
    },
    publish,
    barrier,
    async close() {
      closed = true;
      for (const pending of [...barriers.values()]) pending.done();
      if (retry) clearTimeout(retry);
      listeners.clear();
      const current = client;
      client = null;
      if (current) await current.end().catch(() => undefined);
    },
  };
}
