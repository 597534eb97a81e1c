/**
 * Application services (migration 0030): the namespaced users in each room, the durable
 * per-service queue of events, and each service's sender state.
 */
import { sql, type Kysely } from 'kysely';
import type { Database } from './schema.js';

export interface QueuedEvent {
  position: number;
  /** A room event, or an ephemeral event (typing, a receipt) for MSC2409. */
  kind: 'event' | 'ephemeral';
  eventJson: string;
}

export interface InFlightTxn {
  txnId: number;
  upTo: number;
}

export interface AppServiceStore {
  /** Records that a namespaced user is joined or invited in the room (kept if recorded). */
  insertRoomUser(serviceId: string, roomId: string, userId: string): Promise<void>;
  deleteRoomUser(serviceId: string, roomId: string, userId: string): Promise<void>;
  /** Whether any of the service's users is joined or invited in the room. */
  selectHasRoomUser(serviceId: string, roomId: string): Promise<boolean>;
  /** The room's aliases (for alias namespaces). */
  selectRoomAliases(roomId: string): Promise<string[]>;
  insertQueued(
    serviceId: string,
    position: number,
    eventJson: string,
    kind?: QueuedEvent['kind'],
  ): Promise<void>;
  /** Queued events after `afterPosition`, in order, at most `limit`. */
  selectQueued(serviceId: string, upTo: number | null, limit: number): Promise<QueuedEvent[]>;
  deleteQueuedUpTo(serviceId: string, upTo: number): Promise<void>;
  /**
   * Takes (or renews) the right to send for the service until `until`, if nobody else holds
   * it beyond `now`. True when this owner holds it.
   */
  claimSender(serviceId: string, owner: string, now: number, until: number): Promise<boolean>;
  /** Gives the right up (at shutdown), if this owner holds it. */
  releaseSender(serviceId: string, owner: string): Promise<void>;
  selectInFlight(serviceId: string): Promise<InFlightTxn | null>;
  /** Starts a transaction of the events up to `upTo`: a new ID, recorded as in flight. */
  startTxn(serviceId: string, upTo: number): Promise<InFlightTxn>;
  /** The transaction was delivered: its events leave the queue. */
  finishTxn(serviceId: string, txn: InFlightTxn): Promise<void>;
  /** Publishes the room in the service's network directory (kept if published). */
  insertDirectoryRoom(serviceId: string, networkId: string, roomId: string): Promise<void>;
  deleteDirectoryRoom(serviceId: string, networkId: string, roomId: string): Promise<void>;
}

export function appServiceStore(db: Kysely<Database>): AppServiceStore {
  async function ensureSenderRow(serviceId: string): Promise<void> {
    await db
      .insertInto('appservice_senders')
      .values({
        service_id: serviceId,
        last_txn_id: 0,
        in_flight_txn_id: null,
        in_flight_up_to: null,
        lease_owner: null,
        lease_until: 0,
      })
      .onConflict((oc) => oc.column('service_id').doNothing())
      .execute();
  }

  return {
    async insertRoomUser(serviceId, roomId, userId) {
      await db
        .insertInto('appservice_room_users')
        .values({ service_id: serviceId, room_id: roomId, user_id: userId })
        .onConflict((oc) => oc.columns(['service_id', 'room_id', 'user_id']).doNothing())
        .execute();
    },

    async deleteRoomUser(serviceId, roomId, userId) {
      await db
        .deleteFrom('appservice_room_users')
        .where('service_id', '=', serviceId)
        .where('room_id', '=', roomId)
        .where('user_id', '=', userId)
        .execute();
    },

    async selectHasRoomUser(serviceId, roomId) {
      const row = await db
        .selectFrom('appservice_room_users')
        .select('user_id')
        .where('service_id', '=', serviceId)
        .where('room_id', '=', roomId)
        .limit(1)
        .executeTakeFirst();
      return row !== undefined;
    },

    async selectRoomAliases(roomId) {
      const rows = await db
        .selectFrom('room_aliases')
        .select('alias')
        .where('room_id', '=', roomId)
        .execute();
      return rows.map((r) => r.alias);
    },

    async insertQueued(serviceId, position, eventJson, kind = 'event') {
      await db
        .insertInto('appservice_queue')
        .values({ service_id: serviceId, position, kind, event_json: eventJson })
        .onConflict((oc) => oc.columns(['service_id', 'position']).doNothing())
        .execute();
    },

    async selectQueued(serviceId, upTo, limit) {
      let query = db
        .selectFrom('appservice_queue')
        .select(['position', 'kind', 'event_json'])
        .where('service_id', '=', serviceId);
      if (upTo !== null) query = query.where('position', '<=', upTo);
      const rows = await query.orderBy('position').limit(limit).execute();
      return rows.map((r) => ({
        position: Number(r.position),
        kind: r.kind,
        eventJson: r.event_json,
      }));
    },

    async deleteQueuedUpTo(serviceId, upTo) {
      await db
        .deleteFrom('appservice_queue')
        .where('service_id', '=', serviceId)
        .where('position', '<=', upTo)
        .execute();
    },

    async claimSender(serviceId, owner, now, until) {
      await ensureSenderRow(serviceId);
      const result = await db
        .updateTable('appservice_senders')
        .set({ lease_owner: owner, lease_until: until })
        .where('service_id', '=', serviceId)
        .where((eb) => eb.or([eb('lease_owner', '=', owner), eb('lease_until', '<', now)]))
        .executeTakeFirst();
      return Number(result.numUpdatedRows) > 0;
    },

    async releaseSender(serviceId, owner) {
      await db
        .updateTable('appservice_senders')
        .set({ lease_owner: null, lease_until: 0 })
        .where('service_id', '=', serviceId)
        .where('lease_owner', '=', owner)
        .execute();
    },

    async selectInFlight(serviceId) {
      const row = await db
        .selectFrom('appservice_senders')
        .select(['in_flight_txn_id', 'in_flight_up_to'])
        .where('service_id', '=', serviceId)
        .executeTakeFirst();
      if (!row || row.in_flight_txn_id === null || row.in_flight_up_to === null) return null;
      return { txnId: Number(row.in_flight_txn_id), upTo: Number(row.in_flight_up_to) };
    },

    async startTxn(serviceId, upTo) {
      await ensureSenderRow(serviceId);
      const row = await db
        .updateTable('appservice_senders')
        .set({
          last_txn_id: sql<number>`last_txn_id + 1`,
          in_flight_txn_id: sql<number>`last_txn_id + 1`,
          in_flight_up_to: upTo,
        })
        .where('service_id', '=', serviceId)
        .returning('last_txn_id')
        .executeTakeFirstOrThrow();
      return { txnId: Number(row.last_txn_id), upTo };
    },

    async finishTxn(serviceId, txn) {
      await db
        .deleteFrom('appservice_queue')
        .where('service_id', '=', serviceId)
        .where('position', '<=', txn.upTo)
        .execute();
      await db
        .updateTable('appservice_senders')
        .set({ in_flight_txn_id: null, in_flight_up_to: null })
        .where('service_id', '=', serviceId)
        .where('in_flight_txn_id', '=', txn.txnId)
        .execute();
    },

    async insertDirectoryRoom(serviceId, networkId, roomId) {
      await db
        .insertInto('appservice_room_directory')
        .values({ service_id: serviceId, network_id: networkId, room_id: roomId })
        .onConflict((oc) => oc.columns(['service_id', 'network_id', 'room_id']).doNothing())
        .execute();
    },

    async deleteDirectoryRoom(serviceId, networkId, roomId) {
      await db
        .deleteFrom('appservice_room_directory')
        .where('service_id', '=', serviceId)
        .where('network_id', '=', networkId)
        .where('room_id', '=', roomId)
        .execute();
    },
  };
}
