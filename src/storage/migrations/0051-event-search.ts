/**
 * Full-text search of room events (issue #24): a row per searchable event (`event_search`:
 * the body of a message, a room's name or topic), written with the event by the search
 * deriver and deleted when the event is redacted. The index is each database's own:
 * SQLite, an FTS5 table over those rows (external content, kept by triggers; tokenizer
 * unicode61 with diacritics removed); PostgreSQL, a GIN index on the rows' `tsvector` in the
 * `simple` configuration (no stemming, as on SQLite). Events stored before are indexed here.
 */
import { sql, type Kysely } from 'kysely';
import type { JsonObject } from '../../core/pdu.js';
import { searchableText } from '../../core/search.js';
import { onSqlite } from './helpers.js';

const BACKFILL_BATCH = 1000;

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('event_search')
    .addColumn('stream_ordering', 'bigint', (c) => c.primaryKey())
    .addColumn('event_id', 'text', (c) => c.notNull())
    .addColumn('room_id', 'text', (c) => c.notNull())
    .addColumn('key', 'text', (c) => c.notNull())
    .addColumn('value', 'text', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('event_search_by_room')
    .on('event_search')
    .columns(['room_id', 'stream_ordering'])
    .execute();
  if (onSqlite(db)) {
    await sql`CREATE VIRTUAL TABLE event_search_fts USING fts5(
      value, content='event_search', content_rowid='stream_ordering',
      tokenize='unicode61 remove_diacritics 2')`.execute(db);
    await sql`CREATE TRIGGER event_search_fts_insert AFTER INSERT ON event_search BEGIN
      INSERT INTO event_search_fts(rowid, value) VALUES (new.stream_ordering, new.value);
    END`.execute(db);
    await sql`CREATE TRIGGER event_search_fts_delete AFTER DELETE ON event_search BEGIN
      INSERT INTO event_search_fts(event_search_fts, rowid, value)
      VALUES ('delete', old.stream_ordering, old.value);
    END`.execute(db);
  } else {
    await sql`CREATE INDEX event_search_vector ON event_search
      USING GIN (to_tsvector('simple', value))`.execute(db);
  }
  await backfill(db);
}

interface StoredEvent {
  stream_ordering: number | string;
  event_id: string;
  room_id: string;
  type: string;
  pdu: string;
}

async function backfill(db: Kysely<unknown>): Promise<void> {
  let after = -1;
  for (;;) {
    const { rows } = await sql<StoredEvent>`
      SELECT stream_ordering, event_id, room_id, type, pdu FROM events
      WHERE stream_ordering > ${after} AND redacted_by IS NULL
        AND type IN ('m.room.message', 'm.room.name', 'm.room.topic')
      ORDER BY stream_ordering LIMIT ${BACKFILL_BATCH}`.execute(db);
    for (const row of rows) {
      after = Number(row.stream_ordering);
      const pdu = JSON.parse(row.pdu) as { content?: JsonObject };
      const text = searchableText(row.type, pdu.content ?? {});
      if (!text) continue;
      await sql`INSERT INTO event_search (stream_ordering, event_id, room_id, key, value)
        VALUES (${after}, ${row.event_id}, ${row.room_id}, ${text.key}, ${text.value})`.execute(db);
    }
    if (rows.length < BACKFILL_BATCH) return;
  }
}

export async function down(db: Kysely<unknown>): Promise<void> {
  if (onSqlite(db)) {
    await sql`DROP TRIGGER event_search_fts_insert`.execute(db);
    await sql`DROP TRIGGER event_search_fts_delete`.execute(db);
    await sql`DROP TABLE event_search_fts`.execute(db);
  }
  await db.schema.dropTable('event_search').execute();
}
