/**
 * Committed changes, delivered to this process's listeners (its caches, its waiting /sync
 * requests). This process's own changes come straight from the commit; on PostgreSQL those of
 * every other process sharing the database arrive by LISTEN on one dedicated connection.
 * On SQLite there are no others: one process owns the file (see database.ts).
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
  close(): Promise<void>;
}

const RECONNECT_DELAY_MS = 1000;

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
    const next = new pg.Client({ connectionString: url });
    next.on('notification', (message) => {
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
    if (closed) {
      await next.end();
      return;
    }
    client = next;
    // Whatever committed while no connection listened is unknown: every waiter looks again.
    publish({ everyone: true });
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
    async close() {
      closed = true;
      if (retry) clearTimeout(retry);
      listeners.clear();
      const current = client;
      client = null;
      if (current) await current.end().catch(() => undefined);
    },
  };
}
