/**
 * Thumbnails made with sharp (libvips): the image is decoded with a pixel limit, cut
 * (`crop`) or scaled (`scale`) to the size chosen by core/media.ts, and encoded as JPEG for
 * JPEG sources, PNG for other still images, and animated WebP when an animation is asked
 * for and the source has several frames.
 */
import sharp, { type Metadata } from 'sharp';
import { MatrixError, tooLarge } from '../../core/errors.js';
import { essenceOf, thumbnailDimensions, type ThumbnailSize } from '../../core/media.js';

/** Content types we try to thumbnail (sharp decodes them all; SVG is deliberately absent). */
export const THUMBNAILABLE_TYPES: ReadonlySet<string> = new Set([
  'image/jpeg',
  'image/png',
  'image/apng',
  'image/gif',
  'image/webp',
  'image/avif',
  'image/tiff',
]);

/** Types a client may be given as they are in place of a thumbnail (inline-safe stills). */
const SERVABLE_AS_THUMBNAIL: ReadonlySet<string> = new Set([
  'image/jpeg',
  'image/png',
  'image/gif',
  'image/webp',
]);

/** Images larger than this many pixels are refused before decoding. */
export const MAX_SOURCE_PIXELS = 100_000_000;

export interface SourceInfo {
  width: number;
  height: number;
  frames: number;
}

export interface MadeThumbnail {
  contentType: string;
  data: Buffer;
}

export const cannotThumbnail = (message = 'Cannot generate thumbnails for the requested content') =>
  new MatrixError(400, 'M_UNKNOWN', message);

/** The source's size and frame count, or a 400 M_UNKNOWN when it cannot be decoded. */
export async function inspect(source: Buffer): Promise<SourceInfo> {
  let metadata: Metadata;
  try {
    metadata = await sharp(source, { limitInputPixels: MAX_SOURCE_PIXELS }).metadata();
  } catch {
    throw cannotThumbnail('The content could not be decoded as an image');
  }
  const { width, height } = metadata;
  if (!width || !height) throw cannotThumbnail('The content could not be decoded as an image');
  const frames = metadata.pages ?? 1;
  // metadata() reads only the header; an image whose pixel count passes the limit is refused
  // here, before anything is decoded.
  if (width * (metadata.pageHeight ?? height) > MAX_SOURCE_PIXELS)
    throw tooLarge('Content is too large to thumbnail');
  return { width, height: metadata.pageHeight ?? height, frames };
}

/**
 * Whether the original may answer a thumbnail request as it is: a still (or, when an
 * animation is welcome, animated) image of an inline-safe type no larger than asked.
 */
export function originalAnswers(
  contentType: string,
  info: SourceInfo,
  requested: { width: number; height: number },
  animated: boolean,
): boolean {
  if (!SERVABLE_AS_THUMBNAIL.has(essenceOf(contentType))) return false;
  if (info.frames > 1 && !animated) return false;
  return info.width <= requested.width && info.height <= requested.height;
}

/** Makes one thumbnail; a source that fails to decode answers 400 M_UNKNOWN. */
export async function makeThumbnail(
  source: Buffer,
  sourceType: string,
  info: SourceInfo,
  size: ThumbnailSize,
  animated: boolean,
): Promise<MadeThumbnail> {
  const animate = animated && info.frames > 1;
  const { width, height } = thumbnailDimensions(info, size);
  try {
    const pipeline = sharp(source, {
      limitInputPixels: MAX_SOURCE_PIXELS,
      animated: animate,
    })
      .rotate() // honour EXIF orientation before cutting
      .resize(width, height, {
        fit: size.method === 'crop' ? 'cover' : 'fill',
        position: 'centre',
      });
    if (animate) return { contentType: 'image/webp', data: await pipeline.webp().toBuffer() };
    if (essenceOf(sourceType) === 'image/jpeg')
      return { contentType: 'image/jpeg', data: await pipeline.jpeg({ quality: 80 }).toBuffer() };
    return { contentType: 'image/png', data: await pipeline.png().toBuffer() };
  } catch {
    throw cannotThumbnail('The content could not be decoded as an image');
  }
}
