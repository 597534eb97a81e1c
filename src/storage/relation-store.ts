/**
 * Event relationships and threads (migration 0050): the rows the relations deriver writes
 * with each event, the pages `/relations` and `/threads` read, and the aggregates bundled
 * into `unsigned.m.relations` — counted for a whole page of events at once.
 */
import type { Kysely } from 'kysely';
import type { Database } from './schema.js';
import { eventColumns, toEventRow, type EventRow } from './room-store.js';
import { readInSlices } from './values-table.js';

export interface RelationToStore {
  eventId: string;
  roomId: string;
  parentId: string;
  relType: string;
  eventType: string;
  sender: string;
  streamOrdering: number;
}

/** A span of a parent's children in stream order: after `after`, at most `upTo`. */
export interface RelationRange {
  after: number;
  upTo: number;
  direction: 'forward' | 'backward';
  limit: number;
  relType?: string | undefined;
  eventType?: string | undefined;
}

/** How many children of one type a parent has, and the newest one's position. */
export interface RelationCount {
  parentId: string;
  relType: string;
  count: number;
  latestOrdering: number;
}

export interface ThreadRow {
  rootId: string;
  latestOrdering: number;
}

export interface RelationStore {
  insertRelation(relation: RelationToStore): Promise<void>;
  /** Deletes the event's relation (it was redacted); returns what it was, if any. */
  deleteRelation(roomId: string, eventId: string): Promise<RelationToStore | undefined>;
  /** Records `eventId` as the thread's latest child (creating the thread). */
  upsertThread(roomId: string, rootId: string, eventId: string, ordering: number): Promise<void>;
  /** Recomputes the thread's latest child from its relations; deletes a thread left empty. */
  updateThreadFromRelations(roomId: string, rootId: string): Promise<void>;
  /** Children of any of `parentIds` (in their room) within the range, joined to their events. */
  selectChildren(
    roomId: string,
    parentIds: readonly string[],
    range: RelationRange,
  ): Promise<EventRow[]>;
  /** Per parent and relation type (of those listed): the number of children and the newest. */
  selectRelationCounts(
    parentIds: readonly string[],
    relTypes: readonly string[],
  ): Promise<RelationCount[]>;
  /** Of `parentIds`, those with a child of `relType` sent by `sender`. */
  selectParentsWithChildFrom(
    parentIds: readonly string[],
    relType: string,
    sender: string,
  ): Promise<Set<string>>;
  /**
   * Per parent, the position of the newest child of `relType` sent by the parent's own sender
   * with the parent's event type (how edits are checked).
   */
  selectLatestOwnChildren(
    parentIds: readonly string[],
    relType: string,
  ): Promise<Map<string, number>>;
  /** Per parent, its children's event IDs of `relType` in stream order (at most `limit` in all). */
  selectChildIds(
    parentIds: readonly string[],
    relType: string,
    limit: number,
  ): Promise<Map<string, string[]>>;
  /** Events by their stream positions. */
  selectEventsAt(orderings: readonly number[]): Promise<EventRow[]>;
  /** Events by their IDs (missing ones left out). */
  selectEventsByIds(eventIds: readonly string[]): Promise<EventRow[]>;
  /**
   * Threads of the room whose latest child is before `before`, newest activity first; only
   * those `participant` took part in (sent the root or a child) when given.
   */
  selectThreads(
    roomId: string,
    before: number,
    limit: number,
    participant?: string,
  ): Promise<ThreadRow[]>;
  /**
   * Of `eventIds`, those with a child whose relation type is one of `relTypes` (any if
   * undefined) and whose sender is one of `senders` (any if undefined).
   */
  selectParentsRelatedBy(
    eventIds: readonly string[],
    relTypes: readonly string[] | undefined,
    senders: readonly string[] | undefined,
  ): Promise<Set<string>>;
}

/**
 * Points a thread's row at its newest reply left in `event_relations`, or deletes the row when
 * none is left (a redacted or purged reply).
 */
export async function refreshThread(
  db: Kysely<Database>,
  roomId: string,
  rootId: string,
): Promise<void> {
  const latest = await db
    .selectFrom('event_relations')
    .select(['event_id', 'stream_ordering'])
    .where('parent_id', '=', rootId)
    .where('rel_type', '=', 'm.thread')
    .where('room_id', '=', roomId)
    .orderBy('stream_ordering', 'desc')
    .limit(1)
    .executeTakeFirst();
  if (!latest) {
    await db
      .deleteFrom('event_threads')
      .where('room_id', '=', roomId)
      .where('root_id', '=', rootId)
      .execute();
    return;
  }
  await db
    .updateTable('event_threads')
    .set({ latest_event_id: latest.event_id, latest_ordering: Number(latest.stream_ordering) })
    .where('room_id', '=', roomId)
    .where('root_id', '=', rootId)
    .execute();
}

export function relationStore(db: Kysely<Database>): RelationStore {
  return {
    async insertRelation(r) {
      await db
        .insertInto('event_relations')
        .values({
          event_id: r.eventId,
          room_id: r.roomId,
          parent_id: r.parentId,
          rel_type: r.relType,
          event_type: r.eventType,
          sender: r.sender,
          stream_ordering: r.streamOrdering,
        })
        .onConflict((oc) => oc.column('event_id').doNothing())
        .execute();
    },

    async deleteRelation(roomId, eventId) {
      const row = await db
        .selectFrom('event_relations')
        .selectAll()
        .where('event_id', '=', eventId)
        .where('room_id', '=', roomId)
        .executeTakeFirst();
      if (!row) return undefined;
      await db.deleteFrom('event_relations').where('event_id', '=', eventId).execute();
      return {
        eventId: row.event_id,
        roomId: row.room_id,
        parentId: row.parent_id,
        relType: row.rel_type,
        eventType: row.event_type,
        sender: row.sender,
        streamOrdering: Number(row.stream_ordering),
      };
    },

    async upsertThread(roomId, rootId, eventId, ordering) {
      await db
        .insertInto('event_threads')
        .values({
          room_id: roomId,
          root_id: rootId,
          latest_event_id: eventId,
          latest_ordering: ordering,
        })
        .onConflict((oc) =>
          oc
            .columns(['room_id', 'root_id'])
            .doUpdateSet({ latest_event_id: eventId, latest_ordering: ordering }),
        )
        .execute();
    },

    async updateThreadFromRelations(roomId, rootId) {
      await refreshThread(db, roomId, rootId);
    },

    async selectChildren(roomId, parentIds, range) {
      if (parentIds.length === 0) return [];
      let query = db
        .selectFrom('event_relations')
        .innerJoin('events', 'events.event_id', 'event_relations.event_id')
        .select(eventColumns)
        .where('event_relations.parent_id', 'in', [...parentIds])
        .where('event_relations.room_id', '=', roomId)
        .where('event_relations.stream_ordering', '>', range.after)
        .where('event_relations.stream_ordering', '<=', range.upTo);
      if (range.relType !== undefined)
        query = query.where('event_relations.rel_type', '=', range.relType);
      if (range.eventType !== undefined)
        query = query.where('event_relations.event_type', '=', range.eventType);
      const rows = await query
        .orderBy('event_relations.stream_ordering', range.direction === 'forward' ? 'asc' : 'desc')
        .limit(range.limit)
        .execute();
      return rows.map(toEventRow);
    },

    async selectRelationCounts(parentIds, relTypes) {
      const rows = await readInSlices(parentIds, (slice) =>
        db
          .selectFrom('event_relations')
          .select((eb) => [
            'parent_id',
            'rel_type',
            eb.fn.countAll<number | string>().as('count'),
            eb.fn.max('stream_ordering').as('latest'),
          ])
          .where('parent_id', 'in', slice)
          .where('rel_type', 'in', [...relTypes])
          .groupBy(['parent_id', 'rel_type'])
          .execute(),
      );
      return rows.map((r) => ({
        parentId: r.parent_id,
        relType: r.rel_type,
        count: Number(r.count),
        latestOrdering: Number(r.latest),
      }));
    },

    async selectParentsWithChildFrom(parentIds, relType, sender) {
      const rows = await readInSlices(parentIds, (slice) =>
        db
          .selectFrom('event_relations')
          .select('parent_id')
          .distinct()
          .where('parent_id', 'in', slice)
          .where('sender', '=', sender)
          .where('rel_type', '=', relType)
          .execute(),
      );
      return new Set(rows.map((r) => r.parent_id));
    },

    async selectLatestOwnChildren(parentIds, relType) {
      const rows = await readInSlices(parentIds, (slice) =>
        db
          .selectFrom('event_relations')
          .innerJoin('events', 'events.event_id', 'event_relations.parent_id')
          .select((eb) => [
            'event_relations.parent_id',
            eb.fn.max('event_relations.stream_ordering').as('latest'),
          ])
          .where('event_relations.parent_id', 'in', slice)
          .where('event_relations.rel_type', '=', relType)
          .whereRef('event_relations.sender', '=', 'events.sender')
          .whereRef('event_relations.event_type', '=', 'events.type')
          .whereRef('event_relations.room_id', '=', 'events.room_id')
          .groupBy('event_relations.parent_id')
          .execute(),
      );
      return new Map(rows.map((r) => [r.parent_id, Number(r.latest)]));
    },

    async selectChildIds(parentIds, relType, limit) {
      const rows = await readInSlices(parentIds, (slice) =>
        db
          .selectFrom('event_relations')
          .select(['parent_id', 'event_id'])
          .where('parent_id', 'in', slice)
          .where('rel_type', '=', relType)
          .orderBy('stream_ordering')
          .limit(limit)
          .execute(),
      );
      const out = new Map<string, string[]>();
      for (const row of rows.slice(0, limit)) {
        const list = out.get(row.parent_id);
        if (list) list.push(row.event_id);
        else out.set(row.parent_id, [row.event_id]);
      }
      return out;
    },

    async selectEventsAt(orderings) {
      const rows = await readInSlices(orderings, (slice) =>
        db
          .selectFrom('events')
          .select(eventColumns)
          .where('stream_ordering', 'in', slice)
          .execute(),
      );
      return rows.map(toEventRow);
    },

    async selectEventsByIds(eventIds) {
      const rows = await readInSlices(eventIds, (slice) =>
        db.selectFrom('events').select(eventColumns).where('event_id', 'in', slice).execute(),
      );
      return rows.map(toEventRow);
    },

    async selectThreads(roomId, before, limit, participant) {
      let query = db
        .selectFrom('event_threads')
        .select(['event_threads.root_id', 'event_threads.latest_ordering'])
        .where('event_threads.room_id', '=', roomId)
        .where('event_threads.latest_ordering', '<', before);
      if (participant !== undefined) {
        query = query.where((eb) =>
          eb.or([
            eb.exists(
              eb
                .selectFrom('events')
                .select('events.event_id')
                .whereRef('events.event_id', '=', 'event_threads.root_id')
                .where('events.sender', '=', participant),
            ),
            eb.exists(
              eb
                .selectFrom('event_relations')
                .select('event_relations.event_id')
                .whereRef('event_relations.parent_id', '=', 'event_threads.root_id')
                .where('event_relations.sender', '=', participant)
                .where('event_relations.rel_type', '=', 'm.thread'),
            ),
          ]),
        );
      }
      const rows = await query
        .orderBy('event_threads.latest_ordering', 'desc')
        .limit(limit)
        .execute();
      return rows.map((r) => ({ rootId: r.root_id, latestOrdering: Number(r.latest_ordering) }));
    },

    async selectParentsRelatedBy(eventIds, relTypes, senders) {
      if ((relTypes && relTypes.length === 0) || (senders && senders.length === 0))
        return new Set();
      const rows = await readInSlices(eventIds, (slice) => {
        let query = db
          .selectFrom('event_relations')
          .select('parent_id')
          .distinct()
          .where('parent_id', 'in', slice);
        if (relTypes) query = query.where('rel_type', 'in', [...relTypes]);
        if (senders) query = query.where('sender', 'in', [...senders]);
        return query.execute();
      });
      return new Set(rows.map((r) => r.parent_id));
    },
  };
}
