/**
 * The one error handler: MatrixError → its status and body; schema failures → M_BAD_JSON /
 * M_MISSING_PARAM / M_INVALID_PARAM; Fastify's own errors → their Matrix codes; anything else
 * → 500 M_UNKNOWN, logged with the request id and never shown.
 * Unknown paths answer 404 M_UNRECOGNIZED, known paths with another method 405, whatever the
 * body (it is not read).
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import FindMyWay, { type HTTPMethod } from 'find-my-way';
import {
  MatrixError,
  missingParam,
  invalidParam,
  badJson,
  notJson,
  tooLarge,
  unrecognized,
} from '../core/errors.js';

interface ValidationIssue {
  keyword: string;
  instancePath: string;
  message?: string;
  params: Record<string, unknown>;
}

function describeIssue(issue: ValidationIssue): string {
  const where = issue.instancePath.replace(/^\//, '').replace(/\//g, '.');
  if (issue.keyword === 'required')
    return `missing "${[where, issue.params.missingProperty].filter(Boolean).join('.')}"`;
  if (issue.keyword === 'additionalProperties') {
    return `unknown property "${[where, issue.params.additionalProperty].filter(Boolean).join('.')}"`;
  }
  return `"${where || 'value'}" ${issue.message ?? 'is invalid'}`;
}

function fromValidation(error: FastifyError, request: FastifyRequest): MatrixError {
  const issue = error.validation?.[0] as ValidationIssue | undefined;
  const detail = issue ? describeIssue(issue) : error.message;
  switch (error.validationContext) {
    case 'body':
      return request.body === undefined
        ? notJson('Request body must be a JSON object')
        : badJson(`Bad JSON: ${detail}`);
    case 'querystring':
      return issue?.keyword === 'required'
        ? missingParam(`Missing query parameter ${String(issue.params.missingProperty)}`)
        : invalidParam(`Invalid query parameter: ${detail}`);
    default:
      return invalidParam(`Invalid ${error.validationContext ?? 'request'}: ${detail}`);
  }
}

/** Maps any thrown value to the MatrixError to answer with (null: an internal error). */
export function toMatrixError(error: unknown, request: FastifyRequest): MatrixError | null {
  if (error instanceof MatrixError) return error;
  const fastifyError = error as Partial<FastifyError>;
  if (fastifyError.validation) return fromValidation(fastifyError as FastifyError, request);
  switch (fastifyError.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return tooLarge('Request body too large');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return notJson('Content not JSON');
    default:
      break;
  }
  if (fastifyError instanceof SyntaxError || fastifyError.statusCode === 400)
    return notJson('Content not JSON');
  if (typeof fastifyError.statusCode === 'number' && fastifyError.statusCode === 413) {
    return tooLarge('Request body too large');
  }
  return null;
}

function send(reply: FastifyReply, error: MatrixError): FastifyReply {
  for (const [name, value] of Object.entries(error.headers)) reply.header(name, value);
  return reply.code(error.status).type('application/json').send(error.toJSON());
}

const METHODS: HTTPMethod[] = ['GET', 'PUT', 'POST', 'DELETE', 'PATCH', 'HEAD'];

export function registerErrorHandling(app: FastifyInstance): void {
  const knownPaths = FindMyWay({ ignoreTrailingSlash: false, ignoreDuplicateSlashes: false });
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    for (const method of methods) {
      if (method === 'OPTIONS' || route.url === '*' || route.url === '/*') continue;
      try {
        knownPaths.on(method as HTTPMethod, route.url, () => undefined);
      } catch {
        // the same route registered twice (HEAD for GET): already known
      }
    }
  });

  // Unknown paths (and known ones with another method) are answered before the body is read:
  // a client uploading an image to an endpoint we lack gets 404, not a complaint about JSON,
  // and however large the body, none of it is parsed. (Fastify parses a body for its
  // not-found route too; preParsing runs after onRequest, so the CORS header is set.)
  app.addHook('preParsing', (request, reply, payload, done) => {
    if (request.is404) {
      answerUnrouted(request, reply);
      return;
    }
    done(null, payload);
  });

  function answerUnrouted(request: FastifyRequest, reply: FastifyReply): FastifyReply {
    const path = request.url.split('?')[0] ?? '/';
    const allowed = METHODS.filter((method) => knownPaths.find(method, path) !== null);
    if (allowed.length > 0) {
      reply.header('Allow', allowed.join(', '));
      return send(
        reply,
        unrecognized(`Method ${request.method} not allowed on this endpoint`, 405),
      );
    }
    return send(reply, unrecognized('Unrecognized request'));
  }
  app.setNotFoundHandler(answerUnrouted);

  app.setErrorHandler((error, request, reply) => {
    const matrixError = toMatrixError(error, request);
    if (matrixError) return send(reply, matrixError);
    request.log.error({ err: error, reqId: request.id }, 'internal error');
    return send(
      reply,
      new MatrixError(500, 'M_UNKNOWN', `Internal server error (request ${request.id})`),
    );
  });
}
