/**
 * `multipart/mixed` (RFC 2046) as federation media uses it (spec v1.11, MSC3916): the answer
 * of `/_matrix/federation/v1/media/download|thumbnail` is two parts, JSON metadata then the
 * media (its bytes, or a `Location` to fetch them from). Building the frame around the
 * bytes, and parsing an answer read whole.
 */

export interface MultipartPart {
  /** Header names in lower case. */
  headers: Record<string, string>;
  body: Buffer;
}

/** A boundary's characters (RFC 2046 bchars, without space), 1–70 of them. */
const BOUNDARY = /^[0-9A-Za-z'()+_,\-./:=?]{1,70}$/;

/** The boundary of a `multipart/mixed` Content-Type, or null when it is not one. */
export function multipartBoundary(contentType: string | undefined): string | null {
  if (contentType === undefined) return null;
  const [essence, ...params] = contentType.split(';');
  if (essence?.trim().toLowerCase() !== 'multipart/mixed') return null;
  for (const param of params) {
    const eq = param.indexOf('=');
    if (eq < 0 || param.slice(0, eq).trim().toLowerCase() !== 'boundary') continue;
    const value = param
      .slice(eq + 1)
      .trim()
      .replace(/^"(.*)"$/, '$1');
    return BOUNDARY.test(value) ? value : null;
  }
  return null;
}

/**
 * The bytes before and after the media in a two-part answer: the first part (JSON
 * `metadata`), then the second part's headers; `suffix` closes the frame after the media.
 */
export function multipartFrame(
  boundary: string,
  metadata: unknown,
  mediaHeaders: Record<string, string>,
): { prefix: Buffer; suffix: Buffer } {
  const headerLines = Object.entries(mediaHeaders)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('');
  const prefix =
    `--${boundary}\r\nContent-Type: application/json\r\n\r\n${JSON.stringify(metadata)}\r\n` +
    `--${boundary}\r\n${headerLines}\r\n`;
  return { prefix: Buffer.from(prefix, 'utf8'), suffix: Buffer.from(`\r\n--${boundary}--\r\n`) };
}

function parseHeaders(block: string): Record<string, string> | null {
  const headers: Record<string, string> = {};
  if (block === '') return headers;
  for (const line of block.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) return null;
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return headers;
}

/**
 * The parts of a multipart body, or null when it is not well-formed (no opening or closing
 * delimiter, a part without its header block). The preamble and epilogue are ignored.
 */
export function parseMultipart(body: Buffer, boundary: string): MultipartPart[] | null {
  const delimiter = Buffer.from(`--${boundary}`);
  let at = body.indexOf(delimiter);
  if (at < 0) return null;
  const parts: MultipartPart[] = [];
  for (;;) {
    at += delimiter.length;
    // The closing delimiter: `--boundary--`.
    if (body[at] === 0x2d && body[at + 1] === 0x2d) return parts;
    // Transport padding (spaces, tabs) then CRLF.
    while (body[at] === 0x20 || body[at] === 0x09) at++;
    if (body[at] !== 0x0d || body[at + 1] !== 0x0a) return null;
    at += 2;
    const next = body.indexOf(Buffer.from(`\r\n--${boundary}`), at);
    if (next < 0) return null;
    const content = body.subarray(at, Math.max(at, next));
    let headerEnd = content.indexOf('\r\n\r\n');
    let bodyStart: number;
    if (content.subarray(0, 2).toString('latin1') === '\r\n') {
      headerEnd = 0;
      bodyStart = 2;
    } else if (headerEnd < 0) {
      return null;
    } else {
      bodyStart = headerEnd + 4;
    }
    const headers = parseHeaders(content.subarray(0, headerEnd).toString('latin1'));
    if (headers === null) return null;
    parts.push({ headers, body: Buffer.from(content.subarray(bodyStart)) });
    at = next + 2;
  }
}

/** The file name a Content-Disposition gives (`filename*=utf-8''…` preferred), if any. */
export function dispositionFileName(disposition: string | undefined): string | null {
  if (disposition === undefined) return null;
  const extended = /filename\*\s*=\s*utf-8''([^;\s]+)/i.exec(disposition);
  if (extended?.[1] !== undefined) {
    try {
      return decodeURIComponent(extended[1]);
    } catch {
      return null;
    }
  }
  const quoted = /filename\s*=\s*"((?:[^"\\]|\\.)*)"/i.exec(disposition);
  if (quoted?.[1] !== undefined) return quoted[1].replace(/\\(.)/g, '$1');
  const plain = /filename\s*=\s*([^;\s]+)/i.exec(disposition);
  return plain?.[1] ?? null;
}
