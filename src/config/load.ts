/**
 * Reads the configuration: YAML file (optional) → `COMMONS_*` environment overrides →
 * defaults → validation. Any problem is one ConfigError naming the key.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { Value } from 'typebox/value';
import type { TSchema } from 'typebox';
import { ConfigSchema, type Config } from './schema.js';
import { isValidServerName } from '../core/identifiers.js';

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** A config with everything resolved: database URL filled in, paths absolute. */
export type ResolvedConfig = Config & { database: Config['database'] & { url: string } };

export const ENV_PREFIX = 'COMMONS_';

interface Leaf {
  path: string[];
  schema: TSchema & { type?: unknown; anyOf?: TSchema[] };
}

function schemaProperties(schema: TSchema): Record<string, TSchema> | undefined {
  const props = (schema as { properties?: Record<string, TSchema> }).properties;
  return props && typeof props === 'object' ? props : undefined;
}

/** Every leaf key of the schema with its path, e.g. ['listen', 'port']. */
export function configLeaves(schema: TSchema = ConfigSchema, prefix: string[] = []): Leaf[] {
  const props = schemaProperties(schema);
  if (!props) return [{ path: prefix, schema }];
  return Object.entries(props).flatMap(([key, child]) => configLeaves(child, [...prefix, key]));
}

export const envName = (keyPath: string[]): string => ENV_PREFIX + keyPath.join('_').toUpperCase();

/** Our variables that are not configuration keys, so never warned about. */
const NON_KEY_ENV = new Set([`${ENV_PREFIX}CONFIG`, `${ENV_PREFIX}REGISTER_PASSWORD`]);

function coerceEnvValue(raw: string, leaf: Leaf): unknown {
  const types = new Set<string>();
  const collect = (s: TSchema & { type?: unknown; anyOf?: TSchema[]; const?: unknown }): void => {
    if (typeof s.type === 'string') types.add(s.type);
    if (s.const !== undefined) types.add(typeof s.const);
    s.anyOf?.forEach((inner) => collect(inner));
  };
  collect(leaf.schema);
  if (types.has('array'))
    return raw
      .split(',')
      .map((part) => part.trim())
      .filter((part) => part !== '');
  if (types.has('null') && (raw === '' || raw === 'null')) return null;
  // A list: comma-separated (e.g. COMMONS_FEDERATION_TRUSTED_KEY_SERVERS=a.example,b.example).
  if (types.has('array'))
    return raw
      .split(',')
      .map((item) => item.trim())
      .filter((item) => item !== '');
  if (types.has('boolean')) {
    if (raw === 'true') return true;
    if (raw === 'false') return false;
  }
  if (
    (types.has('integer') || types.has('number')) &&
    raw.trim() !== '' &&
    !Number.isNaN(Number(raw))
  ) {
    return Number(raw);
  }
  return raw;
}

function setPath(target: Record<string, unknown>, keyPath: string[], value: unknown): void {
  let node = target;
  for (const key of keyPath.slice(0, -1)) {
    const next = node[key];
    if (next === null || typeof next !== 'object' || Array.isArray(next)) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[keyPath[keyPath.length - 1] as string] = value;
}

/**
 * A section whose keys are all commented out reads as null in YAML (`listen:` alone); treat
 * it as absent so its defaults apply.
 */
function dropEmptySections(node: Record<string, unknown>, schema: TSchema): void {
  for (const [key, child] of Object.entries(schemaProperties(schema) ?? {})) {
    if (!schemaProperties(child)) continue;
    const value = node[key];
    if (value === null) delete node[key];
    else if (typeof value === 'object' && !Array.isArray(value)) {
      dropEmptySections(value as Record<string, unknown>, child);
    }
  }
}

export interface LoadOptions {
  file?: string | undefined;
  env?: NodeJS.ProcessEnv;
  /** Called for environment variables with our prefix that match no key. */
  warn?: (message: string) => void;
}

export function loadConfig(options: LoadOptions = {}): ResolvedConfig {
  const env = options.env ?? process.env;
  let raw: unknown = {};
  if (options.file !== undefined) {
    let text: string;
    try {
      text = readFileSync(options.file, 'utf8');
    } catch (err) {
      throw new ConfigError(`config: cannot read ${options.file}: ${(err as Error).message}`);
    }
    try {
      raw = parseYaml(text) ?? {};
    } catch (err) {
      throw new ConfigError(
        `config: ${options.file} is not valid YAML: ${(err as Error).message.split('\n')[0]}`,
      );
    }
    if (typeof raw !== 'object' || Array.isArray(raw)) {
      throw new ConfigError(`config: ${options.file} must hold a mapping of keys`);
    }
  }
  const config = structuredClone(raw) as Record<string, unknown>;
  dropEmptySections(config, ConfigSchema);

  const leaves = configLeaves();
  const known = new Map(leaves.map((leaf) => [envName(leaf.path), leaf]));
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX) || value === undefined) continue;
    const leaf = known.get(name);
    if (!leaf) {
      if (!name.startsWith(`${ENV_PREFIX}TEST_`) && !NON_KEY_ENV.has(name)) {
        options.warn?.(
          `config: environment variable ${name} matches no configuration key; ignored`,
        );
      }
      continue;
    }
    setPath(config, leaf.path, coerceEnvValue(value, leaf));
  }

  const withDefaults = Value.Default(ConfigSchema, config) as Record<string, unknown>;
  const first = Value.Errors(ConfigSchema, withDefaults)[0];
  if (first) throw new ConfigError(describeError(first, withDefaults));

  const valid = withDefaults as Config;
  if (!isValidServerName(valid.server_name)) {
    throw new ConfigError(
      `config: server_name: ${JSON.stringify(valid.server_name)} is not a server name (a DNS name of letters, digits, '-' and '.', an IPv4 address or a bracketed IPv6 one, then ':port' if any)`,
    );
  }
  const dataDir = path.resolve(valid.data_dir);
  return {
    ...valid,
    data_dir: dataDir,
    database: {
      ...valid.database,
      url: valid.database.url ?? `sqlite:${path.join(dataDir, 'commons.db')}`,
    },
  };
}

interface ValidationIssue {
  instancePath: string;
  schemaPath: string;
  keyword: string;
  message: string;
  params: Record<string, unknown>;
}

function describeError(issue: ValidationIssue, value: unknown): string {
  const keyPath = issue.instancePath
    .split('/')
    .filter((p) => p !== '')
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (issue.keyword === 'additionalProperties') {
    const extra = (issue.params.additionalProperties as string[] | undefined) ?? [];
    const name = [...keyPath, ...extra.slice(0, 1)].join('.');
    return `config: unknown key "${name}"`;
  }
  // TypeBox reports an extra key first as the key itself failing `additionalProperties: false`.
  if (issue.keyword === 'boolean' && issue.schemaPath.endsWith('/additionalProperties')) {
    return `config: unknown key "${keyPath.join('.')}"`;
  }
  if (issue.keyword === 'required') {
    const missing = (issue.params.requiredProperties as string[] | undefined)?.[0] ?? '?';
    return `config: missing key "${[...keyPath, missing].join('.')}"`;
  }
  let current: unknown = value;
  for (const key of keyPath) current = (current as Record<string, unknown> | undefined)?.[key];
  const name = keyPath.join('.') || '(root)';
  // A union of literals (log.level) fails once per literal: name the allowed values instead.
  const leaf = configLeaves().find((l) => l.path.join('.') === keyPath.join('.'));
  const allowed = leaf?.schema.anyOf?.map((s) => (s as { const?: unknown }).const);
  const message =
    allowed && allowed.length > 0 && allowed.every((v) => v !== undefined)
      ? `must be one of ${allowed.map((v) => JSON.stringify(v)).join(', ')}`
      : issue.message;
  return `config: bad value for "${name}" (${JSON.stringify(current)}): ${message} (env ${envName(keyPath)})`;
}
