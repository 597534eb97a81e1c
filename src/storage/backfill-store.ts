/**
 * The holes in rooms' histories (migration 0023): prev events we do not hold, to backfill
 * from when a client pages back that far.
 */
import type { Kysely } from 'kysely';
import type { Database } from './schema.js';

/** How many of a room's points one backfill asks from. */
const MAX_POINTS_READ = 50;

export interface BackfillStore {
  insertBackfillPoints(roomId: string, eventIds: readonly string[]): Promise<void>;
  /** A room's points, at most 50. */
  selectBackfillPoints(roomId: string): Promise<string[]>;
  deleteBackfillPoints(roomId: string, eventIds: readonly string[]): Promise<void>;
  /** Below this position the room's events were backfilled; undefined before any backfill. */
  selectHistoryFloor(roomId: string): Promise<number | undefined>;
  /** Sets the floor (once) at the lowest position of the room's events, or 0. */
  insertHistoryFloor(roomId: string): Promise<void>;
}

export function backfillStore(db: Kysely<Database>): BackfillStore {
  return {
    async insertBackfillPoints(roomId, eventIds) {
      if (eventIds.length === 0) return;
      await db
        .insertInto('room_backfill_points')
        .values([...new Set(eventIds)].map((id) => ({ room_id: roomId, event_id: id })))
        .onConflict((oc) => oc.columns(['room_id', 'event_id']).doNothing())
        .execute();
    },

    async selectBackfillPoints(roomId) {
      const rows = await db
        .selectFrom('room_backfill_points')
        .select('event_id')
        .where('room_id', '=', roomId)
        .orderBy('event_id')
        .limit(MAX_POINTS_READ)
        .execute();
      return rows.map((r) => r.event_id);
    },

    async deleteBackfillPoints(roomId, eventIds) {
      if (eventIds.length === 0) return;
      await db
        .deleteFrom('room_backfill_points')
        .where('room_id', '=', roomId)
        .where('event_id', 'in', [...eventIds])
        .execute();
    },

    async selectHistoryFloor(roomId) {
      const row = await db
        .selectFrom('room_history_floors')
        .select('position')
        .where('room_id', '=', roomId)
        .executeTakeFirst();
      return row ? Number(row.position) : undefined;
    },

    async insertHistoryFloor(roomId) {
      const lowest = await db
        .selectFrom('events')
        .select((eb) => eb.fn.min('stream_ordering').as('lowest'))
        .where('room_id', '=', roomId)
        .executeTakeFirst();
      const position = Math.min(Number(lowest?.lowest ?? 0), 0);
      await db
        .insertInto('room_history_floors')
        .values({ room_id: roomId, position })
        .onConflict((oc) => oc.column('room_id').doNothing())
        .execute();
    },
  };
}
