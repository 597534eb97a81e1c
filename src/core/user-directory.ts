/**
 * How the user directory matches names: text is folded (Unicode compatibility forms,
 * accents removed, lower case) and cut into words of letters and digits; a search matches a
 * user when each of its words begins one of the user's words (from the user ID and the
 * display name). Pure: the store keeps every prefix of the words in an index, so a search
 * word is looked up whole.
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
  return [...new Set(words.map((word) => cut(word, MAX_TERM_LENGTH)))];
}

/** The first `length` UTF-16 units of `text`, less a half surrogate pair at the end. */
function cut(text: string, length: number): string {
  const head = text.slice(0, length);
  const last = head.charCodeAt(head.length - 1);
  return last >= 0xd800 && last <= 0xdbff ? head.slice(0, -1) : head;
}

/** The words a user is found by: those of the user ID and of the display name. */
export function directoryTerms(userId: string, displayName: string | null): string[] {
  return [...new Set([...wordsOf(userId), ...wordsOf(displayName ?? '')])];
}

/**
 * The keys a user is found by: every prefix of every word (whole characters only), distinct.
 * A search word matches the user exactly when it is one of them.
 */
export function directoryPrefixes(userId: string, displayName: string | null): string[] {
  const prefixes = new Set<string>();
  for (const term of directoryTerms(userId, displayName)) {
    let prefix = '';
    for (const char of term) {
      prefix += char;
      prefixes.add(prefix);
    }
  }
  return [...prefixes];
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
