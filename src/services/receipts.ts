/**
 * Read receipts (m.read, m.read.private) and the fully-read marker (m.fully_read, kept as
 * room account data), set by joined members on events of their room.
 */
import { forbidden, invalidParam, notFound } from '../core/errors.js';
import { parseEventId } from '../core/identifiers.js';
import type { JsonObject } from '../core/pdu.js';
import type { ReceiptRow, Stores } from '../storage/index.js';
import type { Requester, ServiceContext } from './context.js';
import { appServiceEphemeralQueue } from './appservice/interest.js';
import { queueRoomEdu } from './federation/edu-queue.js';

export const RECEIPT_TYPES = ['m.read', 'm.read.private', 'm.fully_read'] as const;
export type ReceiptType = (typeof RECEIPT_TYPES)[number];

/** What receipts need of the account-data service: setting room account data. */
export interface RoomAccountDataWriter {
  setRoom(userId: string, roomId: string, type: string, content: JsonObject): Promise<void>;
}

export interface ReceiptEvent {
  type: 'm.receipt';
  content: JsonObject;
}

/** The markers of POST /read_markers; each one optional. */
export interface ReadMarkers {
  fullyRead?: string | undefined;
  read?: string | undefined;
  readPrivate?: string | undefined;
}

async function assertJoined(stores: Stores, roomId: string, userId: string): Promise<void> {
  const membership = await stores.rooms.selectMembership(roomId, userId);
  if (membership?.membership !== 'join') throw forbidden('You are not in this room');
}

/** The stream position of an event of the room, or 404 (400 for a malformed ID). */
async function eventPosition(stores: Stores, roomId: string, eventId: string): Promise<number> {
  if (!parseEventId(eventId)) throw invalidParam('Invalid event ID');
  const event = await stores.rooms.selectEvent(eventId);
  if (!event || event.roomId !== roomId) throw notFound('Event not found in this room');
  return event.streamOrdering;
}

/** A thread ID as the spec allows it: absent (unthreaded), `main`, or a thread root's event ID. */
function threadIdOf(receiptType: ReceiptType, threadId: unknown): string {
  if (threadId === undefined) return '';
  if (typeof threadId !== 'string' || threadId === '') {
    throw invalidParam('thread_id field must be a non-empty string');
  }
  if (receiptType === 'm.fully_read') {
    throw invalidParam('thread_id is not allowed for m.fully_read');
  }
  if (threadId !== 'main' && !parseEventId(threadId)) {
    throw invalidParam('thread_id must be "main" or an event ID');
  }
  return threadId;
}

export function createReceiptService(ctx: ServiceContext, accountData: RoomAccountDataWriter) {
  const bridges = appServiceEphemeralQueue(ctx.settings.appServices ?? []);
  /**
   * Moves the user's receipt to the event, in the caller's transaction; a receipt never moves
   * back to an earlier event (as Synapse does). The event must have been checked to be in the
   * room, at stream position `position`.
   */
  async function writeReceipt(
    stores: Stores,
    receipt: Omit<ReceiptRow, 'ts'>,
    position: number,
  ): Promise<void> {
    const current = await stores.receipts.selectReceiptEvent(
      receipt.roomId,
      receipt.receiptType,
      receipt.userId,
      receipt.threadId,
    );
    if (current === receipt.eventId) return;
    if (current !== undefined) {
      const previous = await stores.rooms.selectEvent(current);
      if (previous && previous.streamOrdering > position) return;
    }
    const ts = ctx.now();
    const streamPosition = await stores.stream.nextPosition();
    await stores.receipts.upsertReceipt({ ...receipt, ts }, streamPosition);
    await stores.stream.notify({ rooms: [receipt.roomId] });
    // Other servers in the room get a local user's public receipts (m.receipt EDU).
    if (receipt.receiptType === 'm.read' && receipt.userId.endsWith(`:${ctx.settings.serverName}`))
      await queueRoomEdu(ctx, stores, receipt.roomId, 'm.receipt', {
        [receipt.roomId]: {
          'm.read': {
            [receipt.userId]: {
              event_ids: [receipt.eventId],
              data: { ts, ...(receipt.threadId !== '' ? { thread_id: receipt.threadId } : {}) },
            },
          },
        },
      });
    // Bridges that receive ephemeral events get public receipts (MSC2409).
    if (bridges.active && receipt.receiptType === 'm.read') {
      const entry = { ts, ...(receipt.threadId !== '' ? { thread_id: receipt.threadId } : {}) };
      await bridges.queue(stores, receipt.roomId, streamPosition, {
        type: 'm.receipt',
        room_id: receipt.roomId,
        content: { [receipt.eventId]: { 'm.read': { [receipt.userId]: entry } } },
      });
    }
  }

  async function setFullyRead(userId: string, roomId: string, eventId: string): Promise<void> {
    await accountData.setRoom(userId, roomId, 'm.fully_read', { event_id: eventId });
  }

  return {
    /**
     * A public read receipt of another server's user (an m.receipt EDU): kept like a local one
     * when the user is joined to the room and the event is known in it; ignored otherwise.
     */
    async setRemote(
      roomId: string,
      userId: string,
      eventId: string,
      threadId: string,
    ): Promise<boolean> {
      return ctx.storage.tx('setRemoteReceipt', async (stores) => {
        const membership = await stores.rooms.selectMembership(roomId, userId);
        if (membership?.membership !== 'join') return false;
        const event = await stores.rooms.selectEvent(eventId);
        if (!event || event.roomId !== roomId) return false;
        await writeReceipt(
          stores,
          { roomId, receiptType: 'm.read', userId, threadId, eventId },
          event.streamOrdering,
        );
        return true;
      });
    },

    /** POST /receipt: an m.read or m.read.private receipt, or the m.fully_read marker. */
    async send(
      requester: Requester,
      roomId: string,
      receiptType: ReceiptType,
      eventId: string,
      threadIdParam: unknown,
    ): Promise<void> {
      const threadId = threadIdOf(receiptType, threadIdParam);
      const { userId } = requester;
      if (receiptType === 'm.fully_read') {
        await assertJoined(ctx.storage.stores, roomId, userId);
        await eventPosition(ctx.storage.stores, roomId, eventId);
        await setFullyRead(userId, roomId, eventId);
        return;
      }
      await ctx.storage.tx('sendReceipt', async (stores) => {
        await assertJoined(stores, roomId, userId);
        const position = await eventPosition(stores, roomId, eventId);
        await writeReceipt(stores, { roomId, receiptType, userId, threadId, eventId }, position);
      });
    },

    /** POST /read_markers: the fully-read marker and the (private) read receipt at once. */
    async setReadMarkers(
      requester: Requester,
      roomId: string,
      markers: ReadMarkers,
    ): Promise<void> {
      const { userId } = requester;
      await ctx.storage.tx('setReadMarkers', async (stores) => {
        await assertJoined(stores, roomId, userId);
        const receipts: [ReceiptType, string | undefined][] = [
          ['m.read', markers.read],
          ['m.read.private', markers.readPrivate],
        ];
        if (markers.fullyRead !== undefined) await eventPosition(stores, roomId, markers.fullyRead);
        for (const [receiptType, eventId] of receipts) {
          if (eventId === undefined) continue;
          const position = await eventPosition(stores, roomId, eventId);
          await writeReceipt(
            stores,
            { roomId, receiptType, userId, threadId: '', eventId },
            position,
          );
        }
      });
      if (markers.fullyRead !== undefined) await setFullyRead(userId, roomId, markers.fullyRead);
    },

    /**
     * One m.receipt event per room whose receipts changed in (after, upTo] (after = 0: all
     * receipts of those rooms); content shaped as in the spec:
     * {eventId: {receiptType: {userId: {ts, thread_id?}}}}. m.read.private receipts only go to
     * their own user.
     */
    async ephemeralSince(
      userId: string,
      roomIds: readonly string[],
      after: number,
      upTo: number,
    ): Promise<Map<string, ReceiptEvent>> {
      const store = ctx.storage.stores.receipts;
      const rows =
        after === 0
          ? await store.selectReceiptsOfRooms(roomIds, upTo)
          : await store.selectReceiptsChanged(roomIds, after, upTo);
      const out = new Map<string, ReceiptEvent>();
      for (const row of rows) {
        if (row.receiptType === 'm.read.private' && row.userId !== userId) continue;
        let event = out.get(row.roomId);
        if (!event) {
          event = { type: 'm.receipt', content: {} };
          out.set(row.roomId, event);
        }
        const byType = (event.content[row.eventId] ??= {}) as JsonObject;
        const byUser = (byType[row.receiptType] ??= {}) as JsonObject;
        byUser[row.userId] =
          row.threadId === '' ? { ts: row.ts } : { ts: row.ts, thread_id: row.threadId };
      }
      return out;
    },
  };
}

export type ReceiptService = ReturnType<typeof createReceiptService>;
