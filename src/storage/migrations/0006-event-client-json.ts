/**
 * Each event's client format (ClientEvent), serialised when the event is written, so big
 * lists (a 100,000-member room's /members) are concatenated rather than parsed from the PDU
 * and serialised again per request. NULL where the stored PDU must be presented instead: a
 * redacted event (the redaction clears it).
 *
 * Existing events are filled in here, in keyset batches, with core's own conversion: the
 * column is derived data, so this is the one place storage calls a core function.
 */
import { sql, type Kysely } from 'kysely';
import { toClientEvent } from '../../core/client-event.js';
import type { Pdu } from '../../core/pdu.js';

/** Rows per batch; each UPDATE binds two parameters per row (well under every limit). */
const BATCH = 400;

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('events').addColumn('client_json', 'text').execute();
  let after = -1;
  for (;;) {
    const { rows } = await sql<{
      stream_ordering: number | string;
      event_id: string;
      room_id: string;
      pdu: string;
    }>`SELECT stream_ordering, event_id, room_id, pdu FROM events
       WHERE stream_ordering > ${after} AND redacted_by IS NULL
       ORDER BY stream_ordering LIMIT ${BATCH}`.execute(db);
    const last = rows[rows.length - 1];
    if (!last) return;
    const cases = rows.map((row) => {
      const json = JSON.stringify(
        toClientEvent({
          eventId: row.event_id,
          roomId: row.room_id,
          pdu: JSON.parse(row.pdu) as Pdu,
        }),
      );
      return sql`WHEN ${Number(row.stream_ordering)} THEN ${json}`;
    });
    const positions = rows.map((row) => Number(row.stream_ordering));
    await sql`UPDATE events SET client_json = CASE stream_ordering ${sql.join(cases, sql` `)} END
              WHERE stream_ordering IN (${sql.join(positions)})`.execute(db);
    after = Number(last.stream_ordering);
  }
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('events').dropColumn('client_json').execute();
}
