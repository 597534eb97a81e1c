/**
 * Sections of docs/benchmarks.md that come from their own runs (the idle-clients scenario,
 * the peers bench), kept between `<!-- name:begin -->` and `<!-- name:end -->` markers so that
 * writing one part of the document leaves the others as they are.
 */
import { existsSync, readFileSync } from 'node:fs';

const markers = (name: string) => [`<!-- ${name}:begin -->`, `<!-- ${name}:end -->`] as const;

/** The section named `name` in `text`, markers included, or null. */
export function sectionOf(text: string, name: string): string | null {
  const [begin, end] = markers(name);
  const from = text.indexOf(begin);
  const to = text.indexOf(end);
  return from >= 0 && to > from ? text.slice(from, to + end.length) : null;
}

/** The section named `name` in the file, or null (no file, no section). */
export function sectionOfFile(path: string, name: string): string | null {
  return existsSync(path) ? sectionOf(readFileSync(path, 'utf8'), name) : null;
}

/** `text` with the section `name` set to `body` (between its markers), appended if absent. */
export function withSection(text: string, name: string, body: string): string {
  const [begin, end] = markers(name);
  const section = `${begin}\n${body.trim()}\n${end}`;
  const old = sectionOf(text, name);
  return old ? text.replace(old, () => section) : `${text.trimEnd()}\n\n${section}\n`;
}

/**
 * Every top-level marked section of the file, in the order they appear (a section inside
 * another comes with it), except those named in `except`.
 */
export function markedSectionsOfFile(path: string, except: readonly string[] = []): string[] {
  if (!existsSync(path)) return [];
  const text = readFileSync(path, 'utf8');
  const found: string[] = [];
  const begin = /<!-- ([a-z0-9-]+):begin -->/g;
  for (let match = begin.exec(text); match; match = begin.exec(text)) {
    const name = match[1] ?? '';
    const section = sectionOf(text.slice(match.index), name);
    if (!section) continue;
    if (!except.includes(name)) found.push(section);
    begin.lastIndex = match.index + section.length;
  }
  return found;
}
