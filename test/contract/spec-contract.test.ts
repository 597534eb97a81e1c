// Proves test/helpers/spec-contract.ts: the spec's own example responses are accepted and
// obviously wrong bodies are rejected with a readable AssertionError.

import { AssertionError } from 'node:assert';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';

import {
  CLIENT_SERVER_API_DIR,
  assertMatchesSpec,
  jsonResponsesOf,
  responseValidator,
  specExamples,
} from '../helpers/spec-contract.js';
import type { JsonObject, JsonValue } from '../helpers/spec-contract.js';
import { MATRIX_SPEC, SPEC_ROOT, skipUnless } from '../helpers/requirements.js';

type Mutation = (example: JsonObject) => unknown;

interface Case {
  specFile: string;
  method: string;
  path: string;
  status: number;
  /** Whether the spec gives a response-level example (otherwise one is built from schema `example`s). */
  documentedExample: boolean;
  negatives: Record<string, Mutation>;
}

function without(obj: JsonObject, key: string): JsonObject {
  const copy = { ...obj };
  delete copy[key];
  return copy;
}

function firstOf(value: JsonValue | undefined): JsonObject {
  assert.ok(Array.isArray(value) && value.length > 0, 'example has a non-empty array');
  const first = value[0];
  assert.ok(typeof first === 'object' && first !== null && !Array.isArray(first));
  return first;
}

const errorBodyNegatives: Record<string, Mutation> = {
  'missing errcode': (ex) => without(ex, 'errcode'),
  'numeric errcode': (ex) => ({ ...ex, errcode: 403 }),
  'error is not a string': (ex) => ({ ...ex, error: { text: 'nope' } }),
  'not an object': () => 'M_FORBIDDEN',
};

const cases: Case[] = [
  {
    specFile: 'versions.yaml',
    method: 'GET',
    path: '/versions',
    status: 200,
    documentedExample: true,
    negatives: {
      'versions is a string': (ex) => ({ ...ex, versions: 'v1.1' }),
      'missing versions': (ex) => without(ex, 'versions'),
      'non-boolean unstable feature': (ex) => ({
        ...ex,
        unstable_features: { 'org.example.x': 'yes' },
      }),
    },
  },
  {
    specFile: 'login.yaml',
    method: 'POST',
    path: '/login',
    status: 200,
    documentedExample: true,
    negatives: {
      'missing access_token': (ex) => without(ex, 'access_token'),
      'numeric user_id': (ex) => ({ ...ex, user_id: 42 }),
      'expires_in_ms is a string': (ex) => ({ ...ex, expires_in_ms: '60000' }),
    },
  },
  {
    specFile: 'login.yaml',
    method: 'POST',
    path: '/login',
    status: 403,
    documentedExample: true,
    negatives: errorBodyNegatives,
  },
  {
    specFile: 'registration.yaml',
    method: 'POST',
    path: '/register',
    status: 200,
    documentedExample: true,
    negatives: {
      'missing user_id': (ex) => without(ex, 'user_id'),
      'access_token is a number': (ex) => ({ ...ex, access_token: 123 }),
    },
  },
  {
    // The user-interactive authentication response.
    specFile: 'registration.yaml',
    method: 'POST',
    path: '/register',
    status: 401,
    documentedExample: false,
    negatives: {
      'missing flows': (ex) => without(ex, 'flows'),
      'flow without stages': (ex) => ({ ...ex, flows: [{}] }),
      'stages is a string': (ex) => ({ ...ex, flows: [{ stages: 'm.login.dummy' }] }),
      'session is a number': (ex) => ({ ...ex, session: 7 }),
    },
  },
  {
    specFile: 'registration.yaml',
    method: 'POST',
    path: '/register',
    status: 400,
    documentedExample: true,
    negatives: errorBodyNegatives,
  },
  {
    specFile: 'rooms.yaml',
    method: 'GET',
    path: '/rooms/{roomId}/members',
    status: 200,
    documentedExample: true,
    negatives: {
      'chunk is an object': (ex) => ({ ...ex, chunk: {} }),
      'event without event_id': (ex) => ({ chunk: [without(firstOf(ex.chunk), 'event_id')] }),
      'event without room_id': (ex) => ({ chunk: [without(firstOf(ex.chunk), 'room_id')] }),
      'room_id not a room ID': (ex) => ({
        chunk: [{ ...firstOf(ex.chunk), room_id: 'not-a-room' }],
      }),
      'string origin_server_ts': (ex) => ({
        chunk: [{ ...firstOf(ex.chunk), origin_server_ts: 'yesterday' }],
      }),
    },
  },
  {
    specFile: 'mutual_rooms.yaml',
    method: 'GET',
    path: '/mutual_rooms',
    status: 200,
    documentedExample: false,
    negatives: {
      'missing count': (ex) => without(ex, 'count'),
      'missing joined': (ex) => without(ex, 'joined'),
      'count is a string': (ex) => ({ ...ex, count: '1' }),
      'count is fractional': (ex) => ({ ...ex, count: 1.5 }),
      'joined holds a user ID': (ex) => ({ ...ex, joined: ['@alice:example.com'] }),
      'next_batch is null': (ex) => ({ ...ex, next_batch: null }),
    },
  },
  {
    specFile: 'mutual_rooms.yaml',
    method: 'GET',
    path: '/mutual_rooms',
    status: 400,
    documentedExample: true,
    negatives: errorBodyNegatives,
  },
  {
    specFile: 'mutual_rooms.yaml',
    method: 'GET',
    path: '/mutual_rooms',
    status: 429,
    documentedExample: false,
    negatives: {
      ...errorBodyNegatives,
      'retry_after_ms is a string': (ex) => ({ ...ex, retry_after_ms: '2000' }),
    },
  },
  {
    specFile: 'list_joined_rooms.yaml',
    method: 'GET',
    path: '/joined_rooms',
    status: 200,
    documentedExample: true,
    negatives: {
      'missing joined_rooms': (ex) => without(ex, 'joined_rooms'),
      'joined_rooms is a string': (ex) => ({ ...ex, joined_rooms: '!foo:example.com' }),
      'joined_rooms holds numbers': (ex) => ({ ...ex, joined_rooms: [1, 2] }),
    },
  },
];

describe('spec-contract helper', { skip: skipUnless(MATRIX_SPEC) }, () => {
  for (const c of cases) {
    describe(`${c.specFile} ${c.method} ${c.path} ${c.status}`, () => {
      const examples = specExamples(c.specFile, c.method, c.path, c.status);

      it('finds the example response in the spec', () => {
        assert.ok(examples.length > 0, 'at least one example');
        assert.equal(
          examples.every((e) => !e.synthesized),
          c.documentedExample,
          'examples are response-level iff the spec documents one',
        );
      });

      for (const example of examples) {
        it(`accepts the spec example "${example.name}"`, () => {
          assertMatchesSpec(c.specFile, c.method, c.path, c.status, example.value);
        });
      }

      for (const [name, mutate] of Object.entries(c.negatives)) {
        it(`rejects a body with ${name}`, () => {
          const example = examples[0]?.value;
          assert.ok(typeof example === 'object' && example !== null && !Array.isArray(example));
          const validate = responseValidator(c.specFile, c.method, c.path, c.status);
          const body = mutate(structuredClone(example));
          assert.throws(
            () => validate(body),
            (err: unknown) => {
              assert.ok(err instanceof AssertionError);
              assert.match(err.message, /does not match the Matrix spec/);
              return true;
            },
          );
        });
      }
    });
  }

  it('reports the failing places readably', () => {
    const validate = responseValidator('mutual_rooms.yaml', 'get', '/mutual_rooms', 200);
    assert.throws(
      () => validate({ joined: [42], count: 'two' }),
      (err: unknown) => {
        assert.ok(err instanceof AssertionError);
        assert.match(err.message, /GET \/mutual_rooms 200 \(mutual_rooms\.yaml\)/);
        assert.match(err.message, /\/joined\/0 must be string/);
        assert.match(err.message, /\/count must be integer/);
        return true;
      },
    );
    assert.throws(
      () => validate({}),
      (err: unknown) =>
        err instanceof AssertionError && /must have required property 'joined'/.test(err.message),
    );
  });

  it('allows extra properties the schema does not forbid', () => {
    assertMatchesSpec('list_joined_rooms.yaml', 'GET', '/joined_rooms', 200, {
      joined_rooms: [],
      'org.example.extra': { anything: true },
    });
  });

  it('caches one validator per operation', () => {
    assert.equal(
      responseValidator('versions.yaml', 'get', '/versions', 200),
      responseValidator('versions.yaml', 'GET', '/versions', 200),
    );
  });

  it('throws clearly for an unknown file, path, method or status', () => {
    assert.throws(
      () => responseValidator('nope.yaml', 'GET', '/versions', 200),
      /Spec file "nope\.yaml" not found/,
    );
    assert.throws(
      () => responseValidator('versions.yaml', 'GET', '/version', 200),
      /path "\/version" is not in/,
    );
    assert.throws(
      () => responseValidator('versions.yaml', 'POST', '/versions', 200),
      /method not defined.*get/,
    );
    assert.throws(
      () => responseValidator('versions.yaml', 'GET', '/versions', 418),
      /status 418 is not documented/,
    );
    assert.throws(
      () => responseValidator('rooms.yaml', 'GET', '/rooms/{roomId}/members', 403),
      /no application\/json content/,
    );
  });

  // Every JSON response schema of the Client-Server API compiles, and every example the spec
  // gives matches it, but for the spec's own known defects listed here: each names the example
  // and what is wrong with it, so a fixed spec (or a new defect) shows up as a failure.
  const SPEC_EXAMPLE_DEFECTS: Record<string, RegExp> = {
    // The "gitter" protocol of the example lacks `icon`, which protocol_base.yaml requires.
    'third_party_lookup.yaml GET /thirdparty/protocols 200':
      /\/gitter must have required property 'icon'/,
  };
  it('compiles every response of the Client-Server API and accepts its examples', () => {
    // Older copies of the spec lacked the Application Service API these files refer to.
    const uncompilable = new Set(['third_party_lookup.yaml']);
    const defectsSeen = new Set<string>();
    const failures: string[] = [];
    let checked = 0;
    for (const file of readdirSync(CLIENT_SERVER_API_DIR).filter((f) => f.endsWith('.yaml'))) {
      for (const op of jsonResponsesOf(file)) {
        const where = `${file} ${op.method.toUpperCase()} ${op.pathTemplate} ${op.status}`;
        try {
          const validate = responseValidator(file, op.method, op.pathTemplate, op.status);
          for (const example of specExamples(file, op.method, op.pathTemplate, op.status)) {
            validate(example.value);
            checked++;
          }
        } catch (err) {
          const message = err instanceof Error ? err.message : String(err);
          if (SPEC_EXAMPLE_DEFECTS[where]?.test(message)) defectsSeen.add(where);
          else if (!(uncompilable.has(file) && /spec file not found/i.test(message)))
            failures.push(`${where}: ${message}`);
        }
      }
    }
    assert.deepEqual(failures, []);
    const applicationServiceApi = existsSync(path.join(SPEC_ROOT, 'data/api/application-service'));
    if (applicationServiceApi)
      assert.deepEqual([...defectsSeen].sort(), Object.keys(SPEC_EXAMPLE_DEFECTS).sort());
    assert.ok(checked > 300, `checked ${checked} examples`);
  });
});

// A small made-up spec, bundled with the spec's string formats.
describe('spec-contract helper: bundling', { skip: skipUnless(MATRIX_SPEC) }, () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'spec-contract-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(path.join(dir, 'defs'));
  // A tree whose nodes live in another file, refer back to it through a JSON pointer and to
  // themselves (a cycle), plus OpenAPI-only keywords.
  writeFileSync(
    path.join(dir, 'defs/node.yaml'),
    [
      'type: object',
      'x-custom-extension: true',
      'required: [name]',
      'properties:',
      '  name: { type: string, example: root }',
      '  children: { type: array, items: { $ref: "#" } }',
      '  owner: { $ref: "../api.yaml#/components/schemas/Owner" }',
    ].join('\n'),
  );
  writeFileSync(
    path.join(dir, 'api.yaml'),
    [
      'openapi: 3.1.0',
      'paths:',
      '  /tree:',
      '    get:',
      '      responses:',
      '        "200": { $ref: "#/components/responses/Tree" }',
      'components:',
      '  responses:',
      '    Tree:',
      '      description: a tree',
      '      content:',
      '        application/json:',
      '          schema: { $ref: defs/node.yaml }',
      '  schemas:',
      '    Owner:',
      '      type: object',
      '      nullable: true',
      '      properties:',
      '        node: { $ref: "defs/node.yaml" }',
      '        id: { type: string, format: mx-user-id, example: "@a:b" }',
    ].join('\n'),
  );
  const spec = path.join(dir, 'api.yaml');

  it('resolves cross-file refs, JSON pointers and cycles', () => {
    const validate = responseValidator(spec, 'GET', '/tree', 200);
    validate({
      name: 'a',
      children: [{ name: 'b', children: [] }],
      owner: { id: '@x:y', node: { name: 'c' } },
    });
    validate({ name: 'a', owner: null });
    assert.throws(
      () => validate({ name: 'a', children: [{ children: [] }] }),
      /\/children\/0 must have required/,
    );
    assert.throws(
      () => validate({ name: 'a', owner: { node: { name: 1 } } }),
      /\/owner\/node\/name must be string/,
    );
    assert.throws(
      () => validate({ name: 'a', owner: { id: 'x:y' } }),
      /\/owner\/id must match format/,
    );
  });

  it('synthesizes an example from schema annotations when the response has none', () => {
    const [example] = specExamples(spec, 'GET', '/tree', 200);
    assert.ok(example?.synthesized);
    assert.equal((example.value as JsonObject).name, 'root');
  });
});
