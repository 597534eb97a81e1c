/**
 * Our media for other servers (spec v1.11, MSC3916): `/_matrix/federation/v1/media/download`
 * and `/thumbnail`, signed requests answered with `multipart/mixed` — a JSON metadata part
 * (an empty object) and the bytes with their `Content-Type` and `Content-Disposition`. Only
 * this server's own media is served; other servers' media cached here is not relayed.
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { FastifyReply } from 'fastify';
import type {
  FastifyInstance,
  FastifyBaseLogger,
  RawServerDefault,
  RawRequestDefaultExpression,
  RawReplyDefaultExpression,
} from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { contentDisposition, servedContentType } from '../../core/media.js';
import { multipartFrame } from '../../core/multipart.js';
import type { MediaContent, Services } from '../../services/index.js';

const MEDIA_ID = Type.Object({ mediaId: Type.String({ minLength: 1, maxLength: 255 }) });
const TIMEOUT = Type.Optional(Type.Integer({ minimum: 0 }));
const THUMBNAIL_QUERY = Type.Object({
  width: Type.Integer({ minimum: 1, maximum: 100_000 }),
  height: Type.Integer({ minimum: 1, maximum: 100_000 }),
  method: Type.Optional(Type.Union([Type.Literal('crop'), Type.Literal('scale')])),
  animated: Type.Optional(Type.Boolean()),
  timeout_ms: TIMEOUT,
});

type TypedApp = FastifyInstance<
  RawServerDefault,
  RawRequestDefaultExpression,
  RawReplyDefaultExpression,
  FastifyBaseLogger,
  TypeBoxTypeProvider
>;

export function registerFederationMediaRoutes(app: TypedApp, services: Services): void {
  const { media } = services;
  const signed = { config: { rateLimit: false, federationAuth: true } } as const;

  /** The two-part answer around the stored bytes, streamed. */
  const sendMultipart = async (
    reply: FastifyReply,
    content: MediaContent,
    disposition: string,
  ): Promise<FastifyReply> => {
    const boundary = randomBytes(16).toString('hex');
    const { prefix, suffix } = multipartFrame(
      boundary,
      {},
      {
        'Content-Type': servedContentType(content.contentType),
        'Content-Disposition': disposition,
      },
    );
    const bytes = await media.open(content);
    const body = Readable.from(
      (async function* () {
        yield prefix;
        yield* bytes;
        yield suffix;
      })(),
      { objectMode: false },
    );
    return reply
      .header('Content-Type', `multipart/mixed; boundary=${boundary}`)
      .header('Content-Length', prefix.length + content.size + suffix.length)
      .send(body);
  };

  // https://spec.matrix.org/v1.19/server-server-api/#get_matrixfederationv1mediadownloadmediaid
  app.get(
    '/_matrix/federation/v1/media/download/:mediaId',
    { ...signed, schema: { params: MEDIA_ID, querystring: Type.Object({ timeout_ms: TIMEOUT }) } },
    async (request, reply) => {
      const content = await media.localContent(request.params.mediaId, request.query.timeout_ms);
      return sendMultipart(
        reply,
        content,
        contentDisposition(content.contentType, content.fileName),
      );
    },
  );

  // https://spec.matrix.org/v1.19/server-server-api/#get_matrixfederationv1mediathumbnailmediaid
  app.get(
    '/_matrix/federation/v1/media/thumbnail/:mediaId',
    { ...signed, schema: { params: MEDIA_ID, querystring: THUMBNAIL_QUERY } },
    async (request, reply) => {
      const { query } = request;
      const content = await media.thumbnail(services.settings.serverName, request.params.mediaId, {
        width: query.width,
        height: query.height,
        method: query.method ?? 'scale',
        animated: query.animated === true,
        timeoutMs: query.timeout_ms,
        localOnly: true,
      });
      const extension = content.contentType.split('/')[1] ?? 'bin';
      return sendMultipart(reply, content, `inline; filename="thumbnail.${extension}"`);
    },
  );
}
