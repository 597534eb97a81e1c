/**
 * Renders the schema as a commented YAML file of defaults (`commons --generate-config`) and
 * as the table in docs/configuration.md, so neither can drift from what is validated.
 */
import { stringify } from 'yaml';
import type { TSchema } from 'typebox';
import { Value } from 'typebox/value';
import { ConfigSchema } from './schema.js';
import { envName } from './load.js';

interface Documented {
  description?: string;
  properties?: Record<string, TSchema>;
}

const asDoc = (schema: TSchema): Documented => schema as Documented;

type Defaults = Record<string, unknown>;

/** Every key's default, nested as in the file: what loadConfig gives when nothing is set. */
function defaults(): Defaults {
  return Value.Default(ConfigSchema, {}) as Defaults;
}

function child(value: unknown, key: string): unknown {
  return value !== null && typeof value === 'object' ? (value as Defaults)[key] : undefined;
}

function yamlValue(value: unknown): string {
  return stringify(value ?? null, { lineWidth: 0 }).trimEnd();
}

function renderYaml(
  schema: TSchema,
  values: unknown,
  indent: string,
  printed: Set<string>,
): string[] {
  const lines: string[] = [];
  for (const [key, sub] of Object.entries(asDoc(schema).properties ?? {})) {
    const doc = asDoc(sub);
    const isSection = doc.properties !== undefined;
    // A leaf description shared by several keys (the rate-limit fields) is printed once.
    if (doc.description && (isSection || !printed.has(doc.description))) {
      lines.push(`${indent}# ${doc.description}`);
      if (!isSection) printed.add(doc.description);
    }
    if (isSection) {
      lines.push(
        `${indent}${key}:`,
        ...renderYaml(sub, child(values, key), `${indent}  `, printed),
      );
    } else {
      lines.push(`${indent}${key}: ${yamlValue(child(values, key))}`);
    }
  }
  return lines;
}

/** The default configuration file, with a comment above every key. */
export function generateConfigYaml(): string {
  return [
    '# Commons homeserver configuration. Every key is optional; shown here with its default.',
    '# Each key can also be set by an environment variable: COMMONS_ + its path in upper',
    '# snake case, e.g. COMMONS_LISTEN_PORT=9000. See docs/configuration.md.',
    ...renderYaml(ConfigSchema, defaults(), '', new Set()),
    '',
  ].join('\n');
}

interface Row {
  path: string[];
  value: unknown;
  description: string;
  /** The description of the object holding the key, used when `description` is not unique. */
  parentDescription: string;
}

function collectRows(schema: TSchema, values: unknown, prefix: string[], rows: Row[]): Row[] {
  for (const [key, sub] of Object.entries(asDoc(schema).properties ?? {})) {
    const doc = asDoc(sub);
    if (doc.properties) {
      collectRows(sub, child(values, key), [...prefix, key], rows);
    } else {
      rows.push({
        path: [...prefix, key],
        value: child(values, key) ?? null,
        description: doc.description ?? '',
        parentDescription: asDoc(schema).description ?? '',
      });
    }
  }
  return rows;
}

/** Makes text safe in a Markdown table cell: no column breaks, no `<` read as an HTML tag. */
function cell(text: string): string {
  return text
    .split('`')
    .map((part, i) => (i % 2 === 0 ? part.replace(/</g, '&lt;') : part))
    .join('`')
    .replace(/\|/g, '\\|');
}

/** The key table of docs/configuration.md: one row per key, nested keys dotted. */
export function generateConfigTable(): string {
  const rows = collectRows(ConfigSchema, defaults(), [], []);
  const uses = new Map<string, number>();
  for (const row of rows) uses.set(row.description, (uses.get(row.description) ?? 0) + 1);
  return [
    '| Key | Environment variable | Default | Meaning |',
    '| --- | --- | --- | --- |',
    ...rows.map((row) => {
      const meaning =
        (uses.get(row.description) ?? 0) > 1 && row.parentDescription
          ? `${row.parentDescription} ${row.description}`
          : row.description;
      return `| \`${row.path.join('.')}\` | \`${envName(row.path)}\` | \`${cell(JSON.stringify(row.value))}\` | ${cell(meaning)} |`;
    }),
  ].join('\n');
}
