/**
 * The `X-Matrix` request authorization between servers: the JSON a request's signature covers,
 * the header carrying it, and parsing that header back (RFC 9110 auth-params).
 * https://spec.matrix.org/v1.19/server-server-api/#request-authentication
 */
import { signJson, verifyJsonSignature, type SigningKey } from './signing.js';

export interface SignedRequest {
  method: string;
  /** Path and query, starting with `/_matrix/…`. */
  uri: string;
  origin: string;
  destination: string;
  /** The parsed JSON body; absent for requests without one. */
  content?: unknown;
}

export interface XMatrixAuth {
  origin: string;
  /** Absent from older servers' headers; the spec says to accept them. */
  destination: string | null;
  key: string;
  sig: string;
}

/** The object whose signature is the `sig` parameter. */
export function requestJson(request: SignedRequest): Record<string, unknown> {
  const json: Record<string, unknown> = {
    method: request.method.toUpperCase(),
    uri: request.uri,
    origin: request.origin,
    destination: request.destination,
  };
  if (request.content !== undefined) json.content = request.content;
  return json;
}

/** The `Authorization` header value for an outbound request, signed with `key`. */
export function xMatrixHeader(request: SignedRequest, key: SigningKey): string {
  const signed = signJson(requestJson(request), request.origin, key);
  const sig = signed.signatures[request.origin]?.[key.keyId] ?? '';
  // As the spec asks senders for compatibility: one space, lower-case names, quoted values,
  // no whitespace around the commas.
  return (
    `X-Matrix origin="${request.origin}",destination="${request.destination}",` +
    `key="${key.keyId}",sig="${sig}"`
  );
}

const TOKEN_CHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;

/**
 * Parses an `Authorization: X-Matrix …` header; null when it is not one, or lacks origin, key
 * or sig. Names are case-insensitive, values quoted or bare (bare ones may hold colons),
 * backslash escapes in quoted values are undone, unknown parameters ignored.
 */
export function parseXMatrixHeader(header: string): XMatrixAuth | null {
  const scheme = /^X-Matrix +/i.exec(header);
  if (!scheme) return null;
  const params = new Map<string, string>();
  let i = scheme[0].length;
  const skipSpace = () => {
    while (i < header.length && (header[i] === ' ' || header[i] === '\t')) i++;
  };
  while (i < header.length) {
    skipSpace();
    const nameStart = i;
    while (i < header.length && TOKEN_CHAR.test(header[i] ?? '')) i++;
    const name = header.slice(nameStart, i).toLowerCase();
    skipSpace();
    if (name === '' || header[i] !== '=') return null;
    i++;
    skipSpace();
    let value = '';
    if (header[i] === '"') {
      i++;
      let closed = false;
      while (i < header.length) {
        const c = header[i] ?? '';
        if (c === '\\') {
          value += header[i + 1] ?? '';
          i += 2;
        } else if (c === '"') {
          i++;
          closed = true;
          break;
        } else {
          value += c;
          i++;
        }
      }
      if (!closed) return null;
    } else {
      const valueStart = i;
      while (i < header.length && (TOKEN_CHAR.test(header[i] ?? '') || header[i] === ':')) i++;
      value = header.slice(valueStart, i);
    }
    // The first of a repeated name counts.
    if (!params.has(name)) params.set(name, value);
    skipSpace();
    if (i < header.length) {
      if (header[i] !== ',') return null;
      i++;
    }
  }
  const origin = params.get('origin');
  const key = params.get('key');
  const sig = params.get('sig');
  if (!origin || !key || !sig) return null;
  return { origin, destination: params.get('destination') ?? null, key, sig };
}

/** Whether `auth.sig` is `auth.origin`'s signature, with `publicKey`, over the request. */
export function verifyXMatrix(
  auth: XMatrixAuth,
  request: Omit<SignedRequest, 'origin' | 'destination'> & { destination: string },
  publicKey: Uint8Array,
): boolean {
  const json = {
    ...requestJson({ ...request, origin: auth.origin }),
    signatures: { [auth.origin]: { [auth.key]: auth.sig } },
  };
  return verifyJsonSignature(json, auth.origin, auth.key, publicKey);
}
