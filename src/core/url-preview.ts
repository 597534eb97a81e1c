/**
 * URL previews' pure parts: which IP addresses a preview may never fetch from (the ranges
 * Synapse denies by default: loopback, private, link-local, shared, documentation,
 * multicast, reserved, plus the configured ones), and the Open Graph data of an HTML page
 * (`og:*` meta tags, else the page's `<title>`, its meta description and its first image).
 */
import { Parser } from 'htmlparser2';
import ipaddr from 'ipaddr.js';

/** Always denied unless an allow entry covers the address. */
export const DENIED_RANGES: readonly string[] = [
  '0.0.0.0/8',
  '10.0.0.0/8',
  '100.64.0.0/10',
  '127.0.0.0/8',
  '169.254.0.0/16',
  '172.16.0.0/12',
  '192.0.0.0/24',
  '192.0.2.0/24',
  '192.88.99.0/24',
  '192.168.0.0/16',
  '198.18.0.0/15',
  '198.51.100.0/24',
  '203.0.113.0/24',
  '224.0.0.0/4',
  '240.0.0.0/4',
  '255.255.255.255/32',
  '::/128',
  '::1/128',
  '64:ff9b::/96',
  '100::/64',
  '2001::/23',
  '2001:db8::/32',
  'fc00::/7',
  'fe80::/10',
  'fec0::/10',
  'ff00::/8',
];

export type IpRange = [ipaddr.IPv4 | ipaddr.IPv6, number];

/** Parses CIDR ranges (a bare address is a range of one); throws on a bad one. */
export function parseRanges(ranges: readonly string[]): IpRange[] {
  return ranges.map((range) => {
    if (range.includes('/')) return ipaddr.parseCIDR(range);
    const address = ipaddr.parse(range);
    return [address, address.kind() === 'ipv4' ? 32 : 128];
  });
}

/** Whether `text` is a CIDR range or an address (config validation). */
export function isValidRange(text: string): boolean {
  try {
    parseRanges([text]);
    return true;
  } catch {
    return false;
  }
}

const inRanges = (address: ipaddr.IPv4 | ipaddr.IPv6, ranges: readonly IpRange[]): boolean =>
  ranges.some(([base, bits]) => base.kind() === address.kind() && address.match(base, bits));

export interface AddressRules {
  deny: readonly IpRange[];
  allow: readonly IpRange[];
}

export function addressRules(deny: readonly string[], allow: readonly string[]): AddressRules {
  return { deny: parseRanges([...DENIED_RANGES, ...deny]), allow: parseRanges(allow) };
}

/**
 * Whether a preview may connect to `ip`: not when it is in a denied range and in no allowed
 * one. An IPv4-mapped IPv6 address is judged as the IPv4 address it carries; anything that
 * does not parse is denied.
 */
export function isAddressAllowed(ip: string, rules: AddressRules): boolean {
  let address: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    address = ipaddr.parse(ip);
  } catch {
    return false;
  }
  if (address.kind() === 'ipv6' && (address as ipaddr.IPv6).isIPv4MappedAddress())
    address = (address as ipaddr.IPv6).toIPv4Address();
  if (inRanges(address, rules.allow)) return true;
  return !inRanges(address, rules.deny);
}

/** What an HTML page says of itself; `og:image` is a URL still to fetch. */
export type OpenGraph = Record<string, string>;

const MAX_VALUE_CHARS = 2000;
const clean = (text: string): string => text.replace(/\s+/g, ' ').trim().slice(0, MAX_VALUE_CHARS);

/**
 * The Open Graph data of a page: every `og:*` meta property, with `og:title` falling back to
 * `<title>`, `og:description` to the meta description and `og:image` to the first `<img>`;
 * image URLs made absolute against `pageUrl` (only http and https are kept).
 */
export function parseOpenGraph(html: string, pageUrl: string): OpenGraph {
  const og: OpenGraph = {};
  let title = '';
  let inTitle = false;
  let description: string | undefined;
  let firstImage: string | undefined;
  const parser = new Parser(
    {
      onopentag(name, attributes) {
        if (name === 'title') inTitle = true;
        if (name === 'meta') {
          const key = (attributes.property ?? attributes.name ?? '').toLowerCase();
          const value = attributes.content;
          if (value === undefined) return;
          if (key.startsWith('og:') && !(key in og)) og[key] = clean(value);
          if (key === 'description' && description === undefined) description = clean(value);
        }
        if (name === 'img' && firstImage === undefined && attributes.src) {
          firstImage = attributes.src;
        }
      },
      ontext(text) {
        if (inTitle) title += text;
      },
      onclosetag(name) {
        if (name === 'title') inTitle = false;
      },
    },
    { decodeEntities: true, lowerCaseTags: true, lowerCaseAttributeNames: true },
  );
  parser.write(html);
  parser.end();
  if (og['og:title'] === undefined && clean(title) !== '') og['og:title'] = clean(title);
  if (og['og:description'] === undefined && description !== undefined && description !== '')
    og['og:description'] = description;
  const image = og['og:image'] ?? firstImage;
  delete og['og:image'];
  if (image !== undefined) {
    const absolute = absoluteHttpUrl(image, pageUrl);
    if (absolute !== null) og['og:image'] = absolute;
  }
  return og;
}

/** `url` made absolute against `base`, when it is http(s); null otherwise. */
export function absoluteHttpUrl(url: string, base?: string): string | null {
  try {
    const parsed = new URL(url, base);
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return null;
    parsed.hash = '';
    return parsed.toString();
  } catch {
    return null;
  }
}

/** The charset a Content-Type names, if any. */
export function charsetOf(contentType: string): string | undefined {
  return /;\s*charset="?([^";\s]+)"?/i.exec(contentType)?.[1];
}

/** The charset a page's `<meta charset>` (or http-equiv) names in its first bytes, if any. */
export function metaCharset(head: Buffer): string | undefined {
  const text = head.subarray(0, 2048).toString('latin1');
  return /<meta[^>]+charset\s*=\s*["']?([\w-]+)/i.exec(text)?.[1] ?? undefined;
}

/** Decodes a page by its declared charset, UTF-8 when none is known. */
export function decodeHtml(body: Buffer, contentType: string): string {
  const label = charsetOf(contentType) ?? metaCharset(body) ?? 'utf-8';
  try {
    return new TextDecoder(label).decode(body);
  } catch {
    return new TextDecoder('utf-8').decode(body);
  }
}
