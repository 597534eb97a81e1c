/**
 * Resolving a server name to where to connect, in the spec's order: IP literals and explicit
 * ports, `/.well-known/matrix/server` delegation, SRV `_matrix-fed._tcp` then the deprecated
 * `_matrix._tcp`, then port 8448. The lookups (DNS, the well-known fetch) are passed in, so
 * this module does no I/O and is tested with a fake resolver.
 * https://spec.matrix.org/v1.19/server-server-api/#resolving-server-names
 */

/** 4 or 6 for an IPv4 or IPv6 address (without brackets), 0 otherwise. */
export function isIP(host: string): 0 | 4 | 6 {
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(host))
    return host.split('.').every((octet) => Number(octet) <= 255) ? 4 : 0;
  if (!/^[0-9A-Fa-f:.]+$/.test(host) || !host.includes(':')) return 0;
  const tail = host.includes('.') ? host.slice(host.lastIndexOf(':') + 1) : null;
  if (tail !== null && isIP(tail) !== 4) return 0;
  const head = tail === null ? host : host.slice(0, host.lastIndexOf(':') + 1) + '0:0';
  const groups = head.split('::');
  if (groups.length > 2) return 0;
  const count = groups.reduce((n, g) => n + (g === '' ? 0 : g.split(':').length), 0);
  const valid = groups.every(
    (g) => g === '' || g.split(':').every((x) => /^[0-9A-Fa-f]{1,4}$/.test(x)),
  );
  if (!valid) return 0;
  return (groups.length === 2 ? count < 8 : count === 8) ? 6 : 0;
}

export const DEFAULT_FEDERATION_PORT = 8448;

export interface ParsedServerName {
  /** Hostname or IP, without brackets. */
  host: string;
  port: number | null;
  isIpLiteral: boolean;
}

/** Splits `host[:port]` (IPv6 in brackets); null when it is not a valid server name. */
export function parseServerName(name: string): ParsedServerName | null {
  const match = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-.]+)(?::(\d{1,5}))?$/.exec(name);
  if (!match) return null;
  const rawHost = match[1] ?? '';
  const port = match[2] === undefined ? null : Number(match[2]);
  if (port !== null && (port < 1 || port > 65535)) return null;
  const bracketed = rawHost.startsWith('[');
  const host = bracketed ? rawHost.slice(1, -1) : rawHost;
  if (bracketed && isIP(host) !== 6) return null;
  const isIpLiteral = isIP(host) !== 0;
  if (!bracketed && isIP(host) === 6) return null;
  return { host, port, isIpLiteral };
}

export interface SrvTarget {
  name: string;
  port: number;
  priority: number;
  weight: number;
}

/** What discovery reads from the outside world. */
export interface DiscoveryResolver {
  /** The `m.server` of `https://<hostname>/.well-known/matrix/server`, or null on any error. */
  wellKnown(hostname: string): Promise<string | null>;
  /** SRV records of `name` (e.g. `_matrix-fed._tcp.example.org`); empty when there are none. */
  srv(name: string): Promise<SrvTarget[]>;
}

/** Where to send requests for a server, and how. */
export interface ResolvedServer {
  /** What to connect to: an IP literal or a hostname still to resolve with A/AAAA. */
  connectHost: string;
  port: number;
  /** The `Host` header. */
  hostHeader: string;
  /** The name the certificate must be valid for (an IP literal, or a hostname). */
  tlsName: string;
  /** Which step of the spec's order decided (for logs and tests). */
  step: string;
}

const withPort = (host: string, port: number | null): string => {
  const h = isIP(host) === 6 ? `[${host}]` : host;
  return port === null ? h : `${h}:${port}`;
};

/** Lowest priority first; among equals, heavier weight first (a deterministic pick). */
function pickSrv(records: SrvTarget[]): SrvTarget | null {
  const usable = records.filter((r) => r.name !== '' && r.name !== '.');
  usable.sort((a, b) => a.priority - b.priority || b.weight - a.weight);
  return usable[0] ?? null;
}

async function viaSrv(
  hostname: string,
  resolver: DiscoveryResolver,
  prefix: string,
): Promise<ResolvedServer | null> {
  for (const [service, step] of [
    ['_matrix-fed._tcp', 'srv'],
    ['_matrix._tcp', 'srv-deprecated'],
  ] as const) {
    const target = pickSrv(await resolver.srv(`${service}.${hostname}`));
    if (target)
      return {
        connectHost: target.name.replace(/\.$/, ''),
        port: target.port,
        hostHeader: hostname,
        tlsName: hostname,
        step: `${prefix}${step}`,
      };
  }
  return null;
}

/** Resolves `serverName` in the spec's order; throws when it is not a valid server name. */
export async function resolveServerName(
  serverName: string,
  resolver: DiscoveryResolver,
): Promise<ResolvedServer> {
  const parsed = parseServerName(serverName);
  if (!parsed) throw new Error(`not a valid server name: ${serverName}`);
  const { host, port } = parsed;
  // 1. An IP literal, with its port or 8448.
  if (parsed.isIpLiteral)
    return {
      connectHost: host,
      port: port ?? DEFAULT_FEDERATION_PORT,
      hostHeader: serverName,
      tlsName: host,
      step: 'ip-literal',
    };
  // 2. A hostname with an explicit port.
  if (port !== null)
    return {
      connectHost: host,
      port,
      hostHeader: serverName,
      tlsName: host,
      step: 'explicit-port',
    };
  // 3. Delegation through /.well-known/matrix/server.
  const delegatedName = await resolver.wellKnown(host);
  const delegated = delegatedName === null ? null : parseServerName(delegatedName);
  if (delegated) {
    const d = delegated;
    if (d.isIpLiteral)
      return {
        connectHost: d.host,
        port: d.port ?? DEFAULT_FEDERATION_PORT,
        hostHeader: withPort(d.host, d.port),
        tlsName: d.host,
        step: 'well-known-ip-literal',
      };
    if (d.port !== null)
      return {
        connectHost: d.host,
        port: d.port,
        hostHeader: withPort(d.host, d.port),
        tlsName: d.host,
        step: 'well-known-explicit-port',
      };
    const srv = await viaSrv(d.host, resolver, 'well-known-');
    if (srv) return srv;
    return {
      connectHost: d.host,
      port: DEFAULT_FEDERATION_PORT,
      hostHeader: d.host,
      tlsName: d.host,
      step: 'well-known-default-port',
    };
  }
  // 4 and 5. SRV records of the server name itself; 6. port 8448.
  const srv = await viaSrv(host, resolver, '');
  if (srv) return srv;
  return {
    connectHost: host,
    port: DEFAULT_FEDERATION_PORT,
    hostHeader: host,
    tlsName: host,
    step: 'default-port',
  };
}

/** The well-known cache's bounds: 24 h without headers, at most 48 h, errors for 1 h at most. */
export const WELL_KNOWN_DEFAULT_TTL_MS = 24 * 3600_000;
export const WELL_KNOWN_MAX_TTL_MS = 48 * 3600_000;
export const WELL_KNOWN_ERROR_MAX_TTL_MS = 3600_000;
const WELL_KNOWN_ERROR_FIRST_TTL_MS = 60_000;

/**
 * How long to keep a well-known answer: its `Cache-Control` max-age (no-store / no-cache: not
 * at all), 24 hours without one, never past 48 hours.
 */
export function wellKnownTtlMs(cacheControl: string | null | undefined): number {
  if (!cacheControl) return WELL_KNOWN_DEFAULT_TTL_MS;
  const directives = cacheControl
    .toLowerCase()
    .split(',')
    .map((d) => d.trim());
  if (directives.includes('no-store') || directives.includes('no-cache')) return 0;
  for (const d of directives) {
    const m = /^max-age\s*=\s*"?(\d+)"?$/.exec(d);
    if (m) return Math.min(Number(m[1]) * 1000, WELL_KNOWN_MAX_TTL_MS);
  }
  return WELL_KNOWN_DEFAULT_TTL_MS;
}

/** How long to remember the `failures`-th failure in a row: doubling from a minute, up to an hour. */
export function wellKnownErrorTtlMs(failures: number): number {
  const n = Math.max(1, failures);
  return Math.min(
    WELL_KNOWN_ERROR_FIRST_TTL_MS * 2 ** Math.min(n - 1, 20),
    WELL_KNOWN_ERROR_MAX_TTL_MS,
  );
}

/** The `m.server` of a well-known body, or null when the body is not a valid answer. */
export function parseWellKnownServer(body: unknown): string | null {
  if (typeof body !== 'object' || body === null) return null;
  const server = (body as Record<string, unknown>)['m.server'];
  if (typeof server !== 'string' || parseServerName(server) === null) return null;
  return server;
}
