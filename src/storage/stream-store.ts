/**
 * The one global stream: every row /sync delivers (events, account data, receipts, typing,
 * presence, to-device messages, device-list changes) takes its position from the same counter,
 * so a token `s<N>` means "everything up to N" for all of them. Positions are taken with
 * UPDATE … RETURNING inside the writing transaction, which holds the counter's row until
 * commit: positions become visible in commit order on both databases.
 */
import { sql, type Kysely } from 'kysely';
import type { Database } from './schema.js';
import type { DialectName } from './database.js';

/** What a committed write touched, for the /sync requests waiting on it. */
export interface StreamChange {
  /** Rooms whose timeline, state, receipts or typing changed. */
  rooms?: readonly string[];
  /** Users with a change of their own (membership, account data, to-device, presence, keys). */
  users?: readonly string[];
  /** Rooms whose members changed: a member event (a membership or a member's profile). */
  memberRooms?: readonly string[];
  /** Users whose access tokens were revoked (a logout, deleted devices). */
  sessions?: readonly string[];
  /** Anything may have changed (a lost notification connection, a change too big to name). */
  everyone?: boolean;
  /** Federation destinations with new outbox entries (EDUs; events announce their rooms). */
  destinations?: readonly string[];
  /** Rooms some of whose past events were deleted (retention, a history or room purge). */
  historyRemoved?: readonly string[];
}

/** Where `notify` sends a change: buffered until commit, or published by the database. */
export type ChangeSink = (change: StreamChange) => Promise<void>;

export interface StreamStore {
  /** Takes the next position of the global stream; take it only just before the final writes. */
  nextPosition(): Promise<number>;
  selectCurrentPosition(): Promise<number>;
  /** Announces a change to every process (this one's caches and waiting /sync requests), at commit. */
  notify(change: StreamChange): Promise<void>;
}

/**
 * Takes the next number of a counter in `stream_positions` (`events`, `rooms`), or the next
 * `count` numbers at once; returns the last of them.
 */
export async function takeNextPosition(
  db: Kysely<Database>,
  stream: string,
  count = 1,
): Promise<number> {
  const row = await db
    .updateTable('stream_positions')
    .set((eb) => ({ position: eb('position', '+', count) }))
    .where('stream', '=', stream)
    .returning('position')
    .executeTakeFirstOrThrow();
  return Number(row.position);
}

export async function selectStreamPosition(db: Kysely<Database>, stream: string): Promise<number> {
  const row = await db
    .selectFrom('stream_positions')
    .select('position')
    .where('stream', '=', stream)
    .executeTakeFirstOrThrow();
  return Number(row.position);
}

/** The PostgreSQL channel changes travel on, between every process sharing the database. */
export const CHANGE_CHANNEL = 'commons_stream';
/** pg_notify payloads must stay under 8000 bytes; bigger changes wake everyone instead. */
const MAX_PAYLOAD_BYTES = 7900;

/** A change as sent on the channel, with the process it came from. */
export function encodeChange(change: StreamChange, origin: string): string {
  const payload = JSON.stringify({ ...change, origin });
  return Buffer.byteLength(payload) > MAX_PAYLOAD_BYTES
    ? JSON.stringify({ everyone: true, origin })
    : payload;
}

/** A change read back from a notification payload; anything unreadable wakes everyone. */
export function decodeChange(payload: string | undefined): {
  change: StreamChange;
  origin: string | null;
} {
  try {
    const value: unknown = JSON.parse(payload ?? '');
    if (typeof value !== 'object' || value === null)
      return { change: { everyone: true }, origin: null };
    const record = value as Record<string, unknown>;
    const strings = (v: unknown) =>
      Array.isArray(v) ? v.filter((s): s is string => typeof s === 'string') : undefined;
    const rooms = strings(record.rooms);
    const users = strings(record.users);
    const sessions = strings(record.sessions);
    const memberRooms = strings(record.memberRooms);
    const destinations = strings(record.destinations);
    const historyRemoved = strings(record.historyRemoved);
    return {
      change: {
        ...(rooms ? { rooms } : {}),
        ...(users ? { users } : {}),
        ...(memberRooms ? { memberRooms } : {}),
        ...(sessions ? { sessions } : {}),
        ...(destinations ? { destinations } : {}),
        ...(historyRemoved ? { historyRemoved } : {}),
        ...(record.everyone === true ? { everyone: true } : {}),
      },
      origin: typeof record.origin === 'string' ? record.origin : null,
    };
  } catch {
    return { change: { everyone: true }, origin: null };
  }
}

/** Announces a change from a store, whatever the store (see `StreamStore.notify`). */
export type Announce = (change: StreamChange) => Promise<void>;

/**
 * Where a store's announcements go. This process's listeners get the change from `sink`
 * (held until commit inside a transaction). On PostgreSQL it is also sent with `pg_notify`,
 * which the database delivers at commit, in commit order, to every listening process (none
 * if the transaction rolls back); the feed of the process that sent it skips its own.
 */
export function announcer(
  db: Kysely<Database>,
  dialect: DialectName,
  sink: ChangeSink,
  origin: string,
): Announce {
  return async (change) => {
    if (dialect === 'postgres')
      await sql`SELECT pg_notify(${CHANGE_CHANNEL}, ${encodeChange(change, origin)})`.execute(db);
    await sink(change);
  };
}

export function streamStore(db: Kysely<Database>, announce: Announce): StreamStore {
  return {
    nextPosition: () => takeNextPosition(db, 'events'),
    selectCurrentPosition: () => selectStreamPosition(db, 'events'),
    notify: announce,
  };
}
