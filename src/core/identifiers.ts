/**
 * Matrix identifiers, parsed once at the edge into branded types so nothing deeper casts
 * strings. Grammar: https://spec.matrix.org/v1.19/appendices/#identifier-grammar
 */
declare const brand: unique symbol;
type Brand<T, B extends string> = T & { readonly [brand]: B };

export type UserId = Brand<string, 'UserId'>;
export type RoomId = Brand<string, 'RoomId'>;
export type EventId = Brand<string, 'EventId'>;
export type RoomAlias = Brand<string, 'RoomAlias'>;
export type DeviceId = Brand<string, 'DeviceId'>;
export type ServerName = Brand<string, 'ServerName'>;

/** The longest identifier the spec allows, in bytes of UTF-8. */
export const MAX_IDENTIFIER_BYTES = 255;

const STRICT_LOCALPART = /^[a-z0-9._=\-/+]+$/;
// The historical user ID grammar: printable ASCII except ':' (U+0021–U+0039, U+003B–U+007E).
const HISTORICAL_LOCALPART = /^[\x21-\x39\x3b-\x7e]+$/;
const DNS_NAME = /^[A-Za-z0-9\-.]{1,255}$/;
const IPV4 = /^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$/;
const IPV6_LITERAL = /^\[[0-9A-Fa-f:.]{2,45}\]$/;

const byteLength = (s: string): number => Buffer.byteLength(s, 'utf8');

/** Server name grammar: host (DNS name, IPv4, or bracketed IPv6) with an optional port. */
export function isValidServerName(name: string): name is ServerName {
  const match = /^(\[[^\]]+\]|[^:]+)(?::(\d{1,5}))?$/.exec(name);
  if (!match) return false;
  const host = match[1] ?? '';
  const port = match[2];
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) return false;
  if (IPV6_LITERAL.test(host)) return true;
  if (IPV4.test(host)) return host.split('.').every((octet) => Number(octet) <= 255);
  return DNS_NAME.test(host);
}

export interface ParsedUserId {
  readonly userId: UserId;
  readonly localpart: string;
  readonly serverName: ServerName;
}

/**
 * Parses a user ID under the historical grammar (what other servers may have issued), or
 * returns null. `strict` requires the current grammar for the localpart.
 */
export function parseUserId(raw: string, strict = false): ParsedUserId | null {
  if (!raw.startsWith('@') || byteLength(raw) > MAX_IDENTIFIER_BYTES) return null;
  const colon = raw.indexOf(':');
  if (colon < 2) return null;
  const localpart = raw.slice(1, colon);
  const serverName = raw.slice(colon + 1);
  const localpartOk = strict
    ? STRICT_LOCALPART.test(localpart)
    : HISTORICAL_LOCALPART.test(localpart);
  if (!localpartOk || !isValidServerName(serverName)) return null;
  return { userId: raw as UserId, localpart, serverName };
}

/** Whether a localpart may be registered here (the current, strict grammar). */
export function isValidNewLocalpart(localpart: string): boolean {
  return localpart.length > 0 && STRICT_LOCALPART.test(localpart);
}

export function makeUserId(localpart: string, serverName: string): UserId {
  return `@${localpart}:${serverName}` as UserId;
}

/** Room IDs: `!opaque:server` before room version 12, `!hash` from version 12 on. */
export function parseRoomId(raw: string): RoomId | null {
  if (!raw.startsWith('!') || raw.length < 2 || byteLength(raw) > MAX_IDENTIFIER_BYTES) return null;
  if (!/^![\x21-\x7e]+$/.test(raw)) return null;
  return raw as RoomId;
}

export function parseEventId(raw: string): EventId | null {
  if (!raw.startsWith('$') || raw.length < 2 || byteLength(raw) > MAX_IDENTIFIER_BYTES) return null;
  if (!/^\$[\x21-\x7e]+$/.test(raw)) return null;
  return raw as EventId;
}

export function parseRoomAlias(raw: string): RoomAlias | null {
  if (!raw.startsWith('#') || byteLength(raw) > MAX_IDENTIFIER_BYTES) return null;
  const colon = raw.indexOf(':');
  if (colon < 2) return null;
  const localpart = raw.slice(1, colon);
  if (!/^[\x21-\x39\x3b-\x7e]+$/.test(localpart)) return null;
  if (!isValidServerName(raw.slice(colon + 1))) return null;
  return raw as RoomAlias;
}

/** Device IDs are opaque; we accept printable ASCII without whitespace, up to 255 bytes. */
export function parseDeviceId(raw: string): DeviceId | null {
  if (raw.length === 0 || byteLength(raw) > MAX_IDENTIFIER_BYTES) return null;
  if (!/^[\x21-\x7e]+$/.test(raw)) return null;
  return raw as DeviceId;
}
