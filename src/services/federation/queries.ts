/**
 * The federation queries answered from local data: a local user's profile, and the room a
 * local alias names with the servers in it.
 * https://spec.matrix.org/v1.19/server-server-api/#query-information
 */
import { invalidParam, notFound } from '../../core/errors.js';
import { parseUserId } from '../../core/identifiers.js';
import type { ServiceContext } from '../context.js';

export type ProfileField = 'displayname' | 'avatar_url';

export function createFederationQueries(
  ctx: ServiceContext,
  deps: {
    profile(userId: string): Promise<{ displayname: string | null; avatarUrl: string | null }>;
    resolveAlias(alias: string): Promise<{ roomId: string; servers: string[] }>;
  },
) {
  const { serverName } = ctx.settings;
  return {
    /** `GET /query/profile`: the whole public profile, or the one field asked for. */
    async profile(userId: string, field: string | undefined): Promise<Record<string, string>> {
      const parsed = parseUserId(userId);
      if (!parsed) throw invalidParam('user_id is not a user ID');
      if (parsed.serverName !== serverName)
        throw invalidParam(`user_id is not a user of ${serverName}`);
      if (field !== undefined && field !== 'displayname' && field !== 'avatar_url')
        throw invalidParam('field must be displayname or avatar_url');
      const profile = await deps.profile(userId);
      const answer: Record<string, string> = {};
      if (profile.displayname !== null && field !== 'avatar_url')
        answer.displayname = profile.displayname;
      if (profile.avatarUrl !== null && field !== 'displayname')
        answer.avatar_url = profile.avatarUrl;
      return answer;
    },

    /** `GET /query/directory`: a local alias's room, and the servers with members joined. */
    async directory(alias: string): Promise<{ room_id: string; servers: string[] }> {
      if (!alias.startsWith('#') || !alias.endsWith(`:${serverName}`))
        throw notFound('Room alias not found.');
      const { roomId } = await deps.resolveAlias(alias);
      const remote = await ctx.storage.stores.federationOutbox.selectRemoteJoinedServers(
        roomId,
        serverName,
      );
      return { room_id: roomId, servers: [serverName, ...remote] };
    },
  };
}

export type FederationQueries = ReturnType<typeof createFederationQueries>;
