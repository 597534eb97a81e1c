/**
 * The media repository's rows: media IDs and the thumbnails made (migration 0040), other
 * servers' media fetched and URL previews made (migration 0044).
 */
import type { Kysely } from 'kysely';
import type { Database } from './schema.js';

export interface MediaRow {
  media_id: string;
  user_id: string;
  created_ts: number;
  /** Until when a `/create`d ID waits for its upload; null once uploaded. */
  unused_expires_ts: number | null;
  content_type: string | null;
  upload_name: string | null;
  size: number | null;
  /** Null while the upload is awaited. */
  sha256: string | null;
}

export interface ThumbnailRow {
  source_sha256: string;
  width: number;
  height: number;
  method: string;
  animated: number;
  content_type: string;
  sha256: string;
  size: number;
}

export interface UploadedContent {
  contentType: string;
  uploadName: string | null;
  size: number;
  sha256: string;
}

export interface RemoteMediaRow {
  server_name: string;
  media_id: string;
  fetched_ts: number;
  content_type: string;
  upload_name: string | null;
  size: number;
  sha256: string;
}

export interface MediaStore {
  insertMedia(row: MediaRow): Promise<void>;
  selectMedia(mediaId: string): Promise<MediaRow | undefined>;
  /** Fills an awaited upload; false when it was uploaded already (or does not exist). */
  updateAwaitedContent(mediaId: string, content: UploadedContent): Promise<boolean>;
  /** How many of a user's created IDs still await their upload at `now`. */
  countAwaitedMedia(userId: string, now: number): Promise<number>;
  selectThumbnail(
    sourceSha256: string,
    width: number,
    height: number,
    method: string,
    animated: boolean,
  ): Promise<ThumbnailRow | undefined>;
  /** Records a thumbnail; one made at the same time by another process wins silently. */
  insertThumbnail(row: ThumbnailRow): Promise<void>;
  selectRemoteMedia(serverName: string, mediaId: string): Promise<RemoteMediaRow | undefined>;
  /** Records fetched remote media; one fetched at the same time elsewhere wins silently. */
  insertRemoteMedia(row: RemoteMediaRow): Promise<void>;
  /** A preview of `url` that has not expired at `now` (its Open Graph JSON). */
  selectUrlPreview(url: string, now: number): Promise<string | undefined>;
  /** Records (or replaces) the preview of `url`. */
  upsertUrlPreview(
    url: string,
    fetchedTs: number,
    expiresTs: number,
    ogJson: string,
  ): Promise<void>;
}

export function mediaStore(db: Kysely<Database>): MediaStore {
  return {
    async insertMedia(row) {
      await db.insertInto('media').values(row).execute();
    },

    async selectMedia(mediaId) {
      const row = await db
        .selectFrom('media')
        .selectAll()
        .where('media_id', '=', mediaId)
        .executeTakeFirst();
      return row && { ...row, size: row.size === null ? null : Number(row.size) };
    },

    async updateAwaitedContent(mediaId, content) {
      const result = await db
        .updateTable('media')
        .set({
          content_type: content.contentType,
          upload_name: content.uploadName,
          size: content.size,
          sha256: content.sha256,
          unused_expires_ts: null,
        })
        .where('media_id', '=', mediaId)
        .where('sha256', 'is', null)
        .executeTakeFirst();
      return Number(result.numUpdatedRows) === 1;
    },

    async countAwaitedMedia(userId, now) {
      const row = await db
        .selectFrom('media')
        .select((eb) => eb.fn.countAll().as('n'))
        .where('user_id', '=', userId)
        .where('sha256', 'is', null)
        .where('unused_expires_ts', '>', now)
        .executeTakeFirst();
      return Number(row?.n ?? 0);
    },

    async selectThumbnail(sourceSha256, width, height, method, animated) {
      const row = await db
        .selectFrom('media_thumbnails')
        .selectAll()
        .where('source_sha256', '=', sourceSha256)
        .where('width', '=', width)
        .where('height', '=', height)
        .where('method', '=', method)
        .where('animated', '=', animated ? 1 : 0)
        .executeTakeFirst();
      return row && { ...row, size: Number(row.size) };
    },

    async insertThumbnail(row) {
      await db
        .insertInto('media_thumbnails')
        .values(row)
        .onConflict((oc) =>
          oc.columns(['source_sha256', 'width', 'height', 'method', 'animated']).doNothing(),
        )
        .execute();
    },

    async selectRemoteMedia(serverName, mediaId) {
      const row = await db
        .selectFrom('remote_media')
        .selectAll()
        .where('server_name', '=', serverName)
        .where('media_id', '=', mediaId)
        .executeTakeFirst();
      return row && { ...row, size: Number(row.size), fetched_ts: Number(row.fetched_ts) };
    },

    async insertRemoteMedia(row) {
      await db
        .insertInto('remote_media')
        .values(row)
        .onConflict((oc) => oc.columns(['server_name', 'media_id']).doNothing())
        .execute();
    },

    async selectUrlPreview(url, now) {
      const row = await db
        .selectFrom('url_previews')
        .select('og_json')
        .where('url', '=', url)
        .where('expires_ts', '>', now)
        .executeTakeFirst();
      return row?.og_json;
    },

    async upsertUrlPreview(url, fetchedTs, expiresTs, ogJson) {
      await db
        .insertInto('url_previews')
        .values({ url, fetched_ts: fetchedTs, expires_ts: expiresTs, og_json: ogJson })
        .onConflict((oc) =>
          oc.column('url').doUpdateSet({
            fetched_ts: fetchedTs,
            expires_ts: expiresTs,
            og_json: ogJson,
          }),
        )
        .execute();
    },
  };
}
