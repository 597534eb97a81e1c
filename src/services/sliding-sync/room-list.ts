/**
 * A user's room list for sliding sync: the rooms it may hold, in recency order (`bump_stamp`),
 * each list's filters applied. Built from one read of the user's memberships with each room's
 * list metadata (no room's events are read), plus what a filter asks for: `m.direct` for
 * `is_dm`, the `m.tag` entries for `tags`, the spaces' children for `spaces`.
 */
import type { ListFilters } from '../../core/sliding-sync.js';
import type { JsonObject } from '../../core/pdu.js';
import type { RoomListEntry, Stores } from '../../storage/index.js';

export interface ListedRoom extends RoomListEntry {
  /** The recency the list is ordered by, sent as `bump_stamp`. */
  sortKey: number;
}

/** What the filters of one request read, loaded once and only when a filter needs it. */
export interface FilterFacts {
  directRooms: ReadonlySet<string>;
  tagsOf(roomId: string): Promise<ReadonlySet<string>>;
  childrenOf(spaces: readonly string[]): Promise<ReadonlySet<string>>;
}

/**
 * The rooms a list may show: joined, invited and knocked rooms, and rooms left (or banned
 * from) since `since` so that the client sees the leave; most recent first.
 */
export function orderRoomList(
  entries: readonly RoomListEntry[],
  since: number | null,
): ListedRoom[] {
  const listed: ListedRoom[] = [];
  for (const entry of entries) {
    const current =
      entry.membership === 'join' || entry.membership === 'invite' || entry.membership === 'knock';
    const newlyLeft = since !== null && entry.membershipPosition > since;
    if (!current && !newlyLeft) continue;
    // A joined room moves up with its bump events, or with the join itself; any other
    // membership with the membership event (the room's events are not the user's to see).
    const sortKey =
      entry.membership === 'join'
        ? Math.max(entry.bumpStamp, entry.membershipPosition)
        : entry.membershipPosition;
    listed.push({ ...entry, sortKey });
  }
  return listed.sort((a, b) => b.sortKey - a.sortKey || (a.roomId < b.roomId ? -1 : 1));
}

export async function applyFilters(
  rooms: readonly ListedRoom[],
  filters: ListFilters,
  facts: FilterFacts,
): Promise<ListedRoom[]> {
  const children = filters.spaces ? await facts.childrenOf(filters.spaces) : null;
  const out: ListedRoom[] = [];
  for (const room of rooms) {
    if (filters.isDm !== undefined && facts.directRooms.has(room.roomId) !== filters.isDm) continue;
    if (filters.isEncrypted !== undefined && room.encrypted !== filters.isEncrypted) continue;
    if (filters.isInvite !== undefined && (room.membership === 'invite') !== filters.isInvite)
      continue;
    if (filters.roomTypes && !filters.roomTypes.includes(room.roomType)) continue;
    if (filters.notRoomTypes?.includes(room.roomType)) continue;
    if (children && !children.has(room.roomId)) continue;
    if (filters.tags || filters.notTags) {
      const tags = await facts.tagsOf(room.roomId);
      if (filters.tags && !filters.tags.some((t) => tags.has(t))) continue;
      if (filters.notTags?.some((t) => tags.has(t))) continue;
    }
    out.push(room);
  }
  return out;
}

/** The room IDs of an `m.direct` content (user ID → room IDs). */
export function directRoomsOf(content: JsonObject | undefined): Set<string> {
  const rooms = new Set<string>();
  if (!content) return rooms;
  for (const value of Object.values(content))
    if (Array.isArray(value)) for (const id of value) if (typeof id === 'string') rooms.add(id);
  return rooms;
}

/** Facts read lazily from the stores for one user. */
export function filterFacts(
  stores: () => Stores,
  userId: string,
  direct: JsonObject | undefined,
): FilterFacts {
  let tags: Promise<Map<string, string>> | undefined;
  return {
    directRooms: directRoomsOf(direct),
    async tagsOf(roomId) {
      tags ??= stores().slidingSync.selectRoomAccountDataOfType(userId, 'm.tag');
      const text = (await tags).get(roomId);
      if (text === undefined) return new Set();
      const content = JSON.parse(text) as { tags?: unknown };
      return new Set(
        content.tags && typeof content.tags === 'object' ? Object.keys(content.tags) : [],
      );
    },
    async childrenOf(spaces) {
      const states = await stores().rooms.selectAllStateEventsOfRooms(spaces);
      const children = new Set<string>();
      for (const rows of states.values())
        for (const row of rows)
          if (
            row.pdu.type === 'm.space.child' &&
            row.pdu.state_key &&
            Array.isArray(row.pdu.content.via)
          )
            children.add(row.pdu.state_key);
      return children;
    },
  };
}
