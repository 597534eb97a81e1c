/**
 * The user directory: `/user_directory/search` over an index of folded words, seeing only
 * users the requester may otherwise see (sharing a room, or in a public room; every local
 * user with `searchAll`). Local users' entries follow their profile (the account store keeps
 * them with each profile change); the event deriver here keeps the public rooms and other
 * servers' users from member events, inside each event's transaction.
 */
import type { JsonObject } from '../core/pdu.js';
import { parseUserId } from '../core/identifiers.js';
import { searchWords } from '../core/user-directory.js';
import type { Requester, ServiceContext } from './context.js';
import type { EventDeriver, StateDeriver } from './event-writer.js';

export interface DirectorySearchResult {
  limited: boolean;
  results: { user_id: string; display_name?: string; avatar_url?: string }[];
}

/** Most results one search answers, whatever `limit` asks. */
export const MAX_DIRECTORY_LIMIT = 50;
export const DEFAULT_DIRECTORY_LIMIT = 10;

export function createUserDirectoryService(ctx: ServiceContext, options: { searchAll: boolean }) {
  const { serverName } = ctx.settings;
  /** Rooms bigger than this have their members' reach moved after the event (the worker). */
  const inline = ctx.settings.userDirectoryInlineReachMembers ?? 100;

  const deriver: EventDeriver = async (stores, event) => {
    const { pdu } = event;
    if (pdu.state_key === undefined) return;
    const content: JsonObject = pdu.content;
    if (pdu.type === 'm.room.join_rules' && pdu.state_key === '') {
      await stores.userDirectory.setRoomPublic(
        event.roomId,
        content.join_rule === 'public',
        inline,
      );
      return;
    }
    if (pdu.type !== 'm.room.member') return;
    const member = parseUserId(pdu.state_key);
    // Local users are listed under their profile, kept by every profile change.
    if (!member || member.serverName === serverName) return;
    if (content.membership !== 'join') return;
    const name = typeof content.displayname === 'string' ? content.displayname : null;
    const avatar = typeof content.avatar_url === 'string' ? content.avatar_url : null;
    await stores.userDirectory.upsertUser(pdu.state_key, name, avatar);
  };

  /** The same for the entries state resolution changed (a removed join rule: not public). */
  const stateDeriver: StateDeriver = async (stores, change) => {
    if (change.type === 'm.room.join_rules' && change.stateKey === '') {
      const rule = change.event?.pdu.content.join_rule;
      await stores.userDirectory.setRoomPublic(change.roomId, rule === 'public', inline);
      return;
    }
    if (change.event)
      await deriver(stores, {
        eventId: change.event.eventId,
        roomId: change.roomId,
        streamOrdering: change.streamOrdering,
        pdu: change.event.pdu,
        roomVersion: change.roomVersion,
      });
  };

  return {
    deriver,
    stateDeriver,

    async search(
      requester: Requester,
      searchTerm: string,
      limit: number = DEFAULT_DIRECTORY_LIMIT,
    ): Promise<DirectorySearchResult> {
      const words = searchWords(searchTerm);
      const capped = Math.max(0, Math.min(limit, MAX_DIRECTORY_LIMIT));
      if (words.length === 0 || capped === 0) return { limited: false, results: [] };
      const rows = await ctx.storage.stores.userDirectory.searchUsers(
        requester.userId,
        words,
        capped + 1,
        options.searchAll,
      );
      return {
        limited: rows.length > capped,
        results: rows.slice(0, capped).map((row) => ({
          user_id: row.userId,
          ...(row.displayName !== null ? { display_name: row.displayName } : {}),
          ...(row.avatarUrl !== null ? { avatar_url: row.avatarUrl } : {}),
        })),
      };
    },
  };
}

export type UserDirectoryService = ReturnType<typeof createUserDirectoryService>;
