/**
 * What the admin API reads and changes beyond the other stores: pages of users and rooms with
 * filters and orderings, the admin flag, registration tokens and content reports. Pages are
 * offset-based, as Synapse's admin API is (its `from` is an offset).
 */
import { sql, type Kysely, type RawBuilder } from 'kysely';
import type { DialectName } from './database.js';
import type { Database } from './schema.js';
import type { Announce } from './stream-store.js';
import { takeNextPosition } from './stream-store.js';

export type SortDirection = 'f' | 'b';

export const USER_ORDERS = [
  'name',
  'admin',
  'deactivated',
  'displayname',
  'avatar_url',
  'creation_ts',
] as const;
export type UserOrder = (typeof USER_ORDERS)[number];

export interface UserQuery {
  /** Substring of the user ID. */
  userIdContains?: string | undefined;
  /** Substring of the user ID or the display name. */
  nameContains?: string | undefined;
  /** Only admins (true) or only non-admins (false); both when undefined. */
  admins?: boolean | undefined;
  /** Whether deactivated users are listed too. */
  includeDeactivated: boolean;
  orderBy: UserOrder;
  dir: SortDirection;
  offset: number;
  limit: number;
}

export interface AdminUserRow {
  userId: string;
  isAdmin: boolean;
  deactivated: boolean;
  displayname: string | null;
  avatarUrl: string | null;
  creationTs: number;
  /** Shadow-banned by an admin (migration 0062). */
  shadowBanned: boolean;
}

export const ROOM_ORDERS = [
  'name',
  'canonical_alias',
  'joined_members',
  'joined_local_members',
  'version',
  'creator',
  'public',
  'state_events',
] as const;
export type RoomOrder = (typeof ROOM_ORDERS)[number];

export interface RoomQuery {
  /** Part of the room's name or canonical alias, or its whole room ID. */
  searchTerm?: string | undefined;
  orderBy: RoomOrder;
  dir: SortDirection;
  offset: number;
  limit: number;
}

export interface AdminRoomRow {
  roomId: string;
  roomVersion: string;
  creator: string;
  isPublic: boolean;
  joinedMembers: number;
  joinedLocalMembers: number;
  stateEvents: number;
}

export interface RegistrationTokenRow {
  token: string;
  usesAllowed: number | null;
  pending: number;
  completed: number;
  expiryTime: number | null;
}

export interface NewContentReport {
  receivedTs: number;
  reporter: string;
  roomId: string | null;
  eventId: string | null;
  targetUserId: string | null;
  reason: string | null;
  score: number | null;
}

export interface ContentReportRow extends NewContentReport {
  id: number;
}

export interface ReportQuery {
  roomId?: string | undefined;
  /** The reporter. */
  userId?: string | undefined;
  /** Only reports of events (true), or only of rooms and users (false). */
  ofEvents: boolean;
  dir: SortDirection;
  offset: number;
  limit: number;
}

export interface AdminStore {
  selectUsers(query: UserQuery): Promise<{ rows: AdminUserRow[]; total: number }>;
  selectUserDetails(userId: string): Promise<AdminUserRow | undefined>;
  /** Sets the admin flag and announces the user's sessions as changed; false: no such user. */
  updateAdmin(userId: string, isAdmin: boolean): Promise<boolean>;
  /** Clears the deactivated flag (reactivation). */
  updateReactivated(userId: string): Promise<void>;
  selectRooms(
    query: RoomQuery,
    serverName: string,
  ): Promise<{ rows: AdminRoomRow[]; total: number }>;
  selectRoomCounts(roomId: string, serverName: string): Promise<AdminRoomRow | undefined>;

  selectRegistrationTokens(): Promise<RegistrationTokenRow[]>;
  selectRegistrationToken(token: string): Promise<RegistrationTokenRow | undefined>;
  /** false when the token exists already. */
  insertRegistrationToken(row: RegistrationTokenRow): Promise<boolean>;
  updateRegistrationToken(
    token: string,
    change: { usesAllowed?: number | null; expiryTime?: number | null },
  ): Promise<RegistrationTokenRow | undefined>;
  deleteRegistrationToken(token: string): Promise<boolean>;
  /**
   * Counts a completed registration with the token if it is still valid at `now` (not
   * expired, uses left); false when it is not (nothing is counted).
   */
  updateTokenCompleted(token: string, now: number): Promise<boolean>;

  insertReport(report: NewContentReport): Promise<number>;
  selectReports(query: ReportQuery): Promise<{ rows: ContentReportRow[]; total: number }>;
  selectReport(id: number): Promise<ContentReportRow | undefined>;
  deleteReport(id: number): Promise<boolean>;
}

/** A LIKE pattern matching `text` anywhere, with its wildcards escaped (ESCAPE '\'). */
function containsPattern(text: string): string {
  return `%${text.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/** `expr LIKE pattern` on lower-cased text, the same on both databases. */
function likeLower(expr: RawBuilder<unknown>, text: string): RawBuilder<boolean> {
  return sql<boolean>`lower(${expr}) LIKE ${containsPattern(text)} ESCAPE '\\'`;
}

/** A text field of a JSON text column: `$.content.<field>`. */
function contentField(dialect: DialectName, column: RawBuilder<unknown>, field: string) {
  return dialect === 'sqlite'
    ? sql<string | null>`json_extract(${column}, ${`$.content.${field}`})`
    : sql<string | null>`((${column})::jsonb -> 'content' ->> ${field})`;
}

const toUserRow = (row: {
  user_id: string;
  is_admin: number;
  deactivated: number;
  displayname: string | null;
  avatar_url: string | null;
  created_ts: number;
  shadow_banned: number | null;
}): AdminUserRow => ({
  userId: row.user_id,
  isAdmin: Number(row.is_admin) === 1,
  deactivated: Number(row.deactivated) === 1,
  displayname: row.displayname,
  avatarUrl: row.avatar_url,
  creationTs: Number(row.created_ts),
  shadowBanned: Number(row.shadow_banned ?? 0) === 1,
});

const toTokenRow = (row: {
  token: string;
  uses_allowed: number | null;
  pending: number;
  completed: number;
  expiry_time: number | null;
}): RegistrationTokenRow => ({
  token: row.token,
  usesAllowed: row.uses_allowed === null ? null : Number(row.uses_allowed),
  pending: Number(row.pending),
  completed: Number(row.completed),
  expiryTime: row.expiry_time === null ? null : Number(row.expiry_time),
});

const toReportRow = (row: {
  id: number;
  received_ts: number;
  reporter: string;
  room_id: string | null;
  event_id: string | null;
  target_user_id: string | null;
  reason: string | null;
  score: number | null;
}): ContentReportRow => ({
  id: Number(row.id),
  receivedTs: Number(row.received_ts),
  reporter: row.reporter,
  roomId: row.room_id,
  eventId: row.event_id,
  targetUserId: row.target_user_id,
  reason: row.reason,
  score: row.score === null ? null : Number(row.score),
});

export function adminStore(
  db: Kysely<Database>,
  dialect: DialectName,
  announce: Announce,
): AdminStore {
  const userColumns = [
    'users.user_id',
    'users.is_admin',
    'users.deactivated',
    'users.created_ts',
    'profiles.displayname',
    'profiles.avatar_url',
    'user_moderation.shadow_banned',
  ] as const;

  function roomsQuery(serverName: string) {
    const localSuffix = `%:${serverName.replace(/[\\%_]/g, (c) => `\\${c}`)}`;
    const stateText = (type: string) =>
      sql`(SELECT e.client_json FROM current_state cs JOIN events e ON e.event_id = cs.event_id
            WHERE cs.room_id = r.room_id AND cs.type = ${type} AND cs.state_key = '')`;
    return db.selectFrom('rooms as r').select([
      'r.room_id',
      'r.room_version',
      'r.creator',
      'r.is_public',
      sql<number>`(SELECT count(*) FROM room_memberships m
            WHERE m.room_id = r.room_id AND m.membership = 'join')`.as('joined_members'),
      sql<number>`(SELECT count(*) FROM room_memberships m
            WHERE m.room_id = r.room_id AND m.membership = 'join'
            AND m.user_id LIKE ${localSuffix} ESCAPE '\\')`.as('joined_local_members'),
      sql<number>`(SELECT count(*) FROM current_state cs WHERE cs.room_id = r.room_id)`.as(
        'state_events',
      ),
      contentField(dialect, stateText('m.room.name'), 'name').as('name'),
      contentField(dialect, stateText('m.room.canonical_alias'), 'alias').as('canonical_alias'),
    ]);
  }

  type RoomQueryRow = {
    room_id: string;
    room_version: string;
    creator: string;
    is_public: number;
    joined_members: number;
    joined_local_members: number;
    state_events: number;
  };
  const toRoomRow = (row: RoomQueryRow): AdminRoomRow => ({
    roomId: row.room_id,
    roomVersion: row.room_version,
    creator: row.creator,
    isPublic: Number(row.is_public) === 1,
    joinedMembers: Number(row.joined_members),
    joinedLocalMembers: Number(row.joined_local_members),
    stateEvents: Number(row.state_events),
  });

  return {
    async selectUsers(query) {
      let base = db
        .selectFrom('users')
        .leftJoin('profiles', 'profiles.user_id', 'users.user_id')
        .leftJoin('user_moderation', 'user_moderation.user_id', 'users.user_id')
        .where(sql<boolean>`1 = 1`);
      if (!query.includeDeactivated) base = base.where('users.deactivated', '=', 0);
      if (query.admins !== undefined)
        base = base.where('users.is_admin', '=', query.admins ? 1 : 0);
      if (query.userIdContains !== undefined) {
        base = base.where(likeLower(sql`users.user_id`, query.userIdContains));
      }
      if (query.nameContains !== undefined) {
        const text = query.nameContains;
        base = base.where((eb) =>
          eb.or([
            likeLower(sql`users.user_id`, text),
            likeLower(sql`coalesce(profiles.displayname, '')`, text),
          ]),
        );
      }
      const column = {
        name: sql`users.user_id`,
        admin: sql`users.is_admin`,
        deactivated: sql`users.deactivated`,
        displayname: sql`coalesce(profiles.displayname, '')`,
        avatar_url: sql`coalesce(profiles.avatar_url, '')`,
        creation_ts: sql`users.created_ts`,
      }[query.orderBy];
      const direction = query.dir === 'b' ? sql`DESC` : sql`ASC`;
      const rows = await base
        .select([...userColumns])
        .orderBy(sql`${column} ${direction}`)
        .orderBy('users.user_id', query.dir === 'b' ? 'desc' : 'asc')
        .limit(query.limit)
        .offset(query.offset)
        .execute();
      const count = await base.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirst();
      return { rows: rows.map(toUserRow), total: Number(count?.n ?? 0) };
    },

    async selectUserDetails(userId) {
      const row = await db
        .selectFrom('users')
        .leftJoin('profiles', 'profiles.user_id', 'users.user_id')
        .leftJoin('user_moderation', 'user_moderation.user_id', 'users.user_id')
        .select([...userColumns])
        .where('users.user_id', '=', userId)
        .executeTakeFirst();
      return row ? toUserRow(row) : undefined;
    },

    async updateAdmin(userId, isAdmin) {
      const result = await db
        .updateTable('users')
        .set({ is_admin: isAdmin ? 1 : 0 })
        .where('user_id', '=', userId)
        .executeTakeFirst();
      if (Number(result.numUpdatedRows) === 0) return false;
      // Cached sessions hold the flag: every process drops this user's.
      await announce({ sessions: [userId] });
      return true;
    },

    async updateReactivated(userId) {
      await db.updateTable('users').set({ deactivated: 0 }).where('user_id', '=', userId).execute();
      await db.deleteFrom('pending_deactivations').where('user_id', '=', userId).execute();
    },

    async selectRooms(query, serverName) {
      let inner = db.selectFrom(roomsQuery(serverName).as('q')).selectAll();
      if (query.searchTerm !== undefined) {
        const term = query.searchTerm;
        inner = inner.where((eb) =>
          eb.or([
            likeLower(sql`coalesce(q.name, '')`, term),
            likeLower(sql`coalesce(q.canonical_alias, '')`, term),
            eb('q.room_id', '=', term),
          ]),
        );
      }
      const column = {
        name: sql`coalesce(q.name, '')`,
        canonical_alias: sql`coalesce(q.canonical_alias, '')`,
        joined_members: sql`q.joined_members`,
        joined_local_members: sql`q.joined_local_members`,
        version: sql`q.room_version`,
        creator: sql`q.creator`,
        public: sql`q.is_public`,
        state_events: sql`q.state_events`,
      }[query.orderBy];
      const direction = query.dir === 'b' ? sql`DESC` : sql`ASC`;
      const rows = await inner
        .orderBy(sql`${column} ${direction}`)
        .orderBy('q.room_id', query.dir === 'b' ? 'desc' : 'asc')
        .limit(query.limit)
        .offset(query.offset)
        .execute();
      const count = await inner
        .clearSelect()
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .executeTakeFirst();
      return { rows: rows.map(toRoomRow), total: Number(count?.n ?? 0) };
    },

    async selectRoomCounts(roomId, serverName) {
      const row = await roomsQuery(serverName).where('r.room_id', '=', roomId).executeTakeFirst();
      return row ? toRoomRow(row) : undefined;
    },

    async selectRegistrationTokens() {
      const rows = await db
        .selectFrom('registration_tokens')
        .selectAll()
        .orderBy('token')
        .execute();
      return rows.map(toTokenRow);
    },

    async selectRegistrationToken(token) {
      const row = await db
        .selectFrom('registration_tokens')
        .selectAll()
        .where('token', '=', token)
        .executeTakeFirst();
      return row ? toTokenRow(row) : undefined;
    },

    async insertRegistrationToken(row) {
      const result = await db
        .insertInto('registration_tokens')
        .values({
          token: row.token,
          uses_allowed: row.usesAllowed,
          pending: row.pending,
          completed: row.completed,
          expiry_time: row.expiryTime,
        })
        .onConflict((oc) => oc.column('token').doNothing())
        .executeTakeFirst();
      return Number(result.numInsertedOrUpdatedRows ?? 0) > 0;
    },

    async updateRegistrationToken(token, change) {
      const set: { uses_allowed?: number | null; expiry_time?: number | null } = {};
      if (change.usesAllowed !== undefined) set.uses_allowed = change.usesAllowed;
      if (change.expiryTime !== undefined) set.expiry_time = change.expiryTime;
      if (Object.keys(set).length > 0) {
        await db.updateTable('registration_tokens').set(set).where('token', '=', token).execute();
      }
      const row = await db
        .selectFrom('registration_tokens')
        .selectAll()
        .where('token', '=', token)
        .executeTakeFirst();
      return row ? toTokenRow(row) : undefined;
    },

    async deleteRegistrationToken(token) {
      const result = await db
        .deleteFrom('registration_tokens')
        .where('token', '=', token)
        .executeTakeFirst();
      return Number(result.numDeletedRows) > 0;
    },

    async updateTokenCompleted(token, now) {
      const result = await db
        .updateTable('registration_tokens')
        .set((eb) => ({ completed: eb('completed', '+', 1) }))
        .where('token', '=', token)
        .where((eb) => eb.or([eb('expiry_time', 'is', null), eb('expiry_time', '>', now)]))
        .where((eb) =>
          eb.or([
            eb('uses_allowed', 'is', null),
            eb(eb('pending', '+', eb.ref('completed')), '<', eb.ref('uses_allowed')),
          ]),
        )
        .executeTakeFirst();
      return Number(result.numUpdatedRows) > 0;
    },

    async insertReport(report) {
      const id = await takeNextPosition(db, 'content_reports');
      await db
        .insertInto('content_reports')
        .values({
          id,
          received_ts: report.receivedTs,
          reporter: report.reporter,
          room_id: report.roomId,
          event_id: report.eventId,
          target_user_id: report.targetUserId,
          reason: report.reason,
          score: report.score,
        })
        .execute();
      return id;
    },

    async selectReports(query) {
      let base = db
        .selectFrom('content_reports')
        .where('event_id', query.ofEvents ? 'is not' : 'is', null);
      if (query.roomId !== undefined) base = base.where('room_id', '=', query.roomId);
      if (query.userId !== undefined) base = base.where('reporter', '=', query.userId);
      const rows = await base
        .selectAll()
        .orderBy('id', query.dir === 'f' ? 'asc' : 'desc')
        .limit(query.limit)
        .offset(query.offset)
        .execute();
      const count = await base.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirst();
      return { rows: rows.map(toReportRow), total: Number(count?.n ?? 0) };
    },

    async selectReport(id) {
      const row = await db
        .selectFrom('content_reports')
        .selectAll()
        .where('id', '=', id)
        .executeTakeFirst();
      return row ? toReportRow(row) : undefined;
    },

    async deleteReport(id) {
      const result = await db.deleteFrom('content_reports').where('id', '=', id).executeTakeFirst();
      return Number(result.numDeletedRows) > 0;
    },
  };
}
