/**
 * The content repository's protocol rules, with no I/O: media IDs, `mxc://` URIs, the
 * `Content-Disposition` and `Content-Type` a download is served with, the thumbnail sizes,
 * and byte ranges.
 */

/** Media IDs: the spec's safe alphabet only (no `.` or `/`, so no path traversal). */
const MEDIA_ID = /^[A-Za-z0-9_-]{1,255}$/;

export function isValidMediaId(value: string): boolean {
  return MEDIA_ID.test(value);
}

/** The recommended policy for served media (spec, content repository). */
export const MEDIA_CSP =
  "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; style-src 'unsafe-inline'; object-src 'self';";

/** The types the spec lists as safe to serve with `Content-Disposition: inline`. */
export const INLINE_SAFE_TYPES: ReadonlySet<string> = new Set([
  'text/css',
  'text/plain',
  'text/csv',
  'application/json',
  'application/ld+json',
  'image/jpeg',
  'image/gif',
  'image/png',
  'image/apng',
  'image/webp',
  'image/avif',
  'video/mp4',
  'video/webm',
  'video/ogg',
  'video/quicktime',
  'audio/mp4',
  'audio/webm',
  'audio/aac',
  'audio/mpeg',
  'audio/ogg',
  'audio/wave',
  'audio/wav',
  'audio/x-wav',
  'audio/x-pn-wav',
  'audio/flac',
  'audio/x-flac',
]);

export const DEFAULT_CONTENT_TYPE = 'application/octet-stream';
/** The longest `Content-Type` kept from an upload; longer ones are stored as octet-stream. */
export const MAX_CONTENT_TYPE_LENGTH = 255;
/** The longest file name kept from an upload. */
export const MAX_FILE_NAME_LENGTH = 255;

/** `type/subtype` as RFC 9110 allows, with optional parameters. */
const CONTENT_TYPE =
  /^[!#$%&'*+.^_`|~0-9A-Za-z-]+\/[!#$%&'*+.^_`|~0-9A-Za-z-]+(\s*;\s*[!#$%&'*+.^_`|~0-9A-Za-z-]+=("[^"\\\r\n]*"|[!#$%&'*+.^_`|~0-9A-Za-z-]+))*\s*$/;

/**
 * The Content-Type an upload is stored with: the client's when well-formed, else
 * `application/octet-stream` (also when none was given).
 */
export function storedContentType(given: string | undefined): string {
  if (given === undefined) return DEFAULT_CONTENT_TYPE;
  const trimmed = given.trim();
  if (trimmed === '' || trimmed.length > MAX_CONTENT_TYPE_LENGTH || !CONTENT_TYPE.test(trimmed))
    return DEFAULT_CONTENT_TYPE;
  return trimmed;
}

/** The media type without parameters, lower-cased (`Text/Plain; charset=x` → `text/plain`). */
export function essenceOf(contentType: string): string {
  const semicolon = contentType.indexOf(';');
  return (semicolon === -1 ? contentType : contentType.slice(0, semicolon)).trim().toLowerCase();
}

export function isInlineSafe(contentType: string): boolean {
  return INLINE_SAFE_TYPES.has(essenceOf(contentType));
}

/**
 * The Content-Type served for a stored type: `text/*` gets an explicit charset (UTF-8 when
 * the upload named none), as the spec's "reasonably close" allows.
 */
export function servedContentType(stored: string): string {
  const essence = essenceOf(stored);
  if (essence.startsWith('text/') && !/;\s*charset=/i.test(stored))
    return `${stored}; charset=utf-8`;
  return stored;
}

/** A file name is usable when it has no control characters and is not too long. */
export function isValidFileName(name: string): boolean {
  if (name.length === 0 || name.length > MAX_FILE_NAME_LENGTH) return false;
  for (const char of name) {
    const code = char.charCodeAt(0);
    if (code < 0x20 || code === 0x7f) return false;
  }
  return true;
}

/** ASCII characters a quoted-string file name may hold as they are. */
const PLAIN_FILE_NAME = /^[\x20-\x7e]*$/;

/**
 * `Content-Disposition`: `inline` only for the spec's safe types, `attachment` for anything
 * else; the file name as a quoted string when plain ASCII, else in RFC 8187 form
 * (`filename*=utf-8''…`). No name given: no `filename` parameter.
 */
export function contentDisposition(contentType: string, fileName: string | null): string {
  const kind = isInlineSafe(contentType) ? 'inline' : 'attachment';
  if (fileName === null) return kind;
  if (PLAIN_FILE_NAME.test(fileName)) {
    return `${kind}; filename="${fileName.replace(/["\\]/g, (c) => `\\${c}`)}"`;
  }
  return `${kind}; filename*=utf-8''${encodeRfc8187(fileName)}`;
}

function encodeRfc8187(value: string): string {
  return encodeURIComponent(value).replace(
    /['()*!]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

export type ThumbnailMethod = 'crop' | 'scale';

export interface ThumbnailSize {
  width: number;
  height: number;
  method: ThumbnailMethod;
}

/** The sizes the spec says servers should make (and Synapse's defaults). */
export const THUMBNAIL_SIZES: readonly ThumbnailSize[] = [
  { width: 32, height: 32, method: 'crop' },
  { width: 96, height: 96, method: 'crop' },
  { width: 320, height: 240, method: 'scale' },
  { width: 640, height: 480, method: 'scale' },
  { width: 800, height: 600, method: 'scale' },
];

/**
 * The standard size that answers a request: the smallest of the requested method at least
 * as large as asked in both dimensions; none that large: the largest of that method (the
 * spec allows a smaller one only when the original is smaller, which the caller checks by
 * serving the original instead). Crop sizes answer crop requests, scale sizes scale ones.
 */
export function chooseThumbnailSize(
  width: number,
  height: number,
  method: ThumbnailMethod,
): ThumbnailSize {
  const candidates = THUMBNAIL_SIZES.filter((size) => size.method === method);
  const fitting = candidates.find((size) => size.width >= width && size.height >= height);
  return fitting ?? (candidates[candidates.length - 1] as ThumbnailSize);
}

/**
 * The pixel size a thumbnail of an image comes out at: `scale` keeps the aspect ratio and
 * fits inside the box (never upscaling); `crop` fills the box exactly, cut from the middle
 * (never upscaling either: an image smaller than the box keeps its size, cut to the box's
 * aspect).
 */
export function thumbnailDimensions(
  source: { width: number; height: number },
  size: ThumbnailSize,
): { width: number; height: number } {
  if (size.method === 'scale') {
    const ratio = Math.min(size.width / source.width, size.height / source.height, 1);
    return {
      width: Math.max(1, Math.round(source.width * ratio)),
      height: Math.max(1, Math.round(source.height * ratio)),
    };
  }
  const ratio = Math.min(1, Math.max(size.width / source.width, size.height / source.height));
  return {
    width: Math.max(1, Math.min(size.width, Math.round(source.width * ratio))),
    height: Math.max(1, Math.min(size.height, Math.round(source.height * ratio))),
  };
}

/** A byte range to serve, both ends inclusive. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * A `Range` header against content of `size` bytes: null to serve the whole content (no
 * header, or one we do not honour, such as several ranges or another unit), the range to
 * serve, or 'unsatisfiable' (416).
 */
export function parseRange(
  header: string | undefined,
  size: number,
): ByteRange | null | 'unsatisfiable' {
  if (header === undefined) return null;
  const match = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!match) return null;
  const [, first = '', last = ''] = match;
  if (first === '' && last === '') return null;
  if (first === '') {
    const suffix = Number(last);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  if (start >= size) return 'unsatisfiable';
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
  if (end < start) return null;
  return { start, end };
}
