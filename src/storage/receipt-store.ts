/**
 * Read receipts: the latest receipt of each type per room, user and thread ('' when
 * unthreaded), each at the stream position it was last moved at.
 */
import type { Kysely } from 'kysely';
import type { Database } from './schema.js';

const IN_LIST_CHUNK = 500;
/** Rows of a span read by position before falling back to reading by room. */
const SPAN_ROWS = 500;

export interface ReceiptRow {
  roomId: string;
  receiptType: string;
  userId: string;
  /** '' for an unthreaded receipt. */
  threadId: string;
  eventId: string;
  ts: number;
}

export interface ReceiptStore {
  /** Sets (or moves) the receipt at `position`. */
  upsertReceipt(receipt: ReceiptRow, position: number): Promise<void>;
  /** The event the receipt of that key points at now, if there is one. */
  selectReceiptEvent(
    roomId: string,
    receiptType: string,
    userId: string,
    threadId: string,
  ): Promise<string | undefined>;
  /** Receipts of the rooms listed that moved in (after, upTo]. */
  selectReceiptsChanged(
    roomIds: readonly string[],
    after: number,
    upTo: number,
  ): Promise<ReceiptRow[]>;
  /** Every receipt of the rooms listed that last moved at or before `upTo`. */
  selectReceiptsOfRooms(roomIds: readonly string[], upTo: number): Promise<ReceiptRow[]>;
}

const columns = ['room_id', 'receipt_type', 'user_id', 'thread_id', 'event_id', 'ts'] as const;

const toReceiptRow = (row: {
  room_id: string;
  receipt_type: string;
  user_id: string;
  thread_id: string;
  event_id: string;
  ts: number;
}): ReceiptRow => ({
  roomId: row.room_id,
  receiptType: row.receipt_type,
  userId: row.user_id,
  threadId: row.thread_id,
  eventId: row.event_id,
  ts: Number(row.ts),
});

export function receiptStore(db: Kysely<Database>): ReceiptStore {
  return {
    async upsertReceipt(receipt, position) {
      await db
        .insertInto('receipts')
        .values({
          room_id: receipt.roomId,
          receipt_type: receipt.receiptType,
          user_id: receipt.userId,
          thread_id: receipt.threadId,
          event_id: receipt.eventId,
          ts: receipt.ts,
          stream_ordering: position,
        })
        .onConflict((oc) =>
          oc
            .columns(['room_id', 'receipt_type', 'user_id', 'thread_id'])
            .doUpdateSet({ event_id: receipt.eventId, ts: receipt.ts, stream_ordering: position }),
        )
        .execute();
    },

    async selectReceiptEvent(roomId, receiptType, userId, threadId) {
      const row = await db
        .selectFrom('receipts')
        .select('event_id')
        .where('room_id', '=', roomId)
        .where('receipt_type', '=', receiptType)
        .where('user_id', '=', userId)
        .where('thread_id', '=', threadId)
        .executeTakeFirst();
      return row?.event_id;
    },

    async selectReceiptsChanged(roomIds, after, upTo) {
      if (upTo <= after || roomIds.length === 0) return [];
      // The span's receipts first (by position; usually a few), kept to the rooms listed,
      // rather than an IN list of every room of the user's; a busy span reads by room.
      const recent = await db
        .selectFrom('receipts')
        .select(columns)
        .where('stream_ordering', '>', after)
        .where('stream_ordering', '<=', upTo)
        .orderBy('stream_ordering')
        .limit(SPAN_ROWS + 1)
        .execute();
      if (recent.length <= SPAN_ROWS) {
        const listed = new Set(roomIds);
        return recent.filter((row) => listed.has(row.room_id)).map(toReceiptRow);
      }
      const out: ReceiptRow[] = [];
      for (let i = 0; i < roomIds.length; i += IN_LIST_CHUNK) {
        const rows = await db
          .selectFrom('receipts')
          .select(columns)
          .where('room_id', 'in', roomIds.slice(i, i + IN_LIST_CHUNK))
          .where('stream_ordering', '>', after)
          .where('stream_ordering', '<=', upTo)
          .orderBy('stream_ordering')
          .execute();
        for (const row of rows) out.push(toReceiptRow(row));
      }
      return out;
    },

    async selectReceiptsOfRooms(roomIds, upTo) {
      const out: ReceiptRow[] = [];
      for (let i = 0; i < roomIds.length; i += IN_LIST_CHUNK) {
        const rows = await db
          .selectFrom('receipts')
          .select(columns)
          .where('room_id', 'in', roomIds.slice(i, i + IN_LIST_CHUNK))
          .where('stream_ordering', '<=', upTo)
          .orderBy('stream_ordering')
          .execute();
        for (const row of rows) out.push(toReceiptRow(row));
      }
      return out;
    },
  };
}
