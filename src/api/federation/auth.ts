/**
 * The `X-Matrix` check as a Fastify plugin: every route registered after it in the same scope
 * whose config says `federationAuth` has its request authenticated before validation (with
 * the parsed body at hand); the origin is then `request.federationOrigin`. A request that is
 * not authentic gets 401 `M_UNAUTHORIZED`.
 */
import type { FastifyInstance, preValidationHookHandler } from 'fastify';
import { limitExceeded } from '../../core/errors.js';
import type { FederationService } from '../../services/federation/index.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Authenticate the request as coming from another server (X-Matrix). */
    federationAuth?: boolean;
  }
  interface FastifyRequest {
    /** The server an authenticated federation request came from. */
    federationOrigin: string | null;
  }
}

/** Per-origin request rate: a token bucket per server (`federation.inbound_rate_limit`). */
export interface OriginRateLimit {
  perSecond: number;
  burst: number;
}

/** A token bucket per origin; `take(origin)` answers how long to wait (0: go ahead). */
export function originLimiter(limit: OriginRateLimit, now: () => number = Date.now) {
  const buckets = new Map<string, { tokens: number; at: number }>();
  return {
    take(origin: string): number {
      if (limit.perSecond <= 0) return 0;
      const t = now();
      const bucket = buckets.get(origin) ?? { tokens: limit.burst, at: t };
      bucket.tokens = Math.min(
        limit.burst,
        bucket.tokens + ((t - bucket.at) / 1000) * limit.perSecond,
      );
      bucket.at = t;
      buckets.set(origin, bucket);
      if (bucket.tokens >= 1) {
        bucket.tokens -= 1;
        return 0;
      }
      return Math.ceil(((1 - bucket.tokens) / limit.perSecond) * 1000);
    },
  };
}

export function registerFederationAuth(
  app: FastifyInstance,
  federation: FederationService,
  rateLimit: OriginRateLimit = { perSecond: 0, burst: 1 },
): void {
  app.decorateRequest('federationOrigin', null);
  const limiter = originLimiter(rateLimit);
  const check: preValidationHookHandler = async (request) => {
    const authorization = request.headers.authorization;
    const origin = await federation.authenticate({
      method: request.method,
      uri: request.raw.url ?? request.url,
      authorization: typeof authorization === 'string' ? authorization : undefined,
      content: request.body === null ? undefined : request.body,
    });
    const wait = limiter.take(origin);
    if (wait > 0) throw limitExceeded(wait);
    request.federationOrigin = origin;
  };
  app.addHook('onRoute', (route) => {
    if (!route.config?.federationAuth) return;
    const existing = route.preValidation;
    route.preValidation =
      existing === undefined
        ? [check]
        : Array.isArray(existing)
          ? [check, ...existing]
          : [check, existing];
  });
}

/** The origin of a request on a route declared with `federationAuth`. */
export function originOf(request: { federationOrigin: string | null }): string {
  if (request.federationOrigin === null) throw new Error('route is not declared federationAuth');
  return request.federationOrigin;
}
