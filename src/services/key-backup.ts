/**
 * Server-side key backup: a user's backup versions and the (client-encrypted) room keys in
 * them. The server never reads `session_data` or `auth_data`; it keeps, per session, the
 * better of two keys (verified over unverified, then the lower first message index, then
 * the fewer forwards), an `etag` that changes whenever the stored keys do, and a count.
 */
import { MatrixError, invalidParam, notFound } from '../core/errors.js';
import { canonicalJson } from '../core/canonical-json.js';
import type { JsonObject } from '../core/pdu.js';
import type { BackupKeyRow, BackupVersionRow, Stores } from '../storage/index.js';
import type { Requester, ServiceContext } from './context.js';

export interface KeyBackupData {
  first_message_index: number;
  forwarded_count: number;
  is_verified: boolean;
  session_data: Record<string, unknown>;
}

export type RoomSessions = Record<string, KeyBackupData>;
export type BackupRooms = Record<string, { sessions: RoomSessions }>;

export interface BackupVersionInfo {
  algorithm: string;
  auth_data: JsonObject;
  count: number;
  etag: string;
  version: string;
}

const wrongVersion = (current: number): MatrixError =>
  new MatrixError(403, 'M_WRONG_ROOM_KEYS_VERSION', 'Wrong backup version', {
    current_version: String(current),
  });
const unknownVersion = (): MatrixError => notFound('Unknown backup version');

/** A version as given in a path or query: a positive decimal integer, else unknown (404). */
function parseVersion(text: string): number {
  if (!/^[1-9][0-9]{0,14}$/.test(text)) throw unknownVersion();
  return Number(text);
}

/** Whether `fresh` should replace `stored` (the spec's order of preference). */
export function replacesKey(
  fresh: Pick<BackupKeyRow, 'isVerified' | 'firstMessageIndex' | 'forwardedCount'>,
  stored: Pick<BackupKeyRow, 'isVerified' | 'firstMessageIndex' | 'forwardedCount'>,
): boolean {
  if (fresh.isVerified !== stored.isVerified) return fresh.isVerified;
  if (fresh.firstMessageIndex !== stored.firstMessageIndex)
    return fresh.firstMessageIndex < stored.firstMessageIndex;
  return fresh.forwardedCount < stored.forwardedCount;
}

function toData(row: BackupKeyRow): KeyBackupData {
  return {
    first_message_index: row.firstMessageIndex,
    forwarded_count: row.forwardedCount,
    is_verified: row.isVerified,
    session_data: JSON.parse(row.sessionDataJson) as Record<string, unknown>,
  };
}

export function createKeyBackupService(ctx: ServiceContext) {
  const stores = () => ctx.storage.stores;

  const info = async (userId: string, row: BackupVersionRow): Promise<BackupVersionInfo> => ({
    algorithm: row.algorithm,
    auth_data: JSON.parse(row.authDataJson) as JsonObject,
    count: await stores().keyBackup.countKeys(userId, row.version),
    etag: String(row.etag),
    version: String(row.version),
  });

  /** The version keys may be written to: it must be the current one. */
  const writableVersion = async (tx: Stores, userId: string, text: string) => {
    const current = await tx.keyBackup.selectCurrentVersion(userId);
    if (!current) throw unknownVersion();
    if (!/^[0-9]+$/.test(text) || Number(text) !== current.version)
      throw wrongVersion(current.version);
    return current;
  };

  const readableVersion = async (userId: string, text: string) => {
    const row = await stores().keyBackup.selectVersion(userId, parseVersion(text));
    if (!row) throw unknownVersion();
    return row;
  };

  return {
    async createVersion(
      requester: Requester,
      algorithm: string,
      authData: Record<string, unknown>,
    ): Promise<string> {
      return ctx.storage.tx('createKeyBackupVersion', async (tx) => {
        const version = (await tx.keyBackup.selectMaxVersion(requester.userId)) + 1;
        await tx.keyBackup.insertVersion(requester.userId, {
          version,
          algorithm,
          authDataJson: canonicalJson(authData),
          etag: 0,
        });
        return String(version);
      });
    },

    /** The current version (no `version`), or the one named. */
    async getVersion(requester: Requester, version?: string): Promise<BackupVersionInfo> {
      const row =
        version === undefined
          ? await stores().keyBackup.selectCurrentVersion(requester.userId)
          : await readableVersion(requester.userId, version);
      if (!row) throw notFound('No current backup version');
      return info(requester.userId, row);
    },

    async updateVersion(
      requester: Requester,
      version: string,
      body: { algorithm: string; auth_data: Record<string, unknown>; version?: string },
    ): Promise<void> {
      const row = await readableVersion(requester.userId, version);
      if (body.version !== undefined && body.version !== version)
        throw invalidParam('The version in the body does not match the one in the path');
      if (body.algorithm !== row.algorithm)
        throw invalidParam('The algorithm of a backup version cannot change');
      await stores().keyBackup.updateVersionAuthData(
        requester.userId,
        row.version,
        canonicalJson(body.auth_data),
      );
    },

    async deleteVersion(requester: Requester, version: string): Promise<void> {
      const row = await readableVersion(requester.userId, version);
      await ctx.storage.tx('deleteKeyBackupVersion', (tx) =>
        tx.keyBackup.markVersionDeleted(requester.userId, row.version),
      );
    },

    /** Stores keys in the current version; answers the new etag and count. */
    async putKeys(
      requester: Requester,
      version: string,
      rooms: BackupRooms,
    ): Promise<{ etag: string; count: number }> {
      const userId = requester.userId;
      return ctx.storage.tx('putRoomKeys', async (tx) => {
        const current = await writableVersion(tx, userId, version);
        let changed = false;
        for (const [roomId, { sessions }] of Object.entries(rooms)) {
          for (const [sessionId, data] of Object.entries(sessions)) {
            const fresh: BackupKeyRow = {
              roomId,
              sessionId,
              firstMessageIndex: data.first_message_index,
              forwardedCount: data.forwarded_count,
              isVerified: data.is_verified,
              sessionDataJson: canonicalJson(data.session_data),
            };
            const [stored] = await tx.keyBackup.selectKeys(
              userId,
              current.version,
              roomId,
              sessionId,
            );
            if (stored && !replacesKey(fresh, stored)) continue;
            await tx.keyBackup.upsertKey(userId, current.version, fresh);
            changed = true;
          }
        }
        const etag = changed ? current.etag + 1 : current.etag;
        if (changed) await tx.keyBackup.updateVersionEtag(userId, current.version, etag);
        return { etag: String(etag), count: await tx.keyBackup.countKeys(userId, current.version) };
      });
    },

    async getKeys(requester: Requester, version: string, roomId?: string, sessionId?: string) {
      const row = await readableVersion(requester.userId, version);
      const keys = await stores().keyBackup.selectKeys(
        requester.userId,
        row.version,
        roomId,
        sessionId,
      );
      const rooms: BackupRooms = {};
      for (const key of keys)
        (rooms[key.roomId] ??= { sessions: {} }).sessions[key.sessionId] = toData(key);
      return rooms;
    },

    async deleteKeys(
      requester: Requester,
      version: string,
      roomId?: string,
      sessionId?: string,
    ): Promise<{ etag: string; count: number }> {
      const userId = requester.userId;
      const row = await readableVersion(userId, version);
      return ctx.storage.tx('deleteRoomKeys', async (tx) => {
        const deleted = await tx.keyBackup.deleteKeys(userId, row.version, roomId, sessionId);
        const etag = deleted > 0 ? row.etag + 1 : row.etag;
        if (deleted > 0) await tx.keyBackup.updateVersionEtag(userId, row.version, etag);
        return { etag: String(etag), count: await tx.keyBackup.countKeys(userId, row.version) };
      });
    },
  };
}

export type KeyBackupService = ReturnType<typeof createKeyBackupService>;
