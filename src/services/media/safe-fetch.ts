/**
 * Fetches a URL for a preview the way Synapse does it safely: http and https only, every
 * hop (redirects included, five at most) connects only to addresses the rules allow — the
 * check is made on the addresses DNS answered, in the lookup the connection itself uses, so
 * a name that resolves to a private address (or changes between two lookups) is refused —
 * the body is cut off past a size limit, and the whole fetch has a deadline.
 */
import { lookup as dnsLookup } from 'node:dns';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import { MatrixError, forbidden } from '../../core/errors.js';
import { isAddressAllowed, type AddressRules } from '../../core/url-preview.js';

export interface FetchLimits {
  rules: AddressRules;
  maxBytes: number;
  timeoutMs: number;
  userAgent: string;
}

export interface Fetched {
  /** The URL finally answered (after redirects). */
  url: string;
  contentType: string;
  body: Buffer;
}

const MAX_REDIRECTS = 5;

export const deniedAddress = (): MatrixError =>
  forbidden('The URL resolves to an address previews may not fetch from');
const failed = (message: string): MatrixError =>
  new MatrixError(502, 'M_UNKNOWN', `Could not fetch the URL: ${message}`);

class DeniedAddressError extends Error {}

/** A DNS lookup that answers only allowed addresses (an error when none is left). */
function guardedLookup(rules: AddressRules): LookupFunction {
  return (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) {
        callback(err, '', 0);
        return;
      }
      const list = addresses as unknown as { address: string; family: number }[];
      // One denied answer is enough to refuse the name (as Synapse does): a name that
      // resolves to a private address is not one to fetch from.
      if (list.length === 0 || list.some((a) => !isAddressAllowed(a.address, rules))) {
        callback(new DeniedAddressError(hostname) as NodeJS.ErrnoException, '', 0);
        return;
      }
      if (options.all) (callback as unknown as (e: null, a: typeof list) => void)(null, list);
      else callback(null, list[0]!.address, list[0]!.family);
    });
  };
}

function requestOnce(
  url: URL,
  limits: FetchLimits,
  signal: AbortSignal,
): Promise<{ response: IncomingMessage }> {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (isIP(host) !== 0 && !isAddressAllowed(host, limits.rules)) throw deniedAddress();
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(
      url,
      {
        method: 'GET',
        signal,
        lookup: guardedLookup(limits.rules),
        headers: {
          'User-Agent': limits.userAgent,
          Accept: 'text/html, application/xhtml+xml, image/*;q=0.9, */*;q=0.5',
          'Accept-Language': 'en',
        },
      },
      (response) => resolve({ response }),
    );
    req.on('error', (err) => {
      if (err instanceof DeniedAddressError) reject(deniedAddress());
      else if (signal.aborted) reject(failed('no answer in time'));
      else reject(failed(err.message));
    });
    req.end();
  });
}

function readBody(response: IncomingMessage, maxBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(response.headers['content-length']);
    if (Number.isFinite(declared) && declared > maxBytes) {
      response.destroy();
      reject(failed('the content is too large'));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    response.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) {
        response.destroy();
        reject(failed('the content is too large'));
        return;
      }
      chunks.push(chunk);
    });
    response.on('error', (err) => reject(failed(err.message)));
    response.on('aborted', () => reject(failed('the answer was cut off')));
    response.on('end', () => resolve(Buffer.concat(chunks)));
  });
}

/** GET `url` within the limits; a Matrix error (403 denied, 502 failed) otherwise. */
export async function safeFetch(url: string, limits: FetchLimits): Promise<Fetched> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), limits.timeoutMs);
  try {
    let current = new URL(url);
    for (let hop = 0; ; hop++) {
      if (current.protocol !== 'http:' && current.protocol !== 'https:')
        throw failed('only http and https URLs are fetched');
      const { response } = await requestOnce(current, limits, controller.signal);
      const status = response.statusCode ?? 0;
      if (status >= 300 && status < 400 && typeof response.headers.location === 'string') {
        response.resume();
        if (hop >= MAX_REDIRECTS) throw failed('too many redirects');
        current = new URL(response.headers.location, current);
        continue;
      }
      if (status !== 200) {
        response.resume();
        throw failed(`HTTP ${status}`);
      }
      const body = await readBody(response, limits.maxBytes).catch((err: unknown) => {
        if (controller.signal.aborted) throw failed('no answer in time');
        throw err;
      });
      return {
        url: current.toString(),
        contentType: String(response.headers['content-type'] ?? 'application/octet-stream'),
        body,
      };
    }
  } finally {
    clearTimeout(timer);
  }
}
