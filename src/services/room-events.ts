/**
 * Sending events (idempotent per device and transaction ID) and reading room state and
 * single events, for members — and for former members, as of their leaving.
 */
import { forbidden, invalidParam, notFound } from '../core/errors.js';
import { toClientEvent, type ClientEvent } from '../core/client-event.js';
import type { JsonObject } from '../core/pdu.js';
import { fakeEventId } from '../core/secrets.js';
import type { EventRow, Stores } from '../storage/index.js';
import type { Requester, ServiceContext } from './context.js';
import type { EventWriter } from './event-writer.js';
import { matchesFilter, matchesMembership, type RoomEventFilter } from './timeline.js';

const asClient = (row: EventRow): ClientEvent =>
  toClientEvent({ eventId: row.eventId, roomId: row.roomId, pdu: row.pdu });

/**
 * An application service's `ts` (timestamp massaging) becomes the event's
 * `origin_server_ts`; from anyone else it is ignored.
 * https://spec.matrix.org/v1.19/application-service-api/#timestamp-massaging
 */
function massagedTs(requester: Requester, ts: number | undefined): { originServerTs?: number } {
  return ts !== undefined && requester.appservice ? { originServerTs: ts } : {};
}

export function createRoomEventService(
  ctx: ServiceContext,
  writer: EventWriter,
  /** Waits for rooms with partial state to be complete; true when any was partial. */
  awaitFullState?: (roomIds: readonly string[]) => Promise<boolean>,
) {
  const rooms = () => ctx.storage.stores.rooms;

  /** The state the requester may see: current when joined, as of leaving when they left. */
  async function visibleState(
    stores: Stores,
    requester: Requester,
    roomId: string,
  ): Promise<EventRow[]> {
    const membership = await stores.rooms.selectMembership(roomId, requester.userId);
    if (!membership || membership.membership === 'invite' || membership.membership === 'knock') {
      throw forbidden('You are not a member of this room');
    }
    if (membership.membership === 'join') return stores.rooms.selectAllStateEvents(roomId);
    return stores.rooms.selectStateEventsAt(roomId, membership.streamOrdering);
  }

  async function write(
    requester: Requester,
    roomId: string,
    name: string,
    txnId: string | null,
    event: { type: string; stateKey?: string; content: JsonObject; originServerTs?: number },
  ): Promise<string> {
    // Shadow-banned (admin API): answered as if sent, never stored or delivered.
    if (requester.shadowBanned) return fakeEventId();
    if (txnId !== null) {
      const existing = await rooms().selectTxnEvent(
        requester.userId,
        requester.deviceId,
        roomId,
        txnId,
      );
      if (existing) return existing;
    }
    return ctx.storage.tx(name, async (stores) => {
      await stores.rooms.lockRoom(roomId);
      if (txnId !== null) {
        const existing = await stores.rooms.selectTxnEvent(
          requester.userId,
          requester.deviceId,
          roomId,
          txnId,
        );
        if (existing) return existing;
      }
      if (!(await stores.rooms.selectRoom(roomId))) throw forbidden('You are not in this room');
      const appended = await writer.append(stores, roomId, { ...event, sender: requester.userId });
      if (txnId !== null)
        await stores.rooms.insertTxnEvent(
          requester.userId,
          requester.deviceId,
          roomId,
          txnId,
          appended.eventId,
          ctx.now(),
        );
      return appended.eventId;
    });
  }

  return {
    sendMessage: (
      requester: Requester,
      roomId: string,
      type: string,
      txnId: string,
      content: JsonObject,
      ts?: number,
    ) =>
      write(requester, roomId, 'sendEvent', txnId, { type, content, ...massagedTs(requester, ts) }),

    async setState(
      requester: Requester,
      roomId: string,
      type: string,
      stateKey: string,
      content: JsonObject,
      ts?: number,
    ): Promise<string> {
      // Member events with a user ID have their own route (membership.setMemberEvent).
      if (type === 'm.room.member')
        throw invalidParam('The state key of a member event is the user ID it is about');
      return write(requester, roomId, 'setState', null, {
        type,
        stateKey,
        content,
        ...massagedTs(requester, ts),
      });
    },

    /**
     * The visible state; with a filter (MSC2895 option 3), only the events it matches. A
     * room whose state is partial (joined with partial state, its members not all in yet)
     * is answered once complete: `awaitFullState` waits (or answers 429 with a retry hint).
     */
    async getState(
      requester: Requester,
      roomId: string,
      filter?: RoomEventFilter,
    ): Promise<ClientEvent[]> {
      let state = await visibleState(ctx.storage.stores, requester, roomId);
      if (await awaitFullState?.([roomId]))
        state = await visibleState(ctx.storage.stores, requester, roomId);
      if (!filter) return state.map(asClient);
      const matching = state.filter(
        (row) => matchesFilter(row, filter) && matchesMembership(row, filter.membership),
      );
      return matching.slice(0, filter.limit ?? matching.length).map(asClient);
    },

    async getStateContent(
      requester: Requester,
      roomId: string,
      type: string,
      stateKey: string,
      format: 'content' | 'event' = 'content',
    ): Promise<JsonObject | ClientEvent> {
      const find = async () =>
        (await visibleState(ctx.storage.stores, requester, roomId)).find(
          (row) => row.pdu.type === type && (row.pdu.state_key ?? '') === stateKey,
        );
      let found = await find();
      // In a room with partial state every entry but members' is in; a member entry held is
      // the one the full state has (completion only adds what is missing). A member entry
      // not held yet may exist: it is answered once the room is complete.
      if (!found && type === 'm.room.member' && (await awaitFullState?.([roomId])))
        found = await find();
      if (!found) throw notFound('Event not found');
      // `format=event` (v1.16): the whole event as clients see it.
      return format === 'event' ? asClient(found) : found.pdu.content;
    },
  };
}

export type RoomEventService = ReturnType<typeof createRoomEventService>;
