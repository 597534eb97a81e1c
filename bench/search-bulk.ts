/**
 * The search bench's message bodies, and a bulk loader for its biggest room (issue #24's
 * 1,000,000 events). Built through the event writer, such a room takes about an hour per
 * database on this machine (300–360 events/s: auth checks, state groups and a dozen round
 * trips per event). The loader instead writes the rows the writer writes for a plain message
 * (events, event_txns, event_state_groups, event_auth_edges, event_search and with it SQLite's
 * FTS5 index, by its trigger; then the room's extremity, `bump_stamp` and the events stream
 * position), many rows per statement and 50,000 events per transaction, through the storage
 * layer's Kysely handle.
 *
 * The room must already hold real messages of both senders sent through the writer: their
 * rows are the template (auth events, state group, device). Each loaded event is a real one,
 * hashed and signed with the server's key, its ID its reference hash, chained to the one
 * before. Before loading, the loader rebuilds the writer's last message the same way and
 * checks that every column comes out identical, so the rows are the writer's in shape.
 * Not part of Commons: a bench's shortcut, and said so wherever its figures are shown.
 */
import { performance } from 'node:perf_hooks';
import type { Insertable } from 'kysely';
import { canonicalJson } from '../src/core/canonical-json.js';
import { toClientEvent } from '../src/core/client-event.js';
import { computeEventId } from '../src/core/event-hashing.js';
import type { Pdu, RoomVersionId, UnsignedPdu } from '../src/core/pdu.js';
import { hashAndSignPdu, type SigningKey } from '../src/core/signing.js';
import { openDatabase } from '../src/storage/database.js';
import type { Database } from '../src/storage/schema.js';
import { seededRandom } from './random.js';

export const VOCABULARY = 5000;
export const NEEDLE_EVERY = 100_000;

/**
 * The bodies of the search room's messages, in order (call it for event 0, 1, 2 …): 8 words
 * drawn Zipf-wise from VOCABULARY (word k, from 0, with a weight of 1 / (k + 1)), and `needle`
 * in place of the fourth in one event of NEEDLE_EVERY.
 */
export function searchBodies(): (index: number) => string {
  const rng = seededRandom(24, 'search bodies');
  const cumulative: number[] = [];
  let sum = 0;
  for (let k = 0; k < VOCABULARY; k++) cumulative.push((sum += 1 / (k + 1)));
  const word = () => {
    const x = rng.next() * sum;
    let lo = 0;
    let hi = VOCABULARY - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((cumulative[mid] ?? 0) < x) lo = mid + 1;
      else hi = mid;
    }
    return `w${lo}`;
  };
  return (index) => {
    const words = Array.from({ length: 8 }, word);
    if (index % NEEDLE_EVERY === NEEDLE_EVERY / 2) words[3] = 'needle';
    return words.join(' ');
  };
}

/** Events per transaction, and rows per INSERT (under both databases' parameter limits). */
const PER_TRANSACTION = 50_000;
const ROWS_PER_INSERT = 500;

interface Template {
  authEvents: string[];
  deviceId: string;
  beforeGroup: number;
  afterGroup: number;
}

export interface BulkOptions {
  url: string;
  roomId: string;
  serverName: string;
  signingKey: SigningKey;
  /** Messages 0 … from - 1 were sent through the writer; these are `m${i}` by txn ID. */
  from: number;
  /** Messages from … to - 1 are loaded. */
  to: number;
  /** The sender of message i. */
  senderOf(index: number): string;
  /** The body of message i, called in order from `from`. */
  bodyOf(index: number): string;
  log(message: string): void;
}

/** Loads messages `from` … `to - 1` of the search room; see the file's comment. */
export async function bulkLoadMessages(options: BulkOptions): Promise<void> {
  const { roomId, serverName, signingKey } = options;
  const handle = await openDatabase(options.url, { poolSize: 1 });
  try {
    const db = handle.db;
    const room = await db
      .selectFrom('rooms')
      .select('room_version')
      .where('room_id', '=', roomId)
      .executeTakeFirstOrThrow();
    const version = room.room_version as RoomVersionId;
    const messages = await db
      .selectFrom('events')
      .innerJoin('event_state_groups', 'event_state_groups.event_id', 'events.event_id')
      .innerJoin('event_txns', 'event_txns.event_id', 'events.event_id')
      .select([
        'events.stream_ordering',
        'events.event_id',
        'events.sender',
        'events.pdu',
        'events.client_json',
        'event_state_groups.before_group',
        'event_state_groups.after_group',
        'event_txns.device_id',
        'event_txns.txn_id',
      ])
      .where('events.room_id', '=', roomId)
      .where('events.type', '=', 'm.room.message')
      .orderBy('events.stream_ordering', 'desc')
      .limit(2)
      .execute();
    const templates = new Map<string, Template>();
    for (const m of messages) {
      const pdu = JSON.parse(m.pdu) as Pdu;
      templates.set(m.sender, {
        authEvents: pdu.auth_events,
        deviceId: m.device_id,
        beforeGroup: Number(m.before_group),
        afterGroup: Number(m.after_group),
      });
    }
    const last = messages[0];
    if (!last || templates.size !== 2) throw new Error('the room needs a message of each sender');
    const lastPdu = JSON.parse(last.pdu) as Pdu;
    const templateOf = (sender: string) => {
      const t = templates.get(sender);
      if (!t) throw new Error(`no template message of ${sender}`);
      return t;
    };

    /** A message's rows, as the writer makes them. */
    const make = (
      index: number,
      sender: string,
      body: string,
      prev: string,
      depth: number,
      ts: number,
    ) => {
      const template = templateOf(sender);
      const unsigned: UnsignedPdu = {
        auth_events: template.authEvents,
        content: { msgtype: 'm.text', body },
        depth,
        origin_server_ts: ts,
        prev_events: [prev],
        room_id: roomId,
        sender,
        type: 'm.room.message',
      };
      const pdu = hashAndSignPdu(unsigned, version, serverName, signingKey);
      const eventId = computeEventId(pdu, version);
      const json = canonicalJson(pdu);
      const clientJson = JSON.stringify(
        toClientEvent({ eventId, roomId, pdu: JSON.parse(json) as Pdu }),
      );
      return { eventId, pdu, json, clientJson, template, txnId: `m${index}` };
    };

    // The writer's last message, rebuilt: every column must come out the same.
    const lastBody = lastPdu.content.body;
    const rebuilt = make(
      options.from - 1,
      last.sender,
      typeof lastBody === 'string' ? lastBody : '',
      lastPdu.prev_events[0] ?? '',
      lastPdu.depth,
      lastPdu.origin_server_ts,
    );
    if (
      rebuilt.eventId !== last.event_id ||
      rebuilt.json !== last.pdu ||
      rebuilt.clientJson !== last.client_json ||
      rebuilt.txnId !== last.txn_id ||
      lastPdu.prev_events.length !== 1
    )
      throw new Error(`the bulk rows differ from the writer's (${last.event_id})`);
    options.log(`  bulk rows checked against the writer's ${last.event_id}: identical`);

    let prev = last.event_id;
    let depth = lastPdu.depth;
    let ts = lastPdu.origin_server_ts;
    let position = Number(last.stream_ordering);
    const started = performance.now();
    const insertAll = async <T>(rows: T[], insert: (chunk: T[]) => Promise<unknown>) => {
      for (let at = 0; at < rows.length; at += ROWS_PER_INSERT)
        await insert(rows.slice(at, at + ROWS_PER_INSERT));
    };
    for (let at = options.from; at < options.to; at += PER_TRANSACTION) {
      const end = Math.min(options.to, at + PER_TRANSACTION);
      const events: Insertable<Database['events']>[] = [];
      const txns: Insertable<Database['event_txns']>[] = [];
      const groups: Insertable<Database['event_state_groups']>[] = [];
      const edges: Insertable<Database['event_auth_edges']>[] = [];
      const search: Insertable<Database['event_search']>[] = [];
      for (let i = at; i < end; i++) {
        const sender = options.senderOf(i);
        const body = options.bodyOf(i);
        const made = make(i, sender, body, prev, ++depth, ++ts);
        position++;
        events.push({
          stream_ordering: position,
          event_id: made.eventId,
          room_id: roomId,
          type: 'm.room.message',
          state_key: null,
          sender,
          origin_server_ts: ts,
          depth,
          pdu: made.json,
          redacted_by: null,
          client_json: made.clientJson,
        });
        txns.push({
          user_id: sender,
          device_id: made.template.deviceId,
          room_id: roomId,
          txn_id: made.txnId,
          event_id: made.eventId,
          created_ts: ts,
        });
        groups.push({
          event_id: made.eventId,
          room_id: roomId,
          before_group: made.template.beforeGroup,
          after_group: made.template.afterGroup,
        });
        for (const auth of made.template.authEvents)
          edges.push({ event_id: made.eventId, auth_event_id: auth });
        search.push({
          stream_ordering: position,
          event_id: made.eventId,
          room_id: roomId,
          key: 'content.body',
          value: body,
        });
        prev = made.eventId;
      }
      await handle.tx('benchBulkMessages', async (tx) => {
        await insertAll(events, (c) => tx.insertInto('events').values(c).execute());
        await insertAll(txns, (c) => tx.insertInto('event_txns').values(c).execute());
        await insertAll(groups, (c) => tx.insertInto('event_state_groups').values(c).execute());
        await insertAll(edges, (c) => tx.insertInto('event_auth_edges').values(c).execute());
        await insertAll(search, (c) => tx.insertInto('event_search').values(c).execute());
        await tx.deleteFrom('room_extremities').where('room_id', '=', roomId).execute();
        await tx
          .insertInto('room_extremities')
          .values({ room_id: roomId, event_id: prev })
          .execute();
        await tx
          .updateTable('room_list_meta')
          .set({ bump_stamp: position })
          .where('room_id', '=', roomId)
          .execute();
        await tx
          .updateTable('stream_positions')
          .set({ position })
          .where('stream', '=', 'events')
          .execute();
      });
      const rate = (end - options.from) / ((performance.now() - started) / 1000);
      options.log(`  ${end} / ${options.to} events loaded (${rate.toFixed(0)}/s)`);
    }
  } finally {
    await handle.close();
  }
}
