/** Users and their profiles. */
import type { Kysely } from 'kysely';
import type { Database } from './schema.js';
import { deleteDirectoryEntry, refreshLocalDirectoryEntry } from './user-directory-store.js';

export interface UserRow {
  userId: string;
  localpart: string;
  passwordHash: string | null;
  isAdmin: boolean;
  deactivated: boolean;
}

export interface ProfileRow {
  displayname: string | null;
  avatarUrl: string | null;
}

export interface NewUser {
  userId: string;
  localpart: string;
  passwordHash: string | null;
  isAdmin: boolean;
  displayname: string | null;
  createdTs: number;
}

export interface AccountStore {
  /** Inserts the user and their profile; false when the user ID is taken. */
  insertUser(user: NewUser): Promise<boolean>;
  selectUser(userId: string): Promise<UserRow | undefined>;
  updatePasswordHash(userId: string, passwordHash: string): Promise<void>;
  selectProfile(userId: string): Promise<ProfileRow | undefined>;
  updateDisplayname(userId: string, displayname: string | null): Promise<void>;
  updateAvatarUrl(userId: string, avatarUrl: string | null): Promise<void>;
  /**
   * Marks the user deactivated and records the deactivation as pending (until
   * `deletePendingDeactivation`); false when there is no such user.
   */
  markDeactivated(userId: string, ts: number): Promise<boolean>;
  /** The users whose deactivation was begun and not finished, oldest first. */
  selectPendingDeactivations(): Promise<string[]>;
  deletePendingDeactivation(userId: string): Promise<void>;
}

export function accountStore(db: Kysely<Database>): AccountStore {
  return {
    async insertUser(user) {
      const result = await db
        .insertInto('users')
        .values({
          user_id: user.userId,
          localpart: user.localpart,
          password_hash: user.passwordHash,
          is_admin: user.isAdmin ? 1 : 0,
          deactivated: 0,
          created_ts: user.createdTs,
        })
        .onConflict((oc) => oc.doNothing())
        .executeTakeFirst();
      if (Number(result.numInsertedOrUpdatedRows ?? 0) === 0) return false;
      await db
        .insertInto('profiles')
        .values({ user_id: user.userId, displayname: user.displayname, avatar_url: null })
        .execute();
      await refreshLocalDirectoryEntry(db, user.userId);
      return true;
    },

    async selectUser(userId) {
      const row = await db
        .selectFrom('users')
        .select(['user_id', 'localpart', 'password_hash', 'is_admin', 'deactivated'])
        .where('user_id', '=', userId)
        .executeTakeFirst();
      return row
        ? {
            userId: row.user_id,
            localpart: row.localpart,
            passwordHash: row.password_hash,
            isAdmin: Number(row.is_admin) === 1,
            deactivated: Number(row.deactivated) === 1,
          }
        : undefined;
    },

    async updatePasswordHash(userId, passwordHash) {
      await db
        .updateTable('users')
        .set({ password_hash: passwordHash })
        .where('user_id', '=', userId)
        .execute();
    },

    async selectProfile(userId) {
      const row = await db
        .selectFrom('profiles')
        .select(['displayname', 'avatar_url'])
        .where('user_id', '=', userId)
        .executeTakeFirst();
      return row ? { displayname: row.displayname, avatarUrl: row.avatar_url } : undefined;
    },

    async updateDisplayname(userId, displayname) {
      await db.updateTable('profiles').set({ displayname }).where('user_id', '=', userId).execute();
      await refreshLocalDirectoryEntry(db, userId);
    },

    async updateAvatarUrl(userId, avatarUrl) {
      await db
        .updateTable('profiles')
        .set({ avatar_url: avatarUrl })
        .where('user_id', '=', userId)
        .execute();
      await refreshLocalDirectoryEntry(db, userId);
    },

    async markDeactivated(userId, ts) {
      const result = await db
        .updateTable('users')
        .set({ deactivated: 1 })
        .where('user_id', '=', userId)
        .executeTakeFirst();
      if (Number(result.numUpdatedRows) === 0) return false;
      await db
        .insertInto('pending_deactivations')
        .values({ user_id: userId, requested_ts: ts })
        .onConflict((oc) => oc.column('user_id').doNothing())
        .execute();
      await deleteDirectoryEntry(db, userId);
      return true;
    },

    async selectPendingDeactivations() {
      const rows = await db
        .selectFrom('pending_deactivations')
        .select('user_id')
        .orderBy('requested_ts')
        .orderBy('user_id')
        .execute();
      return rows.map((r) => r.user_id);
    },

    async deletePendingDeactivation(userId) {
      await db.deleteFrom('pending_deactivations').where('user_id', '=', userId).execute();
    },
  };
}
