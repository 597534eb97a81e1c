/**
 * The `X-Matrix` check as a Fastify plugin: every route registered after it in the same scope
 * whose config says `federationAuth` has its request authenticated before validation (with
 * the parsed body at hand); the origin is then `request.federationOrigin`. A request that is
 * not authentic gets 401 `M_UNAUTHORIZED`.
 */
import type { FastifyInstance, preValidationHookHandler } from 'fastify';
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

export function registerFederationAuth(app: FastifyInstance, federation: FederationService): void {
  app.decorateRequest('federationOrigin', null);
  const check: preValidationHookHandler = async (request) => {
    const authorization = request.headers.authorization;
    request.federationOrigin = await federation.authenticate({
      method: request.method,
      uri: request.raw.url ?? request.url,
      authorization: typeof authorization === 'string' ? authorization : undefined,
      content: request.body === null ? undefined : request.body,
    });
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
