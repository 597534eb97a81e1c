/**
 * Profile changes still owing member events (migration 0011), and the joined rooms whose
 * member event does not show the user's profile.
 */
import type { Kysely } from 'kysely';
import type { Database } from './schema.js';

export interface PendingProfileUpdate {
  userId: string;
  revision: number;
}

export interface ProfileUpdateStore {
  /** Records that the user's rooms owe member events, marked with this change's revision. */
  upsertPending(userId: string, revision: number, ts: number): Promise<void>;
  /** Pending users after `afterUserId`, by user ID. */
  selectPending(afterUserId: string, limit: number): Promise<PendingProfileUpdate[]>;
  /** Deletes the user's row if it is still the one this revision wrote. */
  deletePending(userId: string, revision: number): Promise<void>;
  /**
   * The rooms the user has joined whose member event's display name or avatar is not the
   * profile's, by room ID.
   */
  selectRoomsWithOtherProfile(userId: string): Promise<string[]>;
}

export function profileUpdateStore(db: Kysely<Database>): ProfileUpdateStore {
  return {
    async upsertPending(userId, revision, ts) {
      await db
        .insertInto('profile_room_updates')
        .values({ user_id: userId, revision, requested_ts: ts })
        .onConflict((oc) => oc.column('user_id').doUpdateSet({ revision, requested_ts: ts }))
        .execute();
    },

    async selectPending(afterUserId, limit) {
      const rows = await db
        .selectFrom('profile_room_updates')
        .select(['user_id', 'revision'])
        .where('user_id', '>', afterUserId)
        .orderBy('user_id')
        .limit(limit)
        .execute();
      return rows.map((r) => ({ userId: r.user_id, revision: Number(r.revision) }));
    },

    async deletePending(userId, revision) {
      await db
        .deleteFrom('profile_room_updates')
        .where('user_id', '=', userId)
        .where('revision', '=', revision)
        .execute();
    },

    async selectRoomsWithOtherProfile(userId) {
      const rows = await db
        .selectFrom('room_memberships as m')
        .innerJoin('profiles as p', 'p.user_id', 'm.user_id')
        .select('m.room_id')
        .where('m.user_id', '=', userId)
        .where('m.membership', '=', 'join')
        .where((eb) =>
          eb.or([
            eb('m.displayname', 'is distinct from', eb.ref('p.displayname')),
            eb('m.avatar_url', 'is distinct from', eb.ref('p.avatar_url')),
          ]),
        )
        .orderBy('m.room_id')
        .execute();
      return rows.map((r) => r.room_id);
    },
  };
}
