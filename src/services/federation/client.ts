/**
 * Outbound federation requests: finds the destination (server discovery), signs the request
 * (`X-Matrix`), and sends it over HTTPS with certificates checked against the system's
 * authorities plus the configured extra ones — never without a check.
 */
import { request as httpsRequest, Agent } from 'node:https';
import { checkServerIdentity, rootCertificates, type PeerCertificate } from 'node:tls';
import { resolveSrv } from 'node:dns/promises';
import type { SigningKey } from '../../core/signing.js';
import {
  isIP,
  parseWellKnownServer,
  resolveServerName,
  wellKnownErrorTtlMs,
  wellKnownTtlMs,
  type DiscoveryResolver,
  type ResolvedServer,
} from '../../core/server-discovery.js';
import { xMatrixHeader } from '../../core/x-matrix.js';

/** Largest answer read from another server. */
const MAX_RESPONSE_BYTES = 16 * 1024 * 1024;

export interface FederationResponse {
  status: number;
  body: unknown;
  headers: Record<string, string | string[] | undefined>;
}

/** A request that got no HTTP answer (discovery, connection, TLS, timeout) or a non-JSON one. */
export class FederationRequestError extends Error {
  constructor(
    readonly destination: string,
    message: string,
  ) {
    super(`${destination}: ${message}`);
    this.name = 'FederationRequestError';
  }
}

export interface FederationClientOptions {
  serverName: string;
  signingKey: SigningKey;
  extraCaPem: string | null;
  timeoutMs: number;
  /** Discovery's lookups; default: DNS SRV and HTTPS well-known with the spec's caching. */
  resolver?: DiscoveryResolver;
  now?: () => number;
}

export interface RequestOptions {
  /** A JSON body (also signed). */
  body?: unknown;
  /** Unsigned requests (`/_matrix/key/v2/server` needs no signature). */
  unsigned?: boolean;
  /** A larger cap on the answer than the default 16 MiB (a big room's `/state`). */
  maxBytes?: number;
}

/** An answer kept as bytes (media), whatever its type. */
export interface RawFederationResponse {
  status: number;
  body: Buffer;
  headers: Record<string, string | string[] | undefined>;
}

/** A request whose answer is read as bytes, up to `maxBytes` (more: an error). */
export interface RawRequestOptions {
  unsigned?: boolean;
  maxBytes: number;
  accept?: string;
}

interface RawTarget {
  connectHost: string;
  port: number;
  hostHeader: string;
  tlsName: string;
}

export function createFederationClient(options: FederationClientOptions) {
  const now = options.now ?? Date.now;
  const agent = new Agent({
    keepAlive: true,
    maxSockets: 8,
    ...(options.extraCaPem ? { ca: [...rootCertificates, options.extraCaPem] } : {}),
  });

  function send(
    destination: string,
    target: RawTarget,
    method: string,
    path: string,
    headers: Record<string, string>,
    payload: string | undefined,
    maxBytes = MAX_RESPONSE_BYTES,
  ): Promise<FederationResponse> {
    return sendRaw(destination, target, method, path, headers, payload, maxBytes).then((res) => {
      const text = res.body.toString('utf8');
      let body: unknown;
      try {
        body = text === '' ? {} : JSON.parse(text);
      } catch {
        throw new FederationRequestError(
          destination,
          `HTTP ${res.status} with a body that is not JSON`,
        );
      }
      return { status: res.status, body, headers: res.headers };
    });
  }

  function sendRaw(
    destination: string,
    target: RawTarget,
    method: string,
    path: string,
    headers: Record<string, string>,
    payload: string | undefined,
    maxBytes: number,
  ): Promise<RawFederationResponse> {
    return new Promise((resolve, reject) => {
      const fail = (message: string) => reject(new FederationRequestError(destination, message));
      const req = httpsRequest(
        {
          host: target.connectHost,
          port: target.port,
          method,
          path,
          agent,
          headers: {
            Host: target.hostHeader,
            Accept: 'application/json',
            ...headers,
            ...(payload !== undefined
              ? { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) }
              : {}),
          },
          // SNI for a hostname, none for an IP address (as the spec asks).
          ...(isIP(target.tlsName) === 0 ? { servername: target.tlsName } : {}),
          checkServerIdentity: (_host: string, cert: PeerCertificate) =>
            checkServerIdentity(target.tlsName, cert),
          timeout: options.timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > maxBytes) {
              req.destroy();
              fail(`answer larger than ${maxBytes} bytes`);
              return;
            }
            chunks.push(chunk);
          });
          res.on('error', (err) => fail(err.message));
          res.on('end', () => {
            resolve({
              status: res.statusCode ?? 0,
              body: Buffer.concat(chunks),
              headers: res.headers,
            });
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${options.timeoutMs} ms`)));
      req.on('error', (err) => fail(err.message));
      req.end(payload);
    });
  }

  // The well-known cache: answers per their Cache-Control (24 h default, 48 h at most), errors
  // for a minute doubling to an hour.
  const wellKnownCache = new Map<
    string,
    { server: string | null; expiresAt: number; failures: number }
  >();
  async function wellKnown(hostname: string): Promise<string | null> {
    const cached = wellKnownCache.get(hostname);
    if (cached && cached.expiresAt > now()) return cached.server;
    let server: string | null = null;
    let ttl: number;
    try {
      let target: RawTarget = {
        connectHost: hostname,
        port: 443,
        hostHeader: hostname,
        tlsName: hostname,
      };
      let path = '/.well-known/matrix/server';
      let response = await send(hostname, target, 'GET', path, {}, undefined);
      // Redirects are followed, a few at most (no loops).
      for (let hops = 0; hops < 5 && response.status >= 300 && response.status < 400; hops++) {
        const location = response.headers.location;
        if (typeof location !== 'string') break;
        const next = new URL(location, `https://${target.hostHeader}${path}`);
        if (next.protocol !== 'https:') break;
        target = {
          connectHost: next.hostname.replace(/^\[|\]$/g, ''),
          port: next.port === '' ? 443 : Number(next.port),
          hostHeader: next.host,
          tlsName: next.hostname.replace(/^\[|\]$/g, ''),
        };
        path = next.pathname + next.search;
        response = await send(hostname, target, 'GET', path, {}, undefined);
      }
      server = response.status === 200 ? parseWellKnownServer(response.body) : null;
      const cacheControl = response.headers['cache-control'];
      ttl =
        server === null
          ? wellKnownErrorTtlMs((cached?.failures ?? 0) + 1)
          : wellKnownTtlMs(typeof cacheControl === 'string' ? cacheControl : null);
    } catch {
      ttl = wellKnownErrorTtlMs((cached?.failures ?? 0) + 1);
    }
    wellKnownCache.set(hostname, {
      server,
      expiresAt: now() + ttl,
      failures: server === null ? (cached?.failures ?? 0) + 1 : 0,
    });
    return server;
  }

  const resolver: DiscoveryResolver = options.resolver ?? {
    wellKnown,
    async srv(name) {
      try {
        return await resolveSrv(name);
      } catch {
        return [];
      }
    },
  };

  async function resolve(destination: string): Promise<ResolvedServer> {
    try {
      return await resolveServerName(destination, resolver);
    } catch (err) {
      throw new FederationRequestError(destination, (err as Error).message);
    }
  }

  return {
    resolve,

    /** Sends a request to another server; any HTTP status is an answer, not an error. */
    async request(
      destination: string,
      method: string,
      path: string,
      request: RequestOptions = {},
    ): Promise<FederationResponse> {
      const target = await resolve(destination);
      const payload = request.body === undefined ? undefined : JSON.stringify(request.body);
      const headers: Record<string, string> = {};
      if (!request.unsigned) {
        headers.Authorization = xMatrixHeader(
          {
            method,
            uri: path,
            origin: options.serverName,
            destination,
            ...(request.body !== undefined ? { content: request.body } : {}),
          },
          options.signingKey,
        );
      }
      return send(destination, target, method, path, headers, payload, request.maxBytes);
    },

    /** As `request` (no body), the answer kept as bytes: media downloads. */
    async requestRaw(
      destination: string,
      method: string,
      path: string,
      request: RawRequestOptions,
    ): Promise<RawFederationResponse> {
      const target = await resolve(destination);
      const headers: Record<string, string> = {};
      if (request.accept !== undefined) headers.Accept = request.accept;
      if (!request.unsigned) {
        headers.Authorization = xMatrixHeader(
          { method, uri: path, origin: options.serverName, destination },
          options.signingKey,
        );
      }
      return sendRaw(destination, target, method, path, headers, undefined, request.maxBytes);
    },

    close(): void {
      agent.destroy();
    },
  };
}

export type FederationClient = ReturnType<typeof createFederationClient>;
