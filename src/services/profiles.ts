/** Display names and avatars of local users. */
import { forbidden, notFound } from '../core/errors.js';
import type { ProfileRow } from '../storage/index.js';
import type { Requester, ServiceContext } from './context.js';
import type { MembershipService } from './membership.js';

export function createProfileService(ctx: ServiceContext, membership: MembershipService) {
  const accounts = ctx.storage.stores.accounts;
  return {
    async get(userId: string): Promise<ProfileRow> {
      const profile = await accounts.selectProfile(userId);
      if (!profile) throw notFound('Profile not found');
      return profile;
    },

    async setDisplayname(
      requester: Requester,
      userId: string,
      displayname: string | null,
    ): Promise<void> {
      if (requester.userId !== userId)
        throw forbidden("You cannot set another user's display name");
      await ctx.storage.tx('setDisplayname', (stores) =>
        stores.accounts.updateDisplayname(userId, displayname),
      );
      await membership.refreshProfileInRooms(userId);
    },

    async setAvatarUrl(
      requester: Requester,
      userId: string,
      avatarUrl: string | null,
    ): Promise<void> {
      if (requester.userId !== userId) throw forbidden("You cannot set another user's avatar");
      await ctx.storage.tx('setAvatarUrl', (stores) =>
        stores.accounts.updateAvatarUrl(userId, avatarUrl),
      );
      await membership.refreshProfileInRooms(userId);
    },
  };
}

export type ProfileService = ReturnType<typeof createProfileService>;
