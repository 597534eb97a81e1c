/** What our hooks add to Fastify's request and route options. */
import { missingToken } from '../core/errors.js';
import type { Requester } from '../services/index.js';
import type { RateLimitClassName } from './rate-limit.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** 'required': 401 without a valid token; 'optional': requester may be null. */
    auth?: 'required' | 'optional';
    /** The token bucket this route draws from; 'default' when unset. */
    rateLimit?: RateLimitClassName | false;
    /**
     * The route's `user_id` query parameter is its own (a user it is about), so an application
     * service's token acts as its sender there: `user_id` is not read as identity assertion.
     */
    userIdParam?: boolean;
  }
  interface FastifyRequest {
    requester: Requester | null;
  }
}

/** The authenticated requester of a route declared with `auth: 'required'`. */
export function requesterOf(request: { requester: Requester | null }): Requester {
  if (!request.requester) throw missingToken();
  return request.requester;
}
