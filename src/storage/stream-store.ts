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
  /** Anything may have changed (a lost notification connection, a change too big to name). */
  everyone?: boolean;
}

/** Where `notify` sends a change: buffered until commit, or published by the database. */
export type ChangeSink = (change: StreamChange) => Promise<void>;

export interface StreamStore {
  /** Takes the next position of the global stream; take it only just before the final writes. */
  nextPosition(): Promise<number>;
  selectCurrentPosition(): Promise<number>;
  /** Announces a change to waiting /sync requests in every process, once this transaction commits. */
  notify(change: StreamChange): Promise<void>;
}

/** Takes the next number of a counter in `stream_positions` (`events`, `rooms`). */
export async function takeNextPosition(db: Kysely<Database>, stream: string): Promise<number> {
  const row = await db
    .updateTable('stream_positions')
    .set((eb) => ({ position: eb('position', '+', 1) }))
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

export function encodeChange(change: StreamChange): string {
  const payload = JSON.stringify(change);
  return Buffer.byteLength(payload) > MAX_PAYLOAD_BYTES
    ? JSON.stringify({ everyone: true })
    : payload;
}

/** A change read back from a notification payload; anything unreadable wakes everyone. */
export function decodeChange(payload: string | undefined): StreamChange {
  try {
    const value: unknown = JSON.parse(payload ?? '');
    if (typeof value !== 'object' || value === null) return { everyone: true };
    const record = value as Record<string, unknown>;
    const strings = (v: unknown) =>
      Array.isArray(v) ? v.filter((s): s is string => typeof s === 'string') : undefined;
    const rooms = strings(record.rooms);
    const users = strings(record.users);
    return {
      ...(rooms ? { rooms } : {}),
      ...(users ? { users } : {}),
      ...(record.everyone === true ? { everyone: true } : {}),
    };
  } catch {
    return { everyone: true };
  }
}

export function streamStore(
  db: Kysely<Database>,
  dialect: DialectName,
  sink: ChangeSink,
): StreamStore {
  return {
    nextPosition: () => takeNextPosition(db, 'events'),
    selectCurrentPosition: () => selectStreamPosition(db, 'events'),
    async notify(change) {
      // PostgreSQL delivers a NOTIFY issued in a transaction at commit, to every listener in
      // every process (this one included), in commit order; nothing if it rolls back.
      if (dialect === 'postgres') {
        await sql`SELECT pg_notify(${CHANGE_CHANNEL}, ${encodeChange(change)})`.execute(db);
        return;
      }
      await sink(change);
    },
  };
}
