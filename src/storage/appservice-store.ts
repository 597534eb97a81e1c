/**
 * Application services (migrations 0030, 0032): the namespaced users in each room, the
 * durable per-service queue of events, each service's sender state, and what was known of
 * each registration at the last start.
 */
import { sql, type Kysely } from 'kysely';
import type { Database } from './schema.js';

export interface QueuedEvent {
  position: number;
  /**
   * A room event; an ephemeral event (typing, a receipt, presence: MSC2409); a JSON array of
   * to-device events (MSC2409); `{"changed": [...]}` or `{"left": [...]}` of device lists, or
   * `{"counts": {...}, "fallback": {...}}` of one-time key counts and unused fallback key
   * types per user and device (MSC3202).
   */
  kind: 'event' | 'ephemeral' | 'to_device' | 'device_list' | 'key_counts';
  eventJson: string;
}

/** What was recorded of a registration at the last start. */
export interface RecordedRegistration {
  /** The namespaces the room-user record was built for. */
  usersKey: string;
  deviceLists: boolean;
}

/** Rows per statement when writing many rows at once. */
const CHUNK = 500;

export interface InFlightTxn {
  txnId: number;
  upTo: number;
}

export interface AppServiceStore {
  /** Records that a namespaced user is joined or invited in the room (kept if recorded). */
  insertRoomUser(serviceId: string, roomId: string, userId: string): Promise<void>;
  /** Forgets that the user is joined or invited in the room; false if it was not recorded. */
  deleteRoomUser(serviceId: string, roomId: string, userId: string): Promise<boolean>;
  /** Whether any of the service's users is joined or invited in the room. */
  selectHasRoomUser(serviceId: string, roomId: string): Promise<boolean>;
  /** Whether any of the service's users is joined or invited in any of the rooms. */
  selectHasRoomUserIn(serviceId: string, roomIds: readonly string[]): Promise<boolean>;
  /**
   * The users joined to the room who are joined to no other room where one of the service's
   * users is joined or invited (MSC3202: whom the service's first user in the room starts
   * sharing a room with, or its last one stops).
   */
  selectMembersSharingNoRoom(serviceId: string, roomId: string): Promise<string[]>;
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
  /** Registrations recorded at earlier starts, by service ID. */
  selectRegistrations(): Promise<Map<string, RecordedRegistration>>;
  upsertRegistration(serviceId: string, recorded: RecordedRegistration): Promise<void>;
  /** Forgets services no longer registered (their records and room users). */
  deleteRegistrationsExcept(serviceIds: readonly string[]): Promise<void>;
  /** Every joined or invited membership of a local user (for rebuilding the room users). */
  selectLocalMemberships(serverName: string): Promise<{ roomId: string; userId: string }[]>;
  /** Replaces the service's record of room users. */
  replaceRoomUsers(
    serviceId: string,
    rows: readonly { roomId: string; userId: string }[],
  ): Promise<void>;
  /**
   * Queues, at `position`, a device-list change of the user for every service recorded as
   * wanting device lists that has one of its users joined or invited in a room the user is
   * joined to (MSC3202).
   */
  queueDeviceListChange(userId: string, position: number, json: string): Promise<void>;
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
      const result = await db
        .deleteFrom('appservice_room_users')
        .where('service_id', '=', serviceId)
        .where('room_id', '=', roomId)
        .where('user_id', '=', userId)
        .executeTakeFirst();
      return Number(result.numDeletedRows) > 0;
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

    async selectHasRoomUserIn(serviceId, roomIds) {
      for (let i = 0; i < roomIds.length; i += CHUNK) {
        const row = await db
          .selectFrom('appservice_room_users')
          .select('user_id')
          .where('service_id', '=', serviceId)
          .where('room_id', 'in', roomIds.slice(i, i + CHUNK))
          .limit(1)
          .executeTakeFirst();
        if (row !== undefined) return true;
      }
      return false;
    },

    async selectMembersSharingNoRoom(serviceId, roomId) {
      const rows = await db
        .selectFrom('room_memberships as m')
        .select('m.user_id')
        .where('m.room_id', '=', roomId)
        .where('m.membership', '=', 'join')
        .where(({ not, exists, selectFrom }) =>
          not(
            exists(
              selectFrom('room_memberships as o')
                .innerJoin('appservice_room_users as ru', (join) =>
                  join.onRef('ru.room_id', '=', 'o.room_id').on('ru.service_id', '=', serviceId),
                )
                .select('o.room_id')
                .whereRef('o.user_id', '=', 'm.user_id')
                .where('o.membership', '=', 'join')
                .where('o.room_id', '<>', roomId),
            ),
          ),
        )
        .orderBy('m.user_id')
        .execute();
      return rows.map((r) => r.user_id);
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

    async selectRegistrations() {
      const rows = await db.selectFrom('appservice_registrations').selectAll().execute();
      return new Map(
        rows.map((r) => [
          r.service_id,
          { usersKey: r.users_key, deviceLists: Number(r.device_lists) === 1 },
        ]),
      );
    },

    async upsertRegistration(serviceId, recorded) {
      const values = {
        users_key: recorded.usersKey,
        device_lists: recorded.deviceLists ? 1 : 0,
      };
      await db
        .insertInto('appservice_registrations')
        .values({ service_id: serviceId, ...values })
        .onConflict((oc) => oc.column('service_id').doUpdateSet(values))
        .execute();
    },

    async deleteRegistrationsExcept(serviceIds) {
      let users = db.deleteFrom('appservice_room_users');
      let recorded = db.deleteFrom('appservice_registrations');
      if (serviceIds.length > 0) {
        users = users.where('service_id', 'not in', serviceIds);
        recorded = recorded.where('service_id', 'not in', serviceIds);
      }
      await users.execute();
      await recorded.execute();
    },

    async selectLocalMemberships(serverName) {
      const rows = await db
        .selectFrom('room_memberships')
        .select(['room_id', 'user_id'])
        .where('membership', 'in', ['join', 'invite'])
        .execute();
      const suffix = `:${serverName}`;
      return rows
        .filter((r) => r.user_id.endsWith(suffix))
        .map((r) => ({ roomId: r.room_id, userId: r.user_id }));
    },

    async replaceRoomUsers(serviceId, rows) {
      await db.deleteFrom('appservice_room_users').where('service_id', '=', serviceId).execute();
      for (let i = 0; i < rows.length; i += CHUNK) {
        await db
          .insertInto('appservice_room_users')
          .values(
            rows
              .slice(i, i + CHUNK)
              .map((r) => ({ service_id: serviceId, room_id: r.roomId, user_id: r.userId })),
          )
          .onConflict((oc) => oc.columns(['service_id', 'room_id', 'user_id']).doNothing())
          .execute();
      }
    },

    async queueDeviceListChange(userId, position, json) {
      await db
        .insertInto('appservice_queue')
        .columns(['service_id', 'position', 'kind', 'event_json'])
        .expression(
          db
            .selectFrom('appservice_room_users as ru')
            .innerJoin('appservice_registrations as a', 'a.service_id', 'ru.service_id')
            .where('a.device_lists', '=', 1)
            .where('ru.room_id', 'in', (eb) =>
              eb
                .selectFrom('room_memberships')
                .select('room_id')
                .where('user_id', '=', userId)
                .where('membership', '=', 'join'),
            )
            // Typed parameters: PostgreSQL cannot guess the type of a bare one in a select list.
            .select([
              'ru.service_id',
              sql<number>`cast(${position} as bigint)`.as('position'),
              sql<string>`cast(${'device_list'} as text)`.as('kind'),
              sql<string>`cast(${json} as text)`.as('event_json'),
            ])
            .distinct(),
        )
        .onConflict((oc) => oc.columns(['service_id', 'position']).doNothing())
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
