/**
 * Event relationships: the rows each event's relation adds (a deriver, in the event's own
 * transaction; a redaction removes its target's), the aggregations bundled into
 * `unsigned.m.relations` wherever events are served (a few statements per page of events,
 * one when none of them has children), and `/relations` and `/threads`.
 * https://spec.matrix.org/v1.19/client-server-api/#forming-relationships-between-events
 */
import { invalidParam } from '../core/errors.js';
import { toClientEvent, type ClientEvent } from '../core/client-event.js';
import type { JsonObject, RoomVersionId } from '../core/pdu.js';
import { AGGREGATED_REL_TYPES, RECURSION_DEPTH, relationOf } from '../core/relations.js';
import { parseStreamToken, streamToken } from '../core/stream-token.js';
import type { EventRow, Stores } from '../storage/index.js';
import type { Requester, ServiceContext } from './context.js';
import type { EventDeriver } from './event-writer.js';
import type { TimelineService } from './timeline.js';

/** The most `m.reference` children listed in one page's aggregations. */
const MAX_REFERENCES = 1000;
const MAX_PAGE = 100;

/** What an event needs for its aggregations: its ID, sender, and whether it is redacted. */
export type AggregationTarget = Pick<EventRow, 'eventId' | 'roomId' | 'redactedBy'> & {
  sender: string;
};

export const aggregationTargetOf = (row: EventRow): AggregationTarget => ({
  eventId: row.eventId,
  roomId: row.roomId,
  redactedBy: row.redactedBy,
  sender: row.pdu.sender,
});

const clientFormOf = (row: EventRow): ClientEvent =>
  toClientEvent({ eventId: row.eventId, roomId: row.roomId, pdu: row.pdu });

export function createRelationAggregator(ctx: ServiceContext) {
  const store = () => ctx.storage.stores.relations;

  /** Records the event's relation, and forgets a redacted event's (see `EventDeriver`). */
  const deriver: EventDeriver = async (stores: Stores, event) => {
    const { pdu } = event;
    const relation = relationOf(pdu.content, pdu.type);
    if (relation) {
      await stores.relations.insertRelation({
        eventId: event.eventId,
        roomId: event.roomId,
        parentId: relation.eventId,
        relType: relation.relType,
        eventType: pdu.type,
        sender: pdu.sender,
        streamOrdering: event.streamOrdering,
      });
      if (relation.relType === 'm.thread') {
        await stores.relations.upsertThread(
          event.roomId,
          relation.eventId,
          event.eventId,
          event.streamOrdering,
        );
        // A backfilled child is older than those held: the thread's latest is chosen again.
        if (event.backfilled)
          await stores.relations.updateThreadFromRelations(event.roomId, relation.eventId);
      }
    }
    if (pdu.type === 'm.room.redaction') {
      const inContent = pdu.content.redacts;
      const target = typeof inContent === 'string' ? inContent : pdu.redacts;
      if (target === undefined) return;
      const removed = await stores.relations.deleteRelation(event.roomId, target);
      if (removed?.relType === 'm.thread')
        await stores.relations.updateThreadFromRelations(event.roomId, removed.parentId);
    }
  };

  /**
   * `unsigned.m.relations` for each of the events that has any: `m.thread` (latest child,
   * count, whether `userId` took part), `m.replace` (the newest edit by the event's own
   * sender; none for a redacted event) and `m.reference` (the children's IDs). `nested`:
   * for a thread's latest event, whose edits alone are bundled.
   */
  async function aggregationsOf(
    targets: readonly AggregationTarget[],
    userId: string,
    nested = false,
  ): Promise<Map<string, JsonObject>> {
    const out = new Map<string, JsonObject>();
    if (targets.length === 0) return out;
    const relations = store();
    const relTypes = nested ? ['m.replace'] : AGGREGATED_REL_TYPES;
    const counts = await relations.selectRelationCounts(
      targets.map((t) => t.eventId),
      relTypes,
    );
    if (counts.length === 0) return out;
    const byId = new Map(targets.map((t) => [t.eventId, t]));
    const entry = (eventId: string): JsonObject => {
      let value = out.get(eventId);
      if (!value) out.set(eventId, (value = {}));
      return value;
    };
    const threads = counts.filter((c) => c.relType === 'm.thread');
    const edited = counts
      .filter((c) => c.relType === 'm.replace' && byId.get(c.parentId)?.redactedBy === null)
      .map((c) => c.parentId);
    const referenced = counts.filter((c) => c.relType === 'm.reference').map((c) => c.parentId);

    if (threads.length > 0) {
      const roots = threads.map((t) => t.parentId);
      const [took, latestRows] = await Promise.all([
        relations.selectParentsWithChildFrom(roots, 'm.thread', userId),
        relations.selectEventsAt(threads.map((t) => t.latestOrdering)),
      ]);
      const latestEdits = await aggregationsOf(latestRows.map(aggregationTargetOf), userId, true);
      const latestByOrdering = new Map(latestRows.map((r) => [r.streamOrdering, r]));
      for (const thread of threads) {
        const latest = latestByOrdering.get(thread.latestOrdering);
        if (!latest) continue;
        const latestEvent = clientFormOf(latest);
        const bundled = latestEdits.get(latest.eventId);
        if (bundled) latestEvent.unsigned = { ...latestEvent.unsigned, 'm.relations': bundled };
        entry(thread.parentId)['m.thread'] = {
          latest_event: latestEvent as unknown as JsonObject,
          count: thread.count,
          current_user_participated:
            took.has(thread.parentId) || byId.get(thread.parentId)?.sender === userId,
        };
      }
    }
    if (edited.length > 0) {
      const latest = await relations.selectLatestOwnChildren(edited, 'm.replace');
      const rows = await relations.selectEventsAt([...latest.values()]);
      const byOrdering = new Map(rows.map((r) => [r.streamOrdering, r]));
      for (const [parentId, ordering] of latest) {
        const row = byOrdering.get(ordering);
        if (row) entry(parentId)['m.replace'] = clientFormOf(row) as unknown as JsonObject;
      }
    }
    if (referenced.length > 0) {
      const children = await relations.selectChildIds(referenced, 'm.reference', MAX_REFERENCES);
      for (const [parentId, ids] of children)
        entry(parentId)['m.reference'] = { chunk: ids.map((id) => ({ event_id: id })) };
    }
    return out;
  }

  /** Puts each event's aggregations (from `aggregationsOf`) into its `unsigned`. */
  function attach(events: readonly ClientEvent[], bundles: ReadonlyMap<string, JsonObject>) {
    if (bundles.size === 0) return;
    for (const event of events) {
      const bundled = bundles.get(event.event_id);
      if (bundled) event.unsigned = { ...event.unsigned, 'm.relations': bundled };
    }
  }

  return { deriver, aggregationsOf, attach };
}

export type RelationAggregator = ReturnType<typeof createRelationAggregator>;

export interface RelationsQuery {
  relType?: string | undefined;
  eventType?: string | undefined;
  from?: string | undefined;
  to?: string | undefined;
  dir: 'b' | 'f';
  limit: number;
  recurse: boolean | undefined;
}

export interface RelationsPage {
  chunk: ClientEvent[];
  next_batch?: string;
  prev_batch?: string;
  recursion_depth?: number;
}

/** `/relations` and `/threads`. */
export function createRelationService(ctx: ServiceContext, timeline: TimelineService) {
  const stores = () => ctx.storage.stores;

  async function versionOf(roomId: string): Promise<RoomVersionId> {
    const room = await stores().rooms.selectRoom(roomId);
    return (room?.roomVersion ?? '10') as RoomVersionId;
  }

  const parseToken = (token: string | undefined, name: string, current: number) => {
    if (token === undefined) return undefined;
    const position = parseStreamToken(token);
    if (position === null) throw invalidParam(`Invalid ${name} token`);
    return Math.min(position, current);
  };

  return {
    /**
     * The children of an event the requester can see (404 as /event otherwise), newest first
     * (`dir=b`) or oldest first, in stream order; with `recurse`, children of children too,
     * down to `RECURSION_DEPTH`.
     */
    async relations(
      requester: Requester,
      roomId: string,
      eventId: string,
      query: RelationsQuery,
    ): Promise<RelationsPage> {
      await timeline.event(requester, roomId, eventId);
      const current = await stores().rooms.selectCurrentStreamPosition();
      const from = parseToken(query.from, 'from', current);
      const to = parseToken(query.to, 'to', current);
      const limit = Math.max(1, Math.min(query.limit, MAX_PAGE));
      const depth = query.recurse === true ? RECURSION_DEPTH : 1;
      // The parents whose children are listed: the event, and with `recurse` its descendants
      // (of any relation type) down to the depth.
      const parents = [eventId];
      let level = [eventId];
      for (let d = 1; d < depth && level.length > 0; d++) {
        const children = await stores().relations.selectChildren(roomId, level, {
          after: 0,
          upTo: current,
          direction: 'forward',
          limit: 10_000,
        });
        level = children.map((c) => c.eventId).filter((id) => !parents.includes(id));
        parents.push(...level);
      }
      const visible = (await timeline.visibilities([roomId], requester.userId)).get(roomId);
      const start = from ?? (query.dir === 'b' ? current : 0);
      const picked: EventRow[] = [];
      let cursor = start;
      let more = false;
      for (;;) {
        const range =
          query.dir === 'b'
            ? { after: to ?? 0, upTo: cursor, direction: 'backward' as const }
            : { after: cursor, upTo: to ?? current, direction: 'forward' as const };
        if (range.after >= range.upTo) break;
        const batch = limit + 1 - picked.length;
        const rows = await stores().relations.selectChildren(roomId, parents, {
          ...range,
          limit: batch,
          relType: query.relType,
          eventType: query.eventType,
        });
        for (const row of rows) {
          if (picked.length === limit) {
            more = true;
            break;
          }
          cursor = query.dir === 'b' ? row.streamOrdering - 1 : row.streamOrdering;
          if (visible && !visible(row.streamOrdering)) continue;
          picked.push(row);
        }
        if (more || rows.length < batch) break;
      }
      const version = await versionOf(roomId);
      const chunk = await Promise.all(picked.map((row) => timeline.present(row, version)));
      timeline.attachAggregations(
        chunk,
        await timeline.aggregationsOf(picked.map(aggregationTargetOf), requester.userId),
      );
      const page: RelationsPage = { chunk };
      if (more) page.next_batch = streamToken(cursor);
      if (from !== undefined) page.prev_batch = streamToken(start);
      if (query.recurse !== undefined) page.recursion_depth = depth;
      return page;
    },

    /** The room's thread roots, most recent activity first (`participated`: the user's). */
    async threads(
      requester: Requester,
      roomId: string,
      options: { include: 'all' | 'participated'; from?: string | undefined; limit: number },
    ): Promise<{ chunk: ClientEvent[]; next_batch?: string }> {
      const visible = (await timeline.visibilities([roomId], requester.userId)).get(roomId);
      const current = await stores().rooms.selectCurrentStreamPosition();
      // Readable as /messages is: by a member, past or present, or world-readable history.
      await timeline.assertReadable(requester, roomId);
      let before = current + 1;
      if (options.from !== undefined) {
        const position = parseStreamToken(options.from);
        if (position === null) throw invalidParam('Invalid from token');
        before = Math.min(position, current + 1);
      }
      const limit = Math.max(1, Math.min(options.limit, MAX_PAGE));
      const participant = options.include === 'participated' ? requester.userId : undefined;
      const roots: EventRow[] = [];
      let more = false;
      for (;;) {
        const wanted = limit + 1 - roots.length;
        const threads = await stores().relations.selectThreads(roomId, before, wanted, participant);
        const rows = await stores().relations.selectEventsByIds(threads.map((t) => t.rootId));
        const byId = new Map(rows.map((r) => [r.eventId, r]));
        for (const thread of threads) {
          if (roots.length === limit) {
            more = true;
            break;
          }
          before = thread.latestOrdering;
          const root = byId.get(thread.rootId);
          if (!root || root.roomId !== roomId) continue;
          if (visible && !visible(root.streamOrdering)) continue;
          roots.push(root);
        }
        if (more || threads.length < wanted) break;
      }
      const version = await versionOf(roomId);
      const chunk = await Promise.all(roots.map((row) => timeline.present(row, version)));
      timeline.attachAggregations(
        chunk,
        await timeline.aggregationsOf(roots.map(aggregationTargetOf), requester.userId),
      );
      return more ? { chunk, next_batch: streamToken(before) } : { chunk };
    },
  };
}

export type RelationService = ReturnType<typeof createRelationService>;
