/**
 * The content repository's routes: uploads under `/_matrix/media`, downloads and thumbnails
 * on the authenticated `/_matrix/client/v1/media` paths (spec v1.11), and the deprecated
 * unauthenticated `/_matrix/media/{v3,r0}` ones behind `media.legacy_unauthenticated`.
 * Upload bodies are any bytes (not JSON): this plugin's own content parser hands the
 * request stream to the service, which writes it to the media store as it comes.
 */
import type { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { MatrixError, notFound } from '../../core/errors.js';
import {
  DEFAULT_CONTENT_TYPE,
  MEDIA_CSP,
  storedContentType,
  contentDisposition,
  isValidFileName,
  parseRange,
  servedContentType,
} from '../../core/media.js';
import { requesterOf } from '../../http/request-context.js';
import type { MediaContent } from '../../services/index.js';
import type { RoutePlugin } from '../client/plugin.js';

const MEDIA_PATH = Type.Object({
  serverName: Type.String({ minLength: 1, maxLength: 255 }),
  mediaId: Type.String({ minLength: 1, maxLength: 255 }),
});
const MEDIA_PATH_NAMED = Type.Object({
  serverName: Type.String({ minLength: 1, maxLength: 255 }),
  mediaId: Type.String({ minLength: 1, maxLength: 255 }),
  fileName: Type.String({ minLength: 1, maxLength: 255 }),
});
const UPLOAD_QUERY = Type.Object({ filename: Type.Optional(Type.String({ maxLength: 255 })) });
const TIMEOUT = Type.Optional(Type.Integer({ minimum: 0 }));
const DOWNLOAD_QUERY = Type.Object({
  timeout_ms: TIMEOUT,
  allow_redirect: Type.Optional(Type.Boolean()),
  allow_remote: Type.Optional(Type.Boolean()),
});
const THUMBNAIL_QUERY = Type.Object({
  width: Type.Integer({ minimum: 1, maximum: 100_000 }),
  height: Type.Integer({ minimum: 1, maximum: 100_000 }),
  method: Type.Optional(Type.Union([Type.Literal('crop'), Type.Literal('scale')])),
  animated: Type.Optional(Type.Boolean()),
  timeout_ms: TIMEOUT,
  allow_redirect: Type.Optional(Type.Boolean()),
  allow_remote: Type.Optional(Type.Boolean()),
});

const CLIENT_V1 = '/_matrix/client/v1/media';
const LEGACY = ['/_matrix/media/v3', '/_matrix/media/r0'] as const;
const THUMBNAIL_EXTENSIONS: Record<string, string> = {
  'image/jpeg': 'jpg',
  'image/png': 'png',
  'image/gif': 'gif',
  'image/webp': 'webp',
};

const upload = { auth: 'required', rateLimit: 'media_upload' } as const;

function singleHeader(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** The body stream of an upload (an empty body: nothing to iterate). */
function bodyOf(request: FastifyRequest): AsyncIterable<Uint8Array | string> {
  const body = request.body as Readable | undefined;
  return body ?? (async function* () {})();
}

function uploadInput(request: FastifyRequest, fileName: string | undefined) {
  const length = singleHeader(request.headers['content-length']);
  return {
    body: bodyOf(request),
    contentType: singleHeader(request.headers['content-type']),
    fileName,
    declaredLength: length !== undefined && /^\d+$/.test(length) ? Number(length) : undefined,
  };
}

/** Headers every served file carries (the spec's security considerations). */
function securityHeaders(reply: FastifyReply): FastifyReply {
  return reply
    .header('Content-Security-Policy', MEDIA_CSP)
    .header('Cross-Origin-Resource-Policy', 'cross-origin')
    .header('X-Content-Type-Options', 'nosniff')
    .header('Cache-Control', 'private, max-age=86400, immutable');
}

/** Serves stored content, whole, as a byte range (206), or as 304 to a matching ETag. */
async function serve(
  request: FastifyRequest,
  reply: FastifyReply,
  content: MediaContent,
  disposition: string,
  open: (content: MediaContent, range?: { start: number; end: number }) => Promise<Readable>,
): Promise<FastifyReply> {
  const etag = `"${content.sha256}"`;
  securityHeaders(reply)
    .header('Content-Type', servedContentType(content.contentType))
    .header('Content-Disposition', disposition)
    .header('Accept-Ranges', 'bytes')
    .header('ETag', etag);
  if (singleHeader(request.headers['if-none-match']) === etag) return reply.code(304).send();
  const ifRange = singleHeader(request.headers['if-range']);
  const range =
    ifRange === undefined || ifRange === etag
      ? parseRange(singleHeader(request.headers.range), content.size)
      : null;
  if (range === 'unsatisfiable') {
    throw new MatrixError(
      416,
      'M_UNKNOWN',
      'Requested range not satisfiable',
      {},
      {
        'Content-Range': `bytes */${content.size}`,
      },
    );
  }
  if (range === null) {
    const stream = await open(content);
    return reply.header('Content-Length', content.size).send(stream);
  }
  const stream = await open(content, range);
  return reply
    .code(206)
    .header('Content-Range', `bytes ${range.start}-${range.end}/${content.size}`)
    .header('Content-Length', range.end - range.start + 1)
    .send(stream);
}

// https://spec.matrix.org/v1.19/client-server-api/#content-repository
export const mediaRoutes: RoutePlugin = async (app, { services, config }) => {
  const { media } = services;
  const open = (content: MediaContent, range?: { start: number; end: number }) =>
    media.open(content, range);

  // Upload bodies are bytes of any type: the stream is passed on as it comes (this plugin
  // only; every other route keeps the JSON parser).
  app.removeAllContentTypeParsers();
  // A Content-Type the framework cannot parse is stored as octet-stream anyway.
  app.addHook('onRequest', (request, _reply, done) => {
    const given = request.headers['content-type'];
    if (given !== undefined && storedContentType(given) === DEFAULT_CONTENT_TYPE)
      request.headers['content-type'] = DEFAULT_CONTENT_TYPE;
    done();
  });
  app.addContentTypeParser('*', (_request, payload, done) => done(null, payload));

  // https://spec.matrix.org/v1.19/client-server-api/#post_matrixmediav3upload
  for (const prefix of LEGACY) {
    app.post(
      `${prefix}/upload`,
      { config: upload, schema: { querystring: UPLOAD_QUERY } },
      async (request) => {
        const { contentUri } = await media.upload(
          requesterOf(request),
          uploadInput(request, request.query.filename),
        );
        return { content_uri: contentUri };
      },
    );
  }

  // https://spec.matrix.org/v1.19/client-server-api/#post_matrixmediav1create
  app.post('/_matrix/media/v1/create', { config: upload }, async (request) => {
    const created = await media.create(requesterOf(request));
    return { content_uri: created.contentUri, unused_expires_at: created.unusedExpiresAt };
  });

  // https://spec.matrix.org/v1.19/client-server-api/#put_matrixmediav3uploadservernamemediaid
  app.put(
    '/_matrix/media/v3/upload/:serverName/:mediaId',
    { config: upload, schema: { params: MEDIA_PATH, querystring: UPLOAD_QUERY } },
    async (request) => {
      const { serverName, mediaId } = request.params;
      await media.uploadTo(
        requesterOf(request),
        serverName,
        mediaId,
        uploadInput(request, request.query.filename),
      );
      return {};
    },
  );

  const download = async (
    request: FastifyRequest,
    reply: FastifyReply,
    params: { serverName: string; mediaId: string; fileName?: string },
    query: { timeout_ms?: number; allow_remote?: boolean },
  ) => {
    if (params.fileName !== undefined && !isValidFileName(params.fileName))
      throw notFound('Media not found');
    const content = await media.download(
      params.serverName,
      params.mediaId,
      query.timeout_ms,
      query.allow_remote !== false,
    );
    const name = params.fileName ?? content.fileName;
    return serve(request, reply, content, contentDisposition(content.contentType, name), open);
  };

  const thumbnail = async (
    request: FastifyRequest,
    reply: FastifyReply,
    params: { serverName: string; mediaId: string },
    query: {
      width: number;
      height: number;
      method?: 'crop' | 'scale';
      animated?: boolean;
      timeout_ms?: number;
      allow_remote?: boolean;
    },
  ) => {
    const content = await media.thumbnail(params.serverName, params.mediaId, {
      width: query.width,
      height: query.height,
      method: query.method ?? 'scale',
      animated: query.animated === true,
      timeoutMs: query.timeout_ms,
      allowRemote: query.allow_remote !== false,
    });
    const extension = THUMBNAIL_EXTENSIONS[content.contentType] ?? 'bin';
    return serve(request, reply, content, `inline; filename="thumbnail.${extension}"`, open);
  };

  const PREVIEW_QUERY = Type.Object({
    url: Type.String({ minLength: 1 }),
    ts: Type.Optional(Type.Integer({ minimum: 0 })),
  });
  const preview = async (request: FastifyRequest<{ Querystring: { url: string } }>) =>
    media.previewUrl(requesterOf(request), request.query.url);
  const previewRoute = {
    config: { auth: 'required' },
    schema: { querystring: PREVIEW_QUERY },
  } as const;

  // https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv1mediadownloadservernamemediaid
  const authed = { config: { auth: 'required' } } as const;
  app.get(
    `${CLIENT_V1}/download/:serverName/:mediaId`,
    { ...authed, schema: { params: MEDIA_PATH, querystring: DOWNLOAD_QUERY } },
    (request, reply) => download(request, reply, request.params, request.query),
  );
  app.get(
    `${CLIENT_V1}/download/:serverName/:mediaId/:fileName`,
    { ...authed, schema: { params: MEDIA_PATH_NAMED, querystring: DOWNLOAD_QUERY } },
    (request, reply) => download(request, reply, request.params, request.query),
  );
  // https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv1mediathumbnailservernamemediaid
  app.get(
    `${CLIENT_V1}/thumbnail/:serverName/:mediaId`,
    { ...authed, schema: { params: MEDIA_PATH, querystring: THUMBNAIL_QUERY } },
    (request, reply) => thumbnail(request, reply, request.params, request.query),
  );
  // https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv1mediaconfig
  app.get(`${CLIENT_V1}/config`, authed, async () => media.config());
  // https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv1mediapreview_url
  app.get(`${CLIENT_V1}/preview_url`, previewRoute, preview);

  // The deprecated unauthenticated paths. Off: answered as a server that froze them.
  const legacyOn = config.media.legacy_unauthenticated;
  const frozen = () =>
    notFound('Unauthenticated media is disabled on this server: use /_matrix/client/v1/media');
  for (const prefix of LEGACY) {
    app.get(
      `${prefix}/download/:serverName/:mediaId`,
      { schema: { params: MEDIA_PATH, querystring: DOWNLOAD_QUERY } },
      async (request, reply) => {
        if (!legacyOn) throw frozen();
        return download(request, reply, request.params, request.query);
      },
    );
    app.get(
      `${prefix}/download/:serverName/:mediaId/:fileName`,
      { schema: { params: MEDIA_PATH_NAMED, querystring: DOWNLOAD_QUERY } },
      async (request, reply) => {
        if (!legacyOn) throw frozen();
        return download(request, reply, request.params, request.query);
      },
    );
    app.get(
      `${prefix}/thumbnail/:serverName/:mediaId`,
      { schema: { params: MEDIA_PATH, querystring: THUMBNAIL_QUERY } },
      async (request, reply) => {
        if (!legacyOn) throw frozen();
        return thumbnail(request, reply, request.params, request.query);
      },
    );
    app.get(`${prefix}/config`, authed, async () => {
      if (!legacyOn) throw frozen();
      return media.config();
    });
    app.get(`${prefix}/preview_url`, previewRoute, async (request) => {
      if (!legacyOn) throw frozen();
      return preview(request);
    });
  }
};
