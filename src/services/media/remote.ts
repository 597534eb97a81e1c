/**
 * Other servers' media (`mxc://other.server/…`): fetched once over federation and kept like
 * local media (bytes by hash in the media file store, a `remote_media` row), then served from
 * there. The spec's order (v1.11): the authenticated `/_matrix/federation/v1/media/download`
 * (a signed request; a `multipart/mixed` answer whose second part is the bytes or a
 * `Location` to fetch them from), and only when that answers 404 `M_UNRECOGNIZED`, the
 * deprecated `/_matrix/media/v3/download` with `allow_remote=false`. Thumbnails of remote
 * media are made here from the fetched original.
 */
import { MatrixError, notFound } from '../../core/errors.js';
import { isValidMediaId, storedContentType } from '../../core/media.js';
import { dispositionFileName, multipartBoundary, parseMultipart } from '../../core/multipart.js';
import type { AddressRules } from '../../core/url-preview.js';
import type { MediaFileStore, RemoteMediaRow } from '../../storage/index.js';
import type { ServiceContext } from '../context.js';
import type { FederationClient, RawFederationResponse } from '../federation/client.js';
import { safeFetch } from './safe-fetch.js';

export interface RemoteMedia {
  contentType: string;
  fileName: string | null;
  size: number;
  sha256: string;
}

const unreachable = (server: string): MatrixError =>
  new MatrixError(502, 'M_UNKNOWN', `Could not fetch the media from ${server}`);
const remoteTooLarge = (): MatrixError =>
  new MatrixError(502, 'M_TOO_LARGE', 'The remote content is too large for this server');

interface Fetched {
  contentType: string;
  fileName: string | null;
  body: Buffer;
}

function header(headers: RawFederationResponse['headers'], name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function errcodeOf(response: RawFederationResponse): string | undefined {
  try {
    const body = JSON.parse(response.body.toString('utf8')) as { errcode?: unknown };
    return typeof body.errcode === 'string' ? body.errcode : undefined;
  } catch {
    return undefined;
  }
}

export function createRemoteMedia(
  ctx: ServiceContext,
  options: {
    client: FederationClient | null;
    files: () => MediaFileStore;
    maxBytes: number;
    /** Where a `Location` answer may send us (the URL preview rules). */
    locationRules: AddressRules;
    timeoutMs: number;
  },
) {
  const { stores } = ctx.storage;
  const fetching = new Map<string, Promise<RemoteMedia>>();

  /** Maps a failed answer to the spec's error (the remote's own when it gave one we know). */
  const failure = (server: string, response: RawFederationResponse): MatrixError => {
    const errcode = errcodeOf(response);
    if (response.status === 404) return notFound('Media not found');
    if (response.status === 504 && errcode === 'M_NOT_YET_UPLOADED')
      return new MatrixError(504, 'M_NOT_YET_UPLOADED', 'The media has not been uploaded yet');
    if (errcode === 'M_TOO_LARGE') return remoteTooLarge();
    return unreachable(server);
  };

  const ask = async (
    server: string,
    path: string,
    unsigned: boolean,
    accept: string,
  ): Promise<RawFederationResponse> => {
    if (!options.client) throw notFound('Media not found');
    try {
      return await options.client.requestRaw(server, 'GET', path, {
        maxBytes: options.maxBytes + 64 * 1024, // room for the multipart frame
        unsigned,
        accept,
      });
    } catch (err) {
      if (err instanceof Error && /larger than/.test(err.message)) throw remoteTooLarge();
      throw unreachable(server);
    }
  };

  /** The media's bytes and type, by the federation endpoint or the deprecated one. */
  const download = async (
    server: string,
    mediaId: string,
    timeoutMs: number | undefined,
  ): Promise<Fetched> => {
    const timeout = timeoutMs === undefined ? '' : `?timeout_ms=${timeoutMs}`;
    const response = await ask(
      server,
      `/_matrix/federation/v1/media/download/${encodeURIComponent(mediaId)}${timeout}`,
      false,
      'multipart/mixed, application/json',
    );
    if (response.status === 200) return fromMultipart(server, response);
    if (!(response.status === 404 && errcodeOf(response) === 'M_UNRECOGNIZED'))
      throw failure(server, response);
    // A server without authenticated media: the deprecated path, never relayed further.
    const params = new URLSearchParams({ allow_remote: 'false' });
    if (timeoutMs !== undefined) params.set('timeout_ms', String(timeoutMs));
    const legacy = await ask(
      server,
      `/_matrix/media/v3/download/${encodeURIComponent(server)}/${encodeURIComponent(mediaId)}?${params}`,
      true,
      '*/*',
    );
    if (legacy.status !== 200) throw failure(server, legacy);
    return {
      contentType: storedContentType(header(legacy.headers, 'content-type')),
      fileName: dispositionFileName(header(legacy.headers, 'content-disposition')),
      body: legacy.body,
    };
  };

  const fromMultipart = async (server: string, response: RawFederationResponse) => {
    const boundary = multipartBoundary(header(response.headers, 'content-type'));
    const parts = boundary === null ? null : parseMultipart(response.body, boundary);
    const media = parts?.[1];
    if (!parts || parts.length < 2 || !media) throw unreachable(server);
    const location = media.headers.location;
    if (location !== undefined) {
      // The bytes are elsewhere: fetched as a URL preview would be (never a private address).
      try {
        const fetched = await safeFetch(location, {
          rules: options.locationRules,
          maxBytes: options.maxBytes,
          timeoutMs: options.timeoutMs,
          userAgent: `Commons (${ctx.settings.serverName})`,
        });
        return {
          contentType: storedContentType(fetched.contentType),
          fileName: null,
          body: fetched.body,
        };
      } catch {
        throw unreachable(server);
      }
    }
    if (media.body.length > options.maxBytes) throw remoteTooLarge();
    return {
      contentType: storedContentType(media.headers['content-type']),
      fileName: dispositionFileName(media.headers['content-disposition']),
      body: media.body,
    };
  };

  const fetchAndKeep = async (
    server: string,
    mediaId: string,
    timeoutMs: number | undefined,
  ): Promise<RemoteMedia> => {
    const fetched = await download(server, mediaId, timeoutMs);
    const stored = await options.files().writeBuffer(fetched.body);
    const row: RemoteMediaRow = {
      server_name: server,
      media_id: mediaId,
      fetched_ts: ctx.now(),
      content_type: fetched.contentType,
      upload_name: fetched.fileName,
      size: stored.size,
      sha256: stored.sha256,
    };
    await stores.media.insertRemoteMedia(row);
    return {
      contentType: row.content_type,
      fileName: row.upload_name,
      size: row.size,
      sha256: row.sha256,
    };
  };

  return {
    /**
     * Another server's media, from the cache or fetched now; with `allowRemote` false, only
     * what is cached (404 otherwise), as the spec asks.
     */
    async get(
      server: string,
      mediaId: string,
      timeoutMs: number | undefined,
      allowRemote: boolean,
    ): Promise<RemoteMedia> {
      if (!isValidMediaId(mediaId)) throw notFound('Media not found');
      const cached = await stores.media.selectRemoteMedia(server, mediaId);
      if (cached && (await options.files().size(cached.sha256)) !== null) {
        return {
          contentType: cached.content_type,
          fileName: cached.upload_name,
          size: cached.size,
          sha256: cached.sha256,
        };
      }
      if (!allowRemote || !options.client) throw notFound('Media not found');
      const key = `${server}/${mediaId}`;
      let pending = fetching.get(key);
      if (!pending) {
        pending = fetchAndKeep(server, mediaId, timeoutMs).finally(() => fetching.delete(key));
        fetching.set(key, pending);
      }
      return pending;
    },
  };
}
