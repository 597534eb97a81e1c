/**
 * Hostile input at the membership-query endpoints (docs/api.md "Membership queries"), through
 * a real listening server: mutual rooms (v1, the proposal's v1 path, the unstable path with
 * `batch_token`, the legacy `mutual_rooms/{userId}` and `shared_rooms/{userId}`), `/members`,
 * `/joined_members`, `/joined_rooms`, MSC2895's `/rooms` listing, `/state?filter=` and
 * `/context/{eventId}?filter=`.
 *
 * fast-check builds the query strings and path segments by hand (never URLSearchParams):
 * repeated keys, empty and very long values, broken percent-encoding (`%`, `%zz`, `%00`,
 * overlong UTF-8, lone surrogates), unicode, filters that are not objects or nest deeply,
 * out-of-range limits, memberships in the wrong case, `__proto__`/`constructor` keys, and
 * paging tokens of the right shape with the wrong content. Whatever comes in, the answer must
 * be a Matrix error or a documented success: a status we expect, a JSON content type, a body
 * that parses (no stack trace), a string `errcode` and `error` on errors, the documented shape
 * on 200 — and it must come within a few seconds. Where docs/api.md says what a request gets,
 * that exact answer is asserted.
 *
 * Requesters: alice (joined, created the rooms), carol (joined the main room, then left),
 * dave (never in any room), nobody (no token) and a bogus token.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { registerUser, type TestUser } from '../helpers/client.js';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { assertMatchesSpec } from '../helpers/spec-contract.js';
import { MAX_JSON_DEPTH } from '../../src/core/json-depth.js';

const C = '/_matrix/client/v3';
const V1 = '/_matrix/client/v1/mutual_rooms';
const V1_USER = '/_matrix/client/v1/user/mutual_rooms';
const UNSTABLE_PREFIX = '/_matrix/client/unstable/uk.half-shot.msc2666/user';
const UNSTABLE = `${UNSTABLE_PREFIX}/mutual_rooms`;
const LISTING = '/_matrix/client/unstable/org.matrix.msc2895/rooms';
const MUTUAL_QUERY_PATHS = [V1, V1_USER, UNSTABLE] as const;

/**
 * Every status a hostile request may get; anything else (500, 502…) is a failure. 431 is
 * Node's refusal of a request head over 16 KB, answered with a Matrix error body.
 */
const ALLOWED_STATUSES = new Set([200, 400, 401, 403, 404, 405, 413, 414, 429, 431]);
const MEMBERSHIPS = ['join', 'invite', 'knock', 'leave', 'ban'] as const;
const TOKEN_RE = /^[0-9a-zA-Z._~-]{1,255}$/;
const TOKEN_ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ._~-';
const BASE36 = '0123456789abcdefghijklmnopqrstuvwxyz';
const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
/** Mutual-rooms page size of the test server, so alice and bob's rooms span several pages. */
const BATCH = 2;
/** Rooms alice and bob have both joined. */
const SHARED_ROOMS = 5;
/** A request must be answered within this; more is a hang. */
const REQUEST_TIMEOUT_MS = 10_000;
const RUNS = 150;

// ---------------------------------------------------------------------------------------------
// Building URLs by hand

/**
 * Percent-encodes `value` so the server decodes exactly `value` back: `%`, `&`, `=`, `+`, `#`,
 * `?`, `/`, `"`, spaces, controls and non-ASCII are escaped; other printable ASCII is sent as
 * is. A lone surrogate becomes its (invalid) three-byte UTF-8 form, e.g. `%ED%A0%80`.
 */
function enc(value: string): string {
  let out = '';
  for (let i = 0; i < value.length; i++) {
    const unit = value.charCodeAt(i);
    const char = value.charAt(i);
    if (unit >= 0x21 && unit <= 0x7e && !'%&=+#?/"\\<>^`{|}'.includes(char)) {
      out += char;
      continue;
    }
    const isHigh = unit >= 0xd800 && unit <= 0xdbff;
    const next = value.charCodeAt(i + 1);
    let bytes: Buffer;
    if (isHigh && next >= 0xdc00 && next <= 0xdfff) {
      bytes = Buffer.from(value.slice(i, i + 2), 'utf8');
      i++;
    } else if (unit >= 0xd800 && unit <= 0xdfff) {
      bytes = Buffer.from([0xe0 | (unit >> 12), 0x80 | ((unit >> 6) & 0x3f), 0x80 | (unit & 0x3f)]);
    } else {
      bytes = Buffer.from(char, 'utf8');
    }
    for (const byte of bytes) out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** Like `enc`, but `{`, `}`, `[`, `]` and `:` stay literal (they are safe in a query). */
const encJson = (value: string): string => enc(value).replace(/%7B/g, '{').replace(/%7D/g, '}');

type Param = readonly [key: string, value: string];

/**
 * Node refuses a request head over 16 KB with its own 431 (see the report); generated URLs
 * stay under this so that every run tests the endpoint, not that limit.
 */
const MAX_URL = 12_000;

/** The length of `path` as sent, after fetch's URL parser has percent-encoded what it must. */
const sentLength = (path: string): number => new URL(path, 'http://h').href.length - 8;

/** `?k=v&k=v` with every key and value encoded by `enc` (so the server sees them exactly). */
const query = (params: readonly Param[]): string =>
  params.length === 0
    ? ''
    : `?${params.map(([k, v]) => `${enc(k)}=${k === 'filter' ? encJson(v) : enc(v)}`).join('&')}`;

// ---------------------------------------------------------------------------------------------
// Sending and checking answers

interface Answer {
  where: string;
  status: number;
  body: unknown;
}

const describeError = (err: unknown): string => {
  const e = err as { name?: string; message?: string; cause?: { message?: string } };
  return `${e.name ?? 'Error'}: ${e.message ?? String(err)}${e.cause?.message ? ` (${e.cause.message})` : ''}`;
};

const STACK_TRACE = /\n\s+at [^\n]+[(:]|node_modules\/|\.ts:\d+:\d+|\.js:\d+:\d+/;

/**
 * GET `rawPath` as `token` (none: no Authorization header). Asserts what every answer must be:
 * within the time limit, a status of ALLOWED_STATUSES, a JSON content type, a body that parses
 * and shows no stack trace, and on errors a string `errcode` (M_…) and `error`.
 */
async function get(server: TestServer, token: string | undefined, rawPath: string) {
  const where = `GET ${rawPath.length > 600 ? `${rawPath.slice(0, 600)}…(${rawPath.length} chars)` : rawPath}${token === undefined ? ' (no token)' : ''}`;
  let response: Response;
  try {
    response = await fetch(server.url + rawPath, {
      headers: token === undefined ? {} : { Authorization: `Bearer ${token}` },
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
  } catch (err) {
    assert.fail(`${where}: no answer: ${describeError(err)}`);
  }
  let text: string;
  try {
    text = await response.text();
  } catch (err) {
    assert.fail(
      `${where}: status ${response.status}, then the body broke off: ${describeError(err)}`,
    );
  }
  const shown = `${where} → ${response.status} ${text.slice(0, 400)}`;
  assert.ok(ALLOWED_STATUSES.has(response.status), `unexpected status: ${shown}`);
  assert.match(response.headers.get('content-type') ?? '', /^application\/json\b/, shown);
  assert.doesNotMatch(text, STACK_TRACE, `a stack trace in the answer: ${shown}`);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    assert.fail(`not JSON: ${shown}`);
  }
  if (response.status !== 200) {
    const error = body as { errcode?: unknown; error?: unknown };
    assert.equal(typeof error, 'object', shown);
    assert.equal(typeof error.errcode, 'string', shown);
    assert.match(error.errcode as string, /^M_[A-Z_]+$/, shown);
    assert.equal(typeof error.error, 'string', shown);
  }
  return { where: shown, status: response.status, body } satisfies Answer;
}

/** `answer` is `status`, and for errors one of `errcodes`. */
function expectAnswer(answer: Answer, status: number, errcodes: readonly string[] = []): void {
  assert.equal(answer.status, status, `expected ${status}: ${answer.where}`);
  if (status !== 200 && errcodes.length > 0) {
    const { errcode } = answer.body as { errcode: string };
    assert.ok(errcodes.includes(errcode), `expected ${errcodes.join(' or ')}: ${answer.where}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Documented 200 shapes

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

interface ClientEvent {
  type: string;
  sender: string;
  room_id: string;
  state_key?: string;
  content: Record<string, unknown>;
}

function checkMutual(answer: Answer, kind: 'v1' | 'unstable' | 'legacy'): MutualBody {
  const body = answer.body as MutualBody;
  if (kind === 'v1') assertMatchesSpec('mutual_rooms.yaml', 'get', '/mutual_rooms', 200, body);
  assert.ok(Array.isArray(body.joined), answer.where);
  assert.ok(
    body.joined.every((r) => typeof r === 'string' && r.startsWith('!')),
    answer.where,
  );
  assert.equal(new Set(body.joined).size, body.joined.length, `duplicates: ${answer.where}`);
  assert.ok(Number.isInteger(body.count) && body.count >= body.joined.length, answer.where);
  if (kind === 'legacy') {
    assert.equal(body.count, body.joined.length, answer.where);
    assert.equal(body.next_batch, undefined, answer.where);
  }
  if (body.next_batch !== undefined) assert.match(body.next_batch, TOKEN_RE, answer.where);
  if (kind === 'unstable') assert.equal(body.next_batch_token, body.next_batch, answer.where);
  return body;
}

function checkMemberEvents(events: unknown, roomId: string, where: string): ClientEvent[] {
  assert.ok(Array.isArray(events), where);
  for (const event of events as ClientEvent[]) {
    assert.equal(event.type, 'm.room.member', where);
    assert.equal(event.room_id, roomId, where);
    assert.equal(typeof event.state_key, 'string', where);
    assert.ok((MEMBERSHIPS as readonly unknown[]).includes(event.content.membership), where);
  }
  return events as ClientEvent[];
}

function checkMembers(answer: Answer, roomId: string): ClientEvent[] {
  assertMatchesSpec('rooms.yaml', 'get', '/rooms/{roomId}/members', 200, answer.body);
  return checkMemberEvents((answer.body as { chunk: unknown }).chunk, roomId, answer.where);
}

function checkJoinedMembers(answer: Answer): Record<string, unknown> {
  assertMatchesSpec('rooms.yaml', 'get', '/rooms/{roomId}/joined_members', 200, answer.body);
  const joined = (answer.body as { joined: unknown }).joined;
  assert.ok(isObject(joined), answer.where);
  for (const [userId, profile] of Object.entries(joined)) {
    assert.match(userId, /^@[^:]+:.+$/, answer.where);
    assert.ok(isObject(profile), answer.where);
  }
  return joined;
}

function checkJoinedRooms(answer: Answer): string[] {
  assertMatchesSpec('list_joined_rooms.yaml', 'get', '/joined_rooms', 200, answer.body);
  return (answer.body as { joined_rooms: string[] }).joined_rooms;
}

function checkListing(answer: Answer): Record<string, { membership: string }> {
  const rooms = (answer.body as { rooms?: unknown }).rooms;
  assert.ok(isObject(rooms), answer.where);
  for (const [roomId, entry] of Object.entries(rooms)) {
    assert.ok(roomId.startsWith('!'), answer.where);
    assert.ok(isObject(entry), answer.where);
    assert.ok((MEMBERSHIPS as readonly unknown[]).includes(entry.membership), answer.where);
  }
  return rooms as Record<string, { membership: string }>;
}

function checkState(answer: Answer, roomId: string): ClientEvent[] {
  assertMatchesSpec('rooms.yaml', 'get', '/rooms/{roomId}/state', 200, answer.body);
  const events = answer.body as ClientEvent[];
  for (const event of events) assert.equal(event.room_id, roomId, answer.where);
  return events;
}

interface ContextBody {
  event: ClientEvent;
  events_before: ClientEvent[];
  events_after: ClientEvent[];
  state: ClientEvent[];
  start: string;
  end: string;
}

function checkContext(answer: Answer, eventId: string): ContextBody {
  assertMatchesSpec(
    'event_context.yaml',
    'get',
    '/rooms/{roomId}/context/{eventId}',
    200,
    answer.body,
  );
  const body = answer.body as ContextBody;
  assert.equal((body.event as unknown as { event_id: string }).event_id, eventId, answer.where);
  return body;
}

// ---------------------------------------------------------------------------------------------
// Hostile pieces

/** Raw (already URL-level) fragments: broken escapes, separators, overlong UTF-8, surrogates. */
const RAW_PIECES = [
  '%',
  '%%',
  '%zz',
  '%z',
  '%0',
  '%00',
  '%0A',
  '%0D%0A',
  '%C0%AF',
  '%C0%80',
  '%E0%80%AF',
  '%F0%80%80%AF',
  '%ED%A0%80',
  '%ED%BF%BF',
  '%ED%A0%BD%ED%B2%A9',
  '%F4%90%80%80',
  '%FF',
  '%FE%FF',
  '%E2%82',
  '%2',
  '%25',
  '%2525',
  '%26',
  '%3D',
  '%23',
  '%2F',
  '%5C',
  '&',
  '&&',
  '=',
  '==',
  '+',
  ';',
  '?',
  '[]',
  '[0]',
  '{}',
  '.',
  '..',
  '~',
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'hasOwnProperty',
  'é',
  '💩',
  '\u202e',
  '\ufeff',
  ' ',
  'user_id',
  'from',
  'membership',
  'join',
  'JOIN',
  'p1.',
  's1',
] as const;

/** A string of raw pieces and plain characters, sent without further encoding. */
const rawGarbage = fc
  .array(fc.oneof(fc.constantFrom(...RAW_PIECES), fc.string({ unit: 'grapheme-ascii' })), {
    maxLength: 8,
  })
  .map((parts) => parts.join(''));

/** ~256 bytes to ~10 KB of one repeated piece (raw; cutting may split an escape: good). */
const longRaw = fc
  .tuple(
    fc.constantFrom('a', '%41', '%zz', '%00', '%C0%AF', 'é', '&', '=', '@', '!'),
    fc.integer({ min: 256, max: 10_000 }),
  )
  .map(([piece, length]) => piece.repeat(Math.ceil(length / piece.length)).slice(0, length));

/** Any string (lone surrogates included), then encoded exactly by `enc`. */
const anyString = fc.string({ unit: 'binary', maxLength: 40 });

/** A raw query-string value: garbage, exact encodings of odd strings, long, or empty. */
const rawValue = fc.oneof(
  { weight: 4, arbitrary: rawGarbage },
  { weight: 3, arbitrary: anyString.map(enc) },
  { weight: 1, arbitrary: longRaw },
  { weight: 1, arbitrary: fc.constant('') },
);

// ---------------------------------------------------------------------------------------------
// Filters (raw JSON text)

/** A JSON value written by hand, so texts JSON.stringify cannot produce (1e309, -0) occur. */
const hostileJsonString = fc.oneof(
  fc.constantFrom(
    '""',
    '"\\u0000"',
    '"a\\u0000b"',
    '"\\ud800"',
    '"\\udfff\\ud800"',
    '"JOIN"',
    '"join "',
    '"@x:test.local"',
    '"*"',
    '"m.*"',
    '"!x:test.local"',
  ),
  anyString.map((s) => JSON.stringify(s)),
);

const limitText = fc.oneof(
  fc.constantFrom(
    '-1',
    '0',
    '1',
    '2',
    '3',
    '1.5',
    '5.0',
    '"5"',
    '1e308',
    '1e309',
    '-1e309',
    '-0',
    '9007199254740993',
    '1e21',
    '0.1e1',
    'null',
    'true',
    '[1]',
    '{}',
  ),
  fc.integer({ min: -5, max: 2 ** 31 }).map(String),
  fc.double().filter(Number.isFinite).map(String),
);

const stringArrayText = (items: fc.Arbitrary<string>) =>
  fc.array(items, { maxLength: 6 }).map((xs) => `[${xs.join(',')}]`);

const wrongTypeText = fc.constantFrom('null', '5', '"join"', 'true', '{}', '[1]', '[[]]', '[null]');

const membershipText = fc.oneof(
  stringArrayText(fc.constantFrom(...MEMBERSHIPS).map((m) => `"${m}"`)),
  stringArrayText(
    fc.constantFrom(
      '"JOIN"',
      '"Join"',
      '"joined"',
      '" join"',
      '"join\\u0000"',
      '""',
      '"leave "',
      '"BAN"',
      '"kno ck"',
    ),
  ),
  wrongTypeText,
);

/** Keys a filter may carry, with the text of a value for each (good or bad). */
const FILTER_FIELDS: Record<string, fc.Arbitrary<string>> = {
  membership: membershipText,
  limit: limitText,
  senders: fc.oneof(stringArrayText(hostileJsonString), wrongTypeText),
  not_senders: fc.oneof(stringArrayText(hostileJsonString), wrongTypeText),
  rooms: fc.oneof(stringArrayText(hostileJsonString), wrongTypeText),
  not_rooms: fc.oneof(stringArrayText(hostileJsonString), wrongTypeText),
  types: fc.oneof(stringArrayText(hostileJsonString), wrongTypeText),
  not_types: fc.oneof(stringArrayText(hostileJsonString), wrongTypeText),
  lazy_load_members: fc.constantFrom('true', 'false', '"true"', '1', 'null'),
  // Keys that must never reach a prototype.
  __proto__: fc.constantFrom(
    '{"limit":-1,"membership":["JOIN"]}',
    '{"membership":[]}',
    'null',
    '[]',
  ),
  constructor: fc.constantFrom('{"prototype":{"limit":-1}}', '"x"', '{}'),
  prototype: fc.constantFrom('{"limit":0}', '1'),
  hasOwnProperty: fc.constantFrom('1', '"x"'),
  toString: fc.constantFrom('1', '"x"'),
  '\u0000': fc.constant('1'),
  '💩': fc.constant('{"membership":"x"}'),
};

/** A filter object: some fields, maybe repeated keys (the last wins in JSON.parse). */
const filterObjectText = fc
  .array(
    fc
      .constantFrom(...Object.keys(FILTER_FIELDS))
      .chain((key) =>
        (FILTER_FIELDS[key] as fc.Arbitrary<string>).map(
          (value) => `${JSON.stringify(key)}:${value}`,
        ),
      ),
    { maxLength: 6 },
  )
  .map((fields) => `{${fields.join(',')}}`);

const nestedText = fc.oneof(
  // Arrays where an object is expected, nested up to 4,000 deep (8,000 characters).
  fc.integer({ min: 1, max: 4000 }).map((n) => '['.repeat(n) + ']'.repeat(n)),
  // Objects nested up to 500 deep under an ignored key, or under `membership` (wants a list):
  // over MAX_JSON_DEPTH, refused whatever the key.
  fc
    .tuple(
      fc.constantFrom('x', 'membership', 'limit', '__proto__'),
      fc.integer({ min: 1, max: 500 }),
    )
    .map(([key, n]) => `{${`"${key}":{`.repeat(n)}${'}'.repeat(n)}}`),
);

const brokenJson = fc.oneof(
  fc.constantFrom(
    '{',
    '}',
    '{"limit":}',
    "{'limit':1}",
    '{"limit":NaN}',
    '{"limit":Infinity}',
    'NaN',
    '\ufeff{}',
    '{}garbage',
    '{"membership":["join"]',
    '{"a":"\\x00"}',
    '{"a":"\u0000"}',
    '{"a"\t:\n1}',
    'undefined',
  ),
  fc.string({ unit: 'binary', maxLength: 30 }),
);

/** Over the 8,192-character limit (9,000 to 9,600 characters of valid JSON). */
const tooLongFilter = fc
  .integer({ min: 9000, max: 9600 })
  .map((n) => `{"x":"${'a'.repeat(n - 8)}"}`);

const filterText = fc.oneof(
  { weight: 6, arbitrary: filterObjectText },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v) ?? 'null') },
  { weight: 1, arbitrary: nestedText },
  { weight: 2, arbitrary: brokenJson },
  { weight: 1, arbitrary: tooLongFilter },
  { weight: 1, arbitrary: fc.constant('') },
);

type FilterKey =
  | 'membership'
  | 'limit'
  | 'senders'
  | 'not_senders'
  | 'rooms'
  | 'not_rooms'
  | 'types'
  | 'not_types'
  | 'lazy_load_members';

interface ParsedFilter {
  membership?: string[];
  limit?: number;
  senders?: string[];
  not_senders?: string[];
  rooms?: string[];
  not_rooms?: string[];
}

type FilterVerdict =
  { kind: 'invalid' } | { kind: 'either' } | { kind: 'valid'; filter: ParsedFilter | undefined };

const isStringArray = (v: unknown): v is string[] =>
  Array.isArray(v) && v.every((x) => typeof x === 'string');

/**
 * What docs/api.md makes of a `filter` on an endpoint where the `applies` fields have a
 * meaning: not JSON, not an object, over 8,192 characters, or a bad value of a field that
 * applies → 400; a bad value of a field that does not apply → 200 or 400 (the docs say only
 * that it is ignored); otherwise 200.
 */
/** How deeply a parsed JSON value nests objects and arrays (a scalar is 0). */
function depthOf(value: unknown): number {
  if (typeof value !== 'object' || value === null) return 0;
  const children: unknown[] = Array.isArray(value) ? value : Object.values(value);
  return 1 + children.reduce<number>((deepest, child) => Math.max(deepest, depthOf(child)), 0);
}

function judgeFilter(text: string, applies: readonly FilterKey[]): FilterVerdict {
  if (text === '') return { kind: 'either' };
  if ([...text].length > 8192) return { kind: 'invalid' };
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { kind: 'invalid' };
  }
  if (!isObject(parsed)) return { kind: 'invalid' };
  // Deeper than the bound is refused whatever the keys (docs/api.md, issue #19).
  if (depthOf(parsed) > MAX_JSON_DEPTH) return { kind: 'invalid' };
  const own = (key: string): unknown => (Object.hasOwn(parsed, key) ? parsed[key] : undefined);
  const checks: Record<FilterKey, (v: unknown) => boolean> = {
    membership: (v) =>
      isStringArray(v) && v.every((m) => (MEMBERSHIPS as readonly string[]).includes(m)),
    limit: (v) => typeof v === 'number' && Number.isInteger(v) && v >= 1,
    senders: isStringArray,
    not_senders: isStringArray,
    rooms: isStringArray,
    not_rooms: isStringArray,
    types: isStringArray,
    not_types: isStringArray,
    lazy_load_members: (v) => typeof v === 'boolean',
  };
  let either = false;
  for (const key of Object.keys(checks) as FilterKey[]) {
    const value = own(key);
    if (value === undefined || checks[key](value)) continue;
    if (applies.includes(key)) return { kind: 'invalid' };
    either = true;
  }
  if (either) return { kind: 'either' };
  const filter: ParsedFilter = {};
  for (const key of ['membership', 'senders', 'not_senders', 'rooms', 'not_rooms'] as const) {
    const value = own(key);
    if (isStringArray(value)) filter[key] = value;
  }
  const limit = own('limit');
  if (typeof limit === 'number') filter.limit = limit;
  return { kind: 'valid', filter };
}

/** Asserts a filter's verdict on an answer; returns the parsed filter when it must apply. */
function expectFilterVerdict(answer: Answer, verdict: FilterVerdict, ok: number): boolean {
  if (verdict.kind === 'invalid') {
    expectAnswer(answer, 400, ['M_INVALID_PARAM']);
    return false;
  }
  if (verdict.kind === 'either') {
    assert.ok([ok, 400].includes(answer.status), `expected ${ok} or 400: ${answer.where}`);
    if (answer.status === 400) expectAnswer(answer, 400, ['M_INVALID_PARAM']);
    return false;
  }
  expectAnswer(answer, ok);
  return ok === 200;
}

// ---------------------------------------------------------------------------------------------
// User IDs and tokens

/** Printable ASCII but ':' (the historical localpart grammar). */
const HISTORICAL_CHARS = [...Array(0x7e - 0x21 + 1).keys()]
  .map((i) => String.fromCharCode(0x21 + i))
  .filter((c) => c !== ':');

type UserIdCase = { value: string; kind: 'valid' | 'invalid' };

const validUnknownUserId: fc.Arbitrary<UserIdCase> = fc
  .tuple(
    fc.string({ unit: fc.constantFrom(...HISTORICAL_CHARS), minLength: 1, maxLength: 40 }),
    fc.constantFrom('test.local', 'elsewhere.example', '1.2.3.4', '[::1]', 'example.org:8448'),
  )
  .map(([local, server]) => ({ value: `@zz${local}:${server}`, kind: 'valid' as const }));

const invalidUserId: fc.Arbitrary<UserIdCase> = fc
  .oneof(
    fc.constantFrom(
      '',
      '@',
      '@:',
      '@:test.local',
      '@a',
      '@a:',
      'a:test.local',
      '#a:test.local',
      '!a:test.local',
      '@a b:test.local',
      '@a\u0000:test.local',
      '@é:test.local',
      '@a\ud800:test.local',
      '@a:test.local:0',
      '@a:test.local:70000',
      '@a:exa mple',
      '@a:[zz]',
      '@a:test.local/x',
      '@A\u202e:test.local',
      '\u0000',
    ),
    fc.integer({ min: 245, max: 3000 }).map((n) => `@${'a'.repeat(n)}:test.local`),
    fc.string({ unit: 'binary', maxLength: 20 }).map((s) => `x${s}`),
  )
  .map((value) => ({ value, kind: 'invalid' as const }));

/** `p1.<cursor>.<expiry>.<tag>`: the right shape (often the right lengths), random content. */
const forgedToken = fc.oneof(
  fc
    .tuple(
      fc.string({ unit: fc.constantFrom(...BASE36), minLength: 1, maxLength: 13 }),
      fc.string({ unit: fc.constantFrom(...BASE36), minLength: 1, maxLength: 13 }),
      fc.string({ unit: fc.constantFrom(...BASE64URL), minLength: 22, maxLength: 22 }),
    )
    .map(([a, b, c]) => `p1.${a}.${b}.${c}`),
  fc
    .array(fc.string({ unit: fc.constantFrom(...TOKEN_ALPHABET), maxLength: 30 }), {
      minLength: 1,
      maxLength: 6,
    })
    .map((parts) => `p1.${parts.join('.')}`),
  fc.constantFrom(
    'p1...',
    'p1.0.0.',
    'p2.1.1.AAAAAAAAAAAAAAAAAAAAAA',
    'p1.0.zzzzzzzzzzzzz.AAAAAAAAAAAAAAAAAAAAAA',
  ),
);

interface MutualBody {
  joined: string[];
  count: number;
  next_batch?: string;
  next_batch_token?: string;
}

// ---------------------------------------------------------------------------------------------

forEachDatabase('membership queries: hostile input', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  let dave: TestUser;
  let eve: TestUser;
  /** The main room: alice and bob joined, carol left, eve invited. */
  let room: string;
  let eventId: string;
  let sharedRooms: string[];
  /** alice's first and second pages of mutual rooms with bob (v1). */
  let firstPage: MutualBody;
  let secondPage: MutualBody;
  /** `next_batch` of alice's first page with bob. */
  let realToken: string;
  /** Tokens /messages issued in the main room (valid `at` values). */
  let atTokens: string[];
  /** The newest stream position /messages handed out (the end of the stream). */
  let streamEnd: number;

  type Who = 'alice' | 'carol' | 'dave' | 'nobody' | 'bogus';
  const WHO: readonly Who[] = ['alice', 'carol', 'dave', 'nobody', 'bogus'];
  const tokenOf = (who: Who): string | undefined =>
    ({
      alice: alice.accessToken,
      carol: carol.accessToken,
      dave: dave.accessToken,
      nobody: undefined,
      bogus: 'syt_not_a_real_token_0000',
    })[who];
  const userOf = (who: 'alice' | 'carol' | 'dave'): TestUser => ({ alice, carol, dave })[who];
  const r = () => encodeURIComponent(room);

  const post = async (user: TestUser, urlPath: string, body: unknown = {}) => {
    const res = await server.request<Record<string, unknown>>('POST', `${C}${urlPath}`, {
      token: user.accessToken,
      body,
    });
    assert.equal(res.status, 200, `POST ${urlPath}: ${JSON.stringify(res.body)}`);
    return res.body;
  };
  const createRoom = async (owner: TestUser) =>
    (await post(owner, '/createRoom', { preset: 'public_chat' })).room_id as string;

  before(async () => {
    server = await startTestServer(dialect, { COMMONS_MUTUAL_ROOMS_BATCH_SIZE: String(BATCH) });
    [alice, bob, carol, dave, eve] = [
      await registerUser(server),
      await registerUser(server),
      await registerUser(server),
      await registerUser(server),
      await registerUser(server),
    ];
    room = await createRoom(alice);
    await post(bob, `/join/${r()}`);
    await post(carol, `/join/${r()}`);
    const sent = await server.request<{ event_id: string }>(
      'PUT',
      `${C}/rooms/${r()}/send/m.room.message/hostile1`,
      { token: alice.accessToken, body: { msgtype: 'm.text', body: 'hello' } },
    );
    assert.equal(sent.status, 200, JSON.stringify(sent.body));
    eventId = sent.body.event_id;
    await post(carol, `/rooms/${r()}/leave`);
    await post(alice, `/rooms/${r()}/invite`, { user_id: eve.userId });
    sharedRooms = [room];
    for (let i = 1; i < SHARED_ROOMS; i++) {
      const other = await createRoom(alice);
      await post(bob, `/join/${encodeURIComponent(other)}`);
      sharedRooms.push(other);
    }
    const first = await server.request<MutualBody>(
      'GET',
      `${V1}?user_id=${encodeURIComponent(bob.userId)}`,
      { token: alice.accessToken },
    );
    assert.equal(first.status, 200, JSON.stringify(first.body));
    firstPage = first.body;
    assert.equal(typeof firstPage.next_batch, 'string');
    realToken = firstPage.next_batch as string;
    const second = await server.request<MutualBody>(
      'GET',
      `${V1}?user_id=${encodeURIComponent(bob.userId)}&from=${realToken}`,
      { token: alice.accessToken },
    );
    assert.equal(second.status, 200, JSON.stringify(second.body));
    secondPage = second.body;
    const messages = await server.request<{ start: string; end?: string }>(
      'GET',
      `${C}/rooms/${r()}/messages?dir=b&limit=2`,
      { token: alice.accessToken },
    );
    assert.equal(messages.status, 200, JSON.stringify(messages.body));
    atTokens = [messages.body.start, ...(messages.body.end ? [messages.body.end] : [])];
    streamEnd = Math.max(...atTokens.map((t) => Number(t.slice(1))));
    assert.ok(Number.isSafeInteger(streamEnd), JSON.stringify(atTokens));
  });
  after(async () => server?.close());

  /** 401 for the anonymous and the bogus token; null for real users. */
  const authFailure = (who: Who): [number, string] | null =>
    who === 'nobody' ? [401, 'M_MISSING_TOKEN'] : who === 'bogus' ? [401, 'M_UNKNOWN_TOKEN'] : null;

  // -------------------------------------------------------------------------------------------

  describe('mutual rooms', () => {
    /** A user_id value from every category with its meaning. */
    const userIdCase = (): fc.Arbitrary<UserIdCase & { who?: string }> =>
      fc.oneof(
        {
          weight: 3,
          arbitrary: fc
            .constantFrom('bob', 'carol', 'dave', 'eve', 'self')
            .map((who) => ({ value: '', kind: 'valid' as const, who })),
        },
        { weight: 2, arbitrary: validUnknownUserId },
        { weight: 3, arbitrary: invalidUserId },
      );

    type TokenCase = { value: string; real: boolean };
    const tokenCase = (): fc.Arbitrary<TokenCase> =>
      fc.oneof(
        { weight: 2, arbitrary: fc.constant({ value: '', real: true }) },
        { weight: 3, arbitrary: forgedToken.map((value) => ({ value, real: false })) },
        {
          weight: 2,
          arbitrary: fc
            .tuple(fc.nat(), fc.nat())
            .map(([i, step]) => ({ value: `flip:${i}:${step}`, real: false })),
        },
        {
          weight: 1,
          arbitrary: fc.oneof(anyString, longRaw).map((value) => ({ value, real: false })),
        },
      );

    it('structured hostile queries get the documented answer on every query path', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(...MUTUAL_QUERY_PATHS),
          fc.constantFrom(...WHO),
          fc.array(userIdCase(), { maxLength: 3 }),
          fc.array(fc.tuple(fc.constantFrom('from', 'batch_token'), tokenCase()), { maxLength: 3 }),
          fc.array(
            fc.tuple(
              fc.constantFrom('limit', 'user_id[]', 'User_Id', 'x', '__proto__', 'constructor'),
              rawValue.map(decodeSafe),
            ),
            { maxLength: 2 },
          ),
          fc.boolean(),
          async (requestPath, who, userCases, tokenCases, extras, userFirst) => {
            const others = { bob, carol, dave, eve } as Record<string, TestUser>;
            const resolveUser = (c: UserIdCase & { who?: string }): string =>
              c.who === 'self'
                ? userOf(who === 'carol' || who === 'dave' ? who : 'alice').userId
                : c.who
                  ? (others[c.who] as TestUser).userId
                  : c.value;
            const userIds = userCases.map(resolveUser);
            const resolveToken = (t: TokenCase): string => {
              if (t.real) return realToken;
              const flip = /^flip:(\d+):(\d+)$/.exec(t.value);
              if (!flip) return t.value;
              const index = Number(flip[1]) % realToken.length;
              const char = realToken.charAt(index);
              const shift = (Number(flip[2]) % (TOKEN_ALPHABET.length - 1)) + 1;
              const next = TOKEN_ALPHABET[
                (TOKEN_ALPHABET.indexOf(char) + shift) % TOKEN_ALPHABET.length
              ] as string;
              return realToken.slice(0, index) + next + realToken.slice(index + 1);
            };
            const tokenParams: Param[] = tokenCases.map(([key, t]) => [key, resolveToken(t)]);
            const userParams: Param[] = userIds.map((u) => ['user_id', u]);
            const params: Param[] = userFirst
              ? [...userParams, ...tokenParams, ...extras]
              : [...tokenParams, ...extras, ...userParams];
            const url = requestPath + query(params);
            fc.pre(sentLength(url) <= MAX_URL);
            const answer = await get(server, tokenOf(who), url);

            const auth = authFailure(who);
            if (auth) return expectAnswer(answer, auth[0], [auth[1]]);

            // What docs/api.md says, in the order the checks can be made.
            const unstable = requestPath === UNSTABLE;
            const froms = tokenParams.filter(([k]) => k === 'from').map(([, v]) => v);
            const batchTokens = tokenParams.filter(([k]) => k === 'batch_token').map(([, v]) => v);
            const tokens = unstable ? [...froms, ...batchTokens] : froms;
            const requester = userOf(who as 'alice' | 'carol' | 'dave');
            const errors = new Set<string>();
            if (userIds.length === 0) errors.add('M_MISSING_PARAM');
            if (
              froms.length > 1 ||
              (unstable && batchTokens.length > 1) ||
              tokens.some((t) => [...t].length > 255) ||
              userIds.length > 1 ||
              userCases.some((c) => c.kind === 'invalid') ||
              (unstable && new Set(tokens).size > 1)
            )
              errors.add('M_INVALID_PARAM');
            if (userIds.includes(requester.userId))
              errors.add(unstable ? 'M_UNKNOWN' : 'M_INVALID_PARAM');
            if (errors.size > 0) return expectAnswer(answer, 400, [...errors]);
            const token = tokens[0];
            const tokenFits = token === realToken && who === 'alice' && userIds[0] === bob.userId;
            if (token !== undefined && !tokenFits)
              return expectAnswer(answer, 400, ['M_INVALID_PARAM']);

            expectAnswer(answer, 200);
            const body = checkMutual(answer, unstable ? 'unstable' : 'v1');
            if (who === 'alice' && userIds[0] === bob.userId) {
              // The same page as in before(); the token itself differs (its expiry moves on).
              const page = token === undefined ? firstPage : secondPage;
              assert.deepEqual(body.joined, page.joined, answer.where);
              assert.equal(body.count, SHARED_ROOMS, answer.where);
              assert.equal(
                body.next_batch !== undefined,
                page.next_batch !== undefined,
                answer.where,
              );
            } else {
              assert.deepEqual(body.joined, [], answer.where);
              assert.equal(body.count, 0, answer.where);
            }
          },
        ),
        { numRuns: RUNS },
      );
    });

    it('tokens of the right shape but wrong content are 400 M_INVALID_PARAM', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(...MUTUAL_QUERY_PATHS),
          fc.constantFrom<'from' | 'batch_token'>('from', 'batch_token'),
          forgedToken,
          async (requestPath, key, token) => {
            const name = requestPath === UNSTABLE ? key : 'from';
            const answer = await get(
              server,
              alice.accessToken,
              `${requestPath}?user_id=${enc(bob.userId)}&${name}=${enc(token)}`,
            );
            expectAnswer(answer, 400, ['M_INVALID_PARAM']);
          },
        ),
        { numRuns: RUNS },
      );
      // A real token used by someone else, or about someone else.
      for (const requestPath of MUTUAL_QUERY_PATHS) {
        for (const [who, about] of [
          [carol, bob],
          [dave, bob],
          [alice, carol],
          [alice, eve],
        ] as const) {
          expectAnswer(
            await get(
              server,
              who.accessToken,
              `${requestPath}?user_id=${enc(about.userId)}&from=${realToken}`,
            ),
            400,
            ['M_INVALID_PARAM'],
          );
        }
      }
    });

    it('legacy paths: hostile {userId} path segments', async () => {
      const segment = fc.oneof(
        { weight: 3, arbitrary: rawGarbage.filter((s) => s !== '' && !s.includes('?')) },
        {
          weight: 3,
          arbitrary: fc.oneof(invalidUserId, validUnknownUserId).map((c) => enc(c.value)),
        },
        { weight: 2, arbitrary: fc.constantFrom('bob', 'self', 'carol').map((w) => `=${w}`) },
        {
          weight: 1,
          arbitrary: fc.integer({ min: 900, max: 1200 }).map((n) => `@${'a'.repeat(n)}:test.local`),
        },
      );
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom('mutual_rooms', 'shared_rooms'),
          fc.constantFrom(...WHO),
          segment,
          rawGarbage,
          async (name, who, rawSegment, tail) => {
            const named = /^=(bob|self|carol)$/.exec(rawSegment)?.[1];
            const known =
              named === 'bob'
                ? bob
                : named === 'carol'
                  ? carol
                  : named === 'self'
                    ? alice
                    : undefined;
            const seg = known ? enc(known.userId) : rawSegment;
            const answer = await get(
              server,
              tokenOf(who),
              `${UNSTABLE_PREFIX}/${name}/${seg}${tail ? `?${tail}` : ''}`,
            );
            assert.ok([200, 400, 401, 404, 414].includes(answer.status), answer.where);
            if (answer.status === 200) {
              const body = checkMutual(answer, 'legacy');
              if (who === 'alice' && named === 'bob')
                assert.deepEqual(body.joined, sharedRooms, answer.where);
            }
            if (known && who === 'alice') {
              if (named === 'self') expectAnswer(answer, 400, ['M_UNKNOWN']);
              else expectAnswer(answer, 200);
            }
          },
        ),
        { numRuns: RUNS },
      );
    });
  });

  // -------------------------------------------------------------------------------------------

  describe('member lists', () => {
    const WRONG_MEMBERSHIPS = [
      'JOIN',
      'Join',
      'joined',
      ' join',
      'join ',
      '',
      'leave\u0000',
      'BAN',
      'knock,invite',
      'join&membership=invite',
      '*',
      'null',
    ] as const;
    const membershipValue = fc.oneof(
      { weight: 4, arbitrary: fc.constantFrom<string>(...MEMBERSHIPS) },
      { weight: 1, arbitrary: fc.constantFrom<string>(...WRONG_MEMBERSHIPS) },
    );
    const atValue = fc.oneof(
      fc.constant('=real'),
      fc.constantFrom(
        's0',
        's1',
        's007',
        's999999999999999',
        's9999999999999999',
        's-1',
        's1.5',
        'S1',
        's',
        '',
        's1 ',
        ' s1',
        's\u0000',
        't1',
        'p1.0.0.AAAAAAAAAAAAAAAAAAAAAA',
      ),
      fc.bigInt({ min: 0n, max: 10n ** 17n }).map((n) => `s${n}`),
      anyString,
      fc.integer({ min: 60, max: 400 }).map((n) => `s${'1'.repeat(n)}`),
    );

    it('/members: membership, not_membership, at and filter get the documented answer', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(...WHO),
          fc.array(membershipValue, { maxLength: 12 }),
          fc.array(membershipValue, { maxLength: 4 }),
          fc.array(atValue, { maxLength: 2 }),
          fc.array(filterText, { maxLength: 2 }),
          fc.array(
            fc.tuple(
              fc.constantFrom(
                'limit',
                'x',
                '__proto__',
                'constructor',
                'Membership',
                'membership[]',
              ),
              fc.constantFrom('1', '-1', '', '{}', 'join'),
            ),
            { maxLength: 2 },
          ),
          async (who, memberships, notMemberships, ats, filters, extras) => {
            const atValues = ats.map((a) => (a === '=real' ? (atTokens[0] as string) : a));
            const params: Param[] = [
              ...memberships.map((m): Param => ['membership', m]),
              ...notMemberships.map((m): Param => ['not_membership', m]),
              ...atValues.map((a): Param => ['at', a]),
              ...filters.map((f): Param => ['filter', f]),
              ...extras,
            ];
            const url = `${C}/rooms/${r()}/members${query(params)}`;
            fc.pre(sentLength(url) <= MAX_URL);
            const answer = await get(server, tokenOf(who), url);
            const auth = authFailure(who);
            if (auth) return expectAnswer(answer, auth[0], [auth[1]]);

            const valid = (m: string) => (MEMBERSHIPS as readonly string[]).includes(m);
            const verdict =
              filters.length === 1
                ? judgeFilter(filters[0] as string, [
                    'membership',
                    'limit',
                    'senders',
                    'not_senders',
                  ])
                : undefined;
            const invalid =
              !memberships.every(valid) ||
              memberships.length > 10 ||
              !notMemberships.every(valid) ||
              atValues.length > 1 ||
              atValues.some((a) => !/^s\d{1,15}$/.test(a)) ||
              filters.length > 1 ||
              verdict?.kind === 'invalid';
            if (invalid) return expectAnswer(answer, 400, ['M_INVALID_PARAM']);
            // A well-formed token beyond the end of the stream was never issued: 400. No event
            // is written after before(), so the stream ends at the newest /messages token; a
            // little past it is left open (200 or 400), far past it must be refused.
            const position = atValues.length === 1 ? Number((atValues[0] as string).slice(1)) : 0;
            if (position > streamEnd + 1000) return expectAnswer(answer, 400, ['M_INVALID_PARAM']);
            if (position > streamEnd && answer.status === 400)
              return expectAnswer(answer, 400, ['M_INVALID_PARAM']);
            if (who === 'dave') {
              if (verdict?.kind === 'either' && answer.status === 400)
                return expectAnswer(answer, 400, ['M_INVALID_PARAM']);
              return expectAnswer(answer, 403, ['M_FORBIDDEN']);
            }
            if (verdict && !expectFilterVerdict(answer, verdict, 200)) return;
            expectAnswer(answer, 200);
            const events = checkMembers(answer, room);
            const filter = verdict?.kind === 'valid' ? verdict.filter : undefined;
            const hasIn = memberships.length > 0;
            const hasNotIn = notMemberships.length > 0;
            for (const event of events) {
              const m = event.content.membership as string;
              if (hasIn || hasNotIn)
                assert.ok(
                  (hasIn && memberships.includes(m)) || (hasNotIn && !notMemberships.includes(m)),
                  `${m}: ${answer.where}`,
                );
              if (filter?.membership)
                assert.ok(filter.membership.includes(m), `${m}: ${answer.where}`);
              if (filter?.senders) assert.ok(filter.senders.includes(event.sender), answer.where);
              if (filter?.not_senders)
                assert.ok(!filter.not_senders.includes(event.sender), answer.where);
            }
            if (filter?.limit !== undefined) assert.ok(events.length <= filter.limit, answer.where);
            assert.equal(new Set(events.map((e) => e.state_key)).size, events.length, answer.where);
          },
        ),
        { numRuns: RUNS },
      );
    });

    it('/joined_members and /joined_rooms ignore any query string', async () => {
      await fc.assert(
        fc.asyncProperty(fc.constantFrom(...WHO), rawGarbage, rawValue, async (who, key, value) => {
          const q = `?${key}=${value}&${key}`;
          fc.pre(sentLength(`${C}/rooms/${r()}/joined_members${q}`) <= MAX_URL);
          const joined = await get(server, tokenOf(who), `${C}/rooms/${r()}/joined_members${q}`);
          const rooms = await get(server, tokenOf(who), `${C}/joined_rooms${q}`);
          const auth = authFailure(who);
          if (auth) {
            expectAnswer(joined, auth[0], [auth[1]]);
            return expectAnswer(rooms, auth[0], [auth[1]]);
          }
          expectAnswer(rooms, 200);
          const joinedRooms = checkJoinedRooms(rooms);
          if (who === 'alice') {
            expectAnswer(joined, 200);
            assert.deepEqual(
              Object.keys(checkJoinedMembers(joined)).sort(),
              [alice.userId, bob.userId].sort(),
              joined.where,
            );
            assert.deepEqual([...joinedRooms].sort(), [...sharedRooms].sort(), rooms.where);
          } else {
            expectAnswer(joined, 403, ['M_FORBIDDEN']);
            assert.deepEqual(joinedRooms, [], rooms.where);
          }
        }),
        { numRuns: 60 },
      );
    });

    it('MSC2895 /rooms: membership and filter get the documented answer', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(...WHO),
          fc.array(membershipValue, { maxLength: 12 }),
          fc.array(filterText, { maxLength: 2 }),
          async (who, memberships, filters) => {
            const params: Param[] = [
              ...memberships.map((m): Param => ['membership', m]),
              ...filters.map((f): Param => ['filter', f]),
            ];
            const url = `${LISTING}${query(params)}`;
            fc.pre(sentLength(url) <= MAX_URL);
            const answer = await get(server, tokenOf(who), url);
            const auth = authFailure(who);
            if (auth) return expectAnswer(answer, auth[0], [auth[1]]);
            const valid = (m: string) => (MEMBERSHIPS as readonly string[]).includes(m);
            if (!memberships.every(valid) || memberships.length > 10 || filters.length > 1)
              return expectAnswer(answer, 400, ['M_INVALID_PARAM']);
            const verdict =
              filters.length === 1
                ? judgeFilter(filters[0] as string, ['membership', 'limit', 'rooms', 'not_rooms'])
                : undefined;
            if (verdict && !expectFilterVerdict(answer, verdict, 200)) return;
            expectAnswer(answer, 200);
            const rooms = checkListing(answer);
            const filter = verdict?.kind === 'valid' ? verdict.filter : undefined;
            const expected: Record<string, string> =
              who === 'alice'
                ? Object.fromEntries(sharedRooms.map((id) => [id, 'join']))
                : who === 'carol'
                  ? { [room]: 'leave' }
                  : {};
            for (const [id, { membership }] of Object.entries(rooms)) {
              assert.equal(membership, expected[id], `${id}: ${answer.where}`);
              if (memberships.length > 0) assert.ok(memberships.includes(membership), answer.where);
              if (filter?.membership)
                assert.ok(filter.membership.includes(membership), answer.where);
              if (filter?.rooms) assert.ok(filter.rooms.includes(id), answer.where);
              if (filter?.not_rooms) assert.ok(!filter.not_rooms.includes(id), answer.where);
            }
            if (filter?.limit !== undefined)
              assert.ok(Object.keys(rooms).length <= filter.limit, answer.where);
            // Nothing else narrows the answer: with no restriction, every room is listed.
            if (
              memberships.length === 0 &&
              (filter === undefined || Object.keys(filter).length === 0)
            )
              assert.deepEqual(
                rooms,
                Object.fromEntries(
                  Object.entries(expected).map(([id, m]) => [id, { membership: m }]),
                ),
                answer.where,
              );
          },
        ),
        { numRuns: RUNS },
      );
    });

    it('/state and /context: filter gets the documented answer', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(...WHO),
          fc.array(filterText, { minLength: 1, maxLength: 2 }),
          fc.constantFrom(
            '',
            '&limit=-1',
            '&limit=1.5',
            '&limit=1e308',
            '&limit=%zz',
            '&limit=4',
            '&limit=',
            '&limit=101',
          ),
          async (who, filters, contextLimit) => {
            const q = filters.map((f) => `filter=${encJson(f)}`).join('&');
            fc.pre(sentLength(`/?${q}`) <= MAX_URL - 300);
            const state = await get(server, tokenOf(who), `${C}/rooms/${r()}/state?${q}`);
            const context = await get(
              server,
              tokenOf(who),
              `${C}/rooms/${r()}/context/${enc(eventId)}?${q}${contextLimit}`,
            );
            const auth = authFailure(who);
            if (auth) {
              expectAnswer(state, auth[0], [auth[1]]);
              return expectAnswer(context, auth[0], [auth[1]]);
            }
            if (filters.length > 1) {
              expectAnswer(state, 400, ['M_INVALID_PARAM']);
              return expectAnswer(context, 400, ['M_INVALID_PARAM']);
            }
            const text = filters[0] as string;
            const stateVerdict = judgeFilter(text, [
              'types',
              'not_types',
              'senders',
              'not_senders',
              'limit',
              'membership',
            ]);
            const contextVerdict = judgeFilter(text, [
              'types',
              'not_types',
              'senders',
              'not_senders',
              'limit',
              'membership',
              'lazy_load_members',
            ]);
            // dave was never in the room: 403 (or 404 for the event) once the filter parses.
            const stateOk = who === 'dave' ? 403 : 200;
            if (
              expectFilterVerdict(state, stateVerdict, stateOk) &&
              stateVerdict.kind === 'valid'
            ) {
              const events = checkState(state, room);
              const filter = stateVerdict.filter;
              if (filter?.limit !== undefined)
                assert.ok(events.length <= filter.limit, state.where);
              for (const event of events) {
                if (filter?.senders) assert.ok(filter.senders.includes(event.sender), state.where);
                if (filter?.not_senders)
                  assert.ok(!filter.not_senders.includes(event.sender), state.where);
                if (filter?.membership && event.type === 'm.room.member')
                  assert.ok(
                    filter.membership.includes(event.content.membership as string),
                    state.where,
                  );
              }
            }
            // limit must be an integer ≥ 0; the docs set no maximum, so 101 and 1e308 may be
            // refused or clamped, and an empty value may read as 0 or be refused.
            if (['&limit=-1', '&limit=1.5', '&limit=%zz'].includes(contextLimit))
              return expectAnswer(context, 400, ['M_INVALID_PARAM']);
            if (['&limit=', '&limit=101', '&limit=1e308'].includes(contextLimit)) {
              if (context.status !== 200) return expectAnswer(context, 400, ['M_INVALID_PARAM']);
            }
            if (who === 'dave') {
              if (contextVerdict.kind === 'invalid')
                return expectAnswer(context, 400, ['M_INVALID_PARAM']);
              return assert.ok([400, 403, 404].includes(context.status), context.where);
            }
            if (
              expectFilterVerdict(context, contextVerdict, 200) &&
              contextVerdict.kind === 'valid'
            ) {
              const body = checkContext(context, eventId);
              const filter = contextVerdict.filter;
              const limit = Math.min(filter?.limit ?? (contextLimit === '&limit=4' ? 4 : 10), 100);
              assert.ok(
                body.events_before.length + body.events_after.length <= limit,
                context.where,
              );
              for (const event of body.state)
                if (filter?.membership && event.type === 'm.room.member')
                  assert.ok(
                    filter.membership.includes(event.content.membership as string),
                    context.where,
                  );
            }
          },
        ),
        { numRuns: RUNS },
      );
    });
  });

  // -------------------------------------------------------------------------------------------

  describe('any endpoint', () => {
    const endpoints = (): string[] => [
      V1,
      V1_USER,
      UNSTABLE,
      `${UNSTABLE_PREFIX}/mutual_rooms/${enc(bob.userId)}`,
      `${UNSTABLE_PREFIX}/shared_rooms/${enc(bob.userId)}`,
      `${C}/rooms/${r()}/members`,
      `${C}/rooms/${r()}/joined_members`,
      `${C}/joined_rooms`,
      LISTING,
      `${C}/rooms/${r()}/state`,
      `${C}/rooms/${r()}/context/${enc(eventId)}`,
    ];
    const KEYS = [
      'user_id',
      'from',
      'batch_token',
      'at',
      'membership',
      'not_membership',
      'filter',
      'limit',
    ] as const;
    const rawParam = fc.tuple(
      fc.oneof(
        { weight: 3, arbitrary: fc.constantFrom<string>(...KEYS) },
        { weight: 1, arbitrary: rawGarbage },
      ),
      fc.constantFrom('=', '==', '', '=%3D', '[]='),
      rawValue,
    );
    const rawQuery = fc
      .tuple(
        fc.constantFrom('?', '??', '?&', '?;'),
        fc.array(rawParam, { maxLength: 6 }),
        fc.constantFrom('&', '&&', ';', '&amp;'),
      )
      .map(([lead, params, sep]) => {
        let out = lead;
        for (const [k, eq, v] of params) {
          const next = `${k}${eq}${v}`;
          // Stay under Node's 16 KB request head: one long value at most.
          if (sentLength(`/${out}${sep}${next}`) > MAX_URL - 500) break;
          out += (out.length > lead.length ? sep : '') + next;
        }
        return out;
      });

    it('raw garbage query strings: always a Matrix error or a documented success', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.nat({ max: 10 }),
          fc.constantFrom<Who>('alice', 'alice', 'carol', 'dave', 'nobody'),
          rawQuery,
          async (index, who, q) => {
            const endpoint = endpoints()[index] as string;
            const answer = await get(server, tokenOf(who), endpoint + q);
            if (who === 'nobody') return expectAnswer(answer, 401, ['M_MISSING_TOKEN']);
            assert.ok([200, 400, 403, 404].includes(answer.status), answer.where);
            if (answer.status !== 200) return;
            if (index <= 1) checkMutual(answer, 'v1');
            else if (index === 2) checkMutual(answer, 'unstable');
            else if (index <= 4) checkMutual(answer, 'legacy');
            else if (index === 5) checkMembers(answer, room);
            else if (index === 6) checkJoinedMembers(answer);
            else if (index === 7) checkJoinedRooms(answer);
            else if (index === 8) checkListing(answer);
            else if (index === 9) checkState(answer, room);
            else checkContext(answer, eventId);
          },
        ),
        { numRuns: 200 },
      );
    });

    it('hostile {roomId} and {eventId} path segments', async () => {
      const segment = fc.oneof(
        { weight: 3, arbitrary: rawGarbage.filter((s) => s !== '' && !/[?#]/.test(s)) },
        { weight: 2, arbitrary: anyString.filter((s) => s !== '').map((s) => enc(`!${s}`)) },
        { weight: 2, arbitrary: anyString.filter((s) => s !== '').map((s) => enc(`$${s}`)) },
        { weight: 1, arbitrary: fc.constantFrom('=room', '=event', '=ROOM', '=room-with-nul') },
        {
          weight: 1,
          arbitrary: fc.integer({ min: 200, max: 1500 }).map((n) => `!${'a'.repeat(n)}`),
        },
      );
      const resolve = (s: string): string =>
        s === '=room'
          ? r()
          : s === '=event'
            ? enc(eventId)
            : s === '=ROOM'
              ? r().toUpperCase()
              : s === '=room-with-nul'
                ? `${r()}%00`
                : s;
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom('members', 'joined_members', 'state', 'context'),
          fc.constantFrom<Who>('alice', 'carol', 'dave', 'nobody'),
          segment,
          segment,
          async (endpoint, who, roomSegment, eventSegment) => {
            const roomPart = resolve(roomSegment);
            const path =
              endpoint === 'context'
                ? `${C}/rooms/${roomPart}/context/${resolve(eventSegment)}`
                : `${C}/rooms/${roomPart}/${endpoint}`;
            const answer = await get(server, tokenOf(who), path);
            assert.ok([200, 400, 401, 403, 404, 405, 414].includes(answer.status), answer.where);
            if (who === 'nobody')
              assert.ok([400, 401, 404, 405, 414].includes(answer.status), answer.where);
            if (answer.status === 200) {
              assert.equal(roomSegment, '=room', `200 for another room: ${answer.where}`);
              if (endpoint === 'context')
                assert.equal(eventSegment, '=event', `200 for another event: ${answer.where}`);
              if (endpoint === 'members') checkMembers(answer, room);
              else if (endpoint === 'joined_members') checkJoinedMembers(answer);
              else if (endpoint === 'state') checkState(answer, room);
              else checkContext(answer, eventId);
            }
          },
        ),
        { numRuns: RUNS },
      );
    });

    it('NUL bytes and lone surrogates inside otherwise valid values', async () => {
      const f = (filter: Record<string, unknown>) => `filter=${encJson(JSON.stringify(filter))}`;
      const members = `${C}/rooms/${r()}/members`;
      const state = `${C}/rooms/${r()}/state`;
      const context = `${C}/rooms/${r()}/context/${enc(eventId)}`;
      const everyone = [alice.userId, bob.userId, carol.userId, eve.userId].sort();
      const stateKeys = (answer: Answer) =>
        checkMembers(answer, room)
          .map((e) => e.state_key)
          .sort();
      // [request, expected status(es), check of a 200 body]
      const cases: [string, number | number[], ((answer: Answer) => void)?][] = [
        // A sender that matches nobody, and a not_sender that excludes nobody.
        [
          `${members}?${f({ senders: ['a\u0000b'] })}`,
          200,
          (a) => assert.deepEqual(stateKeys(a), []),
        ],
        [
          `${members}?${f({ senders: ['\u0000'] })}`,
          200,
          (a) => assert.deepEqual(stateKeys(a), []),
        ],
        [
          `${members}?${f({ not_senders: ['a\u0000b'] })}`,
          200,
          (a) => assert.deepEqual(stateKeys(a), everyone),
        ],
        [
          `${members}?${f({ senders: ['\ud800', 'x\udfff'] })}`,
          200,
          (a) => assert.deepEqual(stateKeys(a), []),
        ],
        [
          `${members}?${f({ not_senders: ['\udc00'] })}`,
          200,
          (a) => assert.deepEqual(stateKeys(a), everyone),
        ],
        // MSC2895: a room list naming no real room lists nothing; not_rooms removes nothing.
        [
          `${LISTING}?${f({ rooms: ['a\u0000b'] })}`,
          200,
          (a) => assert.deepEqual(checkListing(a), {}),
        ],
        [
          `${LISTING}?${f({ rooms: ['\ud800'] })}`,
          200,
          (a) => assert.deepEqual(checkListing(a), {}),
        ],
        [
          `${LISTING}?${f({ not_rooms: ['\u0000'] })}`,
          200,
          (a) => assert.equal(Object.keys(checkListing(a)).length, SHARED_ROOMS),
        ],
        [
          `${state}?${f({ senders: ['\u0000'] })}`,
          200,
          (a) => assert.deepEqual(checkState(a, room), []),
        ],
        [
          `${state}?${f({ types: ['m.room.\u0000'] })}`,
          200,
          (a) => assert.deepEqual(checkState(a, room), []),
        ],
        [
          `${context}?${f({ senders: ['\u0000'], types: ['\ud800'] })}`,
          200,
          (a) => checkContext(a, eventId),
        ],
        // An event ID, room ID or user ID with a NUL or a lone surrogate in it does not exist.
        [`${C}/rooms/${r()}/context/%24a%00b`, [400, 404]],
        [`${C}/rooms/${r()}/context/%00`, [400, 404]],
        [`${C}/rooms/${r()}/context/%24%ED%A0%80`, [400, 404]],
        [`${C}/rooms/%21a%00b%3Atest.local/members`, 400],
        [`${C}/rooms/%21a%00b%3Atest.local/joined_members`, 400],
        [`${C}/rooms/%21a%00b%3Atest.local/state`, 400],
        [`${V1}?user_id=%40a%00b%3Atest.local`, 400],
        // Invalid UTF-8 (a lone surrogate, an overlong '/') cannot decode to a user ID.
        [`${V1}?user_id=@a%ED%A0%80:test.local`, 400],
        [`${V1}?user_id=@a%C0%AF:test.local`, 400],
        [`${UNSTABLE}?user_id=@a%ED%A0%80:test.local`, 400],
        [`${UNSTABLE_PREFIX}/shared_rooms/%40a%00b%3Atest.local`, 400],
        [`${C}/rooms/${r()}/members?at=s1%00`, 400],
        [`${V1}?user_id=${enc(bob.userId)}&from=p1.1.1.%00`, 400],
      ];
      // Every case runs; the failures are reported together.
      const failures: string[] = [];
      for (const [path, want, check] of cases) {
        try {
          const answer = await get(server, alice.accessToken, path);
          const wanted = Array.isArray(want) ? want : [want];
          assert.ok(
            wanted.includes(answer.status),
            `expected ${wanted.join(' or ')}: ${answer.where}`,
          );
          if (answer.status !== 200)
            expectAnswer(answer, answer.status, ['M_INVALID_PARAM', 'M_NOT_FOUND']);
          else check?.(answer);
        } catch (err) {
          failures.push((err as Error).message.split('\n')[0] ?? String(err));
        }
      }
      assert.deepEqual(failures, [], `\n${failures.join('\n')}`);
    });

    it('a ~10 KB value whose encoding passes 16 KB still gets a Matrix error', async () => {
      // 4,000 'é' are 8 KB of UTF-8 and 24 KB once percent-encoded: over Node's default
      // 16 KB limit on a request head: 431 with a Matrix error body (M_TOO_LARGE).
      for (const path of [
        `${V1}?user_id=${enc(bob.userId)}&from=${enc('é'.repeat(4000))}`,
        `${C}/rooms/${r()}/members?filter=${enc(`{"x":"${'é'.repeat(4000)}"}`)}`,
      ]) {
        const answer = await get(server, alice.accessToken, path);
        assert.equal(answer.status, 431, answer.where);
        assert.equal((answer.body as { errcode?: string }).errcode, 'M_TOO_LARGE', answer.where);
      }
    });

    it('who asks: joined, left, never joined, no token, bogus token', async () => {
      const cases: [string, Record<Who, number | number[]>][] = [
        [
          `${V1}?user_id=${enc(bob.userId)}`,
          { alice: 200, carol: 200, dave: 200, nobody: 401, bogus: 401 },
        ],
        [
          `${UNSTABLE_PREFIX}/shared_rooms/${enc(bob.userId)}`,
          { alice: 200, carol: 200, dave: 200, nobody: 401, bogus: 401 },
        ],
        [
          `${C}/rooms/${r()}/members`,
          { alice: 200, carol: 200, dave: 403, nobody: 401, bogus: 401 },
        ],
        [
          `${C}/rooms/${r()}/joined_members`,
          { alice: 200, carol: 403, dave: 403, nobody: 401, bogus: 401 },
        ],
        [`${C}/joined_rooms`, { alice: 200, carol: 200, dave: 200, nobody: 401, bogus: 401 }],
        [LISTING, { alice: 200, carol: 200, dave: 200, nobody: 401, bogus: 401 }],
        [`${C}/rooms/${r()}/state`, { alice: 200, carol: 200, dave: 403, nobody: 401, bogus: 401 }],
        [
          `${C}/rooms/${r()}/context/${enc(eventId)}`,
          { alice: 200, carol: 200, dave: [403, 404], nobody: 401, bogus: 401 },
        ],
      ];
      for (const [path, expected] of cases) {
        for (const who of WHO) {
          const answer = await get(server, tokenOf(who), path);
          const want = expected[who];
          assert.ok(
            (Array.isArray(want) ? want : [want]).includes(answer.status),
            `expected ${String(want)}: ${answer.where}`,
          );
        }
      }
      // carol, who left, sees the members as of her leaving: eve was invited only later.
      const asCarol = await get(server, carol.accessToken, `${C}/rooms/${r()}/members`);
      const members = Object.fromEntries(
        checkMembers(asCarol, room).map((e) => [e.state_key, e.content.membership]),
      );
      assert.deepEqual(
        Object.keys(members).sort(),
        [alice.userId, bob.userId, carol.userId].sort(),
        asCarol.where,
      );
      assert.equal(members[alice.userId], 'join', asCarol.where);
      assert.equal(members[bob.userId], 'join', asCarol.where);
    });
  });
});

/** Decodes `enc`-style text loosely so extra params can reuse rawValue (then re-encoded). */
function decodeSafe(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}
