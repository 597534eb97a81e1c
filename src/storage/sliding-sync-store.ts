/**
 * The reads and writes of simplified sliding sync (MSC4186): a user's room list, counted and
 * read a window at a time (the user's memberships joined to `room_list_meta`, filtered and
 * ordered by the database: only the window's rows leave it), the per-room list metadata kept
 * with each event, and each connection's state (its position, the rooms and lazy members
 * already sent on it).
 */
import { sql, type ExpressionBuilder, type Kysely } from 'kysely';
import type { Database } from './schema.js';
import { slices } from './values-table.js';

export interface RoomListEntry {
  roomId: string;
  membership: string;
  /** Stream position of the user's membership event. */
  membershipPosition: number;
  /** Stream position of the room's latest bump event (0 when unknown). */
  bumpStamp: number;
  roomType: string | null;
  encrypted: boolean;
}

/** A room of a list, with the recency the list is ordered by (sent as `bump_stamp`). */
export interface ListedRoom extends RoomListEntry {
  sortKey: number;
}

/** Which of a user's rooms a list holds. */
export interface RoomListCriteria {
  userId: string;
  /** Rooms left (or banned from) after this position are listed too (null: none). */
  since: number | null;
  isEncrypted?: boolean | undefined;
  isInvite?: boolean | undefined;
  /** Room types to keep (null: rooms without a type). */
  roomTypes?: ReadonlyArray<string | null> | undefined;
  notRoomTypes?: ReadonlyArray<string | null> | undefined;
  /** Only these rooms (undefined: no such restriction). */
  onlyRooms?: readonly string[] | undefined;
  notRooms?: readonly string[] | undefined;
}

export interface RoomListMetaChange {
  bumpStamp?: number;
  roomType?: string;
  encrypted?: boolean;
}

export interface ConnectionRow {
  connectionId: string;
  pos: number;
  streamPosition: number;
  prevStreamPosition: number | null;
  listCounts: string;
  lastUsedTs: number;
}

export interface SentRoom {
  sentPosition: number;
  pos: number;
}

export interface SlidingSyncStore {
  /** How many rooms the list holds. */
  countRoomList(criteria: RoomListCriteria): Promise<number>;
  /** The list's rooms from `offset`, most recent first (then by room ID). */
  selectRoomListRange(
    criteria: RoomListCriteria,
    offset: number,
    limit: number,
  ): Promise<ListedRoom[]>;
  /** The user's memberships of the rooms named (forgotten ones left out), with list metadata. */
  selectRoomListEntries(userId: string, roomIds: readonly string[]): Promise<RoomListEntry[]>;
  /** The rooms the user is in, invited to or knocking on (what a long-poll watches). */
  selectCurrentRoomIds(userId: string): Promise<string[]>;
  /** Records a room's bump stamp, type or encryption (creating its row). */
  upsertRoomListMeta(roomId: string, change: RoomListMetaChange): Promise<void>;
  /** The user's room account data of one type, by room (content as JSON). */
  selectRoomAccountDataOfType(userId: string, type: string): Promise<Map<string, string>>;
  selectConnection(
    userId: string,
    deviceId: string,
    connId: string,
  ): Promise<ConnectionRow | undefined>;
  /** Creates (or replaces, forgetting what the old one was sent) the connection. */
  replaceConnection(
    userId: string,
    deviceId: string,
    connId: string,
    row: ConnectionRow,
  ): Promise<void>;
  updateConnection(connectionId: string, row: Omit<ConnectionRow, 'connectionId'>): Promise<void>;
  /** Forgets the rooms and members written in the response at `pos` (never received). */
  deleteSentAt(connectionId: string, pos: number): Promise<void>;
  selectSentRooms(connectionId: string, roomIds: readonly string[]): Promise<Map<string, SentRoom>>;
  upsertSentRooms(
    connectionId: string,
    rooms: ReadonlyArray<{ roomId: string; sentPosition: number }>,
    pos: number,
  ): Promise<void>;
  /** Of the (room, user) pairs given, those already sent, as `room\0user`. */
  selectSentMembers(connectionId: string, roomIds: readonly string[]): Promise<Set<string>>;
  insertSentMembers(
    connectionId: string,
    members: ReadonlyArray<{ roomId: string; userId: string }>,
    pos: number,
  ): Promise<void>;
  /** Deletes connections unused since `before` with everything they were sent. */
  deleteConnectionsUnusedSince(before: number): Promise<number>;
}

/** Memberships a list holds whatever its position. */
const CURRENT = ['join', 'invite', 'knock'] as const;

type Listing = ExpressionBuilder<
  Database & { m: Database['room_memberships']; r: Database['room_list_meta'] },
  'm' | 'r'
>;

/**
 * The recency a room is listed by: for a joined room the later of its latest bump event and
 * the join, for any other membership the membership event (the room's events are not the
 * user's to see).
 */
const sortKey = sql<
  number | string
>`CASE WHEN m.membership = 'join' AND r.bump_stamp > m.stream_ordering THEN r.bump_stamp ELSE m.stream_ordering END`;

const entryColumns = [
  'm.room_id',
  'm.membership',
  'm.stream_ordering',
  'r.bump_stamp',
  'r.room_type',
  'r.encrypted',
] as const;

function toEntry(r: {
  room_id: string;
  membership: string;
  stream_ordering: number | string;
  bump_stamp: number | string | null;
  room_type: string | null;
  encrypted: number | null;
}): RoomListEntry {
  return {
    roomId: r.room_id,
    membership: r.membership,
    membershipPosition: Number(r.stream_ordering),
    bumpStamp: r.bump_stamp === null ? 0 : Number(r.bump_stamp),
    roomType: r.room_type,
    encrypted: Number(r.encrypted ?? 0) === 1,
  };
}

type OfMemberships = ExpressionBuilder<Database & { m: Database['room_memberships'] }, 'm'>;

/** The criteria on the memberships alone (all but the room's type and encryption). */
function membershipsListed(eb: OfMemberships, c: RoomListCriteria) {
  const parts = [
    eb('m.user_id', '=', c.userId),
    eb('m.forgotten', '=', 0),
    c.since === null
      ? eb('m.membership', 'in', [...CURRENT])
      : eb.or([eb('m.membership', 'in', [...CURRENT]), eb('m.stream_ordering', '>', c.since)]),
  ];
  if (c.isInvite !== undefined) parts.push(eb('m.membership', c.isInvite ? '=' : '!=', 'invite'));
  if (c.onlyRooms) parts.push(eb('m.room_id', 'in', [...c.onlyRooms]));
  if (c.notRooms && c.notRooms.length > 0) parts.push(eb('m.room_id', 'not in', [...c.notRooms]));
  return eb.and(parts);
}

/** Criteria no room can meet (an empty list of rooms or types to keep). */
const nothingListed = (c: RoomListCriteria): boolean =>
  c.onlyRooms?.length === 0 || c.roomTypes?.length === 0;

/** A room type condition: `r.room_type` among `types`, where null stands for no type. */
function typeIn(eb: Listing, types: ReadonlyArray<string | null>) {
  const named = types.filter((t): t is string => t !== null);
  const parts = [];
  if (named.length > 0) parts.push(eb('r.room_type', 'in', named));
  if (types.includes(null)) parts.push(eb('r.room_type', 'is', null));
  return eb.or(parts);
}

/** The opposite of `typeIn`, written out (NOT IN is never true of a NULL room type). */
function typeNotIn(eb: Listing, types: ReadonlyArray<string | null>) {
  const named = types.filter((t): t is string => t !== null);
  if (types.includes(null))
    return named.length > 0
      ? eb.and([eb('r.room_type', 'is not', null), eb('r.room_type', 'not in', named)])
      : eb('r.room_type', 'is not', null);
  return eb.or([eb('r.room_type', 'is', null), eb('r.room_type', 'not in', named)]);
}

export function slidingSyncStore(db: Kysely<Database>): SlidingSyncStore {
  /** The user's rooms the criteria keep (no columns selected yet). */
  function listed(c: RoomListCriteria) {
    let query = db
      .selectFrom('room_memberships as m')
      .leftJoin('room_list_meta as r', 'r.room_id', 'm.room_id')
      .where((eb) => membershipsListed(eb, c));
    if (c.isEncrypted !== undefined)
      query = c.isEncrypted
        ? query.where('r.encrypted', '=', 1)
        : query.where((eb) => eb.or([eb('r.encrypted', 'is', null), eb('r.encrypted', '=', 0)]));
    const { roomTypes, notRoomTypes } = c;
    if (roomTypes) query = query.where((eb) => typeIn(eb, roomTypes));
    if (notRoomTypes && notRoomTypes.length > 0)
      query = query.where((eb) => typeNotIn(eb, notRoomTypes));
    return query;
  }

  async function deleteConnectionState(connectionIds: readonly string[]): Promise<void> {
    for (const part of slices(connectionIds)) {
      await db.deleteFrom('sliding_sync_rooms').where('connection_id', 'in', part).execute();
      await db.deleteFrom('sliding_sync_members').where('connection_id', 'in', part).execute();
    }
  }

  return {
    async countRoomList(criteria) {
      if (nothingListed(criteria)) return 0;
      // Without a condition on room_list_meta, the count is read from the index alone.
      const needsMeta =
        criteria.isEncrypted !== undefined ||
        criteria.roomTypes !== undefined ||
        (criteria.notRoomTypes?.length ?? 0) > 0;
      const row = needsMeta
        ? await listed(criteria)
            .select((eb) => eb.fn.countAll().as('n'))
            .executeTakeFirst()
        : await db
            .selectFrom('room_memberships as m')
            .where((eb) => membershipsListed(eb, criteria))
            .select((eb) => eb.fn.countAll().as('n'))
            .executeTakeFirst();
      return Number(row?.n ?? 0);
    },

    async selectRoomListRange(criteria, offset, limit) {
      if (nothingListed(criteria) || limit <= 0) return [];
      const rows = await listed(criteria)
        .select(entryColumns)
        .select(sortKey.as('sort_key'))
        .orderBy('sort_key', 'desc')
        .orderBy('m.room_id')
        .limit(limit)
        .offset(offset)
        .execute();
      return rows.map((r) => ({ ...toEntry(r), sortKey: Number(r.sort_key) }));
    },

    async selectRoomListEntries(userId, roomIds) {
      const out: RoomListEntry[] = [];
      for (const part of slices(roomIds)) {
        const rows = await db
          .selectFrom('room_memberships as m')
          .leftJoin('room_list_meta as r', 'r.room_id', 'm.room_id')
          .select(entryColumns)
          .where('m.user_id', '=', userId)
          .where('m.room_id', 'in', part)
          .where('m.forgotten', '=', 0)
          .execute();
        for (const r of rows) out.push(toEntry(r));
      }
      return out;
    },

    async selectCurrentRoomIds(userId) {
      const rows = await db
        .selectFrom('room_memberships')
        .select('room_id')
        .where('user_id', '=', userId)
        .where('membership', 'in', [...CURRENT])
        .execute();
      return rows.map((r) => r.room_id);
    },

    async upsertRoomListMeta(roomId, change) {
      const values = {
        room_id: roomId,
        bump_stamp: change.bumpStamp ?? 0,
        room_type: change.roomType ?? null,
        encrypted: change.encrypted === true ? 1 : 0,
      };
      const updates: { bump_stamp?: number; room_type?: string; encrypted?: number } = {};
      if (change.bumpStamp !== undefined) updates.bump_stamp = change.bumpStamp;
      if (change.roomType !== undefined) updates.room_type = change.roomType;
      if (change.encrypted !== undefined) updates.encrypted = change.encrypted ? 1 : 0;
      await db
        .insertInto('room_list_meta')
        .values(values)
        .onConflict((oc) =>
          Object.keys(updates).length === 0
            ? oc.column('room_id').doNothing()
            : oc.column('room_id').doUpdateSet(updates),
        )
        .execute();
    },

    async selectRoomAccountDataOfType(userId, type) {
      const rows = await db
        .selectFrom('account_data')
        .select(['room_id', 'content'])
        .where('user_id', '=', userId)
        .where('type', '=', type)
        .where('room_id', '!=', '')
        .execute();
      return new Map(rows.map((r) => [r.room_id, r.content]));
    },

    async selectConnection(userId, deviceId, connId) {
      const row = await db
        .selectFrom('sliding_sync_connections')
        .selectAll()
        .where('user_id', '=', userId)
        .where('device_id', '=', deviceId)
        .where('conn_id', '=', connId)
        .executeTakeFirst();
      if (!row) return undefined;
      return {
        connectionId: row.connection_id,
        pos: Number(row.pos),
        streamPosition: Number(row.stream_position),
        prevStreamPosition:
          row.prev_stream_position === null ? null : Number(row.prev_stream_position),
        listCounts: row.list_counts,
        lastUsedTs: Number(row.last_used_ts),
      };
    },

    async replaceConnection(userId, deviceId, connId, row) {
      const old = await db
        .selectFrom('sliding_sync_connections')
        .select('connection_id')
        .where('user_id', '=', userId)
        .where('device_id', '=', deviceId)
        .where('conn_id', '=', connId)
        .execute();
      await deleteConnectionState(old.map((o) => o.connection_id));
      await db
        .deleteFrom('sliding_sync_connections')
        .where('user_id', '=', userId)
        .where('device_id', '=', deviceId)
        .where('conn_id', '=', connId)
        .execute();
      await db
        .insertInto('sliding_sync_connections')
        .values({
          user_id: userId,
          device_id: deviceId,
          conn_id: connId,
          connection_id: row.connectionId,
          pos: row.pos,
          stream_position: row.streamPosition,
          prev_stream_position: row.prevStreamPosition,
          list_counts: row.listCounts,
          last_used_ts: row.lastUsedTs,
        })
        .execute();
    },

    async updateConnection(connectionId, row) {
      await db
        .updateTable('sliding_sync_connections')
        .set({
          pos: row.pos,
          stream_position: row.streamPosition,
          prev_stream_position: row.prevStreamPosition,
          list_counts: row.listCounts,
          last_used_ts: row.lastUsedTs,
        })
        .where('connection_id', '=', connectionId)
        .execute();
    },

    async deleteSentAt(connectionId, pos) {
      await db
        .deleteFrom('sliding_sync_rooms')
        .where('connection_id', '=', connectionId)
        .where('pos', '=', pos)
        .execute();
      await db
        .deleteFrom('sliding_sync_members')
        .where('connection_id', '=', connectionId)
        .where('pos', '=', pos)
        .execute();
    },

    async selectSentRooms(connectionId, roomIds) {
      const out = new Map<string, SentRoom>();
      for (const part of slices(roomIds)) {
        const rows = await db
          .selectFrom('sliding_sync_rooms')
          .select(['room_id', 'sent_position', 'pos'])
          .where('connection_id', '=', connectionId)
          .where('room_id', 'in', part)
          .execute();
        for (const r of rows)
          out.set(r.room_id, { sentPosition: Number(r.sent_position), pos: Number(r.pos) });
      }
      return out;
    },

    async upsertSentRooms(connectionId, rooms, pos) {
      for (const part of slices(rooms)) {
        await db
          .insertInto('sliding_sync_rooms')
          .values(
            part.map((r) => ({
              connection_id: connectionId,
              room_id: r.roomId,
              sent_position: r.sentPosition,
              pos,
            })),
          )
          .onConflict((oc) =>
            oc.columns(['connection_id', 'room_id']).doUpdateSet((eb) => ({
              sent_position: eb.ref('excluded.sent_position'),
              pos: eb.ref('excluded.pos'),
            })),
          )
          .execute();
      }
    },

    async selectSentMembers(connectionId, roomIds) {
      const out = new Set<string>();
      for (const part of slices(roomIds)) {
        const rows = await db
          .selectFrom('sliding_sync_members')
          .select(['room_id', 'user_id'])
          .where('connection_id', '=', connectionId)
          .where('room_id', 'in', part)
          .execute();
        for (const r of rows) out.add(`${r.room_id}\u0000${r.user_id}`);
      }
      return out;
    },

    async insertSentMembers(connectionId, members, pos) {
      for (const part of slices(members)) {
        await db
          .insertInto('sliding_sync_members')
          .values(
            part.map((m) => ({
              connection_id: connectionId,
              room_id: m.roomId,
              user_id: m.userId,
              pos,
            })),
          )
          .onConflict((oc) => oc.columns(['connection_id', 'room_id', 'user_id']).doNothing())
          .execute();
      }
    },

    async deleteConnectionsUnusedSince(before) {
      const old = await db
        .selectFrom('sliding_sync_connections')
        .select('connection_id')
        .where('last_used_ts', '<', before)
        .execute();
      const ids = old.map((o) => o.connection_id);
      await deleteConnectionState(ids);
      for (const part of slices(ids))
        await db
          .deleteFrom('sliding_sync_connections')
          .where('connection_id', 'in', part)
          .execute();
      return ids.length;
    },
  };
}
