/**
 * Opaque paging tokens that cannot be forged, altered, or used by anyone else: a cursor and
 * an expiry, authenticated with HMAC-SHA-256 over the cursor, the expiry and a binding (who
 * asked, about whom). Only `[0-9a-zA-Z._~-]` appears, and tokens stay short.
 *
 * Form: `<version>.<cursor base36>.<expiry base36>.<tag base64url>`.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

const VERSION = 'p1';
/** 128 bits of tag, 22 base64url characters. */
const TAG_BYTES = 16;
const PART = /^[0-9a-z]{1,13}$/;
const TAG = /^[A-Za-z0-9_-]{22}$/;

export interface PagingTokenKey {
  /** The secret (at least 32 bytes). */
  secret: Buffer;
  /** What the token is for, so tokens of one endpoint never work at another. */
  purpose: string;
}

function tag(key: PagingTokenKey, binding: readonly string[], cursor: string, expiry: string) {
  const mac = createHmac('sha256', key.secret);
  // Length-prefixed fields: no two different inputs share a MAC input.
  for (const field of [VERSION, key.purpose, ...binding, cursor, expiry]) {
    mac.update(`${Buffer.byteLength(field)}:`);
    mac.update(field);
  }
  return mac.digest().subarray(0, TAG_BYTES);
}

/** A token for `cursor` (a non-negative safe integer), valid until `expiresAtMs`. */
export function issuePagingToken(
  key: PagingTokenKey,
  binding: readonly string[],
  cursor: number,
  expiresAtMs: number,
): string {
  if (!Number.isSafeInteger(cursor) || cursor < 0) throw new RangeError('bad cursor');
  const cursorPart = cursor.toString(36);
  const expiryPart = Math.ceil(expiresAtMs / 1000).toString(36);
  const mac = tag(key, binding, cursorPart, expiryPart).toString('base64url');
  return `${VERSION}.${cursorPart}.${expiryPart}.${mac}`;
}

export type PagingTokenCheck =
  | { ok: true; cursor: number; /** When the token stops being accepted (ms). */ expiresAt: number }
  | { ok: false; reason: 'malformed' | 'forged' | 'expired' };

/** Checks a token against the binding and the clock; yields its cursor when it holds. */
export function readPagingToken(
  key: PagingTokenKey,
  binding: readonly string[],
  token: string,
  nowMs: number,
): PagingTokenCheck {
  const parts = token.split('.');
  if (parts.length !== 4 || parts[0] !== VERSION) return { ok: false, reason: 'malformed' };
  const [, cursorPart = '', expiryPart = '', tagPart = ''] = parts;
  if (!PART.test(cursorPart) || !PART.test(expiryPart) || !TAG.test(tagPart))
    return { ok: false, reason: 'malformed' };
  const expected = tag(key, binding, cursorPart, expiryPart);
  const given = Buffer.from(tagPart, 'base64url');
  // Base64url has non-canonical spellings of the last character: compare the re-encoding.
  if (given.length !== TAG_BYTES || given.toString('base64url') !== tagPart)
    return { ok: false, reason: 'malformed' };
  if (!timingSafeEqual(expected, given)) return { ok: false, reason: 'forged' };
  const cursor = parseInt(cursorPart, 36);
  const expiry = parseInt(expiryPart, 36);
  if (!Number.isSafeInteger(cursor) || !Number.isSafeInteger(expiry))
    return { ok: false, reason: 'malformed' };
  if (expiry * 1000 <= nowMs) return { ok: false, reason: 'expired' };
  return { ok: true, cursor, expiresAt: expiry * 1000 };
}
