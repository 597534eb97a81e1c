// Contract-test helper: validates response bodies against the official Matrix
// Client-Server OpenAPI 3.1 definitions in ../shared/matrix-spec (relative to the repo root).
//
// The YAML documents are loaded with `yaml`, every `$ref` reachable from a response
// schema (across files, with JSON pointers, cycles included) is bundled into one
// self-contained JSON Schema per operation (`$defs` + local refs), and compiled with
// Ajv's JSON Schema 2020-12 dialect. Example values use the spec's own `$ref`
// convention for examples (the referenced object, overlaid with the sibling keys).

import { AssertionError } from 'node:assert';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import type { ErrorObject, ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { parse as parseYaml } from 'yaml';
import { MATRIX_SPEC, SPEC_ROOT, skipUnless } from './requirements.js';

export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject;
export interface JsonObject {
  [key: string]: JsonValue;
}

export { SPEC_ROOT };
const SPEC_DATA_DIR = path.join(SPEC_ROOT, 'data');
/** Directory holding the Client-Server API definitions (`versions.yaml`, `rooms.yaml`, ...). */
export const CLIENT_SERVER_API_DIR = path.join(SPEC_DATA_DIR, 'api/client-server');

const JSON_MEDIA_TYPE = 'application/json';
const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];
const MAX_LISTED_ERRORS = 40;

// ---------------------------------------------------------------------------
// Small JSON utilities

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(file: string): string {
  return path.relative(SPEC_DATA_DIR, file) || file;
}

// ---------------------------------------------------------------------------
// Document loading and reference resolution

const documents = new Map<string, JsonValue>();

function loadDocument(file: string): JsonValue {
  const cached = documents.get(file);
  if (cached !== undefined) return cached;
  if (!existsSync(file)) {
    throw new Error(`Matrix spec file not found: ${file}`);
  }
  let parsed: unknown;
  try {
    parsed = parseYaml(readFileSync(file, 'utf8'), { prettyErrors: true });
  } catch (err) {
    throw new Error(
      `Cannot parse ${describe(file)}: ${err instanceof Error ? err.message : String(err)}`,
      {
        cause: err,
      },
    );
  }
  const doc = (parsed ?? null) as JsonValue;
  documents.set(file, doc);
  return doc;
}

interface Location {
  file: string;
  /** JSON pointer inside `file`, '' for the whole document. */
  pointer: string;
}

function parseRef(ref: string, baseFile: string): Location {
  const hash = ref.indexOf('#');
  const filePart = hash === -1 ? ref : ref.slice(0, hash);
  const fragment = hash === -1 ? '' : ref.slice(hash + 1);
  const file =
    filePart === '' ? baseFile : path.resolve(path.dirname(baseFile), decodeURI(filePart));
  return { file, pointer: decodeURIComponent(fragment) };
}

function getByPointer(doc: JsonValue, loc: Location): JsonValue {
  if (loc.pointer === '') return doc;
  if (!loc.pointer.startsWith('/')) {
    throw new Error(
      `Unsupported $ref fragment "#${loc.pointer}" in ${describe(loc.file)} (only JSON pointers)`,
    );
  }
  let node: JsonValue = doc;
  for (const raw of loc.pointer.slice(1).split('/')) {
    const token = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    let next: JsonValue | undefined;
    if (Array.isArray(node)) next = node[Number(token)];
    else if (isObject(node)) next = Object.hasOwn(node, token) ? node[token] : undefined;
    if (next === undefined) {
      throw new Error(`Unresolvable $ref: ${describe(loc.file)}#${loc.pointer} (no "${token}")`);
    }
    node = next;
  }
  return node;
}

function resolveLocation(loc: Location): JsonValue {
  return getByPointer(loadDocument(loc.file), loc);
}

interface Located {
  value: JsonValue;
  file: string;
}

/** Follows OpenAPI Reference Objects (`{$ref}`) until reaching a concrete object. */
function followReference(value: JsonValue, file: string): Located {
  const seen = new Set<string>();
  let current: Located = { value, file };
  while (isObject(current.value) && typeof current.value.$ref === 'string') {
    const loc = parseRef(current.value.$ref, current.file);
    const key = `${loc.file}#${loc.pointer}`;
    if (seen.has(key)) throw new Error(`Reference cycle at ${describe(loc.file)}#${loc.pointer}`);
    seen.add(key);
    current = { value: resolveLocation(loc), file: loc.file };
  }
  return current;
}

// ---------------------------------------------------------------------------
// Operation lookup

interface OperationRef {
  specFile: string;
  method: string;
  pathTemplate: string;
  status: number;
}

interface ResolvedMediaType {
  label: string;
  mediaType: JsonObject;
  file: string;
}

function specFilePath(specFile: string): string {
  const file = path.resolve(CLIENT_SERVER_API_DIR, specFile);
  if (!existsSync(file)) {
    throw new Error(
      `Spec file "${specFile}" not found: looked for ${file} ` +
        `(the matrix-spec data must be at ../shared/matrix-spec relative to the repository root)`,
    );
  }
  return file;
}

function label(op: OperationRef): string {
  return `${op.method.toUpperCase()} ${op.pathTemplate} ${op.status} (${op.specFile})`;
}

function keysOf(value: JsonValue | undefined): string {
  return isObject(value) ? Object.keys(value).join(', ') || '(none)' : '(none)';
}

function findJsonMediaType(op: OperationRef): ResolvedMediaType {
  const file = specFilePath(op.specFile);
  const doc = loadDocument(file);
  const where = label(op);
  const paths = isObject(doc) ? doc.paths : undefined;
  if (!isObject(paths)) throw new Error(`${describe(file)} has no "paths" object`);
  if (!Object.hasOwn(paths, op.pathTemplate)) {
    throw new Error(
      `${where}: path "${op.pathTemplate}" is not in ${op.specFile}; it has: ${keysOf(paths)}`,
    );
  }
  const pathItem = followReference(paths[op.pathTemplate] ?? null, file);
  const method = op.method.toLowerCase();
  const operation = isObject(pathItem.value) ? pathItem.value[method] : undefined;
  if (!isObject(operation)) {
    const methods = isObject(pathItem.value)
      ? Object.keys(pathItem.value).filter((k) => HTTP_METHODS.includes(k))
      : [];
    throw new Error(
      `${where}: method not defined for this path; it has: ${methods.join(', ') || '(none)'}`,
    );
  }
  const responses = operation.responses;
  const statusKey = String(op.status);
  const rangeKey = `${statusKey.charAt(0)}XX`;
  const responseKey = isObject(responses)
    ? [statusKey, rangeKey, rangeKey.toLowerCase()].find((k) => Object.hasOwn(responses, k))
    : undefined;
  if (!isObject(responses) || responseKey === undefined) {
    throw new Error(
      `${where}: status ${statusKey} is not documented; documented: ${keysOf(responses)}`,
    );
  }
  const response = followReference(responses[responseKey] ?? null, pathItem.file);
  const content = isObject(response.value) ? response.value.content : undefined;
  const mediaType = isObject(content) ? content[JSON_MEDIA_TYPE] : undefined;
  if (!isObject(mediaType)) {
    throw new Error(
      `${where}: the response has no ${JSON_MEDIA_TYPE} content; content types: ${keysOf(content)}`,
    );
  }
  const resolved = followReference(mediaType, response.file);
  if (!isObject(resolved.value)) throw new Error(`${where}: malformed media type object`);
  return { label: where, mediaType: resolved.value, file: resolved.file };
}

// ---------------------------------------------------------------------------
// Schema bundling: one self-contained JSON Schema (2020-12) per response.

const SCHEMA_MAP_KEYWORDS = new Set([
  'properties',
  'patternProperties',
  '$defs',
  'definitions',
  'dependentSchemas',
]);
const SCHEMA_ARRAY_KEYWORDS = new Set(['allOf', 'anyOf', 'oneOf', 'prefixItems']);
const SCHEMA_KEYWORDS = new Set([
  'items',
  'additionalItems',
  'additionalProperties',
  'unevaluatedItems',
  'unevaluatedProperties',
  'contains',
  'propertyNames',
  'not',
  'if',
  'then',
  'else',
]);
// Identifiers of the embedded documents would change the base URI ajv resolves `$ref` against.
const DROPPED_KEYWORDS = new Set([
  '$id',
  '$schema',
  '$anchor',
  '$dynamicAnchor',
  '$comment',
  'nullable',
]);
const ROOT_DEF = 'response';

class SchemaBundler {
  readonly defs: JsonObject = {};
  private readonly keys = new Map<string, string>();

  bundle(schema: JsonValue, file: string): JsonObject {
    this.defs[ROOT_DEF] = this.rewrite(schema, file);
    return { $defs: this.defs, $ref: `#/$defs/${ROOT_DEF}` };
  }

  private refTo(ref: string, file: string): string {
    const loc = parseRef(ref, file);
    const id = `${loc.file}#${loc.pointer}`;
    let key = this.keys.get(id);
    if (key === undefined) {
      const base = `${describe(loc.file)}${loc.pointer}`.replace(/[^A-Za-z0-9._-]+/g, '_');
      key = base;
      for (let n = 2; Object.hasOwn(this.defs, key) || key === ROOT_DEF; n++) key = `${base}_${n}`;
      this.keys.set(id, key);
      this.defs[key] = true; // placeholder: a cycle back to this target finds the key already assigned
      this.defs[key] = this.rewrite(resolveLocation(loc), loc.file);
    }
    return `#/$defs/${key}`;
  }

  private rewrite(node: JsonValue, file: string): JsonValue {
    if (!isObject(node)) return node;
    const out: JsonObject = {};
    for (const [keyword, value] of Object.entries(node)) {
      if (DROPPED_KEYWORDS.has(keyword)) continue;
      if (keyword === '$ref' && typeof value === 'string') {
        out.$ref = this.refTo(value, file);
      } else if (SCHEMA_MAP_KEYWORDS.has(keyword) && isObject(value)) {
        out[keyword] = Object.fromEntries(
          Object.entries(value).map(([k, v]) => [k, this.rewrite(v, file)]),
        );
      } else if (
        (SCHEMA_ARRAY_KEYWORDS.has(keyword) || keyword === 'items') &&
        Array.isArray(value)
      ) {
        out[keyword] = value.map((v) => this.rewrite(v, file));
      } else if (SCHEMA_KEYWORDS.has(keyword)) {
        out[keyword] = this.rewrite(value, file);
      } else if (keyword === 'examples' && !Array.isArray(value)) {
        continue; // OpenAPI-style map of examples is not a 2020-12 `examples` annotation
      } else {
        out[keyword] = value; // assertions, annotations (`example`, `x-*`, ...) and data kept verbatim
      }
    }
    if (node.nullable === true) applyNullable(out);
    return out;
  }
}

/** OpenAPI 3.0 `nullable: true` → allow `null` in JSON Schema terms. */
function applyNullable(schema: JsonObject): void {
  const type = schema.type;
  if (typeof type === 'string') schema.type = [type, 'null'];
  else if (Array.isArray(type) && !type.includes('null')) schema.type = [...type, 'null'];
  if (Array.isArray(schema.enum) && !schema.enum.includes(null))
    schema.enum = [...schema.enum, null];
}

/** The response schema of an operation, bundled into a single self-contained JSON Schema. */
export function bundledResponseSchema(
  specFile: string,
  method: string,
  pathTemplate: string,
  status: number,
): JsonObject {
  const found = findJsonMediaType({ specFile, method, pathTemplate, status });
  const schema = found.mediaType.schema;
  if (schema === undefined)
    throw new Error(`${found.label}: the ${JSON_MEDIA_TYPE} response has no schema`);
  return new SchemaBundler().bundle(schema, found.file);
}

// ---------------------------------------------------------------------------
// Ajv

// Matrix string formats (data/string-formats.yaml). The documented regexes are used where the
// spec gives one; the others are checked loosely so that valid identifiers are never rejected.
const MATRIX_FORMATS: Record<string, RegExp> = {
  'mx-user-id': /^@/,
  'mx-event-id': /^\$/,
  'mx-room-id': /^!/,
  'mx-room-alias': /^#/,
  'mx-mxc-uri': /^mxc:\/\//,
  'mx-server-name': /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?$/,
  'mx-unpadded-base64': /^[A-Za-z0-9+/]*$/,
  'mx-urlsafe-unpadded-base64': /^[A-Za-z0-9_-]*$/,
};

let ajvInstance: Ajv2020 | undefined;

function ajv(): Ajv2020 {
  if (ajvInstance) return ajvInstance;
  const instance = new Ajv2020({ strict: false, allErrors: true, logger: false });
  addFormatsModule.default(instance);
  for (const [name, pattern] of Object.entries(MATRIX_FORMATS)) instance.addFormat(name, pattern);
  // Any other format the spec declares is accepted without checking rather than failing compilation.
  const declared = loadDocument(path.join(SPEC_DATA_DIR, 'string-formats.yaml'));
  if (isObject(declared)) {
    for (const name of Object.keys(declared))
      if (!instance.formats[name]) instance.addFormat(name, true);
  }
  ajvInstance = instance;
  return instance;
}

function formatErrors(errors: ErrorObject[]): string {
  const lines = errors.slice(0, MAX_LISTED_ERRORS).map((e) => {
    const at = e.instancePath === '' ? '(root)' : e.instancePath;
    const params = Object.keys(e.params).length > 0 ? ` ${JSON.stringify(e.params)}` : '';
    return `  - ${at} ${e.message ?? e.keyword}${params} [schema ${e.schemaPath}]`;
  });
  if (errors.length > MAX_LISTED_ERRORS)
    lines.push(`  ... and ${errors.length - MAX_LISTED_ERRORS} more`);
  return lines.join('\n');
}

function preview(body: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(body) ?? String(body);
  } catch {
    text = String(body);
  }
  return text.length > 500 ? `${text.slice(0, 500)}…` : text;
}

export type BodyValidator = (body: unknown) => void;

const validators = new Map<string, BodyValidator>();

/**
 * Returns a validator for the `application/json` response of `method pathTemplate` with
 * `status`, as defined in `specFile` (a file name under data/api/client-server, e.g.
 * 'rooms.yaml', or an absolute path; `pathTemplate` as written there, e.g.
 * '/rooms/{roomId}/members'). Validators are compiled once per operation and cached.
 * The validator throws an AssertionError listing the schema violations.
 */
export function responseValidator(
  specFile: string,
  method: string,
  pathTemplate: string,
  status: number,
): BodyValidator {
  const cacheKey = [specFilePath(specFile), method.toLowerCase(), pathTemplate, status].join('\0');
  const cached = validators.get(cacheKey);
  if (cached) return cached;

  const where = label({ specFile, method, pathTemplate, status });
  const schema = bundledResponseSchema(specFile, method, pathTemplate, status);
  let validate: ValidateFunction;
  try {
    validate = ajv().compile(schema);
  } catch (err) {
    throw new Error(
      `${where}: cannot compile the response schema: ${err instanceof Error ? err.message : String(err)}`,
      {
        cause: err,
      },
    );
  }
  const validator: BodyValidator = (body) => {
    if (validate(body)) return;
    throw new AssertionError({
      message:
        `Response body does not match the Matrix spec for ${where}:\n` +
        `${formatErrors(validate.errors ?? [])}\nbody: ${preview(body)}`,
      actual: body,
      expected: `a body matching ${where}`,
      operator: 'matchesSpec',
    });
  };
  validators.set(cacheKey, validator);
  return validator;
}

/** Asserts that `body` matches the spec's response schema (see responseValidator). */
export function assertMatchesSpec(
  specFile: string,
  method: string,
  pathTemplate: string,
  status: number,
  body: unknown,
): void {
  // Without the spec's data beside the clone (and not required), the cross-check is skipped;
  // the run's banner says so.
  if (specSkipped) return;
  responseValidator(specFile, method, pathTemplate, status)(body);
}

const specSkipped = skipUnless(MATRIX_SPEC) !== undefined;

// ---------------------------------------------------------------------------
// Examples

/**
 * Resolves an example value: an object with a `$ref` (relative to the file it is written in)
 * stands for the referenced example with the sibling keys laid over it, as in the spec's examples.
 */
function resolveExample(value: JsonValue, file: string, stack: readonly string[] = []): JsonValue {
  if (Array.isArray(value)) return value.map((v) => resolveExample(v, file, stack));
  if (!isObject(value)) return value;
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(value)) {
    if (k !== '$ref') out[k] = resolveExample(v, file, stack);
  }
  if (typeof value.$ref !== 'string') return out;
  const loc = parseRef(value.$ref, file);
  const id = `${loc.file}#${loc.pointer}`;
  if (stack.includes(id))
    throw new Error(`Example $ref cycle at ${describe(loc.file)}#${loc.pointer}`);
  const base = resolveExample(resolveLocation(loc), loc.file, [...stack, id]);
  if (isObject(base)) return { ...base, ...out };
  if (Object.keys(out).length === 0) return base;
  throw new Error(`Example $ref to a non-object (${id}) has sibling keys`);
}

const MAX_SYNTHESIS_DEPTH = 32;

/** Builds a value from the `example` annotations of a schema, or undefined if a required part has none. */
function synthesizeFromSchema(schema: JsonValue, file: string, depth = 0): JsonValue | undefined {
  if (!isObject(schema) || depth > MAX_SYNTHESIS_DEPTH) return undefined;
  if (schema.example !== undefined) return resolveExample(schema.example, file);
  if (typeof schema.$ref === 'string') {
    const loc = parseRef(schema.$ref, file);
    return synthesizeFromSchema(resolveLocation(loc), loc.file, depth + 1);
  }
  if (Array.isArray(schema.allOf)) {
    let merged: JsonObject | undefined;
    for (const part of schema.allOf) {
      const value = synthesizeFromSchema(part, file, depth + 1);
      if (isObject(value)) merged = { ...merged, ...value };
      else if (value === undefined) return undefined;
    }
    if (merged === undefined && !isObject(schema.properties)) return undefined;
    if (!isObject(schema.properties)) return merged;
    const own = synthesizeFromSchema(
      { type: 'object', properties: schema.properties },
      file,
      depth + 1,
    );
    return isObject(own) ? { ...merged, ...own } : merged;
  }
  for (const keyword of ['oneOf', 'anyOf'] as const) {
    const options = schema[keyword];
    if (Array.isArray(options)) {
      for (const option of options) {
        const value = synthesizeFromSchema(option, file, depth + 1);
        if (value !== undefined) return value;
      }
      return undefined;
    }
  }
  if (schema.type === 'object' || isObject(schema.properties)) {
    const out: JsonObject = {};
    if (isObject(schema.properties)) {
      for (const [name, sub] of Object.entries(schema.properties)) {
        const value = synthesizeFromSchema(sub, file, depth + 1);
        if (value !== undefined) out[name] = value;
      }
    }
    const required = Array.isArray(schema.required) ? schema.required : [];
    return required.every((name) => typeof name === 'string' && Object.hasOwn(out, name))
      ? out
      : undefined;
  }
  if (schema.type === 'array') {
    const item = synthesizeFromSchema(schema.items ?? null, file, depth + 1);
    return item === undefined ? [] : [item];
  }
  return undefined;
}

export interface SpecExample {
  /** The example's name in the spec, or 'synthesized' when built from schema `example`s. */
  name: string;
  value: JsonValue;
  synthesized: boolean;
}

/**
 * The example bodies the spec gives for a response (`examples`/`example` of its
 * application/json content, `$ref`s resolved). When it gives none, a body is synthesized from
 * the schema's per-property `example` annotations if every required part has one.
 */
export function specExamples(
  specFile: string,
  method: string,
  pathTemplate: string,
  status: number,
): SpecExample[] {
  const { mediaType, file } = findJsonMediaType({ specFile, method, pathTemplate, status });
  const out: SpecExample[] = [];
  if (isObject(mediaType.examples)) {
    for (const [name, entry] of Object.entries(mediaType.examples)) {
      const example = followReference(entry, file);
      if (isObject(example.value) && example.value.value !== undefined) {
        out.push({
          name,
          value: resolveExample(example.value.value, example.file),
          synthesized: false,
        });
      }
    }
  }
  if (mediaType.example !== undefined) {
    out.push({
      name: 'example',
      value: resolveExample(mediaType.example, file),
      synthesized: false,
    });
  }
  if (out.length === 0 && mediaType.schema !== undefined) {
    const value = synthesizeFromSchema(mediaType.schema, file);
    if (value !== undefined) out.push({ name: 'synthesized', value, synthesized: true });
  }
  return out;
}

/** Every (method, path, status) of a spec file whose response has an application/json schema. */
export function jsonResponsesOf(specFile: string): OperationRef[] {
  const file = specFilePath(specFile);
  const doc = loadDocument(file);
  const paths = isObject(doc) ? doc.paths : undefined;
  const out: OperationRef[] = [];
  if (!isObject(paths)) return out;
  for (const [pathTemplate, rawItem] of Object.entries(paths)) {
    const item = followReference(rawItem, file);
    if (!isObject(item.value)) continue;
    for (const method of HTTP_METHODS) {
      const operation = item.value[method];
      if (!isObject(operation) || !isObject(operation.responses)) continue;
      for (const [statusKey, rawResponse] of Object.entries(operation.responses)) {
        const status = Number(statusKey);
        if (!Number.isInteger(status)) continue;
        const response = followReference(rawResponse, item.file);
        const content = isObject(response.value) ? response.value.content : undefined;
        const media = isObject(content) ? content[JSON_MEDIA_TYPE] : undefined;
        if (isObject(media) && media.schema !== undefined)
          out.push({ specFile, method, pathTemplate, status });
      }
    }
  }
  return out;
}
