/**
 * Committed changes, delivered to the /sync requests waiting in this process. On PostgreSQL
 * they arrive by LISTEN on one dedicated connection, from every process sharing the database
 * (this one too); on SQLite, which has one writing process, straight from the commit.
 */
import pg from 'pg';
import { CHANGE_CHANNEL, decodeChange, type StreamChange } from './stream-store.js';
import type { DialectName, StorageLogger } from './database.js';

export type ChangeListener = (change: StreamChange) => void;

export interface ChangeFeed {
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
      if (message.channel === CHANGE_CHANNEL) publish(decodeChange(message.payload));
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
