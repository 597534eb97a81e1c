/**
 * What every admin route shares: only server admins get through (403 M_FORBIDDEN for anyone
 * else, before the request is validated, so that nothing about the endpoint is told), and
 * every answered admin request is logged with the admin who made it: changes at `info`,
 * reads at `debug`.
 */
import type { FastifyInstance } from 'fastify';
import { forbidden, missingToken } from '../../core/errors.js';

const READS = new Set(['GET', 'HEAD']);

export function adminOnly(app: FastifyInstance): void {
  app.addHook('preValidation', (request, _reply, done) => {
    if (!request.requester) done(missingToken());
    else if (!request.requester.isAdmin) done(forbidden('You are not a server admin'));
    else done();
  });
  app.addHook('onResponse', (request, reply, done) => {
    const admin = request.requester?.userId;
    if (admin !== undefined && request.requester?.isAdmin) {
      const fields = {
        admin,
        action: `${request.method} ${request.routeOptions.url ?? request.url}`,
        params: request.params,
        status: reply.statusCode,
      };
      if (READS.has(request.method)) request.log.debug(fields, 'admin read');
      else request.log.info(fields, 'admin action');
    }
    done();
  });
}
