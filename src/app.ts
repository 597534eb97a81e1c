/**
 * buildApp(deps): the Fastify application with our plugins and every route module.
 * Tests import it; main.ts gives it concrete services and listens.
 */
import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type FastifyServerFactory,
} from 'fastify';
import cors from '@fastify/cors';
import type { ResolvedConfig } from './config/load.js';
import type { Services } from './services/index.js';
import {
  logsRequests,
  registerAccessHooks,
  registerInputChecks,
  registerRequestLog,
} from './http/access.js';
import { registerErrorHandling } from './http/errors.js';
import { registerJsonBodyParser } from './http/json-body.js';
import { RateLimiter } from './http/rate-limit.js';
import { registerValidators } from './http/validation.js';
import { clientRoutes } from './api/client/index.js';
import { adminRoutes } from './api/admin/index.js';
import { appserviceRoutes } from './api/appservice/index.js';
import { rootRoutes } from './api/root.js';
import { federationRoutes } from './api/federation/index.js';

import { mediaRoutes } from './api/media/index.js';
import { hashAccessToken, newSessionId } from './core/secrets.js';
import { createServer } from 'node:http';
import type { Socket } from 'node:net';
import { FastReads } from './http/fast-reads.js';
import { InFlight } from './http/in-flight.js';
import type { RequestObserver } from './metrics.js';
import { invalidParam } from './core/errors.js';
import { parseQueryString } from './http/query-string.js';

export interface AppDeps {
  config: ResolvedConfig;
  services: Services;
  logger: FastifyBaseLogger;
  /** Counts running handlers (and fast reads), for a shutdown to wait for. */
  inFlight?: InFlight;
  /** Told of every answered request (metrics.enabled); none: nothing is measured. */
  requestObserver?: RequestObserver | null;
}

export type App = FastifyInstance;

function answerFrameworkError(
  error: FastifyError,
  _request: FastifyRequest,
  reply: FastifyReply,
): void {
  const detail = error.code === 'FST_ERR_BAD_URL' ? 'bad URL encoding' : error.message;
  void reply
    .code(400)
    .header('Access-Control-Allow-Origin', '*')
    .type('application/json')
    .send(invalidParam(`Malformed request: ${detail}`).toJSON());
}

/**
 * Errors Node's HTTP parser finds before Fastify sees a request (request head over 16 KiB,
 * malformed HTTP): a Matrix error body, then the connection closes.
 */
function answerClientError(error: Error & { code?: string }, socket: Socket): void {
  if (!socket.writable) return;
  const [status, reason, errcode, message] =
    error.code === 'HPE_HEADER_OVERFLOW'
      ? [
          431,
          'Request Header Fields Too Large',
          'M_TOO_LARGE',
          'Request line and headers too large',
        ]
      : [400, 'Bad Request', 'M_UNKNOWN', 'Malformed HTTP request'];
  const body = JSON.stringify({ errcode, error: message });
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\n` +
      `Access-Control-Allow-Origin: *\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
      `Connection: close\r\n\r\n${body}`,
  );
}

/**
 * Node's HTTP server set up as Fastify sets up its own (keep-alive, request and connection
 * timeouts), with the fast reads, if any, in front of Fastify's handler.
 */
function serverWith(fastReads: FastReads | null): FastifyServerFactory {
  return (handler, options) => {
    const server = createServer(
      fastReads ? (request, response) => fastReads.handle(request, response, handler) : handler,
    );
    const number = (name: string) => {
      const value = options[name];
      return typeof value === 'number' ? value : undefined;
    };
    server.keepAliveTimeout = number('keepAliveTimeout') ?? server.keepAliveTimeout;
    server.requestTimeout = number('requestTimeout') ?? server.requestTimeout;
    server.setTimeout(number('connectionTimeout') ?? 0);
    const perSocket = number('maxRequestsPerSocket') ?? 0;
    if (perSocket > 0) server.maxRequestsPerSocket = perSocket;
    return server;
  };
}

export async function buildApp(deps: AppDeps): Promise<App> {
  const { config } = deps;
  // Request IDs (in logs and 500 answers): a random tag per app, then a counter; cheaper than
  // random bytes per request, and still unique across processes.
  const requestIdTag = newSessionId().slice(0, 8);
  let requests = 0;
  const requestId = () => `${requestIdTag}${(++requests).toString(36)}`;
  const inFlight = deps.inFlight ?? new InFlight();
  const observer = deps.requestObserver ?? null;
  const rateLimiter = config.rate_limits.enabled
    ? new RateLimiter(config.rate_limits.classes)
    : null;
  const fastReads = config.http.fast_reads
    ? new FastReads({
        // An application service's token is Fastify's to read (it may name a user to act as);
        // thrown here, the fast read leaves it at once rather than look for a session.
        authenticate: (token) => {
          // Hashed once for both lookups (a hash is most of a cached session's cost).
          const hash = hashAccessToken(token);
          if (deps.services.appservices.byTokenHash(hash) !== null)
            throw new Error('an application service token');
          return deps.services.sessions.authenticateHash(hash);
        },
        rateLimiter,
        trustProxy: config.http.trust_proxy,
        requestId,
        inFlight,
        observe: observer ? observer.observeRequest.bind(observer) : undefined,
        log: {
          enabled: logsRequests(deps.logger.level),
          line: (fields, reqId) => deps.logger.info({ reqId, ...fields }, 'request'),
        },
      })
    : null;
  const app = Fastify({
    loggerInstance: deps.logger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.http.max_body_bytes,
    trustProxy: config.http.trust_proxy,
    genReqId: requestId,
    serverFactory: serverWith(fastReads),
    routerOptions: {
      ignoreTrailingSlash: false,
      maxParamLength: 1000,
      querystringParser: parseQueryString,
    },
    return503OnClosing: true,
    // Errors Fastify raises before routing (a malformed percent-encoding in the path): answer
    // them as Matrix errors too, with the CORS header the cors plugin cannot add this early.
    frameworkErrors: answerFrameworkError,
    clientErrorHandler: answerClientError,
  });

  // Every handler is counted while it runs (it may run on after its client has gone).
  app.addHook('onRoute', (route) => {
    const handler = route.handler;
    route.handler = function (this: FastifyInstance, request, reply) {
      const result: unknown = handler.call(this, request, reply);
      return result instanceof Promise ? inFlight.track(result) : result;
    } as typeof handler;
  });
  if (observer) {
    // By route pattern, never by URL (whose IDs would make a series per room and user).
    app.addHook('onResponse', (request, reply, done) => {
      observer.observeRequest(
        request.method,
        request.routeOptions.url ?? 'unmatched',
        reply.statusCode,
        reply.elapsedTime / 1000,
      );
      done();
    });
  }
  registerErrorHandling(app);
  registerValidators(app);
  registerJsonBodyParser(app);
  await app.register(cors, {
    origin: '*',
    methods: ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS'],
    allowedHeaders: ['X-Requested-With', 'Content-Type', 'Authorization'],
    maxAge: 86400,
    strictPreflight: false,
  });
  // Closing: every request goes to Fastify, which answers 503.
  app.addHook('preClose', (done) => {
    fastReads?.close();
    done();
  });
  registerAccessHooks(app, deps.services, rateLimiter, config.auth.allow_query_token);
  registerInputChecks(app);
  registerRequestLog(app);

  await app.register(clientRoutes, { services: deps.services, config, fastReads });
  await app.register(adminRoutes, { services: deps.services, config });
  await app.register(appserviceRoutes, { services: deps.services, config });
  await app.register(rootRoutes, { services: deps.services, config });
  await app.register(federationRoutes, { services: deps.services, config });

  await app.register(mediaRoutes, { services: deps.services, config });
  return app;
}
