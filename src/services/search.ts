/**
 * Server-side search of room events: the searchable text of each event (a deriver, in the
 * event's own transaction; a redaction removes its target's), and `POST /search` over the
 * rooms the requester has joined, with history visibility applied to every result.
 * https://spec.matrix.org/v1.19/client-server-api/#server-side-search
 */
import { invalidParam } from '../core/errors.js';
import type { ClientEvent } from '../core/client-event.js';
import type { JsonObject, RoomVersionId } from '../core/pdu.js';
import { passesEventFilter, passesRoomLists } from '../core/sync-filter.js';
import { SEARCH_KEYS, searchableText, searchWords } from '../core/search.js';
import type { EventRow, SearchHit, Stores } from '../storage/index.js';
import type { Requester, ServiceContext } from './context.js';
import type { EventDeriver } from './event-writer.js';
import { aggregationTargetOf } from './relations.js';
import type { RoomEventFilter, TimelineService } from './timeline.js';

const DEFAULT_LIMIT = 10;
const MAX_LIMIT = 100;
const MAX_CONTEXT = 20;
/** Matches read per statement while skipping those the requester may not see. */
const BATCH = 100;
/**
 * `next_batch`: `o<offset>`, how many matches (visible or not) earlier pages went through,
 * and `c<count>`, the matches the first page counted: later pages answer that count again
 * instead of reading every match once more (a token without it is counted anew).
 */
const TOKEN = /^o(\d{1,9})(?:c(\d{1,12}))?$/;

export interface RoomEventsCriteria {
  search_term: string;
  keys?: string[] | undefined;
  filter?: RoomEventFilter | undefined;
  order_by?: 'rank' | 'recent' | undefined;
  event_context?:
    | {
        before_limit?: number | undefined;
        after_limit?: number | undefined;
        include_profile?: boolean | undefined;
      }
    | undefined;
  include_state?: boolean | undefined;
  groupings?: { group_by?: Array<{ key?: string | undefined }> | undefined } | undefined;
}

interface SearchResult {
  rank: number;
  result: ClientEvent;
  context?: JsonObject;
}

export function createSearchService(ctx: ServiceContext, timeline: TimelineService) {
  const stores = () => ctx.storage.stores;

  /** Indexes the event's searchable text; forgets a redacted event's. */
  const deriver: EventDeriver = async (tx: Stores, event) => {
    const { pdu } = event;
    // Messages are not state; a room's name and topic are state with an empty key.
    const isState = pdu.state_key !== undefined;
    const text =
      isState === (pdu.type !== 'm.room.message') && (pdu.state_key ?? '') === ''
        ? searchableText(pdu.type, pdu.content)
        : null;
    if (text)
      await tx.search.insertSearchText({
        streamOrdering: event.streamOrdering,
        eventId: event.eventId,
        roomId: event.roomId,
        ...text,
      });
    if (pdu.type === 'm.room.redaction') {
      const inContent = pdu.content.redacts;
      const target = typeof inContent === 'string' ? inContent : pdu.redacts;
      if (target === undefined) return;
      const row = await tx.rooms.selectEvent(target);
      if (row && row.roomId === event.roomId) await tx.search.deleteSearchText(row.streamOrdering);
    }
  };

  async function contextOf(
    row: EventRow,
    version: RoomVersionId,
    visible: (position: number) => boolean,
    before: number,
    after: number,
    includeProfile: boolean,
  ): Promise<JsonObject> {
    const collect = async (direction: 'backward' | 'forward', count: number) => {
      if (count === 0) return [];
      const current = await stores().rooms.selectCurrentStreamPosition();
      const range =
        direction === 'backward'
          ? { after: 0, upTo: row.streamOrdering - 1, direction, limit: count * 2 + 10 }
          : { after: row.streamOrdering, upTo: current, direction, limit: count * 2 + 10 };
      const rows = await stores().rooms.selectRoomEvents(row.roomId, range);
      return rows.filter((r) => visible(r.streamOrdering)).slice(0, count);
    };
    const [eventsBefore, eventsAfter] = await Promise.all([
      collect('backward', before),
      collect('forward', after),
    ]);
    const present = (rows: EventRow[]) =>
      Promise.all(rows.map((r) => timeline.present(r, version)));
    const context: JsonObject = {
      events_before: (await present(eventsBefore)) as unknown as JsonObject[],
      events_after: (await present(eventsAfter)) as unknown as JsonObject[],
      start: `s${(eventsBefore[eventsBefore.length - 1]?.streamOrdering ?? row.streamOrdering) - 1}`,
      end: `s${eventsAfter[eventsAfter.length - 1]?.streamOrdering ?? row.streamOrdering}`,
    };
    if (includeProfile) {
      const senders = [...new Set([row, ...eventsBefore, ...eventsAfter].map((r) => r.pdu.sender))];
      const members = await stores().rooms.selectStateEvents(
        row.roomId,
        senders.map((s) => ['m.room.member', s] as const),
      );
      const profiles: JsonObject = {};
      for (const member of members) {
        const { displayname, avatar_url: avatarUrl } = member.pdu.content;
        const profile: JsonObject = {};
        if (typeof displayname === 'string') profile.displayname = displayname;
        if (typeof avatarUrl === 'string') profile.avatar_url = avatarUrl;
        profiles[member.pdu.state_key ?? ''] = profile;
      }
      context.profile_info = profiles;
    }
    return context;
  }

  return {
    deriver,

    async search(
      requester: Requester,
      criteria: RoomEventsCriteria,
      nextBatch: string | undefined,
    ): Promise<JsonObject> {
      const filter = criteria.filter;
      const keys = criteria.keys ?? [...SEARCH_KEYS];
      for (const key of keys)
        if (!(SEARCH_KEYS as readonly string[]).includes(key))
          throw invalidParam(`keys may hold only ${SEARCH_KEYS.join(', ')}`);
      let offset = 0;
      let counted: number | undefined;
      if (nextBatch !== undefined) {
        const match = TOKEN.exec(nextBatch);
        if (!match) throw invalidParam('Invalid next_batch token');
        offset = Number(match[1]);
        if (match[2] !== undefined) counted = Number(match[2]);
      }
      const orderBy = criteria.order_by ?? 'rank';
      const limit = Math.min(filter?.limit ?? DEFAULT_LIMIT, MAX_LIMIT);
      const before = Math.min(criteria.event_context?.before_limit ?? 5, MAX_CONTEXT);
      const after = Math.min(criteria.event_context?.after_limit ?? 5, MAX_CONTEXT);
      const words = searchWords(criteria.search_term);
      const joined = await stores().rooms.selectRoomsOfUser(requester.userId, 'join');
      const roomIds = joined.filter((roomId) => passesRoomLists(filter, roomId));
      const visibilities = await timeline.visibilities(roomIds, requester.userId);
      const query = { roomIds, words, keys };

      const picked: Array<{ hit: SearchHit; row: EventRow }> = [];
      let cursor = offset;
      let more = false;
      for (;;) {
        const hits = await stores().search.selectMatches({
          ...query,
          orderBy,
          limit: BATCH,
          offset: cursor,
        });
        const rows = await stores().relations.selectEventsByIds(hits.map((h) => h.eventId));
        const byId = new Map(rows.map((r) => [r.eventId, r]));
        // The room's past fetched from other servers: judged by the state at each event.
        const past = rows.filter((r) => r.streamOrdering < 0);
        const pastVisible =
          past.length > 0 ? await timeline.visibleRows(past, requester.userId) : new Set();
        for (const hit of hits) {
          if (picked.length === limit) {
            more = true;
            break;
          }
          cursor++;
          const row = byId.get(hit.eventId);
          if (!row || row.redactedBy !== null) continue;
          if (
            row.streamOrdering < 0
              ? !pastVisible.has(row.eventId)
              : !(visibilities.get(hit.roomId)?.(hit.streamOrdering) ?? false)
          )
            continue;
          if (!passesEventFilter(filter, row.pdu.type, row.pdu.sender)) continue;
          picked.push({ hit, row });
        }
        if (more || hits.length < BATCH) break;
      }

      const versions = new Map<string, RoomVersionId>();
      for (const roomId of new Set(picked.map((p) => p.row.roomId))) {
        const room = await stores().rooms.selectRoom(roomId);
        versions.set(roomId, (room?.roomVersion ?? '10') as RoomVersionId);
      }
      const versionOf = (roomId: string) => versions.get(roomId) ?? ('10' as RoomVersionId);
      const events = await Promise.all(
        picked.map(({ row }) => timeline.present(row, versionOf(row.roomId))),
      );
      timeline.attachAggregations(
        events,
        await timeline.aggregationsOf(
          picked.map(({ row }) => aggregationTargetOf(row)),
          requester.userId,
        ),
      );
      const results: SearchResult[] = [];
      for (const [i, { hit, row }] of picked.entries()) {
        const result: SearchResult = { rank: hit.rank, result: events[i] as ClientEvent };
        if (criteria.event_context !== undefined) {
          result.context = await contextOf(
            row,
            versionOf(row.roomId),
            visibilities.get(row.roomId) ?? (() => false),
            before,
            after,
            criteria.event_context.include_profile === true,
          );
        }
        results.push(result);
      }

      // Counted once, on the first page (every match is read for it); carried by next_batch.
      const count = counted ?? (await stores().search.countMatches(query));
      const answer: JsonObject = {
        count,
        highlights: words,
        results: results as unknown as JsonObject[],
      };
      if (more) answer.next_batch = `o${cursor}c${count}`;
      if (criteria.include_state === true) {
        const state: JsonObject = {};
        for (const roomId of versions.keys()) {
          const rows = await stores().rooms.selectAllStateEvents(roomId);
          state[roomId] = (await Promise.all(
            rows.map((r) => timeline.present(r, versionOf(roomId))),
          )) as unknown as JsonObject[];
        }
        answer.state = state;
      }
      const groupKeys = (criteria.groupings?.group_by ?? []).map((g) => g.key);
      for (const key of groupKeys)
        if (key !== 'room_id' && key !== 'sender')
          throw invalidParam('groupings.group_by keys may be room_id or sender');
      if (groupKeys.length > 0) {
        const groups: JsonObject = {};
        for (const key of new Set(groupKeys)) {
          const byKey: Record<string, { results: string[]; order: number }> = {};
          for (const { row } of picked) {
            const value = key === 'room_id' ? row.roomId : row.pdu.sender;
            const group = (byKey[value] ??= { results: [], order: Object.keys(byKey).length + 1 });
            group.results.push(row.eventId);
          }
          if (more)
            for (const group of Object.values(byKey))
              Object.assign(group, { next_batch: `o${cursor}c${count}` });
          groups[key as string] = byKey as unknown as JsonObject;
        }
        answer.groups = groups;
      }
      return { search_categories: { room_events: answer } };
    },
  };
}

export type SearchService = ReturnType<typeof createSearchService>;
