/** Server-side key backup (migration 0042): versions and the room keys stored in them. */
import type { Kysely } from 'kysely';
import type { Database } from './schema.js';

export interface BackupVersionRow {
  version: number;
  algorithm: string;
  authDataJson: string;
  etag: number;
}

export interface BackupKeyRow {
  roomId: string;
  sessionId: string;
  firstMessageIndex: number;
  forwardedCount: number;
  isVerified: boolean;
  sessionDataJson: string;
}

export interface KeyBackupStore {
  /** The newest version not deleted. */
  selectCurrentVersion(userId: string): Promise<BackupVersionRow | undefined>;
  /** A version not deleted. */
  selectVersion(userId: string, version: number): Promise<BackupVersionRow | undefined>;
  /** The highest version number ever used (deleted ones too), 0 when none. */
  selectMaxVersion(userId: string): Promise<number>;
  insertVersion(userId: string, row: BackupVersionRow): Promise<void>;
  updateVersionAuthData(userId: string, version: number, authDataJson: string): Promise<void>;
  updateVersionEtag(userId: string, version: number, etag: number): Promise<void>;
  markVersionDeleted(userId: string, version: number): Promise<void>;
  /** Keys of the version, of one room or one session when given. */
  selectKeys(
    userId: string,
    version: number,
    roomId?: string,
    sessionId?: string,
  ): Promise<BackupKeyRow[]>;
  upsertKey(userId: string, version: number, row: BackupKeyRow): Promise<void>;
  deleteKeys(userId: string, version: number, roomId?: string, sessionId?: string): Promise<number>;
  countKeys(userId: string, version: number): Promise<number>;
}

export function keyBackupStore(db: Kysely<Database>): KeyBackupStore {
  const versionRow = (row: {
    version: number;
    algorithm: string;
    auth_data: string;
    etag: number;
  }): BackupVersionRow => ({
    version: Number(row.version),
    algorithm: row.algorithm,
    authDataJson: row.auth_data,
    etag: Number(row.etag),
  });
  const keysOf = (userId: string, version: number, roomId?: string, sessionId?: string) => {
    let query = db
      .selectFrom('key_backup_keys')
      .where('user_id', '=', userId)
      .where('version', '=', version);
    if (roomId !== undefined) query = query.where('room_id', '=', roomId);
    if (sessionId !== undefined) query = query.where('session_id', '=', sessionId);
    return query;
  };
  return {
    async selectCurrentVersion(userId) {
      const row = await db
        .selectFrom('key_backup_versions')
        .select(['version', 'algorithm', 'auth_data', 'etag'])
        .where('user_id', '=', userId)
        .where('deleted', '=', 0)
        .orderBy('version', 'desc')
        .limit(1)
        .executeTakeFirst();
      return row && versionRow(row);
    },

    async selectVersion(userId, version) {
      const row = await db
        .selectFrom('key_backup_versions')
        .select(['version', 'algorithm', 'auth_data', 'etag'])
        .where('user_id', '=', userId)
        .where('version', '=', version)
        .where('deleted', '=', 0)
        .executeTakeFirst();
      return row && versionRow(row);
    },

    async selectMaxVersion(userId) {
      const row = await db
        .selectFrom('key_backup_versions')
        .select((eb) => eb.fn.max('version').as('latest'))
        .where('user_id', '=', userId)
        .executeTakeFirst();
      return Number(row?.latest ?? 0);
    },

    async insertVersion(userId, row) {
      await db
        .insertInto('key_backup_versions')
        .values({
          user_id: userId,
          version: row.version,
          algorithm: row.algorithm,
          auth_data: row.authDataJson,
          etag: row.etag,
          deleted: 0,
        })
        .execute();
    },

    async updateVersionAuthData(userId, version, authDataJson) {
      await db
        .updateTable('key_backup_versions')
        .set({ auth_data: authDataJson })
        .where('user_id', '=', userId)
        .where('version', '=', version)
        .execute();
    },

    async updateVersionEtag(userId, version, etag) {
      await db
        .updateTable('key_backup_versions')
        .set({ etag })
        .where('user_id', '=', userId)
        .where('version', '=', version)
        .execute();
    },

    async markVersionDeleted(userId, version) {
      await db
        .updateTable('key_backup_versions')
        .set({ deleted: 1 })
        .where('user_id', '=', userId)
        .where('version', '=', version)
        .execute();
      await db
        .deleteFrom('key_backup_keys')
        .where('user_id', '=', userId)
        .where('version', '=', version)
        .execute();
    },

    async selectKeys(userId, version, roomId, sessionId) {
      const rows = await keysOf(userId, version, roomId, sessionId)
        .select([
          'room_id',
          'session_id',
          'first_message_index',
          'forwarded_count',
          'is_verified',
          'session_data',
        ])
        .orderBy('room_id')
        .orderBy('session_id')
        .execute();
      return rows.map((row) => ({
        roomId: row.room_id,
        sessionId: row.session_id,
        firstMessageIndex: Number(row.first_message_index),
        forwardedCount: Number(row.forwarded_count),
        isVerified: Number(row.is_verified) === 1,
        sessionDataJson: row.session_data,
      }));
    },

    async upsertKey(userId, version, row) {
      const values = {
        first_message_index: row.firstMessageIndex,
        forwarded_count: row.forwardedCount,
        is_verified: row.isVerified ? 1 : 0,
        session_data: row.sessionDataJson,
      };
      await db
        .insertInto('key_backup_keys')
        .values({
          user_id: userId,
          version,
          room_id: row.roomId,
          session_id: row.sessionId,
          ...values,
        })
        .onConflict((oc) =>
          oc.columns(['user_id', 'version', 'room_id', 'session_id']).doUpdateSet(values),
        )
        .execute();
    },

    async deleteKeys(userId, version, roomId, sessionId) {
      let query = db
        .deleteFrom('key_backup_keys')
        .where('user_id', '=', userId)
        .where('version', '=', version);
      if (roomId !== undefined) query = query.where('room_id', '=', roomId);
      if (sessionId !== undefined) query = query.where('session_id', '=', sessionId);
      const result = await query.executeTakeFirst();
      return Number(result.numDeletedRows);
    },

    async countKeys(userId, version) {
      const row = await db
        .selectFrom('key_backup_keys')
        .select((eb) => eb.fn.countAll().as('n'))
        .where('user_id', '=', userId)
        .where('version', '=', version)
        .executeTakeFirst();
      return Number(row?.n ?? 0);
    },
  };
}
