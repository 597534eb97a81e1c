/**
 * Shadow-bans and rate-limit overrides of local users (Synapse's
 * `/v1/users/{userId}/shadow_ban` and `/override_ratelimit`). Both are read with the user's
 * session (the Requester), so a change drops the user's cached sessions in every process and
 * applies from the next request on. What a shadow-banned user sends is answered as if it had
 * been sent and goes nowhere (room-events, timeline, membership, rooms, typing services).
 * https://element-hq.github.io/synapse/latest/admin_api/user_admin_api.html#controlling-whether-a-user-is-shadow-banned
 */
import { notFound } from '../../core/errors.js';
import type { RateLimitOverride } from '../../storage/index.js';
import type { ServiceContext } from '../context.js';

export function createModerationService(
  ctx: ServiceContext,
  localUser: (raw: string) => { userId: string },
) {
  const stores = ctx.storage.stores;

  /** A local user that exists: 400 for another server's or an invalid ID, else 404. */
  async function existing(raw: string): Promise<string> {
    const { userId } = localUser(raw);
    if (!(await stores.accounts.selectUser(userId))) throw notFound('User not found');
    return userId;
  }

  return {
    async setShadowBanned(raw: string, banned: boolean): Promise<void> {
      await stores.moderation.updateShadowBan(await existing(raw), banned);
    },

    async isShadowBanned(userId: string): Promise<boolean> {
      return stores.moderation.selectShadowBanned(userId);
    },

    async rateLimitOverride(raw: string): Promise<RateLimitOverride | null> {
      return stores.moderation.selectRateLimitOverride(await existing(raw));
    },

    async setRateLimitOverride(raw: string, override: RateLimitOverride | null): Promise<void> {
      await stores.moderation.updateRateLimitOverride(await existing(raw), override);
    },
  };
}

export type ModerationService = ReturnType<typeof createModerationService>;
