/**
 * Full-text search of room events (migration 0051). The rows are the same on both databases;
 * the match is each one's own: SQLite's FTS5 (`MATCH`, ranked by bm25) and PostgreSQL's
 * `tsvector` in the `simple` configuration (`@@`, ranked by `ts_rank`). Every word of the
 * term must occur.
 */
import { sql, type Kysely, type RawBuilder } from 'kysely';
import type { DialectName } from './database.js';
import type { Database } from './schema.js';

export interface SearchQuery {
  roomIds: readonly string[];
  /** Words as `searchWords` gives them (letters, digits and marks only). */
  words: readonly string[];
  keys: readonly string[];
  orderBy: 'rank' | 'recent';
  limit: number;
  offset: number;
}

export interface SearchHit {
  eventId: string;
  roomId: string;
  streamOrdering: number;
  /** Higher is better. */
  rank: number;
}

export interface SearchStore {
  insertSearchText(row: {
    streamOrdering: number;
    eventId: string;
    roomId: string;
    key: string;
    value: string;
  }): Promise<void>;
  /** Forgets the text of the event at this position (it was redacted). */
  deleteSearchText(streamOrdering: number): Promise<void>;
  /** A page of matches, best (or newest) first. */
  selectMatches(query: SearchQuery): Promise<SearchHit[]>;
  /** How many events match in all (before history visibility). */
  countMatches(query: Omit<SearchQuery, 'orderBy' | 'limit' | 'offset'>): Promise<number>;
}

interface HitRow {
  event_id: string;
  room_id: string;
  stream_ordering: number | string;
  rank: number | string;
}

export function searchStore(db: Kysely<Database>, dialect: DialectName): SearchStore {
  const inList = (values: readonly string[]) => sql.join(values.map((v) => sql`${v}`));

  /** `FROM … WHERE …` of the matches, with `rank` as an expression. */
  function matching(query: Omit<SearchQuery, 'orderBy' | 'limit' | 'offset'>): {
    from: RawBuilder<unknown>;
    rank: RawBuilder<unknown>;
    /** The position to order `recent` by. */
    position: RawBuilder<unknown>;
  } {
    const filters = sql`s.room_id IN (${inList(query.roomIds)}) AND s.key IN (${inList(query.keys)})`;
    if (dialect === 'sqlite') {
      const match = query.words.map((w) => `"${w}"`).join(' ');
      return {
        from: sql`event_search_fts f JOIN event_search s ON s.stream_ordering = f.rowid
          WHERE event_search_fts MATCH ${match} AND ${filters}`,
        rank: sql`-bm25(event_search_fts)`,
        // The FTS table's own rowid (the same position): ordered by the joined table's column
        // instead, SQLite walked the room's index newest first and ran the match once per row
        // (2.4 s at 20,000 events, growing with the room); by the rowid, FTS5 gives the
        // matches newest first itself.
        position: sql`f.rowid`,
      };
    }
    const terms = sql`plainto_tsquery('simple', ${query.words.join(' ')})`;
    return {
      from: sql`event_search s
          WHERE to_tsvector('simple', s.value) @@ ${terms} AND ${filters}`,
      rank: sql`ts_rank(to_tsvector('simple', s.value), ${terms})`,
      position: sql`s.stream_ordering`,
    };
  }

  const empty = (query: {
    roomIds: readonly string[];
    words: readonly string[];
    keys: readonly string[];
  }) => query.roomIds.length === 0 || query.words.length === 0 || query.keys.length === 0;

  return {
    async insertSearchText(row) {
      await db
        .insertInto('event_search')
        .values({
          stream_ordering: row.streamOrdering,
          event_id: row.eventId,
          room_id: row.roomId,
          key: row.key,
          value: row.value,
        })
        .execute();
    },

    async deleteSearchText(streamOrdering) {
      await db.deleteFrom('event_search').where('stream_ordering', '=', streamOrdering).execute();
    },

    async selectMatches(query) {
      if (empty(query)) return [];
      const { from, rank, position } = matching(query);
      const order =
        query.orderBy === 'rank' ? sql`rank DESC, ${position} DESC` : sql`${position} DESC`;
      const { rows } = await sql<HitRow>`
        SELECT s.event_id, s.room_id, s.stream_ordering, ${rank} AS rank FROM ${from}
        ORDER BY ${order} LIMIT ${query.limit} OFFSET ${query.offset}`.execute(db);
      return rows.map((r) => ({
        eventId: r.event_id,
        roomId: r.room_id,
        streamOrdering: Number(r.stream_ordering),
        rank: Number(r.rank),
      }));
    },

    async countMatches(query) {
      if (empty(query)) return 0;
      const { from } = matching(query);
      const { rows } = await sql<{ count: number | string }>`
        SELECT COUNT(*) AS count FROM ${from}`.execute(db);
      return Number(rows[0]?.count ?? 0);
    },
  };
}
