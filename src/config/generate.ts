/**
 * Renders the schema as a commented YAML file of defaults (`commons --generate-config`) and
 * as the table in docs/configuration.md, so neither can drift from what is validated.
 */
import { stringify } from 'yaml';
import type { TSchema } from 'typebox';
import { ConfigSchema } from './schema.js';
import { envName } from './load.js';

interface Documented {
  description?: string;
  default?: unknown;
  properties?: Record<string, TSchema>;
}

const asDoc = (schema: TSchema): Documented => schema as Documented;

function yamlValue(value: unknown): string {
  return stringify(value, { lineWidth: 0 }).trimEnd();
}

function renderYaml(schema: TSchema, indent: string): string[] {
  const lines: string[] = [];
  for (const [key, child] of Object.entries(asDoc(schema).properties ?? {})) {
    const doc = asDoc(child);
    if (doc.description) lines.push(`${indent}# ${doc.description}`);
    if (
      doc.properties &&
      Object.keys(doc.properties).length > 0 &&
      !('default' in doc && key === 'classes')
    ) {
      lines.push(`${indent}${key}:`, ...renderYaml(child, `${indent}  `));
    } else {
      const value = yamlValue(doc.default ?? null);
      if (value.includes('\n')) {
        lines.push(`${indent}${key}:`, ...value.split('\n').map((l) => `${indent}  ${l}`));
      } else {
        lines.push(`${indent}${key}: ${value}`);
      }
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
    ...renderYaml(ConfigSchema, ''),
    '',
  ].join('\n');
}

function renderRows(schema: TSchema, prefix: string[]): string[] {
  const rows: string[] = [];
  for (const [key, child] of Object.entries(asDoc(schema).properties ?? {})) {
    const doc = asDoc(child);
    const keyPath = [...prefix, key];
    if (doc.properties && key !== 'classes') {
      rows.push(...renderRows(child, keyPath));
    } else if (doc.properties) {
      for (const [cls, clsSchema] of Object.entries(doc.properties)) {
        const clsDefault = (doc.default as Record<string, unknown> | undefined)?.[cls];
        for (const field of Object.keys(asDoc(clsSchema).properties ?? {})) {
          const fieldPath = [...keyPath, cls, field];
          const value = (clsDefault as Record<string, unknown> | undefined)?.[field];
          rows.push(
            `| \`${fieldPath.join('.')}\` | \`${envName(fieldPath)}\` | \`${JSON.stringify(value)}\` | ${asDoc(asDoc(clsSchema).properties?.[field] ?? clsSchema).description ?? ''} |`,
          );
        }
      }
    } else {
      rows.push(
        `| \`${keyPath.join('.')}\` | \`${envName(keyPath)}\` | \`${JSON.stringify(doc.default ?? null)}\` | ${doc.description ?? ''} |`,
      );
    }
  }
  return rows;
}

/** The key table of docs/configuration.md. */
export function generateConfigTable(): string {
  return [
    '| Key | Environment variable | Default | Meaning |',
    '|---|---|---|---|',
    ...renderRows(ConfigSchema, []),
  ].join('\n');
}
