/**
 * The media repository: uploads (at once, or to an ID made by `/create` first), downloads
 * and thumbnails of local media. Rows are in the `media` store; bytes are in the media file
 * store, by content hash, so the service never knows where they live.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Readable } from 'node:stream';
import { MatrixError, forbidden, notFound, tooLarge } from '../../core/errors.js';
import {
  chooseThumbnailSize,
  essenceOf,
  isValidFileName,
  isValidMediaId,
  storedContentType,
  type ThumbnailMethod,
} from '../../core/media.js';
import type { MediaFileStore, MediaRow } from '../../storage/index.js';
import type { Requester, ServiceContext } from '../context.js';
import {
  THUMBNAILABLE_TYPES,
  cannotThumbnail,
  inspect,
  makeThumbnail,
  originalAnswers,
} from './thumbnails.js';
import { isValidServerName } from '../../core/identifiers.js';
import { addressRules } from '../../core/url-preview.js';
import type { FederationClient } from '../federation/client.js';
import { createRemoteMedia } from './remote.js';
import {
  DEFAULT_URL_PREVIEW_SETTINGS,
  createUrlPreviewService,
  type UrlPreviewSettings,
} from './url-preview.js';

export interface MediaSettings {
  /** Largest upload in bytes (`m.upload.size`). */
  maxUploadBytes: number;
  /** Larger sources are not thumbnailed. */
  maxThumbnailSourceBytes: number;
  /** IDs from `/create` one user may hold awaiting their upload. */
  maxAwaitedUploads: number;
  /** How long an ID from `/create` waits for its upload. */
  unusedExpirySeconds: number;
  /** URL previews (none: off). */
  urlPreview?: UrlPreviewSettings;
}

export const DEFAULT_MEDIA_SETTINGS: MediaSettings = {
  maxUploadBytes: 50 * 1024 * 1024,
  maxThumbnailSourceBytes: 32 * 1024 * 1024,
  maxAwaitedUploads: 32,
  unusedExpirySeconds: 86400,
};

/** The longest a download waits for an awaited upload, whatever `timeout_ms` says. */
export const MAX_WAIT_MS = 120_000;
const DEFAULT_WAIT_MS = 20_000;
/** How often a waiting download looks again (the upload may land in another process). */
const POLL_MS = 250;

export interface UploadInput {
  body: AsyncIterable<Uint8Array | string>;
  contentType: string | undefined;
  fileName: string | undefined;
  /** The request's Content-Length, when it gave one. */
  declaredLength: number | undefined;
}

/** What a download serves: the stored content's type, name and where its bytes are. */
export interface MediaContent {
  contentType: string;
  fileName: string | null;
  size: number;
  sha256: string;
}

export interface ThumbnailRequest {
  width: number;
  height: number;
  method: ThumbnailMethod;
  animated: boolean;
  timeoutMs: number | undefined;
  /** False: another server's media only when already cached. */
  allowRemote?: boolean;
  /** True: local media only (a thumbnail asked for by another server). */
  localOnly?: boolean;
}

export const notYetUploaded = (): MatrixError =>
  new MatrixError(504, 'M_NOT_YET_UPLOADED', 'The media has not been uploaded yet');
const cannotOverwrite = (): MatrixError =>
  new MatrixError(409, 'M_CANNOT_OVERWRITE_MEDIA', 'The media has already been uploaded');
const unconfigured = (): MatrixError =>
  new MatrixError(500, 'M_UNKNOWN', 'The media repository is not configured on this server');

/** 24 random bytes in the spec's media ID alphabet (base64url). */
function newMediaId(): string {
  return randomBytes(18).toString('base64url');
}

export interface MediaDeps {
  /** Fetches other servers' media (none: no federation, their media is not found). */
  federationClient: FederationClient | null;
  /** How long a request to another server may take. */
  federationTimeoutMs: number;
}

export function createMediaService(
  ctx: ServiceContext,
  deps: MediaDeps = { federationClient: null, federationTimeoutMs: 10_000 },
) {
  const settings = ctx.settings.media ?? DEFAULT_MEDIA_SETTINGS;
  const { serverName } = ctx.settings;
  const { stores } = ctx.storage;
  /** Thumbnails being made in this process, so one request makes each and others wait. */
  const making = new Map<string, Promise<MediaContent>>();

  const files = (): MediaFileStore => {
    if (!ctx.mediaFiles) throw unconfigured();
    return ctx.mediaFiles;
  };

  const checkFileName = (fileName: string | undefined): string | null => {
    if (fileName === undefined || fileName === '') return null;
    if (!isValidFileName(fileName))
      throw new MatrixError(400, 'M_INVALID_PARAM', 'Invalid filename');
    return fileName;
  };

  /** Reads the body into the file store, or 413 M_TOO_LARGE. */
  const receive = async (input: UploadInput) => {
    const tooBig = () =>
      tooLarge(`Upload is larger than the limit of ${settings.maxUploadBytes} bytes`);
    if (input.declaredLength !== undefined && input.declaredLength > settings.maxUploadBytes)
      throw tooBig();
    const stored = await files().write(input.body, settings.maxUploadBytes);
    if (stored === 'too_large') throw tooBig();
    return stored;
  };

  const previewSettings = settings.urlPreview ?? DEFAULT_URL_PREVIEW_SETTINGS;
  const remote = createRemoteMedia(ctx, {
    client: deps.federationClient,
    files: () => files(),
    maxBytes: settings.maxUploadBytes,
    locationRules: addressRules(previewSettings.denyRanges, previewSettings.allowRanges),
    timeoutMs: deps.federationTimeoutMs,
  });

  /** The row of a local media ID. */
  const localRow = async (server: string, mediaId: string): Promise<MediaRow> => {
    if (server !== serverName || !isValidMediaId(mediaId)) throw notFound('Media not found');
    const row = await stores.media.selectMedia(mediaId);
    if (!row) throw notFound('Media not found');
    // Quarantined by an admin (admin API): as if it did not exist.
    if (await stores.moderation.selectQuarantined(mediaId)) throw notFound('Media not found');
    return row;
  };

  /**
   * The content of a media ID: local (waiting up to `timeoutMs` for an awaited upload), or
   * another server's, cached or fetched over federation (only cached when `allowRemote` is
   * false).
   */
  const content = async (
    server: string,
    mediaId: string,
    timeoutMs: number | undefined,
    allowRemote = true,
  ): Promise<MediaContent> => {
    if (server !== serverName) {
      if (!isValidServerName(server)) throw notFound('Media not found');
      return remote.get(server, mediaId, timeoutMs, allowRemote);
    }
    return localContent(mediaId, timeoutMs);
  };

  /** A local media ID's uploaded content, waiting up to `timeoutMs` for an awaited upload. */
  const localContent = async (
    mediaId: string,
    timeoutMs: number | undefined,
  ): Promise<MediaContent> => {
    const server = serverName;
    const deadline = ctx.now() + Math.min(timeoutMs ?? DEFAULT_WAIT_MS, MAX_WAIT_MS);
    for (let row = await localRow(server, mediaId); ; row = await localRow(server, mediaId)) {
      if (row.sha256 !== null && row.size !== null) {
        return {
          contentType: row.content_type ?? 'application/octet-stream',
          fileName: row.upload_name,
          size: row.size,
          sha256: row.sha256,
        };
      }
      if (row.unused_expires_ts !== null && row.unused_expires_ts <= ctx.now())
        throw notFound('Media not found');
      if (ctx.now() >= deadline) throw notYetUploaded();
      await sleep(Math.min(POLL_MS, Math.max(1, deadline - ctx.now())));
    }
  };

  const makeAndStore = async (
    media: MediaContent,
    request: ThumbnailRequest,
  ): Promise<MediaContent> => {
    const size = chooseThumbnailSize(request.width, request.height, request.method);
    const known = await stores.media.selectThumbnail(
      media.sha256,
      size.width,
      size.height,
      size.method,
      request.animated,
    );
    if (known && (await files().size(known.sha256)) !== null) {
      return {
        contentType: known.content_type,
        fileName: null,
        size: known.size,
        sha256: known.sha256,
      };
    }
    const source = await files().read(media.sha256);
    if (source === null) throw notFound('Media not found');
    const info = await inspect(source);
    if (originalAnswers(media.contentType, info, size, request.animated)) {
      return { ...media, contentType: essenceOf(media.contentType), fileName: null };
    }
    const made = await makeThumbnail(source, media.contentType, info, size, request.animated);
    const stored = await files().writeBuffer(made.data);
    await stores.media.insertThumbnail({
      source_sha256: media.sha256,
      width: size.width,
      height: size.height,
      method: size.method,
      animated: request.animated ? 1 : 0,
      content_type: made.contentType,
      sha256: stored.sha256,
      size: stored.size,
    });
    return {
      contentType: made.contentType,
      fileName: null,
      size: stored.size,
      sha256: stored.sha256,
    };
  };

  const previews = createUrlPreviewService(
    ctx,
    settings.urlPreview ?? DEFAULT_URL_PREVIEW_SETTINGS,
    files,
    async (requester, contentType, sha256, size) => {
      const mediaId = newMediaId();
      await stores.media.insertMedia({
        media_id: mediaId,
        user_id: requester.userId,
        created_ts: ctx.now(),
        unused_expires_ts: null,
        content_type: contentType,
        upload_name: null,
        size,
        sha256,
      });
      return `mxc://${serverName}/${mediaId}`;
    },
  );

  return {
    /** `m.upload.size` and friends, for `/config`. */
    config: () => ({ 'm.upload.size': settings.maxUploadBytes }),

    /** POST /upload: stores the content under a new media ID. */
    async upload(requester: Requester, input: UploadInput): Promise<{ contentUri: string }> {
      const fileName = checkFileName(input.fileName);
      const stored = await receive(input);
      const mediaId = newMediaId();
      await stores.media.insertMedia({
        media_id: mediaId,
        user_id: requester.userId,
        created_ts: ctx.now(),
        unused_expires_ts: null,
        content_type: storedContentType(input.contentType),
        upload_name: fileName,
        size: stored.size,
        sha256: stored.sha256,
      });
      return { contentUri: `mxc://${serverName}/${mediaId}` };
    },

    /** POST /create: a media ID whose content is uploaded later. */
    async create(requester: Requester): Promise<{ contentUri: string; unusedExpiresAt: number }> {
      const now = ctx.now();
      const awaited = await stores.media.countAwaitedMedia(requester.userId, now);
      if (awaited >= settings.maxAwaitedUploads) {
        throw new MatrixError(
          429,
          'M_LIMIT_EXCEEDED',
          'Too many media IDs are awaiting their upload',
          { retry_after_ms: 60_000 },
          { 'Retry-After': '60' },
        );
      }
      const mediaId = newMediaId();
      const unusedExpiresAt = now + settings.unusedExpirySeconds * 1000;
      await stores.media.insertMedia({
        media_id: mediaId,
        user_id: requester.userId,
        created_ts: now,
        unused_expires_ts: unusedExpiresAt,
        content_type: null,
        upload_name: null,
        size: null,
        sha256: null,
      });
      return { contentUri: `mxc://${serverName}/${mediaId}`, unusedExpiresAt };
    },

    /** PUT /upload/{serverName}/{mediaId}: the content of an ID made by `create`. */
    async uploadTo(
      requester: Requester,
      server: string,
      mediaId: string,
      input: UploadInput,
    ): Promise<void> {
      const fileName = checkFileName(input.fileName);
      const row = await localRow(server, mediaId);
      if (row.user_id !== requester.userId)
        throw forbidden('This media ID was created by another user');
      if (row.sha256 !== null) throw cannotOverwrite();
      if (row.unused_expires_ts !== null && row.unused_expires_ts <= ctx.now())
        throw notFound('Media not found');
      const stored = await receive(input);
      const filled = await stores.media.updateAwaitedContent(mediaId, {
        contentType: storedContentType(input.contentType),
        uploadName: fileName,
        size: stored.size,
        sha256: stored.sha256,
      });
      // Another request uploaded it while this one was receiving: its bytes stay (they may be
      // someone else's content too) and this answer is the spec's.
      if (!filled) throw cannotOverwrite();
    },

    /** `/preview_url`: the Open Graph data of a URL (404 M_UNRECOGNIZED when off). */
    previewUrl: previews.preview,

    /** The content behind a download. */
    download: content,

    /** Our own media, for another server (`/_matrix/federation/v1/media/download`). */
    localContent,

    /** The thumbnail (or the original, when small enough) behind a thumbnail request. */
    async thumbnail(
      server: string,
      mediaId: string,
      request: ThumbnailRequest,
    ): Promise<MediaContent> {
      if (request.localOnly && server !== serverName) throw notFound('Media not found');
      const media = await content(server, mediaId, request.timeoutMs, request.allowRemote ?? true);
      if (!THUMBNAILABLE_TYPES.has(essenceOf(media.contentType))) throw cannotThumbnail();
      if (media.size > settings.maxThumbnailSourceBytes)
        throw tooLarge('Content is too large to thumbnail');
      const size = chooseThumbnailSize(request.width, request.height, request.method);
      const key = `${media.sha256}/${size.width}x${size.height}/${size.method}/${request.animated}`;
      let pending = making.get(key);
      if (!pending) {
        pending = makeAndStore(media, request).finally(() => making.delete(key));
        making.set(key, pending);
      }
      return pending;
    },

    /** The stored bytes of `content`, whole or a range of them. */
    async open(media: MediaContent, range?: { start: number; end: number }): Promise<Readable> {
      // A row whose file is gone (removed by hand) is missing media, not an internal error.
      if ((await files().size(media.sha256)) === null) throw notFound('Media not found');
      return files().stream(media.sha256, range);
    },
  };
}

export type MediaService = ReturnType<typeof createMediaService>;
