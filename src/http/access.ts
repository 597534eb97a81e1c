/**
 * Per-request access: reads the access token (Authorization: Bearer), resolves the
 * requester for routes that declare `auth`, then takes a rate-limit token keyed by user
 * (or client address when anonymous).
 */
import type {
  FastifyInstance,
  FastifyRequest,
  onRequestHookHandler,
  preHandlerHookHandler,
} from 'fastify';
import { MatrixError, missingToken } from '../core/errors.js';
import { hashAccessToken } from '../core/secrets.js';
import type { Requester, Services } from '../services/index.js';
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
  const token = bearerToken(header);
  if (token === null)
    throw new MatrixError(401, 'M_MISSING_TOKEN', 'Authorization header must be "Bearer <token>"');
  return token;
}

/** The token of an `Authorization: Bearer <token>` header, or null when it is not one. */
export function bearerToken(header: string): string | null {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match ? (match[1] as string) : null;
}

/** One query parameter's value, when given once. */
function single(query: Record<string, unknown> | undefined, name: string): string | undefined {
  const value = query?.[name];
  return typeof value === 'string' ? value : undefined;
}

/**
 * The requester behind a token: an application service's `as_token` acts as its sender, or
 * as the `user_id` (and `device_id`) the query names — unless the route's `user_id` is its
 * own parameter (`userIdParam`); any other token is a session's.
 */
function authenticate(
  services: Services,
  token: string,
  rawQuery: unknown,
  userIdParam: boolean,
): Requester | Promise<Requester> {
  // Hashed once for both lookups (a hash is most of a cached session's cost).
  const hash = hashAccessToken(token);
  const appservice = services.appservices.byTokenHash(hash);
  if (appservice === null) return services.sessions.authenticateHash(hash);
  const query = rawQuery as Record<string, unknown> | undefined;
  return services.appservices.requester(appservice, {
    userId: userIdParam ? undefined : single(query, 'user_id'),
    deviceId: single(query, 'device_id') ?? single(query, 'org.matrix.msc3202.device_id'),
  });
}

/** Whether the request comes from an application service with `rate_limited: false`. */
function unlimitedService(services: Services, request: FastifyRequest): boolean {
  const acting = request.requester?.appservice;
  if (acting) return !acting.rateLimited;
  if (request.requester || services.appservices.registrations.length === 0) return false;
  const header = request.headers.authorization;
  const token = header === undefined ? null : bearerToken(header);
  return token !== null && services.appservices.byToken(token)?.rateLimited === false;
}

/** A route-level hook added to a route's own (Fastify allows one or a list). */
function withHook<H>(existing: H | H[] | undefined, hook: H): H[] {
  if (existing === undefined) return [hook];
  return Array.isArray(existing) ? [...existing, hook] : [existing, hook];
}

/**
 * The hooks are attached to each route as it is registered (register these before the
 * routes), with what the route declares already at hand: per request, nothing is looked up
 * (Fastify builds `request.routeOptions` afresh on every read) and no promise is made when
 * the token's session is cached.
 */
export function registerAccessHooks(
  app: FastifyInstance,
  services: Services,
  rateLimiter: RateLimiter | null,
  allowQueryToken: boolean,
): void {
  app.decorateRequest('requester', null);
  app.addHook('onRoute', (route) => {
    const auth = route.config?.auth;
    const userIdParam = route.config?.userIdParam === true;
    const bucket = route.config?.rateLimit ?? 'default';
    const limit =
      rateLimiter && bucket !== false
        ? (request: FastifyRequest) => {
            // An application service registered with `rate_limited: false` is never limited,
            // also where its token is read by the route (registering its users, logging in).
            if (unlimitedService(services, request)) return;
            rateLimiter.take(
              bucket,
              request.requester?.userId ?? `ip:${request.ip}`,
              request.requester?.rateLimitOverride,
            );
          }
        : null;
    if (!auth && !limit) return;
    route.onRequest = withHook<onRequestHookHandler>(route.onRequest, (request, _reply, done) => {
      try {
        const token = auth ? accessTokenOf(request, allowQueryToken) : null;
        if (token === null) {
          if (auth === 'required') throw missingToken();
        } else {
          const found = authenticate(services, token, request.query, userIdParam);
          if (found instanceof Promise) {
            found.then((requester) => {
              request.requester = requester;
              // A refusal here must answer the request (thrown, it would leave it hanging).
              try {
                limit?.(request);
              } catch (err) {
                done(err as Error);
                return;
              }
              done();
            }, done);
            return;
          }
          request.requester = found;
        }
        limit?.(request);
      } catch (err) {
        done(err as Error);
        return;
      }
      done();
    });
  });
}

/**
 * Refuses undecodable values of the parameters a route declares, and NUL in its path, at
 * once the rest of the request has been validated (after authentication and the schema).
 */
export function registerInputChecks(app: FastifyInstance): void {
  app.addHook('onRoute', (route) => {
    const properties = (route.schema?.querystring as { properties?: object } | undefined)
      ?.properties;
    const names: ReadonlySet<string> = new Set(['access_token', ...Object.keys(properties ?? {})]);
    route.preHandler = withHook<preHandlerHookHandler>(
      route.preHandler,
      (request, _reply, done) => {
        const problem =
          queryStringProblem(request.query, names) ?? pathParamProblem(request.params);
        done(problem ?? undefined);
      },
    );
  });
}

const LEVELS_LOGGING_REQUESTS = new Set(['trace', 'debug', 'info']);

/** Whether a logger at `level` writes the request log. */
export function logsRequests(level: string): boolean {
  return LEVELS_LOGGING_REQUESTS.has(level);
}

/** The fields of a request's log line, without tokens. */
export function requestLogFields(request: {
  method: string;
  url: string;
  status: number;
  ms: number;
  userId: string | undefined;
  ip: string | undefined;
}): Record<string, unknown> {
  return {
    method: request.method,
    path: request.url.replace(/([?&]access_token=)[^&]*/g, '$1<redacted>'),
    status: request.status,
    ms: +request.ms.toFixed(2),
    user: request.userId,
    ip: request.ip,
  };
}

/** One structured log line per request (at `info`), without tokens. */
export function registerRequestLog(app: FastifyInstance): void {
  app.addHook('onResponse', (request, reply, done) => {
    if (logsRequests(request.log.level))
      request.log.info(
        requestLogFields({
          method: request.method,
          url: request.url,
          status: reply.statusCode,
          ms: reply.elapsedTime,
          userId: request.requester?.userId,
          ip: request.ip,
        }),
        'request',
      );
    done();
  });
}
