/**
 * URL previews (`/preview_url`), off unless configured: the page is fetched within the safety
 * limits of safe-fetch.ts, its Open Graph data read (core/url-preview.ts), its image fetched
 * the same way and kept in the media store as the requester's media (the preview names it
 * by `mxc://`), and the answer cached in the database for `cacheSeconds`, so every worker
 * shares it and a URL asked for by many clients at once is fetched once per process.
 */
import sharp from 'sharp';
import { invalidParam, unrecognized } from '../../core/errors.js';
import { essenceOf } from '../../core/media.js';
import {
  absoluteHttpUrl,
  addressRules,
  decodeHtml,
  parseOpenGraph,
} from '../../core/url-preview.js';
import type { MediaFileStore } from '../../storage/index.js';
import type { Requester, ServiceContext } from '../context.js';
import { safeFetch, type FetchLimits } from './safe-fetch.js';

export interface UrlPreviewSettings {
  enabled: boolean;
  /** CIDR ranges denied besides the built-in ones. */
  denyRanges: readonly string[];
  /** CIDR ranges allowed even when denied (a local test server, an intranet). */
  allowRanges: readonly string[];
  maxBytes: number;
  timeoutMs: number;
  cacheSeconds: number;
}

export const DEFAULT_URL_PREVIEW_SETTINGS: UrlPreviewSettings = {
  enabled: false,
  denyRanges: [],
  allowRanges: [],
  maxBytes: 10 * 1024 * 1024,
  timeoutMs: 10_000,
  cacheSeconds: 3600,
};

const HTML_TYPES = new Set(['text/html', 'application/xhtml+xml']);

export type Preview = Record<string, string | number>;

export function createUrlPreviewService(
  ctx: ServiceContext,
  settings: UrlPreviewSettings,
  files: () => MediaFileStore,
  storeImage: (
    requester: Requester,
    contentType: string,
    sha256: string,
    size: number,
  ) => Promise<string>,
) {
  const { stores } = ctx.storage;
  const limits: FetchLimits | null = settings.enabled
    ? {
        rules: addressRules(settings.denyRanges, settings.allowRanges),
        maxBytes: settings.maxBytes,
        timeoutMs: settings.timeoutMs,
        userAgent: `Commons URL preview (${ctx.settings.serverName})`,
      }
    : null;
  const pending = new Map<string, Promise<Preview>>();

  /** The image part of a preview: stored as media, with its type, size and dimensions. */
  const imagePreview = async (
    requester: Requester,
    body: Buffer,
    contentType: string,
  ): Promise<Preview> => {
    const type = essenceOf(contentType);
    let width: number | undefined;
    let height: number | undefined;
    try {
      const metadata = await sharp(body, { limitInputPixels: 100_000_000 }).metadata();
      width = metadata.width;
      height = metadata.pageHeight ?? metadata.height;
    } catch {
      return {}; // not an image after all: no image in the preview
    }
    const stored = await files().writeBuffer(body);
    const mxc = await storeImage(requester, type, stored.sha256, stored.size);
    return {
      'og:image': mxc,
      'og:image:type': type,
      'matrix:image:size': stored.size,
      ...(width !== undefined ? { 'og:image:width': width } : {}),
      ...(height !== undefined ? { 'og:image:height': height } : {}),
    };
  };

  const make = async (requester: Requester, url: string, fetchLimits: FetchLimits) => {
    const page = await safeFetch(url, fetchLimits);
    const type = essenceOf(page.contentType);
    let preview: Preview = {};
    if (type.startsWith('image/')) {
      preview = await imagePreview(requester, page.body, page.contentType);
    } else if (HTML_TYPES.has(type)) {
      const og = parseOpenGraph(decodeHtml(page.body, page.contentType), page.url);
      const { 'og:image': imageUrl, ...rest } = og;
      preview = rest;
      if (imageUrl !== undefined) {
        try {
          const image = await safeFetch(imageUrl, fetchLimits);
          if (essenceOf(image.contentType).startsWith('image/'))
            preview = {
              ...preview,
              ...(await imagePreview(requester, image.body, image.contentType)),
            };
        } catch {
          // A page whose image cannot be fetched is still previewed, without the image.
        }
      }
    }
    const now = ctx.now();
    await stores.media.upsertUrlPreview(
      url,
      now,
      now + settings.cacheSeconds * 1000,
      JSON.stringify(preview),
    );
    return preview;
  };

  return {
    enabled: settings.enabled,

    /** The preview of `url`; 404 M_UNRECOGNIZED when previews are off. */
    async preview(requester: Requester, url: string): Promise<Preview> {
      if (!limits) throw unrecognized('URL previews are not enabled on this server');
      const absolute = absoluteHttpUrl(url);
      if (absolute === null || url.length > 2048)
        throw invalidParam('url must be an absolute http or https URL');
      const cached = await stores.media.selectUrlPreview(absolute, ctx.now());
      if (cached !== undefined) return JSON.parse(cached) as Preview;
      let making = pending.get(absolute);
      if (!making) {
        making = make(requester, absolute, limits).finally(() => pending.delete(absolute));
        pending.set(absolute, making);
      }
      return making;
    },
  };
}
