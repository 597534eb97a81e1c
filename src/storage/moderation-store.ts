/**
 * What admins' moderation keeps (migration 0062): shadow-bans and rate-limit overrides (read
 * with each session: a change announces `sessions` for the user, so every process drops the
 * user's cached sessions), each user's server-notices room, quarantined media, a user's media
 * for the admin API, and the leases that let one process of several run a background job.
 */
import { sql, type Kysely } from 'kysely';
import type { Database } from './schema.js';
import type { Announce } from './stream-store.js';

export interface RateLimitOverride {
  messagesPerSecond: number;
  burstCount: number;
}

export interface UserMediaRow {
  mediaId: string;
  userId: string;
  createdTs: number;
  contentType: string | null;
  uploadName: string | null;
  size: number | null;
  quarantinedBy: string | null;
}

export const USER_MEDIA_ORDERS = [
  'media_id',
  'upload_name',
  'created_ts',
  'media_length',
  'media_type',
  'quarantined_by',
] as const;
export type UserMediaOrder = (typeof USER_MEDIA_ORDERS)[number];

const MEDIA_ORDER_COLUMNS: Record<UserMediaOrder, string> = {
  media_id: 'media.media_id',
  upload_name: 'media.upload_name',
  created_ts: 'media.created_ts',
  media_length: 'media.size',
  media_type: 'media.content_type',
  quarantined_by: 'media_quarantine.quarantined_by',
};

export interface ModerationStore {
  /** Shadow-bans or lifts the ban; false when the user does not exist. */
  updateShadowBan(userId: string, banned: boolean): Promise<void>;
  selectShadowBanned(userId: string): Promise<boolean>;
  selectRateLimitOverride(userId: string): Promise<RateLimitOverride | null>;
  /** Sets (or with null clears) the user's rate-limit override. */
  updateRateLimitOverride(userId: string, override: RateLimitOverride | null): Promise<void>;

  selectNoticeRoom(userId: string): Promise<string | undefined>;
  insertNoticeRoom(userId: string, roomId: string): Promise<void>;
  deleteNoticeRoomsOf(roomId: string): Promise<void>;

  /** Quarantines the media IDs not quarantined yet; resolves with how many were. */
  insertQuarantine(mediaIds: readonly string[], by: string, ts: number): Promise<number>;
  deleteQuarantine(mediaId: string): Promise<void>;
  selectQuarantined(mediaId: string): Promise<boolean>;
  /** A page of the user's uploads (awaited ones included), and how many there are. */
  selectUserMedia(
    userId: string,
    page: { orderBy: UserMediaOrder; dir: 'f' | 'b'; offset: number; limit: number },
  ): Promise<{ rows: UserMediaRow[]; total: number }>;
  selectMediaIdsOfUser(userId: string): Promise<string[]>;
  /**
   * Local media IDs created before `beforeTs` and at least `sizeGt` bytes, quarantined ones
   * left out unless asked, at most `limit`.
   */
  selectMediaIdsBefore(
    beforeTs: number,
    sizeGt: number,
    includeQuarantined: boolean,
    limit: number,
  ): Promise<string[]>;
  /** Deletes the media rows (and quarantine marks); resolves with the IDs that existed. */
  deleteMedia(mediaIds: readonly string[]): Promise<{ deleted: string[]; sha256s: string[] }>;
  /** Whether any media row still refers to the content. */
  selectContentInUse(sha256: string): Promise<boolean>;
  /** Events of a room after a stream position, in order (to find the media they name). */
  selectRoomEventContents(
    roomId: string,
    afterOrdering: number,
    limit: number,
  ): Promise<{ streamOrdering: number; pdu: string }[]>;

  /** Takes or renews the lease on `job` until `untilTs`; false while another process holds it. */
  takeLease(job: string, owner: string, now: number, untilTs: number): Promise<boolean>;
  releaseLease(job: string, owner: string): Promise<void>;
}

export function moderationStore(db: Kysely<Database>, announce: Announce): ModerationStore {
  const ensureRow = (userId: string) =>
    db
      .insertInto('user_moderation')
      .values({ user_id: userId, messages_per_second: null, burst_count: null })
      .onConflict((oc) => oc.column('user_id').doNothing())
      .execute();

  return {
    async updateShadowBan(userId, banned) {
      await ensureRow(userId);
      await db
        .updateTable('user_moderation')
        .set({ shadow_banned: banned ? 1 : 0 })
        .where('user_id', '=', userId)
        .execute();
      await announce({ sessions: [userId] });
    },

    async selectShadowBanned(userId) {
      const row = await db
        .selectFrom('user_moderation')
        .select('shadow_banned')
        .where('user_id', '=', userId)
        .executeTakeFirst();
      return Number(row?.shadow_banned ?? 0) === 1;
    },

    async selectRateLimitOverride(userId) {
      const row = await db
        .selectFrom('user_moderation')
        .select(['messages_per_second', 'burst_count'])
        .where('user_id', '=', userId)
        .executeTakeFirst();
      if (!row || row.messages_per_second === null || row.burst_count === null) return null;
      return {
        messagesPerSecond: Number(row.messages_per_second),
        burstCount: Number(row.burst_count),
      };
    },

    async updateRateLimitOverride(userId, override) {
      await ensureRow(userId);
      await db
        .updateTable('user_moderation')
        .set({
          messages_per_second: override?.messagesPerSecond ?? null,
          burst_count: override?.burstCount ?? null,
        })
        .where('user_id', '=', userId)
        .execute();
      await announce({ sessions: [userId] });
    },

    async selectNoticeRoom(userId) {
      const row = await db
        .selectFrom('server_notice_rooms')
        .select('room_id')
        .where('user_id', '=', userId)
        .executeTakeFirst();
      return row?.room_id;
    },

    async insertNoticeRoom(userId, roomId) {
      await db
        .insertInto('server_notice_rooms')
        .values({ user_id: userId, room_id: roomId })
        .onConflict((oc) => oc.column('user_id').doUpdateSet({ room_id: roomId }))
        .execute();
    },

    async deleteNoticeRoomsOf(roomId) {
      await db.deleteFrom('server_notice_rooms').where('room_id', '=', roomId).execute();
    },

    async insertQuarantine(mediaIds, by, ts) {
      if (mediaIds.length === 0) return 0;
      const result = await db
        .insertInto('media_quarantine')
        .values(mediaIds.map((id) => ({ media_id: id, quarantined_by: by, quarantined_ts: ts })))
        .onConflict((oc) => oc.column('media_id').doNothing())
        .executeTakeFirst();
      return Number(result.numInsertedOrUpdatedRows ?? 0);
    },

    async deleteQuarantine(mediaId) {
      await db.deleteFrom('media_quarantine').where('media_id', '=', mediaId).execute();
    },

    async selectQuarantined(mediaId) {
      const row = await db
        .selectFrom('media_quarantine')
        .select('media_id')
        .where('media_id', '=', mediaId)
        .executeTakeFirst();
      return row !== undefined;
    },

    async selectUserMedia(userId, page) {
      const base = db
        .selectFrom('media')
        .leftJoin('media_quarantine', 'media_quarantine.media_id', 'media.media_id')
        .where('media.user_id', '=', userId);
      const direction = sql.raw(page.dir === 'b' ? 'desc' : 'asc');
      const rows = await base
        .select([
          'media.media_id',
          'media.user_id',
          'media.created_ts',
          'media.content_type',
          'media.upload_name',
          'media.size',
          'media_quarantine.quarantined_by',
        ])
        .orderBy(sql`${sql.ref(MEDIA_ORDER_COLUMNS[page.orderBy])} ${direction}`)
        .orderBy('media.media_id', page.dir === 'b' ? 'desc' : 'asc')
        .limit(page.limit)
        .offset(page.offset)
        .execute();
      const count = await base.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirst();
      return {
        rows: rows.map((r) => ({
          mediaId: r.media_id,
          userId: r.user_id,
          createdTs: Number(r.created_ts),
          contentType: r.content_type,
          uploadName: r.upload_name,
          size: r.size === null ? null : Number(r.size),
          quarantinedBy: r.quarantined_by,
        })),
        total: Number(count?.n ?? 0),
      };
    },

    async selectMediaIdsOfUser(userId) {
      const rows = await db
        .selectFrom('media')
        .select('media_id')
        .where('user_id', '=', userId)
        .execute();
      return rows.map((r) => r.media_id);
    },

    async selectMediaIdsBefore(beforeTs, sizeGt, includeQuarantined, limit) {
      let query = db
        .selectFrom('media')
        .leftJoin('media_quarantine', 'media_quarantine.media_id', 'media.media_id')
        .select('media.media_id')
        .where('media.created_ts', '<', beforeTs);
      if (sizeGt > 0) query = query.where('media.size', '>=', sizeGt);
      if (!includeQuarantined) query = query.where('media_quarantine.media_id', 'is', null);
      const rows = await query.orderBy('media.created_ts').limit(limit).execute();
      return rows.map((r) => r.media_id);
    },

    async deleteMedia(mediaIds) {
      if (mediaIds.length === 0) return { deleted: [], sha256s: [] };
      const rows = await db
        .selectFrom('media')
        .select(['media_id', 'sha256'])
        .where('media_id', 'in', mediaIds)
        .execute();
      const found = rows.map((r) => r.media_id);
      if (found.length > 0) {
        await db.deleteFrom('media').where('media_id', 'in', found).execute();
        await db.deleteFrom('media_quarantine').where('media_id', 'in', found).execute();
      }
      return {
        deleted: found,
        sha256s: rows.flatMap((r) => (r.sha256 === null ? [] : [r.sha256])),
      };
    },

    async selectContentInUse(sha256) {
      const row = await db
        .selectFrom('media')
        .select('media_id')
        .where('sha256', '=', sha256)
        .limit(1)
        .executeTakeFirst();
      return row !== undefined;
    },

    async selectRoomEventContents(roomId, afterOrdering, limit) {
      const rows = await db
        .selectFrom('events')
        .select(['stream_ordering', 'pdu'])
        .where('room_id', '=', roomId)
        .where('stream_ordering', '>', afterOrdering)
        .orderBy('stream_ordering')
        .limit(limit)
        .execute();
      return rows.map((r) => ({ streamOrdering: Number(r.stream_ordering), pdu: r.pdu }));
    },

    async takeLease(job, owner, now, untilTs) {
      await db
        .insertInto('job_leases')
        .values({ job, owner, until_ts: untilTs })
        .onConflict((oc) =>
          oc
            .column('job')
            .doUpdateSet({ owner, until_ts: untilTs })
            .where((eb) =>
              eb.or([eb('job_leases.owner', '=', owner), eb('job_leases.until_ts', '<', now)]),
            ),
        )
        .execute();
      const row = await db
        .selectFrom('job_leases')
        .select('owner')
        .where('job', '=', job)
        .executeTakeFirst();
      return row?.owner === owner;
    },

    async releaseLease(job, owner) {
      await db.deleteFrom('job_leases').where('job', '=', job).where('owner', '=', owner).execute();
    },
  };
}
