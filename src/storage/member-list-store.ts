/**
 * Member lists and a user's room list: current membership from `room_memberships`, past
 * membership from `membership_history`. Every list is read in pages (keyset on the user or
 * room ID) so a 100,000-member room never becomes one huge query.
 */
import { sql, type Kysely, type RawBuilder, type SqlBool } from 'kysely';
import {
  joinedProfileFits,
  joinedProfileTooLong,
} from './migrations/0009-joined-profiles-index.js';
import type { DialectName } from './database.js';
import { prepareQuery } from './prepared-query.js';
import { REMOVED } from './room-store.js';
import type { Database } from './schema.js';

/**
 * Which memberships to list: those in `memberships`, every one when it is absent. (The
 * spec's membership/not_membership combination is resolved to this set by the service.)
 */
export interface MembershipSelector {
  memberships?: readonly string[] | undefined;
}

/** Restricts member events by their sender. */
export interface SenderSelector {
  senders?: readonly string[] | undefined;
  notSenders?: readonly string[] | undefined;
}

export interface MemberRow {
  userId: string;
  membership: string;
  /**
   * The member event in the client format as stored at write time; for a redacted event,
   * its ID, to be presented from the PDU.
   */
  event: { clientJson: string } | { clientJson: null; eventId: string };
}

export interface JoinedProfileRow {
  userId: string;
  displayname: string | null;
  avatarUrl: string | null;
}

export interface UserRoomRow {
  roomId: string;
  membership: string;
}

export interface MemberListStore {
  /** Current members of the room after `afterUserId`, by user ID. */
  selectCurrentMembers(
    roomId: string,
    selector: MembershipSelector & SenderSelector,
    afterUserId: string,
    limit: number,
  ): Promise<MemberRow[]>;
  /** Members of the room as of stream position `position`, after `afterUserId`, by user ID. */
  selectMembersAt(
    roomId: string,
    position: number,
    selector: MembershipSelector & SenderSelector,
    afterUserId: string,
    limit: number,
  ): Promise<MemberRow[]>;
  /** Joined members with their profile, after `afterUserId`, by user ID. */
  selectJoinedProfiles(
    roomId: string,
    afterUserId: string,
    limit: number,
  ): Promise<JoinedProfileRow[]>;
  /** The user's rooms (forgotten ones left out), after `afterRoomId`, by room ID. */
  selectRoomsOfUser(
    userId: string,
    selector: MembershipSelector & {
      rooms?: readonly string[] | undefined;
      notRooms?: readonly string[] | undefined;
    },
    afterRoomId: string,
    limit: number,
  ): Promise<UserRoomRow[]>;
}

/**
 * The selected memberships; always true when all are. One membership is `column = …`, not an
 * IN list: with an IN list and `ORDER BY room_id LIMIT`, PostgreSQL 15 walked the whole
 * by-room index filtering on the user (163 ms for a page of a user's 20,000 rooms, against
 * 3.7 ms for the range of (user, membership) in the by-user index).
 */
function membershipCondition(column: string, selector: MembershipSelector): RawBuilder<SqlBool> {
  const { memberships } = selector;
  if (memberships === undefined) return sql<SqlBool>`1 = 1`;
  if (memberships.length === 0) return sql<SqlBool>`1 = 0`;
  if (memberships.length === 1) return sql<SqlBool>`${sql.ref(column)} = ${memberships[0]}`;
  return sql<SqlBool>`${sql.ref(column)} IN (${sql.join([...memberships])})`;
}

/** `senders` (none listed: nobody; '' pads the empty IN list) and `not_senders`. */
function senderCondition(column: string, selector: SenderSelector): RawBuilder<SqlBool> {
  const ref = sql.ref(column);
  const parts: RawBuilder<unknown>[] = [];
  if (selector.senders) parts.push(sql`${ref} IN (${sql.join([...selector.senders, ''])})`);
  if (selector.notSenders && selector.notSenders.length > 0)
    parts.push(sql`${ref} NOT IN (${sql.join([...selector.notSenders])})`);
  return parts.length === 0 ? sql<SqlBool>`1 = 1` : sql<SqlBool>`(${sql.join(parts, sql` AND `)})`;
}

/** `senderCondition` for one sender, in code. */
const senderPasses = (sender: string, selector: SenderSelector): boolean =>
  (selector.senders === undefined || selector.senders.includes(sender)) &&
  !(selector.notSenders ?? []).includes(sender);

const toMemberRow = (row: {
  user_id: string;
  membership: string;
  event_id: string;
  client_json: string | null;
}): MemberRow => ({
  userId: row.user_id,
  membership: row.membership,
  event:
    row.client_json !== null
      ? { clientJson: row.client_json }
      : { clientJson: null, eventId: row.event_id },
});

/**
 * One of the two parts of a page of the room's joined members with their profile: those whose
 * profile the index carries (all but a few), or those whose profile is too long for it (their
 * rows fetched from the table); each read from its partial index of migration 0009, an
 * ordered range scan that stops after a page (or at `upToUserId`).
 */
export function joinedProfilesPart(
  db: Kysely<Database>,
  part: 'fits' | 'too_long',
  roomId: string,
  afterUserId: string,
  limit: number,
  upToUserId?: string,
) {
  let query = db
    .selectFrom('room_memberships')
    .select(['user_id', 'displayname', 'avatar_url'])
    .where('room_id', '=', roomId)
    .where(part === 'fits' ? joinedProfileFits : joinedProfileTooLong)
    .where('user_id', '>', afterUserId);
  if (upToUserId !== undefined) query = query.where('user_id', '<=', upToUserId);
  return query.orderBy('user_id').limit(limit);
}

/**
 * Both parts merged in user order, for a page that has members of both. Each part keeps its
 * ORDER BY and LIMIT: PostgreSQL 15 does not merge the parts of a UNION ALL in order, so
 * without them it would read the room's whole list and sort it. (SQLite sorts each part's page
 * again for the merge, which is why the store reads the parts on their own when it can.)
 */
export function joinedProfilesMerged(
  db: Kysely<Database>,
  roomId: string,
  afterUserId: string,
  limit: number,
) {
  const part = (name: 'fits' | 'too_long') =>
    joinedProfilesPart(db, name, roomId, afterUserId, limit).as(name);
  return db
    .selectFrom((eb) =>
      eb
        .selectFrom(part('fits'))
        .selectAll()
        .unionAll(eb.selectFrom(part('too_long')).selectAll())
        .as('joined'),
    )
    .selectAll()
    .orderBy('user_id')
    .limit(limit);
}

const toJoinedProfileRow = (row: {
  user_id: string;
  displayname: string | null;
  avatar_url: string | null;
}): JoinedProfileRow => ({
  userId: row.user_id,
  displayname: row.displayname,
  avatarUrl: row.avatar_url,
});

export function memberListStore(db: Kysely<Database>, dialect: DialectName): MemberListStore {
  const joinedPage = prepareQuery(db, 3, (roomId: string, afterUserId: string, limit: number) =>
    joinedProfilesMerged(db, roomId, afterUserId, limit),
  );
  return {
    async selectCurrentMembers(roomId, selector, afterUserId, limit) {
      // One range scan: the row carries the event's client form and sender.
      const rows = await db
        .selectFrom('room_memberships')
        .select(['user_id', 'membership', 'event_id', 'client_json'])
        .where('room_id', '=', roomId)
        .where('user_id', '>', afterUserId)
        .where(membershipCondition('membership', selector))
        .where(senderCondition('sender', selector))
        .orderBy('user_id')
        .limit(limit)
        .execute();
      return rows.map(toMemberRow);
    },

    async selectMembersAt(roomId, position, selector, afterUserId, limit) {
      // In two steps, so that both databases walk the history in user order and stop after
      // a page: first the next users who had any membership by then (one ordered range scan
      // of the primary key), then the latest membership of just those users. (As one query
      // with the filters, PostgreSQL's planner, expecting few matches, read and sorted the
      // room's whole history for every page: 25 s for a 120,000-member room.)
      const found: MemberRow[] = [];
      let after = afterUserId;
      for (;;) {
        const users = await db
          .selectFrom('membership_history')
          .select('user_id')
          .where('room_id', '=', roomId)
          .where('user_id', '>', after)
          .where('stream_ordering', '<=', position)
          .groupBy('user_id')
          .orderBy('user_id')
          .limit(limit)
          .execute();
        const last = users[users.length - 1];
        if (!last) return found;
        const rows = await db
          .selectFrom('membership_history as mh')
          // By the events' primary key (a history row's position is its event's): walking the
          // big room's 60,001 members as of an old token, 1.19-1.32 s -> 0.95-1.0 s on
          // PostgreSQL and 0.75-0.78 s -> 0.58-0.61 s on SQLite, against the event_id index.
          // (Left: a change without an event at its position, such as the members a partial
          // state's completion adds, is read by its event ID below.)
          .leftJoin('events', 'events.stream_ordering', 'mh.stream_ordering')
          .select([
            'mh.user_id',
            'mh.membership',
            'mh.event_id',
            'events.client_json',
            'events.event_id as at_event_id',
          ])
          .where('mh.room_id', '=', roomId)
          .where(
            'mh.user_id',
            'in',
            users.map((u) => u.user_id),
          )
          .where('mh.stream_ordering', '=', (eb) =>
            eb
              .selectFrom('membership_history as later')
              .select((inner) => inner.fn.max('later.stream_ordering').as('latest'))
              .whereRef('later.room_id', '=', 'mh.room_id')
              .whereRef('later.user_id', '=', 'mh.user_id')
              .where('later.stream_ordering', '<=', position),
          )
          // A membership that state resolution removed is no membership at all.
          .where('mh.event_id', '!=', REMOVED)
          .where(membershipCondition('mh.membership', selector))
          .where(
            sql<SqlBool>`(${sql.ref('events.event_id')} IS NULL OR ${sql.ref('events.event_id')} <> ${sql.ref('mh.event_id')} OR ${senderCondition('events.sender', selector)})`,
          )
          .orderBy('mh.user_id')
          .execute();
        // A membership state resolution set to an event of another position (the room's past,
        // or another branch): that event, read by its ID (rare), with the sender filter here.
        const moved = rows.filter((row) => row.at_event_id !== row.event_id);
        const movedEvents =
          moved.length === 0
            ? new Map<string, { client_json: string | null; sender: string }>()
            : new Map(
                (
                  await db
                    .selectFrom('events')
                    .select(['event_id', 'client_json', 'sender'])
                    .where(
                      'event_id',
                      'in',
                      moved.map((row) => row.event_id),
                    )
                    .execute()
                ).map((e) => [e.event_id, e]),
              );
        for (const row of rows) {
          if (row.at_event_id === row.event_id) {
            found.push(toMemberRow(row));
            continue;
          }
          const event = movedEvents.get(row.event_id);
          if (!event || !senderPasses(event.sender, selector)) continue;
          found.push(toMemberRow({ ...row, client_json: event.client_json }));
        }
        if (found.length >= limit) return found.slice(0, limit);
        if (users.length < limit) return found;
        after = last.user_id;
      }
    },

    async selectJoinedProfiles(roomId, afterUserId, limit) {
      // PostgreSQL: both parts merged by the database in one statement, each part an index
      // range that stops after a page; a second statement would cost a round trip per page
      // (and per small room's whole list, as a client asking room after room would see).
      if (dialect === 'postgres')
        return (await joinedPage(roomId, afterUserId, limit)).map(toJoinedProfileRow);
      // SQLite, where a statement is a call and a merge sorts each part's page again: the
      // carried profiles' page, then whether any over-long profile falls within its range
      // (almost never): if none, that is the page; otherwise the database merges the two, so
      // the order is always its own (its collation), as for every list paged here.
      const fits = await joinedProfilesPart(db, 'fits', roomId, afterUserId, limit).execute();
      const last = fits.length === limit ? fits[fits.length - 1]?.user_id : undefined;
      const tooLong = await joinedProfilesPart(
        db,
        'too_long',
        roomId,
        afterUserId,
        1,
        last,
      ).execute();
      const rows =
        tooLong.length === 0
          ? fits
          : await joinedProfilesMerged(db, roomId, afterUserId, limit).execute();
      return rows.map(toJoinedProfileRow);
    },

    async selectRoomsOfUser(userId, selector, afterRoomId, limit) {
      let query = db
        .selectFrom('room_memberships')
        .select(['room_id', 'membership'])
        .where('user_id', '=', userId)
        .where('forgotten', '=', 0)
        .where('room_id', '>', afterRoomId)
        .where(membershipCondition('room_memberships.membership', selector));
      if (selector.rooms) query = query.where('room_id', 'in', [...selector.rooms, '']);
      if (selector.notRooms && selector.notRooms.length > 0)
        query = query.where('room_id', 'not in', [...selector.notRooms]);
      const rows = await query.orderBy('room_id').limit(limit).execute();
      return rows.map((r) => ({ roomId: r.room_id, membership: r.membership }));
    },
  };
}
