/**
 * Server access control lists (`m.room.server_acl`): which servers may take part in a room.
 * Spec: https://spec.matrix.org/v1.16/client-server-api/#mroomserver_acl and
 * https://spec.matrix.org/v1.16/server-server-api/#server-access-control-lists-acls
 *
 * Pure matching only; the federation layer applies it to inbound requests and PDUs.
 */
import type { JsonObject } from './pdu.js';

/** A parsed ACL, its globs compiled once. */
export interface ServerAcl {
  readonly allow: readonly RegExp[];
  readonly deny: readonly RegExp[];
  readonly allowIpLiterals: boolean;
}

/**
 * A glob (`*` any run of characters, `?` exactly one; everything else literal) as an anchored,
 * case-insensitive regular expression. https://spec.matrix.org/v1.16/appendices/#glob-style-matching
 */
export function globToRegExp(glob: string): RegExp {
  let source = '';
  for (const char of glob) {
    if (char === '*') source += '.*';
    else if (char === '?') source += '.';
    else source += char.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${source}$`, 'isu');
}

const globs = (value: unknown): RegExp[] =>
  Array.isArray(value)
    ? value.filter((entry): entry is string => typeof entry === 'string').map(globToRegExp)
    : [];

/**
 * Reads the content of an `m.room.server_acl` event. Leniently, as the spec's defaults say:
 * a missing or malformed `allow` is empty (nobody is allowed), a missing `deny` is empty,
 * and `allow_ip_literals` is true unless it is the boolean false. Entries that are not
 * strings are ignored.
 */
export function parseServerAcl(content: JsonObject): ServerAcl {
  return {
    allow: globs(content['allow']),
    deny: globs(content['deny']),
    allowIpLiterals: content['allow_ip_literals'] !== false,
  };
}

/** The host of a server name, without its port: `example.org:8448` → `example.org`, `[::1]:8448` → `[::1]`. */
export function hostOfServerName(serverName: string): string {
  if (serverName.startsWith('[')) {
    const end = serverName.indexOf(']');
    return end < 0 ? serverName : serverName.slice(0, end + 1);
  }
  const colon = serverName.lastIndexOf(':');
  return colon < 0 ? serverName : serverName.slice(0, colon);
}

const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;

/** Whether a host is an IP address literal (dotted IPv4, or bracketed or bare IPv6). */
export function isIpLiteral(host: string): boolean {
  return IPV4.test(host) || host.startsWith('[') || host.includes(':');
}

/**
 * Whether `serverName` may take part in a room whose ACL is `acl` (undefined: the room has
 * no `m.room.server_acl`, everyone may). The spec's order: IP literals when
 * `allow_ip_literals` is false, then `deny`, then `allow`; otherwise denied. The port never
 * matters.
 */
export function isServerAllowed(serverName: string, acl: ServerAcl | undefined): boolean {
  if (acl === undefined) return true;
  const host = hostOfServerName(serverName);
  if (!acl.allowIpLiterals && isIpLiteral(host)) return false;
  if (acl.deny.some((glob) => glob.test(host))) return false;
  return acl.allow.some((glob) => glob.test(host));
}
