/**
 * Rewrites the key table of docs/configuration.md from the config schema:
 *   node --import tsx scripts/update-config-docs.ts
 * test/unit/config-docs.test.ts fails when the page and the schema disagree.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { generateConfigTable } from '../src/config/generate.js';

export const CONFIG_DOCS = fileURLToPath(new URL('../docs/configuration.md', import.meta.url));
export const TABLE_START = '<!-- config-table:start -->';
export const TABLE_END = '<!-- config-table:end -->';

function markers(doc: string): { start: number; end: number } {
  const start = doc.indexOf(TABLE_START);
  const end = doc.indexOf(TABLE_END);
  if (start === -1 || end === -1 || end < start) {
    throw new Error(`docs/configuration.md must hold ${TABLE_START} … ${TABLE_END}`);
  }
  return { start: start + TABLE_START.length, end };
}

/** The text between the markers, without the line breaks that frame it. */
export function configTableIn(doc: string): string {
  const { start, end } = markers(doc);
  return doc.slice(start, end).trim();
}

/** `doc` with the text between the markers replaced by `table`. */
export function withConfigTable(doc: string, table: string): string {
  const { start, end } = markers(doc);
  return `${doc.slice(0, start)}\n${table}\n${doc.slice(end)}`;
}

function main(): void {
  const doc = readFileSync(CONFIG_DOCS, 'utf8');
  const updated = withConfigTable(doc, generateConfigTable());
  const relative = path.relative(process.cwd(), CONFIG_DOCS);
  if (updated === doc) {
    console.log(`${relative}: the key table is up to date`);
    return;
  }
  writeFileSync(CONFIG_DOCS, updated);
  console.log(`${relative}: key table rewritten from src/config/schema.ts`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main();
}
