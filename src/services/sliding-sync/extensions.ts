/**
 * Sliding sync extensions, each from the same source as /sync's section of it: to-device
 * messages (from the client's `since`), end-to-end encryption (device lists, one-time key
 * counts, unused fallback key types), account data (global, and per room), receipts and
 * typing — the per-room ones for the rooms of the lists and subscriptions the extension
 * names only. A room sent in full in this answer gets its receipts from the start.
 */
import { invalidParam } from '../../core/errors.js';
import type { ExtensionScope, SlidingSyncRequest } from '../../core/sliding-sync.js';
import { parseStreamToken, streamToken } from '../../core/stream-token.js';
import type { Requester } from '../context.js';
import type { SyncSources } from '../sync-sources.js';

type Json = Record<string, unknown>;

export interface ExtensionsResponse {
  to_device?: { next_batch: string; events: Json[] };
  e2ee?: {
    device_lists: { changed: string[]; left: string[] };
    device_one_time_keys_count: Record<string, number>;
    device_unused_fallback_key_types: string[];
  };
  account_data?: { global: Json[]; rooms: Record<string, Json[]> };
  receipts?: { rooms: Record<string, Json> };
  typing?: { rooms: Record<string, Json> };
}

export interface ExtensionInputs {
  from: number | null;
  upTo: number;
  /** The rooms of each list's windows. */
  listRooms: ReadonlyMap<string, readonly string[]>;
  /** The subscribed rooms the user may see. */
  subscribed: readonly string[];
  joined: ReadonlySet<string>;
  initialRooms: ReadonlySet<string>;
}

/** The rooms an extension covers: those of its lists' windows and its rooms, joined ones only. */
function roomsOf(scope: ExtensionScope, inputs: ExtensionInputs): string[] {
  const rooms = new Set<string>();
  const lists = scope.lists ?? [...inputs.listRooms.keys()];
  for (const name of lists) for (const id of inputs.listRooms.get(name) ?? []) rooms.add(id);
  const named = scope.rooms ?? ['*'];
  for (const id of named) {
    if (id === '*') for (const s of inputs.subscribed) rooms.add(s);
    else if (inputs.subscribed.includes(id) || inputs.joined.has(id)) rooms.add(id);
  }
  return [...rooms].filter((id) => inputs.joined.has(id));
}

export async function buildExtensions(
  sources: SyncSources,
  requester: Requester,
  request: SlidingSyncRequest,
  inputs: ExtensionInputs,
): Promise<{ response: ExtensionsResponse; empty: boolean }> {
  const { userId, deviceId } = requester;
  const { upTo } = inputs;
  const after = inputs.from ?? 0;
  const ext = request.extensions;
  const response: ExtensionsResponse = {};
  let empty = true;
  /** Rooms split by where their data starts: new to the client (0) or since the last answer. */
  const split = (rooms: readonly string[]) => ({
    fresh: rooms.filter((id) => after === 0 || inputs.initialRooms.has(id)),
    known: after === 0 ? [] : rooms.filter((id) => !inputs.initialRooms.has(id)),
  });

  if (ext.toDevice.enabled) {
    let since = 0;
    if (ext.toDevice.since !== undefined) {
      const parsed = parseStreamToken(ext.toDevice.since);
      if (parsed === null || parsed > upTo) throw invalidParam('Invalid to_device since token');
      since = parsed;
    }
    const events = await sources.toDevice.forSync(userId, deviceId, since, upTo);
    const limited = ext.toDevice.limit === undefined ? events : events.slice(0, ext.toDevice.limit);
    response.to_device = { next_batch: streamToken(upTo), events: limited as unknown as Json[] };
    if (limited.length > 0) empty = false;
  }

  if (ext.e2ee.enabled) {
    const deviceLists = await sources.deviceKeys.deviceListsSince(userId, after, upTo);
    response.e2ee = {
      device_lists: deviceLists,
      device_one_time_keys_count: await sources.deviceKeys.oneTimeKeyCounts(userId, deviceId),
      device_unused_fallback_key_types: await sources.deviceKeys.unusedFallbackKeyTypes(
        userId,
        deviceId,
      ),
    };
    if (deviceLists.changed.length > 0 || deviceLists.left.length > 0) empty = false;
  }

  if (ext.accountData.enabled) {
    const rooms = roomsOf(ext.accountData, inputs);
    const { fresh } = split(rooms);
    const changes = await sources.accountData.changesSince(userId, after, upTo);
    const byRoom: Record<string, Json[]> = {};
    for (const id of rooms) {
      const entries = changes.rooms.get(id);
      if (entries && entries.length > 0) byRoom[id] = entries as unknown as Json[];
    }
    // Rooms new to the client: all their account data, not only what changed.
    if (after !== 0 && fresh.length > 0) {
      const all = await sources.accountData.changesSince(userId, 0, upTo);
      for (const id of fresh) {
        const entries = all.rooms.get(id);
        if (entries && entries.length > 0) byRoom[id] = entries as unknown as Json[];
      }
    }
    response.account_data = { global: changes.global as unknown as Json[], rooms: byRoom };
    if (changes.global.length > 0 || Object.keys(byRoom).length > 0) empty = false;
  }

  if (ext.receipts.enabled) {
    const { fresh, known } = split(roomsOf(ext.receipts, inputs));
    const rooms: Record<string, Json> = {};
    for (const [ids, start] of [
      [fresh, 0],
      [known, after],
    ] as const)
      if (ids.length > 0)
        for (const [id, event] of await sources.receipts.ephemeralSince(userId, ids, start, upTo))
          rooms[id] = event as unknown as Json;
    response.receipts = { rooms };
    if (Object.keys(rooms).length > 0) empty = false;
  }

  if (ext.typing.enabled) {
    const { fresh, known } = split(roomsOf(ext.typing, inputs));
    const rooms: Record<string, Json> = {};
    for (const [ids, start] of [
      [fresh, 0],
      [known, after],
    ] as const)
      if (ids.length > 0)
        for (const [id, event] of await sources.typing.ephemeralSince(ids, start, upTo))
          rooms[id] = event as unknown as Json;
    response.typing = { rooms };
    if (Object.keys(rooms).length > 0) empty = false;
  }
  return { response, empty };
}
