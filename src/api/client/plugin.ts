/** The options every route module receives, and the path prefixes of the client API. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { ResolvedConfig } from '../../config/load.js';
import type { FastReads } from '../../http/fast-reads.js';
import type { Services } from '../../services/index.js';

export interface RouteOptions {
  services: Services;
  config: ResolvedConfig;
  /** Where a route adds its fast form (null: http.fast_reads is off). */
  fastReads?: FastReads | null;
}

export type RoutePlugin = FastifyPluginAsyncTypebox<RouteOptions>;

/** v3 and its r0 alias, for endpoints that existed in r0 (older and Python clients). */
export const V3_PREFIXES = ['/_matrix/client/v3', '/_matrix/client/r0'] as const;
