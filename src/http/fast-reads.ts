/**
 * Fast reads: a few hot GET routes answered straight from Node's request, before Fastify
 * routes it, when everything the answer needs is already in memory. A fast read answers only
 * the ordinary case: a cached session (Bearer header), a rate-limit token, a query its route
 * accepts and a 200 body. Anything else (no or unknown token, a bad parameter, an error, the
 * server closing) goes to Fastify untouched, which answers it exactly as it answers every
 * request. The route keeps its Fastify form, so a request answers the same either way; the
 * fast form skips Fastify's per-request work (request and reply objects, hooks, schema
 * validation, serialisation), which was most of the cost of a mutual_rooms page.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import proxyAddr from '@fastify/proxy-addr';
import type { Requester } from '../services/index.js';
import { bearerToken, requestLogFields } from './access.js';
import { parseQueryString, queryStringIsClean, type ParsedQuery } from './query-string.js';
import type { RateLimiter, RateLimitClassName } from './rate-limit.js';

/** What a fast read is given: the authenticated requester, the decoded query and path parameter. */
export interface FastReadRequest {
  requester: Requester;
  query: ParsedQuery;
  /** The decoded `:name` segment of a path with one (`''` for an exact path). */
  param: string;
}

/**
 * A route's fast form. It checks the request at once: null leaves it to Fastify; otherwise it
 * gives the read, called once a rate-limit token is taken, which gives the body of the 200
 * answer, or null (or rejects) to leave the request to Fastify after all (nothing was sent;
 * Fastify's path then takes a rate-limit token of its own, so such a request counts twice).
 */
export type FastRead = (request: FastReadRequest) => (() => Promise<Buffer | null>) | null;

export interface FastReadRoute {
  /**
   * The exact path, or a path with one parameter segment (`/rooms/:roomId/joined_members`),
   * whose percent-decoded value the read gets as `param` (a value with `/` in it, or one
   * that does not decode, is Fastify's).
   */
  path: string;
  rateLimit: RateLimitClassName;
  contentType: string;
  read: FastRead;
}

/** A request's log line, as the request log hook writes it for Fastify's answers. */
export interface FastReadLog {
  /** Whether request lines are logged at all (at `info`). */
  enabled: boolean;
  line(fields: Record<string, unknown>, requestId: string): void;
}

export interface FastReadsOptions {
  authenticate(token: string): Requester | Promise<Requester>;
  rateLimiter: RateLimiter | null;
  /** Whether the client address is taken from X-Forwarded-For (http.trust_proxy). */
  trustProxy: boolean;
  /** The next request ID, from the counter Fastify's requests use. */
  requestId(): string;
  log: FastReadLog;
  /** Counts each read while it runs (a shutdown waits for them). */
  inFlight?: { track<T>(work: Promise<T>): Promise<T> };
  /** Told of each answered read, as Fastify's requests are (metrics). */
  observe?: ((method: string, route: string, status: number, seconds: number) => void) | undefined;
}

/** Node's request handler signature, which Fastify's own handler has too. */
export type NodeHandler = (request: IncomingMessage, response: ServerResponse) => void;

const trustAll = () => true;

/** A request a fast read took on: who asked, and the body being read. */
interface Accepted {
  requester: Requester;
  body: Promise<Buffer | null>;
}

/** A route with a parameter segment: the path before it and after it. */
interface PatternRoute {
  before: string;
  after: string;
  route: FastReadRoute;
}

/** The route a request matched, and its decoded parameter. */
interface Matched {
  route: FastReadRoute;
  param: string;
}

export class FastReads {
  private readonly routes = new Map<string, FastReadRoute>();
  private readonly patterns: PatternRoute[] = [];
  private closing = false;

  constructor(private readonly options: FastReadsOptions) {}

  add(route: FastReadRoute): void {
    const match = /^(.*\/):[A-Za-z]+(\/.*)?$/.exec(route.path);
    if (match) this.patterns.push({ before: match[1]!, after: match[2] ?? '', route });
    else this.routes.set(route.path, route);
  }

  /** From now on every request goes to Fastify (which answers 503 while closing). */
  close(): void {
    this.closing = true;
  }

  /** Answers `request` if it is a fast read's ordinary case, else hands it to `fallback`. */
  handle(request: IncomingMessage, response: ServerResponse, fallback: NodeHandler): void {
    const matched = this.closing ? undefined : this.routeOf(request);
    if (!matched) {
      fallback(request, response);
      return;
    }
    const { route } = matched;
    const started = performance.now();
    let accepted: Accepted | null;
    try {
      accepted = this.accept(matched, request);
    } catch {
      accepted = null; // a route's bug: Fastify's route answers (and logs) it
    }
    if (!accepted) {
      fallback(request, response);
      return;
    }
    const { requester, body } = accepted;
    body.then(
      (bytes) => {
        if (bytes === null) fallback(request, response);
        else this.send(route, request, response, requester, bytes, started);
      },
      () => fallback(request, response),
    );
  }

  private routeOf(request: IncomingMessage): Matched | undefined {
    if (request.method !== 'GET') return undefined;
    const url = request.url ?? '';
    const mark = url.indexOf('?');
    const path = mark < 0 ? url : url.slice(0, mark);
    const exact = this.routes.get(path);
    if (exact) return { route: exact, param: '' };
    for (const { before, after, route } of this.patterns) {
      if (path.length <= before.length + after.length) continue;
      if (!path.startsWith(before) || !path.endsWith(after)) continue;
      const raw = path.slice(before.length, path.length - after.length);
      if (raw.includes('/')) continue;
      try {
        return { route, param: decodeURIComponent(raw) };
      } catch {
        return undefined;
      }
    }
    return undefined;
  }

  /** The requester and the route's read of this request, or null when Fastify should answer it. */
  private accept({ route, param }: Matched, request: IncomingMessage): Accepted | null {
    const header = request.headers.authorization;
    const token = header === undefined ? null : bearerToken(header);
    if (token === null) return null;
    let requester: Requester;
    try {
      const found = this.options.authenticate(token);
      // An uncached session is read by Fastify's path, which caches it for the next request.
      if (found instanceof Promise) {
        found.catch(() => undefined);
        return null;
      }
      requester = found;
    } catch {
      return null;
    }
    const url = request.url ?? '';
    const mark = url.indexOf('?');
    const query = parseQueryString(mark < 0 ? '' : url.slice(mark + 1));
    // The deprecated query token and undecodable values are Fastify's to answer.
    if (!queryStringIsClean(query) || query.access_token !== undefined) return null;
    const read = route.read({ requester, query, param });
    if (read === null) return null;
    // The route accepted the request: only now is a rate-limit token taken, as Fastify's path
    // would (a refused take takes nothing, and Fastify's path then refuses it the same way).
    try {
      this.options.rateLimiter?.take(
        route.rateLimit,
        requester.userId,
        requester.rateLimitOverride,
      );
    } catch {
      return null;
    }
    const body = read();
    this.options.inFlight?.track(body).catch(() => undefined);
    return { requester, body };
  }

  private send(
    route: FastReadRoute,
    request: IncomingMessage,
    response: ServerResponse,
    requester: Requester,
    body: Buffer,
    started: number,
  ): void {
    response.writeHead(200, {
      'access-control-allow-origin': '*',
      'content-type': route.contentType,
      'content-length': body.length,
    });
    response.end(body);
    this.options.observe?.('GET', route.path, 200, (performance.now() - started) / 1000);
    if (!this.options.log.enabled) return;
    const ip = this.options.trustProxy
      ? proxyAddr.all(request, trustAll).at(-1)
      : request.socket.remoteAddress;
    this.options.log.line(
      requestLogFields({
        method: 'GET',
        url: request.url ?? '',
        status: 200,
        ms: performance.now() - started,
        userId: requester.userId,
        ip,
      }),
      this.options.requestId(),
    );
  }
}
