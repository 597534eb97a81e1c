/**
 * A user's room list for sliding sync: the rooms it may hold, in recency order (`bump_stamp`),
 * each list's filters turned into criteria the database applies while it counts the list and
 * reads a window of it (no room's events are read). What a filter needs besides is read once per
 * request and only when a filter asks: `m.direct` for `is_dm`, the `m.tag` entries for `tags`,
 * the spaces' children for `spaces`.
 */
import type { ListFilters } from '../../core/sliding-sync.js';
import type { JsonObject } from '../../core/pdu.js';
import type { ListedRoom, RoomListCriteria, RoomListEntry, Stores } from '../../storage/index.js';

export type { ListedRoom };

/** What the filters of one request read, loaded once and only when a filter needs it. */
export interface FilterFacts {
  directRooms: ReadonlySet<string>;
  /** The user's rooms with any of these tags. */
  roomsTagged(tags: readonly string[]): Promise<ReadonlySet<string>>;
  childrenOf(spaces: readonly string[]): Promise<ReadonlySet<string>>;
}

/**
 * Of the entries given, the rooms a list may show, as the database lists them: joined,
 * invited and knocked rooms, and rooms left (or banned from) since `since` so that the client
 * sees the leave; most recent first. (For rooms named by a subscription.)
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

/** The criteria of a list: its filters, with the rooms `is_dm`, `spaces` and `tags` name. */
export async function listCriteria(
  userId: string,
  since: number | null,
  filters: ListFilters,
  facts: FilterFacts,
): Promise<RoomListCriteria> {
  let only: Set<string> | undefined;
  const keepOnly = (rooms: ReadonlySet<string>) => {
    only = only ? new Set([...only].filter((id) => rooms.has(id))) : new Set(rooms);
  };
  const not = new Set<string>();
  if (filters.isDm === true) keepOnly(facts.directRooms);
  if (filters.isDm === false) for (const id of facts.directRooms) not.add(id);
  if (filters.spaces) keepOnly(await facts.childrenOf(filters.spaces));
  if (filters.tags) keepOnly(await facts.roomsTagged(filters.tags));
  if (filters.notTags) for (const id of await facts.roomsTagged(filters.notTags)) not.add(id);
  return {
    userId,
    since,
    isEncrypted: filters.isEncrypted,
    isInvite: filters.isInvite,
    roomTypes: filters.roomTypes,
    notRoomTypes: filters.notRoomTypes,
    onlyRooms: only && [...only].filter((id) => !not.has(id)),
    notRooms: only ? undefined : [...not],
  };
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
    async roomsTagged(wanted) {
      tags ??= stores().slidingSync.selectRoomAccountDataOfType(userId, 'm.tag');
      const rooms = new Set<string>();
      for (const [roomId, text] of await tags) {
        const content = JSON.parse(text) as { tags?: unknown };
        if (
          content.tags &&
          typeof content.tags === 'object' &&
          wanted.some((t) => Object.hasOwn(content.tags as object, t))
        )
          rooms.add(roomId);
      }
      return rooms;
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
