/**
 * Server-side search (https://spec.matrix.org/v1.19/client-server-api/#server-side-search):
 * which text of an event is searchable, and a search term as words.
 */
import type { JsonObject } from './pdu.js';

export const SEARCH_KEYS = ['content.body', 'content.name', 'content.topic'] as const;
export type SearchKey = (typeof SEARCH_KEYS)[number];

/** The text longer than this is indexed up to this length. */
export const MAX_INDEXED_LENGTH = 65_536;
/** The most words of a search term used. */
const MAX_WORDS = 32;

const KEY_OF_TYPE: Record<string, SearchKey> = {
  'm.room.message': 'content.body',
  'm.room.name': 'content.name',
  'm.room.topic': 'content.topic',
};

/** The searchable text of an event (key and value), if it has any. */
export function searchableText(
  type: string,
  content: JsonObject,
): { key: SearchKey; value: string } | null {
  const key = KEY_OF_TYPE[type];
  if (!key) return null;
  const value = content[key.slice('content.'.length)];
  if (typeof value !== 'string' || value.trim() === '') return null;
  // NUL cannot be stored in PostgreSQL text.
  return { key, value: value.slice(0, MAX_INDEXED_LENGTH).replaceAll('\u0000', ' ') };
}

/**
 * The words of a search term, lower-cased: runs of letters, digits and marks (every other
 * character separates words), as both databases' tokenizers split text.
 */
export function searchWords(term: string): string[] {
  const words = term.toLowerCase().match(/[\p{L}\p{N}\p{M}]+/gu) ?? [];
  return [...new Set(words)].slice(0, MAX_WORDS);
}
