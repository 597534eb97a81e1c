/**
 * Room aliases and the published room directory: the `room_aliases` table, `rooms.is_public`,
 * and the listing of published rooms with their joined member counts and summary state.
 */
import {
  sql,
  type Expression,
  type ExpressionBuilder,
  type Kysely,
  type RawBuilder,
  type SqlBool,
} from 'kysely';
import type { JsonObject, Pdu } from '../core/pdu.js';
import type { Database } from './schema.js';
import type { DialectName } from './database.js';

export interface AliasRow {
  alias: string;
  roomId: string;
  creator: string;
}

/** Which published rooms to list; `searchTerm` and `roomTypes` narrow them. */
export interface PublicRoomsFilter {
  /** Matched, case-insensitively, as a substring of the name, topic or canonical alias. */
  searchTerm?: string | undefined;
  /** Room types to keep (`null`: rooms without a type); undefined or empty keeps every room. */
  roomTypes?: ReadonlyArray<string | null> | undefined;
  /**
   * Which directory: undefined, the server's own; a service's network (`third_party_instance_id`);
   * or 'all', the server's and every network's (`include_all_networks`).
   */
  network?: { serviceId: string; networkId: string } | 'all' | undefined;
}

export interface PublicRoomRow {
  roomId: string;
  joinedMembers: number;
  /** Content of the room's current state events with an empty state key, by event type. */
  state: Map<string, JsonObject>;
}

export interface DirectoryStore {
  selectAlias(alias: string): Promise<AliasRow | undefined>;
  /** Inserts the alias; false (and nothing written) when the alias already exists. */
  insertAlias(alias: string, roomId: string, creator: string): Promise<boolean>;
  /** Deletes the alias; false when there was none. */
  deleteAlias(alias: string): Promise<boolean>;
  /** The room's aliases, sorted. */
  selectAliasesOfRoom(roomId: string): Promise<string[]>;
  /**
   * A page of published rooms, most joined members first, then by room ID; each with the
   * state of the types in `stateTypes`.
   */
  selectPublicRooms(
    filter: PublicRoomsFilter,
    offset: number,
    limit: number,
    stateTypes: readonly string[],
  ): Promise<PublicRoomRow[]>;
  countPublicRooms(filter: PublicRoomsFilter): Promise<number>;
}

/** `LIKE` pattern for a substring, with `!` as the escape character. */
const containsPattern = (term: string): string =>
  `%${term.toLowerCase().replace(/[!%_]/g, (c) => `!${c}`)}%`;

export function directoryStore(db: Kysely<Database>, dialect: DialectName): DirectoryStore {
  /** The text at `content.<key>` of the PDU in `column` (null when absent). */
  const contentText = (column: string, key: string): RawBuilder<string | null> =>
    dialect === 'postgres'
      ? sql<string | null>`(${sql.ref(column)}::jsonb #>> ${`{content,${key}}`})`
      : sql<string | null>`json_extract(${sql.ref(column)}, ${`$.content."${key}"`})`;

  const joinedCount = sql<number>`(SELECT COUNT(*) FROM room_memberships m WHERE m.room_id = r.room_id AND m.membership = 'join')`;

  function publishedRooms(filter: PublicRoomsFilter) {
    const network = filter.network;
    const inNetworks = (eb: ExpressionBuilder<Database & { r: Database['rooms'] }, 'r'>) => {
      let sub = eb
        .selectFrom('appservice_room_directory as d')
        .select(sql.lit(1).as('one'))
        .whereRef('d.room_id', '=', 'r.room_id');
      if (network !== undefined && network !== 'all')
        sub = sub
          .where('d.service_id', '=', network.serviceId)
          .where('d.network_id', '=', network.networkId);
      return eb.exists(sub);
    };
    let query = db
      .selectFrom('rooms as r')
      .where((eb) =>
        network === undefined
          ? eb('r.is_public', '=', 1)
          : network === 'all'
            ? eb.or([eb('r.is_public', '=', 1), inNetworks(eb)])
            : inNetworks(eb),
      );
    const term = filter.searchTerm;
    if (term !== undefined && term !== '') {
      const pattern = containsPattern(term);
      const matches = (type: string, key: string): Expression<SqlBool> =>
        sql<SqlBool>`(cs.type = ${type} AND LOWER(${contentText('e.pdu', key)}) LIKE ${pattern} ESCAPE '!')`;
      query = query.where((eb) =>
        eb.exists(
          eb
            .selectFrom('current_state as cs')
            .innerJoin('events as e', 'e.event_id', 'cs.event_id')
            .select(sql.lit(1).as('one'))
            .whereRef('cs.room_id', '=', 'r.room_id')
            .where('cs.state_key', '=', '')
            .where((inner) =>
              inner.or([
                matches('m.room.name', 'name'),
                matches('m.room.topic', 'topic'),
                matches('m.room.canonical_alias', 'alias'),
              ]),
            ),
        ),
      );
    }
    const types = filter.roomTypes ?? [];
    if (types.length > 0) {
      const named = types.filter((t): t is string => t !== null);
      const untyped = types.includes(null);
      const roomType = contentText('e.pdu', 'type');
      query = query.where((eb) =>
        eb.exists(
          eb
            .selectFrom('current_state as cs')
            .innerJoin('events as e', 'e.event_id', 'cs.event_id')
            .select(sql.lit(1).as('one'))
            .whereRef('cs.room_id', '=', 'r.room_id')
            .where('cs.type', '=', 'm.room.create')
            .where('cs.state_key', '=', '')
            .where((inner) =>
              inner.or([
                ...(named.length > 0 ? [inner(roomType, 'in', named)] : []),
                ...(untyped ? [inner(roomType, 'is', null)] : []),
              ]),
            ),
        ),
      );
    }
    return query;
  }

  return {
    async selectAlias(alias) {
      const row = await db
        .selectFrom('room_aliases')
        .select(['alias', 'room_id', 'creator'])
        .where('alias', '=', alias)
        .executeTakeFirst();
      return row ? { alias: row.alias, roomId: row.room_id, creator: row.creator } : undefined;
    },

    async insertAlias(alias, roomId, creator) {
      const result = await db
        .insertInto('room_aliases')
        .values({ alias, room_id: roomId, creator })
        .onConflict((oc) => oc.column('alias').doNothing())
        .executeTakeFirst();
      return Number(result.numInsertedOrUpdatedRows ?? 0) > 0;
    },

    async deleteAlias(alias) {
      const result = await db
        .deleteFrom('room_aliases')
        .where('alias', '=', alias)
        .executeTakeFirst();
      return Number(result.numDeletedRows) > 0;
    },

    async selectAliasesOfRoom(roomId) {
      const rows = await db
        .selectFrom('room_aliases')
        .select('alias')
        .where('room_id', '=', roomId)
        .orderBy('alias')
        .execute();
      return rows.map((r) => r.alias);
    },

    async selectPublicRooms(filter, offset, limit, stateTypes) {
      const rooms = await publishedRooms(filter)
        .select(['r.room_id', joinedCount.as('joined')])
        .orderBy('joined', 'desc')
        .orderBy('r.room_id')
        .limit(limit)
        .offset(offset)
        .execute();
      if (rooms.length === 0) return [];
      const byRoom = new Map<string, PublicRoomRow>(
        rooms.map((r) => [
          r.room_id,
          { roomId: r.room_id, joinedMembers: Number(r.joined), state: new Map() },
        ]),
      );
      if (stateTypes.length > 0) {
        const stateRows = await db
          .selectFrom('current_state as cs')
          .innerJoin('events as e', 'e.event_id', 'cs.event_id')
          .select(['cs.room_id', 'cs.type', 'e.pdu'])
          .where('cs.room_id', 'in', [...byRoom.keys()])
          .where('cs.state_key', '=', '')
          .where('cs.type', 'in', [...stateTypes])
          .execute();
        for (const row of stateRows) {
          const pdu = JSON.parse(row.pdu) as Pdu;
          byRoom.get(row.room_id)?.state.set(row.type, pdu.content);
        }
      }
      return [...byRoom.values()];
    },

    async countPublicRooms(filter) {
      const row = await publishedRooms(filter)
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .executeTakeFirstOrThrow();
      return Number(row.n);
    },
  };
}
