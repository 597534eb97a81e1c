/**
 * Per-request access: reads the access token (Authorization: Bearer), resolves the
 * requester for routes that declare `auth`, then takes a rate-limit token keyed by user
 * (or client address when anonymous).
 */
import type { FastifyInstance, FastifyRequest, FastifySchema } from 'fastify';
import { MatrixError, missingToken } from '../core/errors.js';
import type { Services } from '../services/index.js';
import type { RateLimiter } from './rate-limit.js';
import { pathParamProblem, queryStringProblem } from './query-string.js';

/**
 * The request's access token: the Authorization header, or (when allowed) the deprecated
 * `access_token` query parameter older clients send.
 */
export function accessTokenOf(request: FastifyRequest, allowQueryToken = false): string | null {
  const header = request.headers.authorization;
  if (header === undefined) {
    if (!allowQueryToken) return null;
    const query = request.query as Record<string, unknown> | undefined;
    const token = query?.access_token;
    return typeof token === 'string' && token !== '' ? token : null;
  }
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!match)
    throw new MatrixError(401, 'M_MISSING_TOKEN', 'Authorization header must be "Bearer <token>"');
  return match[1] as string;
}

export function registerAccessHooks(
  app: FastifyInstance,
  services: Services,
  rateLimiter: RateLimiter | null,
  allowQueryToken: boolean,
): void {
  app.decorateRequest('requester', null);
  app.addHook('onRequest', async (request) => {
    const config = request.routeOptions.config;
    if (config.auth) {
      const token = accessTokenOf(request, allowQueryToken);
      if (token === null) {
        if (config.auth === 'required') throw missingToken();
      } else {
        request.requester = await services.sessions.authenticate(token);
      }
    }
    if (rateLimiter && config.rateLimit !== false && request.is404 !== true) {
      rateLimiter.take(
        config.rateLimit ?? 'default',
        request.requester?.userId ?? `ip:${request.ip}`,
      );
    }
  });
}

/**
 * Refuses undecodable values of the parameters a route declares, and NUL in its path, at
 * once the rest of the request has been validated (after authentication and the schema).
 */
export function registerInputChecks(app: FastifyInstance): void {
  const known = new WeakMap<object, ReadonlySet<string>>();
  const noSchema: FastifySchema = {};
  app.addHook('preHandler', async (request) => {
    const schema = request.routeOptions.schema ?? noSchema;
    let names = known.get(schema);
    if (!names) {
      const properties = (schema.querystring as { properties?: object } | undefined)?.properties;
      names = new Set(['access_token', ...Object.keys(properties ?? {})]);
      known.set(schema, names);
    }
    const problem = queryStringProblem(request.query, names) ?? pathParamProblem(request.params);
    if (problem) throw problem;
  });
}

const LEVELS_LOGGING_REQUESTS = new Set(['trace', 'debug', 'info']);

/** One structured log line per request (at `info`), without tokens. */
export function registerRequestLog(app: FastifyInstance): void {
  app.addHook('onResponse', async (request, reply) => {
    if (!LEVELS_LOGGING_REQUESTS.has(request.log.level)) return;
    request.log.info(
      {
        method: request.method,
        path: request.url.replace(/([?&]access_token=)[^&]*/g, '$1<redacted>'),
        status: reply.statusCode,
        ms: +reply.elapsedTime.toFixed(2),
        user: request.requester?.userId,
        ip: request.ip,
      },
      'request',
    );
  });
}
