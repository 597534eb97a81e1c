/**
 * How the user directory matches names: text is folded (Unicode compatibility forms,
 * accents removed, lower case) and cut into words of letters and digits; a search matches a
 * user when each of its words begins one of the user's words (from the user ID and the
 * display name). Pure: the store keeps the words in an index and asks by prefix.
 */

/** Longest word kept (longer ones are cut: a prefix of them still matches). */
export const MAX_TERM_LENGTH = 64;
/** Words of a search beyond this many are ignored. */
export const MAX_SEARCH_WORDS = 4;

/** Folds case and accents: "Ångström" → "angstrom". */
export function foldText(text: string): string {
  return text
    .normalize('NFKD')
    .replace(/\p{M}+/gu, '')
    .toLowerCase();
}

/** The folded words of a text, distinct, in order of first appearance. */
export function wordsOf(text: string): string[] {
  const words = foldText(text).match(/[\p{L}\p{N}]+/gu) ?? [];
  return [...new Set(words.map((word) => word.slice(0, MAX_TERM_LENGTH)))];
}

/** The words a user is found by: those of the user ID and of the display name. */
export function directoryTerms(userId: string, displayName: string | null): string[] {
  return [...new Set([...wordsOf(userId), ...wordsOf(displayName ?? '')])];
}

/** The words of a search, at most MAX_SEARCH_WORDS (the longest first, as most selective). */
export function searchWords(searchTerm: string): string[] {
  return wordsOf(searchTerm)
    .sort((a, b) => b.length - a.length)
    .slice(0, MAX_SEARCH_WORDS);
}

/** The exclusive upper bound of the words starting with `prefix`, in code point order. */
export function prefixUpperBound(prefix: string): string {
  return `${prefix}\u{10FFFF}`;
}
