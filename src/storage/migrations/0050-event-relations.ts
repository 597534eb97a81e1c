/**
 * Event relationships (issue #24): a row per event whose content relates it to another
 * (`m.relates_to` with a `rel_type`), written with the event by the relations deriver and
 * deleted when the event is redacted; and a row per thread (a root with `m.thread` children)
 * holding its latest reply, so `/threads` pages by activity with one index range.
 * Relations already stored are found from the events' JSON.
 */
import { sql, type Kysely } from 'kysely';
import { relationOf } from '../../core/relations.js';
import type { JsonObject } from '../../core/pdu.js';

const BACKFILL_BATCH = 1000;

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('event_relations')
    .addColumn('event_id', 'text', (c) => c.primaryKey())
    .addColumn('room_id', 'text', (c) => c.notNull())
    .addColumn('parent_id', 'text', (c) => c.notNull())
    .addColumn('rel_type', 'text', (c) => c.notNull())
    .addColumn('event_type', 'text', (c) => c.notNull())
    .addColumn('sender', 'text', (c) => c.notNull())
    .addColumn('stream_ordering', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('event_relations_by_parent')
    .on('event_relations')
    .columns(['parent_id', 'rel_type', 'stream_ordering'])
    .execute();
  await db.schema
    .createIndex('event_relations_by_sender')
    .on('event_relations')
    .columns(['parent_id', 'sender', 'rel_type'])
    .execute();
  await db.schema
    .createTable('event_threads')
    .addColumn('room_id', 'text', (c) => c.notNull())
    .addColumn('root_id', 'text', (c) => c.notNull())
    .addColumn('latest_event_id', 'text', (c) => c.notNull())
    .addColumn('latest_ordering', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('event_threads_pk', ['room_id', 'root_id'])
    .execute();
  await db.schema
    .createIndex('event_threads_by_activity')
    .on('event_threads')
    .columns(['room_id', 'latest_ordering'])
    .execute();
  await backfill(db);
}

interface StoredEvent {
  stream_ordering: number | string;
  event_id: string;
  room_id: string;
  sender: string;
  type: string;
  pdu: string;
}

/** Relations (and threads) of the events stored before this migration, a batch at a time. */
async function backfill(db: Kysely<unknown>): Promise<void> {
  let after = -1;
  for (;;) {
    const { rows } = await sql<StoredEvent>`
      SELECT stream_ordering, event_id, room_id, sender, type, pdu FROM events
      WHERE stream_ordering > ${after} AND redacted_by IS NULL
        AND pdu LIKE ${'%"m.relates_to"%'}
      ORDER BY stream_ordering LIMIT ${BACKFILL_BATCH}`.execute(db);
    for (const row of rows) {
      const ordering = Number(row.stream_ordering);
      after = ordering;
      const pdu = JSON.parse(row.pdu) as { content?: JsonObject };
      const relation = relationOf(pdu.content ?? {}, row.type);
      if (!relation) continue;
      await sql`INSERT INTO event_relations
        (event_id, room_id, parent_id, rel_type, event_type, sender, stream_ordering)
        VALUES (${row.event_id}, ${row.room_id}, ${relation.eventId}, ${relation.relType},
                ${row.type}, ${row.sender}, ${ordering})`.execute(db);
      if (relation.relType !== 'm.thread') continue;
      await sql`DELETE FROM event_threads
        WHERE room_id = ${row.room_id} AND root_id = ${relation.eventId}`.execute(db);
      await sql`INSERT INTO event_threads (room_id, root_id, latest_event_id, latest_ordering)
        VALUES (${row.room_id}, ${relation.eventId}, ${row.event_id}, ${ordering})`.execute(db);
    }
    if (rows.length < BACKFILL_BATCH) return;
  }
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('event_threads').execute();
  await db.schema.dropTable('event_relations').execute();
}
