/**
 * Who is in a room, and which rooms a user is in: `/members` (now, or as of a stream token;
 * for former members as of their leaving), `/joined_members`, `/joined_rooms` and the
 * MSC2895 room listing. Long lists come out in batches, with the event loop free between
 * them, so a 100,000-member room never holds up other requests for long.
 */
import { forbidden, invalidParam } from '../core/errors.js';
import type { ClientEvent } from '../core/client-event.js';
import type { RoomVersionId } from '../core/pdu.js';
import { parseStreamToken } from '../core/stream-token.js';
import type { EventRow, StreamChange } from '../storage/index.js';
import { statementsHoldProcess, type Requester, type ServiceContext } from './context.js';
import { createUserCache } from './user-cache.js';
import { LIST_PAGING, keysetPages, type KeysetPaging } from './keyset-pages.js';
import type { RoomEventFilter } from './timeline.js';

export const MEMBERSHIPS = ['join', 'invite', 'knock', 'leave', 'ban'] as const;
export type Membership = (typeof MEMBERSHIPS)[number];

export interface MemberQuery {
  /** A stream token (`/messages`, `/sync`): the members as of that point. */
  at?: string | undefined;
  /** Spec: a membership in `memberships` or not in `notMemberships` (either, when both). */
  memberships?: readonly string[] | undefined;
  notMemberships?: readonly string[] | undefined;
  /** MSC2895 option 2: `membership`, `limit`, `senders`, `not_senders` apply (and). */
  filter?: RoomEventFilter | undefined;
}

export interface JoinedProfile {
  display_name?: string;
  avatar_url?: string;
}

/**
 * A member list's answer: its whole body when this process holds it, otherwise the body's
 * opening, its entries (serialised: member events for `/members`, `"@user:server":{…}` for
 * `/joined_members`) in batches, and its closing.
 */
export type MemberListAnswer =
  { body: Buffer } | { open: string; entries: AsyncGenerator<string[]>; close: string };
export type JoinedMembersAnswer = MemberListAnswer;

/** A kept `/joined_members` body and the members it lists. */
interface JoinedBody {
  body: Buffer;
  members: ReadonlySet<string>;
}

const JOINED_OPEN = '{"joined":{';
const JOINED_CLOSE = '}}';
const MEMBERS_OPEN = '{"chunk":[';
const MEMBERS_CLOSE = ']}';
/** Rooms whose `/joined_members` body a process keeps, and the most they may add up to. */
const JOINED_BODY_CACHE_ROOMS = 10_000;
const JOINED_BODY_CACHE_BYTES = 64 * 1024 * 1024;
/** `/members` bodies kept (per room, point in time and memberships), and their total size. */
const MEMBERS_BODY_CACHE_ENTRIES = 2_000;
const MEMBERS_BODY_CACHE_BYTES = 128 * 1024 * 1024;
/** A body over this is streamed every time rather than kept (a room of ~40,000 members). */
const BODY_MAX_BYTES = 16 * 1024 * 1024;
/** `/joined_rooms` bodies kept, one per user. */
const JOINED_ROOMS_CACHE_USERS = 10_000;
const JOINED_ROOMS_CACHE_BYTES = 32 * 1024 * 1024;

export interface RoomListingQuery {
  memberships?: readonly string[] | undefined;
  filter?: RoomEventFilter | undefined;
}

/** A user's rooms are read in larger pages: their rows are small and in one index range. */
const ROOM_PAGING: KeysetPaging = { maxSize: 5000, minSize: 500, slowReadMs: 25 };

/**
 * The memberships a member list includes, as one explicit set: the spec's "or" of
 * `membership`/`not_membership`, and (and) the filter's `membership`. Null: no restriction.
 */
export function selectedMemberships(
  memberships: readonly string[] | undefined,
  notMemberships: readonly string[] | undefined,
  filterMemberships: readonly string[] | undefined,
): Membership[] | null {
  const hasIn = memberships !== undefined && memberships.length > 0;
  const hasNotIn = notMemberships !== undefined && notMemberships.length > 0;
  let chosen: Membership[] = [...MEMBERSHIPS];
  if (hasIn || hasNotIn) {
    chosen = chosen.filter(
      (m) => (hasIn && memberships.includes(m)) || (hasNotIn && !notMemberships.includes(m)),
    );
  }
  if (filterMemberships !== undefined) chosen = chosen.filter((m) => filterMemberships.includes(m));
  return chosen.length === MEMBERSHIPS.length ? null : chosen;
}

async function* emptyPages<T>(): AsyncGenerator<T[]> {}

async function* mapPages<T, U>(
  pages: AsyncIterable<T[]>,
  map: (rows: T[]) => U[] | Promise<U[]>,
): AsyncGenerator<U[]> {
  for await (const rows of pages) yield await map(rows);
}

export function createMemberListService(
  ctx: ServiceContext,
  present: (row: EventRow, version: RoomVersionId) => Promise<ClientEvent>,
  /** Waits until a room joined with partial state has its full state (see partial-state.ts). */
  awaitFullState?: (roomIds: readonly string[]) => Promise<void>,
) {
  const stores = () => ctx.storage.stores;
  const adaptive = statementsHoldProcess(ctx);
  const listPaging: KeysetPaging = { ...LIST_PAGING, adaptive };
  const roomPaging: KeysetPaging = { ...ROOM_PAGING, adaptive };
  /** Response bodies as bytes, at most `max` of them and `maxBytes` in all. */
  const bodyCache = <V = Buffer>(
    stat: string,
    max: number,
    maxBytes: number,
    usersNamedBy: (change: StreamChange) => readonly string[] | undefined,
    sizeOf: (value: V) => number = (body) => (body as Buffer).length,
  ) =>
    createUserCache<V>(ctx.storage.changes, {
      max,
      maxSize: maxBytes,
      sizeOf,
      usersNamedBy,
      stats: ctx.cacheStats?.counter(stat),
    });
  // Each room's `/joined_members` body, dropped in every process by a member event in the
  // room (`memberRooms` of the change feed): bridges and bots ask for the same rooms' lists
  // again and again, and between two member events the answer cannot change.
  // With the body, its members: a member in it is joined (until the next member event drops
  // it), so the body is answered without reading the requester's membership.
  const joinedBodies = bodyCache<JoinedBody>(
    'joined_members_bodies',
    JOINED_BODY_CACHE_ROOMS,
    JOINED_BODY_CACHE_BYTES,
    (change) => change.memberRooms,
    // The body's bytes, and about as much again for its members' set.
    (kept) => kept.body.length * 2,
  );
  // Each `/members` body, by room, point in time ("now" or a stream position) and
  // memberships; dropped like the `/joined_members` bodies by a member event in the room (a
  // past point's list cannot change, but a redaction changes how its events read). The body
  // is the same for everyone who may see it: the requester is checked before it is looked up.
  const memberBodies = bodyCache(
    'members_bodies',
    MEMBERS_BODY_CACHE_ENTRIES,
    MEMBERS_BODY_CACHE_BYTES,
    (change) => change.memberRooms,
  );
  // Each user's `/joined_rooms` body, dropped by any change of the user's own (a membership
  // among them).
  const joinedRoomsBodies = bodyCache(
    'joined_rooms_bodies',
    JOINED_ROOMS_CACHE_USERS,
    JOINED_ROOMS_CACHE_BYTES,
    (change) => change.users,
  );

  /**
   * The answer for a list not held: its entries as they are read, kept (under `key`, dropped
   * by changes naming `roomId`) once the last is read, unless a change came meanwhile (the
   * ticket), the body grew too large, or the reader stopped.
   */
  function keptWhenRead(
    keep: (body: Buffer) => void,
    frame: { open: string; close: string },
    pages: AsyncIterable<string[]>,
  ): MemberListAnswer {
    async function* keeping(): AsyncGenerator<string[]> {
      let parts: string[] | null = [];
      let bytes = frame.open.length + frame.close.length;
      for await (const entries of pages) {
        if (parts) {
          for (const entry of entries) bytes += entry.length + 1;
          if (bytes > BODY_MAX_BYTES) parts = null;
          else parts.push(...entries);
        }
        yield entries;
      }
      if (parts) keep(Buffer.from(`${frame.open}${parts.join(',')}${frame.close}`));
    }
    return { open: frame.open, entries: keeping(), close: frame.close };
  }

  /**
   * The newest position the requester may see members at: null for "now" (joined), the
   * position of their leaving for a former member (also when invited or knocking again);
   * 403 for anyone never joined, and for a former member who forgot the room.
   */
  async function visibleUntil(roomId: string, userId: string): Promise<number | null> {
    const membership = await stores().rooms.selectMembership(roomId, userId);
    if (!membership || membership.forgotten) throw forbidden('You are not a member of this room');
    const history = await stores().rooms.selectMembershipHistory(roomId, userId);
    const current = history[history.length - 1];
    if (current?.membership === 'join') return null;
    let lastJoin = -1;
    history.forEach((entry, i) => {
      if (entry.membership === 'join') lastJoin = i;
    });
    const leaving = history[lastJoin + 1];
    if (lastJoin < 0 || !leaving) throw forbidden('You are not a member of this room');
    return leaving.streamOrdering;
  }

  /**
   * The `/joined_members` body when this process holds it and the requester is among its
   * members (so joined: a member event in the room would have dropped it); else undefined,
   * and `joinedMembers` answers.
   */
  function heldJoinedMembers(requester: Requester, roomId: string): Buffer | undefined {
    const kept = joinedBodies.get(roomId);
    return kept?.members.has(requester.userId) ? kept.body : undefined;
  }

  /** A (redacted) event presented from its PDU, serialised. */
  async function presentStored(eventId: string, version: RoomVersionId): Promise<string> {
    const row = await stores().rooms.selectEvent(eventId);
    if (!row) throw new Error(`member event ${eventId} is missing`);
    return JSON.stringify(await present(row, version));
  }

  return {
    /**
     * The room's member events, serialised in the client format, in batches. Access,
     * parameters and the first batch are dealt with before this resolves, so errors come out
     * as errors, not as a broken stream.
     */
    async members(
      requester: Requester,
      roomId: string,
      query: MemberQuery,
    ): Promise<MemberListAnswer> {
      let at: number | null = null;
      if (query.at !== undefined) {
        at = parseStreamToken(query.at);
        if (at === null) throw invalidParam('Invalid at token');
      }
      const current = await stores().rooms.selectCurrentStreamPosition();
      // Every token handed out is at or before the committed position: a later one was
      // never issued, and answering it with the present would hide the mistake. (Checked
      // first: a malformed request is 400 whoever sends it.)
      if (at !== null && at > current) throw invalidParam('Unknown at token');
      const room = await stores().rooms.selectRoom(roomId);
      if (!room) throw forbidden('You are not a member of this room');
      const version = room.roomVersion as RoomVersionId;
      const until = await visibleUntil(roomId, requester.userId);
      await awaitFullState?.([roomId]);
      let position = Math.min(at ?? current, until ?? current);
      const asOfNow = position >= current;
      if (asOfNow) position = current;
      const chosen = selectedMemberships(
        query.memberships,
        query.notMemberships,
        query.filter?.membership,
      );
      const selector = {
        memberships: chosen ?? undefined,
        senders: query.filter?.senders,
        notSenders: query.filter?.not_senders,
      };
      const limit = query.filter?.limit ?? Number.POSITIVE_INFINITY;
      const memberLists = stores().memberLists;
      const frame = { open: MEMBERS_OPEN, close: MEMBERS_CLOSE };

      if (chosen?.length === 0) return { ...frame, entries: emptyPages<string>() };
      // Lists by membership alone are kept (senders and limits are rare: read each time).
      const keyed =
        selector.senders === undefined &&
        selector.notSenders === undefined &&
        limit === Number.POSITIVE_INFINITY;
      const key = keyed
        ? `${roomId}\u0000${asOfNow ? 'now' : position}\u0000${chosen?.join(',') ?? '*'}`
        : null;
      if (key !== null) {
        const kept = memberBodies.get(key);
        if (kept) return { body: kept };
      }
      const ticket = memberBodies.ticket();
      const pages = await keysetPages(
        (after, size) =>
          asOfNow
            ? memberLists.selectCurrentMembers(roomId, selector, after, size)
            : memberLists.selectMembersAt(roomId, position, selector, after, size),
        (row) => row.userId,
        { ...listPaging, limit },
      );
      // Stored client JSON as it is; a redacted event is presented from its PDU.
      const entries = mapPages(pages, (rows) =>
        Promise.all(
          rows.map(({ event }) =>
            event.clientJson !== null ? event.clientJson : presentStored(event.eventId, version),
          ),
        ),
      );
      return key !== null
        ? keptWhenRead((body) => memberBodies.set(key, body, [roomId], ticket), frame, entries)
        : { ...frame, entries };
    },

    /**
     * Current joined members with their profiles, as `{"joined":{…}}`; only for joined
     * members. The body is kept (`joinedBodies`) and answered whole until a member event.
     */
    async joinedMembers(requester: Requester, roomId: string): Promise<JoinedMembersAnswer> {
      const held = heldJoinedMembers(requester, roomId);
      if (held) return { body: held };
      const membership = await stores().rooms.selectMembership(roomId, requester.userId);
      if (membership?.membership !== 'join') throw forbidden('You are not joined to this room');
      await awaitFullState?.([roomId]);
      const kept = heldJoinedMembers(requester, roomId);
      if (kept) return { body: kept };
      const ticket = joinedBodies.ticket();
      const memberLists = stores().memberLists;
      const pages = await keysetPages(
        (after, size) => memberLists.selectJoinedProfiles(roomId, after, size),
        (row) => row.userId,
        listPaging,
      );
      const members = new Set<string>();
      const entries = mapPages(pages, (rows) =>
        rows.map((row) => {
          members.add(row.userId);
          const profile: JoinedProfile = {
            ...(row.displayname !== null ? { display_name: row.displayname } : {}),
            ...(row.avatarUrl !== null ? { avatar_url: row.avatarUrl } : {}),
          };
          return `${JSON.stringify(row.userId)}:${JSON.stringify(profile)}`;
        }),
      );
      return keptWhenRead(
        (body) => joinedBodies.set(roomId, { body, members }, [roomId], ticket),
        { open: JOINED_OPEN, close: JOINED_CLOSE },
        entries,
      );
    },

    heldJoinedMembers,

    /** The `/joined_rooms` body when this process holds it; else `joinedRooms` answers. */
    heldJoinedRooms(requester: Requester): Buffer | undefined {
      return joinedRoomsBodies.get(requester.userId);
    },

    /** `{"joined_rooms":[…]}`, kept per user until a change of theirs. */
    async joinedRooms(requester: Requester): Promise<Buffer> {
      const { userId } = requester;
      const kept = joinedRoomsBodies.get(userId);
      if (kept) return kept;
      const ticket = joinedRoomsBodies.ticket();
      const rooms = await stores().rooms.selectRoomsOfUser(userId, 'join');
      const body = Buffer.from(JSON.stringify({ joined_rooms: rooms }));
      joinedRoomsBodies.set(userId, body, [userId], ticket);
      return body;
    },

    /** MSC2895: the requester's rooms with their membership (forgotten rooms left out). */
    async roomListing(
      requester: Requester,
      query: RoomListingQuery,
    ): Promise<Record<string, { membership: string }>> {
      const chosen = selectedMemberships(query.memberships, undefined, query.filter?.membership);
      const rooms: Record<string, { membership: string }> = {};
      if (chosen?.length === 0) return rooms;
      const selector = {
        memberships: chosen ?? undefined,
        rooms: query.filter?.rooms,
        notRooms: query.filter?.not_rooms,
      };
      const pages = await keysetPages(
        (after, size) =>
          stores().memberLists.selectRoomsOfUser(requester.userId, selector, after, size),
        (row) => row.roomId,
        { ...roomPaging, limit: query.filter?.limit },
      );
      for await (const rows of pages)
        for (const row of rows) rooms[row.roomId] = { membership: row.membership };
      return rooms;
    },
  };
}

export type MemberListService = ReturnType<typeof createMemberListService>;
