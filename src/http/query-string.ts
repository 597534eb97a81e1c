/**
 * Strict query strings. Fastify's default parser keeps a malformed percent-encoding (`%zz`,
 * an overlong or surrogate UTF-8 sequence) as raw text, so `?user_id=@a%C0%AF:x` would reach
 * a handler as a plausible value. Here a parameter whose value cannot be decoded, or holds
 * NUL (which PostgreSQL cannot store in text), is noted; once the schema has checked the
 * request, a route that declares that parameter answers 400 M_INVALID_PARAM, as a malformed
 * path already is. Parameters a route does not know are ignored, malformed or not.
 */
import { invalidParam, type MatrixError } from '../core/errors.js';

/** The names of parameters whose values could not be decoded (undecodable names are dropped). */
const MALFORMED = Symbol('malformed query parameters');

export type ParsedQuery = Record<string, string | string[]> & { [MALFORMED]?: string[] };

function decode(part: string): string | null {
  // Most parts are plain (no escapes, no `+`): no decoding, no regular expression.
  const plain = part.includes('+') ? part.replaceAll('+', ' ') : part;
  if (!plain.includes('%')) return plain.includes('\u0000') ? null : plain;
  try {
    const value = decodeURIComponent(plain);
    return value.includes('\u0000') ? null : value;
  } catch {
    return null;
  }
}

/** Parses `a=1&a=2&b=x` into `{a: ['1', '2'], b: 'x'}`; repeated keys give arrays. */
export function parseQueryString(query: string): ParsedQuery {
  const result = Object.create(null) as ParsedQuery;
  if (query === '') return result;
  for (const pair of query.split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const key = decode(eq < 0 ? pair : pair.slice(0, eq));
    const value = decode(eq < 0 ? '' : pair.slice(eq + 1));
    if (key === null) continue;
    if (value === null) (result[MALFORMED] ??= []).push(key);
    // A malformed value stays, undecoded, so the schema still sees the parameter as given.
    const kept = value ?? (eq < 0 ? '' : pair.slice(eq + 1));
    const existing = result[key];
    if (existing === undefined) result[key] = kept;
    else if (Array.isArray(existing)) existing.push(kept);
    else result[key] = [existing, kept];
  }
  return result;
}

/** Whether every parameter of a parsed query string was decoded. */
export function queryStringIsClean(query: ParsedQuery): boolean {
  return query[MALFORMED] === undefined;
}

/** The error to answer when a parameter in `known` could not be decoded, if one could not. */
export function queryStringProblem(query: unknown, known: ReadonlySet<string>): MatrixError | null {
  if (typeof query !== 'object' || query === null) return null;
  const bad = (query as ParsedQuery)[MALFORMED]?.find((name) => known.has(name));
  if (bad === undefined) return null;
  return invalidParam(`Invalid query parameter ${bad}: bad percent-encoding or NUL`);
}

/** A path parameter holding NUL (`%00`) cannot name anything: 400 before it reaches storage. */
export function pathParamProblem(params: unknown): MatrixError | null {
  if (typeof params !== 'object' || params === null) return null;
  for (const value of Object.values(params)) {
    if (typeof value === 'string' && value.includes('\u0000'))
      return invalidParam('Malformed request: NUL in the path');
  }
  return null;
}
