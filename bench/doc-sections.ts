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
