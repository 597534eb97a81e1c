/**
 * The durable outbox of federation (migration 0020): PDUs and EDUs per destination, written
 * in the transaction of what they come from, deleted once the destination has taken them; and
 * each destination's sending state (backoff, and the lease that lets one process send to it).
 */
import type { Kysely } from 'kysely';
import { releaseRowLease, updateRowLease } from './row-lease.js';
import type { Database } from './schema.js';
import { takeNextPosition } from './stream-store.js';
import { userNotOfServer } from './user-server.js';

export type OutboxKind = 'pdu' | 'edu';

export interface OutboxEntry {
  position: number;
  destination: string;
  kind: OutboxKind;
  /** The PDU or EDU as JSON. */
  payload: string;
}

export interface DestinationState {
  destination: string;
  failures: number;
  retryAtTs: number;
}

/** A leave kept here alone, waiting to be sent through the room's servers. */
export interface PendingLeave {
  roomId: string;
  userId: string;
  eventId: string;
  servers: string[];
  content: Record<string, unknown>;
  failures: number;
  retryAtTs: number;
  createdTs: number;
}

export interface FederationOutboxStore {
  /** Appends one entry for each destination, in order. */
  insertOutbox(
    destinations: readonly string[],
    kind: OutboxKind,
    payload: string,
    ts: number,
  ): Promise<void>;
  /** The oldest entries of a destination: at most `pdus` PDUs and `edus` EDUs, by position. */
  selectOutbox(destination: string, pdus: number, edus: number): Promise<OutboxEntry[]>;
  deleteOutbox(destination: string, positions: readonly number[]): Promise<void>;
  /** A destination's sending state (no row: never failed). */
  selectDestination(destination: string): Promise<DestinationState | undefined>;
  /** Destinations with entries waiting, and their sending state. */
  selectPendingDestinations(): Promise<DestinationState[]>;
  /** Records a failed attempt: `failures` in a row, next try at `retryAtTs`. */
  updateDestinationFailure(destination: string, failures: number, retryAtTs: number): Promise<void>;
  /** Records a success (or that the destination reached us): no backoff. */
  updateDestinationSuccess(destination: string, ts: number): Promise<void>;
  /**
   * Takes (or renews) the right to send to `destination` until `untilTs`; false when another
   * owner holds it and it has not lapsed.
   */
  updateLease(destination: string, owner: string, now: number, untilTs: number): Promise<boolean>;
  releaseLease(destination: string, owner: string): Promise<void>;
  /** Keeps (or replaces) the user's pending leave of the room. */
  upsertPendingLeave(leave: Omit<PendingLeave, 'failures'>): Promise<void>;
  /** Pending leaves due at `now`, oldest due first. */
  selectDuePendingLeaves(now: number, limit: number): Promise<PendingLeave[]>;
  /** When the next pending leave is due; undefined when there is none. */
  selectNextPendingLeaveTs(): Promise<number | undefined>;
  /**
   * Takes a due leave for one attempt: moves its `retry_at_ts` from `dueTs` to `untilTs`;
   * false when another process took it first.
   */
  updatePendingLeaveClaim(
    roomId: string,
    userId: string,
    dueTs: number,
    untilTs: number,
  ): Promise<boolean>;
  updatePendingLeaveFailure(
    roomId: string,
    userId: string,
    failures: number,
    retryAtTs: number,
  ): Promise<void>;
  deletePendingLeave(roomId: string, userId: string, eventId: string): Promise<void>;
  /** The servers (other than `ownServer`) of users joined to the room. */
  selectRemoteJoinedServers(roomId: string, ownServer: string): Promise<string[]>;
  /** The servers (other than `ownServer`) of users joined to any room `userId` is joined to. */
  selectRemoteServersSharingRoom(userId: string, ownServer: string): Promise<string[]>;
}

const serverOf = (userId: string): string => userId.slice(userId.indexOf(':') + 1);

export function federationOutboxStore(db: Kysely<Database>): FederationOutboxStore {
  const ensureDestination = async (destination: string) => {
    await db
      .insertInto('federation_destinations')
      .values({ destination, lease_owner: null, last_success_ts: null })
      .onConflict((oc) => oc.column('destination').doNothing())
      .execute();
  };
  return {
    async insertOutbox(destinations, kind, payload, ts) {
      for (const destination of destinations) {
        const position = await takeNextPosition(db, 'federation_outbox');
        await db
          .insertInto('federation_outbox')
          .values({ position, destination, kind, payload, created_ts: ts })
          .execute();
      }
    },

    async selectOutbox(destination, pdus, edus) {
      const select = (kind: OutboxKind, limit: number) =>
        db
          .selectFrom('federation_outbox')
          .select(['position', 'destination', 'kind', 'payload'])
          .where('destination', '=', destination)
          .where('kind', '=', kind)
          .orderBy('position')
          .limit(limit)
          .execute();
      const rows = [...(await select('pdu', pdus)), ...(await select('edu', edus))];
      return rows
        .map((r) => ({
          position: Number(r.position),
          destination: r.destination,
          kind: r.kind as OutboxKind,
          payload: r.payload,
        }))
        .sort((a, b) => a.position - b.position);
    },

    async deleteOutbox(destination, positions) {
      for (let i = 0; i < positions.length; i += 500) {
        await db
          .deleteFrom('federation_outbox')
          .where('destination', '=', destination)
          .where('position', 'in', positions.slice(i, i + 500))
          .execute();
      }
    },

    async selectDestination(destination) {
      const row = await db
        .selectFrom('federation_destinations')
        .select(['destination', 'failures', 'retry_at_ts'])
        .where('destination', '=', destination)
        .executeTakeFirst();
      return row
        ? {
            destination: row.destination,
            failures: Number(row.failures),
            retryAtTs: Number(row.retry_at_ts),
          }
        : undefined;
    },

    async selectPendingDestinations() {
      const rows = await db
        .selectFrom(
          db.selectFrom('federation_outbox').select('destination').distinct().as('pending'),
        )
        .leftJoin('federation_destinations as d', 'd.destination', 'pending.destination')
        .select(['pending.destination', 'd.failures', 'd.retry_at_ts'])
        .execute();
      return rows.map((r) => ({
        destination: r.destination,
        failures: Number(r.failures ?? 0),
        retryAtTs: Number(r.retry_at_ts ?? 0),
      }));
    },

    async updateDestinationFailure(destination, failures, retryAtTs) {
      await ensureDestination(destination);
      await db
        .updateTable('federation_destinations')
        .set({ failures, retry_at_ts: retryAtTs })
        .where('destination', '=', destination)
        .execute();
    },

    async updateDestinationSuccess(destination, ts) {
      await ensureDestination(destination);
      await db
        .updateTable('federation_destinations')
        .set({ failures: 0, retry_at_ts: 0, last_success_ts: ts })
        .where('destination', '=', destination)
        .execute();
    },

    async updateLease(destination, owner, now, untilTs) {
      await ensureDestination(destination);
      return updateRowLease(db, 'federation_destinations', destination, owner, now, untilTs);
    },

    async releaseLease(destination, owner) {
      await releaseRowLease(db, 'federation_destinations', destination, owner);
    },

    async upsertPendingLeave(leave) {
      const values = {
        event_id: leave.eventId,
        servers: JSON.stringify(leave.servers),
        content: JSON.stringify(leave.content),
        failures: 0,
        retry_at_ts: leave.retryAtTs,
        created_ts: leave.createdTs,
      };
      await db
        .insertInto('federation_pending_leaves')
        .values({ room_id: leave.roomId, user_id: leave.userId, ...values })
        .onConflict((oc) => oc.columns(['room_id', 'user_id']).doUpdateSet(values))
        .execute();
    },

    async selectDuePendingLeaves(now, limit) {
      const rows = await db
        .selectFrom('federation_pending_leaves')
        .selectAll()
        .where('retry_at_ts', '<=', now)
        .orderBy('retry_at_ts')
        .limit(limit)
        .execute();
      return rows.map((row) => ({
        roomId: row.room_id,
        userId: row.user_id,
        eventId: row.event_id,
        servers: JSON.parse(row.servers) as string[],
        content: JSON.parse(row.content) as Record<string, unknown>,
        failures: Number(row.failures),
        retryAtTs: Number(row.retry_at_ts),
        createdTs: Number(row.created_ts),
      }));
    },

    async selectNextPendingLeaveTs() {
      const row = await db
        .selectFrom('federation_pending_leaves')
        .select((eb) => eb.fn.min('retry_at_ts').as('next'))
        .executeTakeFirst();
      return row?.next === null || row?.next === undefined ? undefined : Number(row.next);
    },

    async updatePendingLeaveClaim(roomId, userId, dueTs, untilTs) {
      const result = await db
        .updateTable('federation_pending_leaves')
        .set({ retry_at_ts: untilTs })
        .where('room_id', '=', roomId)
        .where('user_id', '=', userId)
        .where('retry_at_ts', '=', dueTs)
        .executeTakeFirst();
      return Number(result.numUpdatedRows) > 0;
    },

    async updatePendingLeaveFailure(roomId, userId, failures, retryAtTs) {
      await db
        .updateTable('federation_pending_leaves')
        .set({ failures, retry_at_ts: retryAtTs })
        .where('room_id', '=', roomId)
        .where('user_id', '=', userId)
        .execute();
    },

    async deletePendingLeave(roomId, userId, eventId) {
      await db
        .deleteFrom('federation_pending_leaves')
        .where('room_id', '=', roomId)
        .where('user_id', '=', userId)
        .where('event_id', '=', eventId)
        .execute();
    },

    async selectRemoteJoinedServers(roomId, ownServer) {
      const rows = await db
        .selectFrom('room_memberships')
        .select('user_id')
        .where('room_id', '=', roomId)
        .where('membership', '=', 'join')
        .where(userNotOfServer('user_id', ownServer))
        .execute();
      return [...new Set(rows.map((r) => serverOf(r.user_id)))].sort();
    },

    async selectRemoteServersSharingRoom(userId, ownServer) {
      const rows = await db
        .selectFrom('room_memberships as mine')
        .innerJoin('room_memberships as other', 'other.room_id', 'mine.room_id')
        .select('other.user_id')
        .distinct()
        .where('mine.user_id', '=', userId)
        .where('mine.membership', '=', 'join')
        .where('other.membership', '=', 'join')
        .where(userNotOfServer('other.user_id', ownServer))
        .execute();
      return [...new Set(rows.map((r) => serverOf(r.user_id)))].sort();
    },
  };
}
