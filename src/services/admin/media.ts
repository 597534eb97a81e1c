/**
 * Synapse's media admin API over the local media repository: quarantining media (by ID, all
 * the media a room's events name, all of a user's uploads), deleting media (by ID, by age and
 * size, a user's), and pages of a user's uploads. Quarantined media answers 404 to downloads
 * and thumbnails (the media service asks); deleted media is gone, its bytes removed when no
 * other media ID holds the same content.
 * https://element-hq.github.io/synapse/latest/admin_api/media_admin_api.html
 */
import { invalidParam, notFound } from '../../core/errors.js';
import { isValidMediaId } from '../../core/media.js';
import type { JsonObject } from '../../core/pdu.js';
import type { UserMediaOrder, UserMediaRow } from '../../storage/index.js';
import type { ServiceContext } from '../context.js';

/** Events read per statement while looking for the media a room names. */
const EVENT_PAGE = 500;
/** Media IDs deleted per statement by age and size. */
const DELETE_PAGE = 500;

const pause = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Every `mxc://` URI in a value (an event's content), wherever it is. */
export function mxcUrisIn(value: unknown, found: Set<string> = new Set()): Set<string> {
  if (typeof value === 'string') {
    if (value.startsWith('mxc://')) found.add(value);
  } else if (Array.isArray(value)) {
    for (const item of value) mxcUrisIn(item, found);
  } else if (value !== null && typeof value === 'object') {
    for (const item of Object.values(value)) mxcUrisIn(item, found);
  }
  return found;
}

export function createMediaAdminService(
  ctx: ServiceContext,
  localUser: (raw: string) => { userId: string },
) {
  const stores = ctx.storage.stores;
  const { serverName } = ctx.settings;

  /** The local media IDs among `mxc://` URIs. */
  const localIds = (uris: Iterable<string>): string[] => {
    const ids: string[] = [];
    for (const uri of uris) {
      const rest = uri.slice('mxc://'.length);
      const slash = rest.indexOf('/');
      if (slash < 0 || rest.slice(0, slash) !== serverName) continue;
      const id = rest.slice(slash + 1);
      if (isValidMediaId(id)) ids.push(id);
    }
    return ids;
  };

  const localMediaId = (server: string, mediaId: string): string => {
    if (server !== serverName) throw invalidParam('Can only act on local media');
    if (!isValidMediaId(mediaId)) throw invalidParam('Invalid media ID');
    return mediaId;
  };

  /** The local media a room's events name (their content's `mxc://` URIs). */
  async function mediaOfRoom(roomId: string): Promise<string[]> {
    if (!(await stores.rooms.selectRoom(roomId))) throw notFound('Room not found');
    const uris = new Set<string>();
    let after = -1;
    for (;;) {
      const events = await stores.moderation.selectRoomEventContents(roomId, after, EVENT_PAGE);
      for (const event of events) {
        const pdu = JSON.parse(event.pdu) as JsonObject;
        mxcUrisIn(pdu.content, uris);
        after = event.streamOrdering;
      }
      if (events.length < EVENT_PAGE) break;
      await pause();
    }
    return localIds(uris);
  }

  /** Deletes media rows, then the bytes no other media ID holds. */
  async function remove(mediaIds: readonly string[]): Promise<string[]> {
    const { deleted, sha256s } = await stores.moderation.deleteMedia(mediaIds);
    const files = ctx.mediaFiles;
    if (files?.remove) {
      for (const sha256 of new Set(sha256s)) {
        if (!(await stores.moderation.selectContentInUse(sha256))) await files.remove(sha256);
      }
    }
    return deleted;
  }

  return {
    async quarantine(admin: string, server: string, mediaId: string): Promise<void> {
      const id = localMediaId(server, mediaId);
      if (!(await stores.media.selectMedia(id))) throw notFound('Media not found');
      await stores.moderation.insertQuarantine([id], admin, ctx.now());
    },

    async unquarantine(server: string, mediaId: string): Promise<void> {
      await stores.moderation.deleteQuarantine(localMediaId(server, mediaId));
    },

    /** Quarantines the local media the room's events name; resolves with how many were. */
    async quarantineRoom(admin: string, roomId: string): Promise<number> {
      const ids = await mediaOfRoom(roomId);
      const known: string[] = [];
      for (const id of ids) if (await stores.media.selectMedia(id)) known.push(id);
      return stores.moderation.insertQuarantine(known, admin, ctx.now());
    },

    /** The room's media as `mxc://` URIs: `local` (this server's) and `remote`. */
    async roomMedia(roomId: string): Promise<{ local: string[]; remote: string[] }> {
      const local = await mediaOfRoom(roomId);
      return { local: local.map((id) => `mxc://${serverName}/${id}`), remote: [] };
    },

    async quarantineUser(admin: string, raw: string): Promise<number> {
      const { userId } = localUser(raw);
      const ids = await stores.moderation.selectMediaIdsOfUser(userId);
      return stores.moderation.insertQuarantine(ids, admin, ctx.now());
    },

    async userMedia(
      raw: string,
      page: { orderBy: UserMediaOrder; dir: 'f' | 'b'; offset: number; limit: number },
    ): Promise<{ rows: UserMediaRow[]; total: number; nextOffset: number | null }> {
      const { userId } = localUser(raw);
      if (!(await stores.accounts.selectUser(userId))) throw notFound('User not found');
      const { rows, total } = await stores.moderation.selectUserMedia(userId, page);
      const end = page.offset + rows.length;
      return { rows, total, nextOffset: end < total ? end : null };
    },

    async deleteUserMedia(raw: string): Promise<string[]> {
      const { userId } = localUser(raw);
      if (!(await stores.accounts.selectUser(userId))) throw notFound('User not found');
      return remove(await stores.moderation.selectMediaIdsOfUser(userId));
    },

    async deleteOne(server: string, mediaId: string): Promise<string[]> {
      const id = localMediaId(server, mediaId);
      const deleted = await remove([id]);
      if (deleted.length === 0) throw notFound('Media not found');
      return deleted;
    },

    /** Deletes local media uploaded before `beforeTs` of at least `sizeGt` bytes. */
    async deleteBefore(beforeTs: number, sizeGt: number): Promise<string[]> {
      const all: string[] = [];
      for (;;) {
        const ids = await stores.moderation.selectMediaIdsBefore(
          beforeTs,
          sizeGt,
          true,
          DELETE_PAGE,
        );
        if (ids.length === 0) break;
        all.push(...(await remove(ids)));
        if (ids.length < DELETE_PAGE) break;
        await pause();
      }
      return all;
    },
  };
}

export type MediaAdminService = ReturnType<typeof createMediaAdminService>;
