/**
 * Canonical JSON and unpadded Base64, the encodings that hashes and signatures are computed
 * over. https://spec.matrix.org/v1.19/appendices/#canonical-json
 * https://spec.matrix.org/v1.19/appendices/#unpadded-base64
 */
import { MatrixError } from './errors.js';

/** Thrown when a value cannot be encoded as Canonical JSON (400 `M_BAD_JSON`, as rooms v6+ require). */
export class CanonicalJsonError extends MatrixError {
  /** Where in the value the problem is, as dotted keys and indices (empty for the root). */
  readonly path: string;

  constructor(reason: string, path: string) {
    super(400, 'M_BAD_JSON', path === '' ? reason : `${reason} at ${path}`);
    this.name = 'CanonicalJsonError';
    this.path = path;
  }
}

/** Thrown when a string is not valid (unpadded or padded) Base64. */
export class Base64Error extends MatrixError {
  constructor(message = 'Invalid base64') {
    super(400, 'M_INVALID_PARAM', message);
    this.name = 'Base64Error';
  }
}

// A string with a surrogate that is not part of a pair cannot be encoded as UTF-8.
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/**
 * Maps a UTF-16 code unit so that plain numeric order of the mapped units is code point
 * order: surrogates (which encode code points above U+FFFF) go above U+E000–U+FFFF.
 */
const codePointRank = (unit: number): number =>
  unit < 0xd800 ? unit : unit < 0xe000 ? unit + 0x2000 : unit - 0x800;

/** Orders strings by Unicode code point (equivalently, by their UTF-8 bytes). */
export function compareByCodePoint(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return codePointRank(x) - codePointRank(y);
  }
  return a.length - b.length;
}

const isPlainObject = (value: object): boolean => {
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
};

function encodeString(s: string, path: (string | number)[]): string {
  if (LONE_SURROGATE.test(s))
    throw new CanonicalJsonError('Lone surrogate in string', path.join('.'));
  // JSON.stringify escapes exactly what the grammar requires: `"`, `\`, \b \t \n \f \r and
  // other C0 controls as lowercase \u00XX; everything else is emitted as is.
  return JSON.stringify(s);
}

function encode(value: unknown, path: (string | number)[]): string {
  switch (typeof value) {
    case 'string':
      return encodeString(value, path);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isSafeInteger(value)) {
        throw new CanonicalJsonError(
          `Number ${value} is not an integer in [-(2^53)+1, 2^53-1]`,
          path.join('.'),
        );
      }
      return String(value); // String(-0) is "0"
    case 'object': {
      if (value === null) return 'null';
      if (Array.isArray(value)) {
        const parts: string[] = [];
        for (let i = 0; i < value.length; i++) {
          const item: unknown = value[i];
          if (item === undefined)
            throw new CanonicalJsonError('Undefined array element', [...path, i].join('.'));
          path.push(i);
          parts.push(encode(item, path));
          path.pop();
        }
        return `[${parts.join(',')}]`;
      }
      if (!isPlainObject(value)) throw new CanonicalJsonError('Not a plain object', path.join('.'));
      const record = value as Record<string, unknown>;
      const keys = Object.keys(record).sort(compareByCodePoint);
      const parts: string[] = [];
      for (const key of keys) {
        const member = record[key];
        if (member === undefined) continue; // absent optional properties, as JSON.stringify does
        path.push(key);
        parts.push(`${encodeString(key, path)}:${encode(member, path)}`);
        path.pop();
      }
      return `{${parts.join(',')}}`;
    }
    default:
      throw new CanonicalJsonError(`Cannot encode a value of type ${typeof value}`, path.join('.'));
  }
}

/**
 * Encodes a JSON value as Canonical JSON; throws CanonicalJsonError for floats, unsafe
 * integers, lone surrogates and non-JSON values. Object properties that are `undefined` are
 * left out.
 */
export function canonicalJson(value: unknown): string {
  return encode(value, []);
}

/** The UTF-8 bytes of the Canonical JSON encoding of a value. */
export function canonicalJsonBytes(value: unknown): Buffer {
  return Buffer.from(canonicalJson(value), 'utf8');
}

const STANDARD_BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const URL_SAFE_BASE64 = /^[A-Za-z0-9\-_]*={0,2}$/;

function checkBase64(s: string, alphabet: RegExp): void {
  const unpaddedLength = s.replace(/=+$/, '').length;
  const paddingOk = !s.endsWith('=') || s.length % 4 === 0;
  if (!alphabet.test(s) || unpaddedLength % 4 === 1 || !paddingOk) throw new Base64Error();
}

/** Standard Base64 without `=` padding. */
export function base64Unpadded(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    .toString('base64')
    .replace(/=+$/, '');
}

/** Decodes standard Base64, with or without padding; throws Base64Error on bad input. */
export function decodeBase64Unpadded(s: string): Buffer {
  checkBase64(s, STANDARD_BASE64);
  return Buffer.from(s, 'base64');
}

/** URL-safe Base64 (`-` and `_` for 62 and 63) without padding. */
export function urlSafeBase64Unpadded(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');
}

/** Decodes URL-safe Base64, with or without padding; throws Base64Error on bad input. */
export function decodeUrlSafeBase64Unpadded(s: string): Buffer {
  checkBase64(s, URL_SAFE_BASE64);
  return Buffer.from(s.replace(/=+$/, ''), 'base64url');
}
