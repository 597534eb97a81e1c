/**
 * Display names and avatars of local users. A change writes the profile and, in the same
 * transaction, a record that the user's rooms owe member events (`profile_room_updates`);
 * then each joined room gets its member event, one transaction per room; then the record
 * goes. A process that dies part-way leaves the record, and the rooms are brought up to date
 * by the next start of any process (`resumePending`) or by the user's next change, so a
 * profile and its rooms' member events always end consistent.
 */
import { randomInt } from 'node:crypto';
import { forbidden, notFound } from '../core/errors.js';
import type { ProfileRow, Stores } from '../storage/index.js';
import type { Requester, ServiceContext } from './context.js';
import type { MembershipService } from './membership.js';
import { createAppServiceCalls } from './appservice/calls.js';

/** Pending users read at a time when resuming. */
const RESUME_BATCH = 100;

export function createProfileService(ctx: ServiceContext, membership: MembershipService) {
  const accounts = ctx.storage.stores.accounts;
  const appserviceCalls = createAppServiceCalls(ctx);

  /** Brings the user's rooms up to date, then drops the record `revision` wrote. */
  async function finish(userId: string, revision: number): Promise<void> {
    await membership.refreshProfileInRooms(userId);
    await ctx.storage.stores.profileUpdates.deletePending(userId, revision);
  }

  async function change(
    name: string,
    userId: string,
    update: (stores: Stores) => Promise<void>,
  ): Promise<void> {
    // Marks this change's record: an earlier change finishing later leaves it in place.
    const revision = randomInt(2 ** 47);
    await ctx.storage.tx(name, async (stores) => {
      await update(stores);
      await stores.profileUpdates.upsertPending(userId, revision, ctx.now());
    });
    await finish(userId, revision);
  }

  return {
    async get(userId: string): Promise<ProfileRow> {
      let profile = await accounts.selectProfile(userId);
      // A user of a bridge's namespace may exist once the bridge is asked about it.
      if (!profile && (await appserviceCalls.queryUser(userId)))
        profile = await accounts.selectProfile(userId);
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
      await change('setDisplayname', userId, (stores) =>
        stores.accounts.updateDisplayname(userId, displayname),
      );
    },

    async setAvatarUrl(
      requester: Requester,
      userId: string,
      avatarUrl: string | null,
    ): Promise<void> {
      if (requester.userId !== userId) throw forbidden("You cannot set another user's avatar");
      await change('setAvatarUrl', userId, (stores) =>
        stores.accounts.updateAvatarUrl(userId, avatarUrl),
      );
    },

    /** An admin's change of any local user's profile (Synapse's PUT /v2/users/{userId}). */
    async setByAdmin(
      userId: string,
      profile: { displayname?: string | null; avatarUrl?: string | null },
    ): Promise<void> {
      if (profile.displayname === undefined && profile.avatarUrl === undefined) return;
      await change('adminSetProfile', userId, async (stores) => {
        if (profile.displayname !== undefined)
          await stores.accounts.updateDisplayname(userId, profile.displayname);
        if (profile.avatarUrl !== undefined)
          await stores.accounts.updateAvatarUrl(userId, profile.avatarUrl);
      });
    },

    /**
     * Finishes every profile change a process left part-way (at start-up). Safe beside other
     * processes doing the same and beside new changes: each room is checked in its own
     * transaction, and a record is dropped only by the change that wrote it.
     */
    async resumePending(): Promise<number> {
      let after = '';
      let resumed = 0;
      for (;;) {
        const pending = await ctx.storage.stores.profileUpdates.selectPending(after, RESUME_BATCH);
        for (const { userId, revision } of pending) {
          await finish(userId, revision);
          resumed++;
        }
        const last = pending[pending.length - 1];
        if (!last || pending.length < RESUME_BATCH) return resumed;
        after = last.userId;
      }
    },
  };
}

export type ProfileService = ReturnType<typeof createProfileService>;
