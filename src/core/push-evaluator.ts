/**
 * Evaluating a user's push rules against an event: the first enabled rule that matches, in
 * kind order, gives the actions. Pure: what the conditions need of the room comes in a context.
 * https://spec.matrix.org/v1.19/client-server-api/#push-rules
 */
import type { JsonObject, JsonValue } from './pdu.js';
import {
  PUSH_RULE_KINDS,
  type PushAction,
  type PushCondition,
  type PushRule,
  type PushRuleset,
} from './push-rules.js';

/** The event as the rules see it (the client form's fields). */
export interface PushEvent {
  type: string;
  sender: string;
  state_key?: string | undefined;
  room_id: string;
  content: JsonObject;
}

export interface PushContext {
  userId: string;
  /** The user's display name in the room, if any. */
  displayName: string | null;
  /** Joined members of the room. */
  memberCount: number;
  /** The sender's power level, and the levels `notifications` requires (`room`: 50 by default). */
  senderPowerLevel: number;
  notificationLevels: Readonly<Record<string, number>>;
}

export interface PushOutcome {
  actions: PushAction[];
  notify: boolean;
  highlight: boolean;
}

const NOTHING: PushOutcome = { actions: [], notify: false, highlight: false };

/** Splits a dotted key on unescaped dots (`\.` is a dot, `\\` a backslash). */
function keyPath(key: string): string[] {
  const parts: string[] = [];
  let current = '';
  for (let i = 0; i < key.length; i++) {
    const c = key[i];
    if (c === '\\' && (key[i + 1] === '.' || key[i + 1] === '\\')) {
      current += key[++i];
    } else if (c === '.') {
      parts.push(current);
      current = '';
    } else current += c;
  }
  parts.push(current);
  return parts;
}

function valueAt(event: PushEvent, key: string): JsonValue | undefined {
  let value: JsonValue | undefined = event as unknown as JsonObject;
  for (const part of keyPath(key)) {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
    value = (value as JsonObject)[part];
  }
  return value;
}

const globCache = new Map<string, RegExp>();
/** A glob (`*`, `?`) as a case-insensitive regular expression; `words`: within word bounds. */
function globRegex(pattern: string, words: boolean): RegExp {
  const cacheKey = `${words ? 'w' : 'x'}${pattern}`;
  let regex = globCache.get(cacheKey);
  if (regex) return regex;
  const body = pattern
    .split('')
    .map((c) => (c === '*' ? '.*?' : c === '?' ? '.' : c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')))
    .join('');
  regex = words
    ? new RegExp(`(?:^|[^\\p{L}\\p{N}_])${body}(?:$|[^\\p{L}\\p{N}_])`, 'iu')
    : new RegExp(`^${body}$`, 'isu');
  if (globCache.size > 10_000) globCache.clear();
  globCache.set(cacheKey, regex);
  return regex;
}

const WORD_CHAR = /[\p{L}\p{N}_]/u;
const isWordChar = (c: string | undefined) => c !== undefined && WORD_CHAR.test(c);

/**
 * Whether `literal` occurs in `text` as whole words, case-insensitively. Without a regular
 * expression: each member's name is another pattern, and compiling one per member cost most
 * of a big room's evaluation.
 */
function containsWords(text: string, literal: string): boolean {
  if (literal === '') return false;
  const haystack = text.toLowerCase();
  const needle = literal.toLowerCase();
  for (let at = haystack.indexOf(needle); at >= 0; at = haystack.indexOf(needle, at + 1)) {
    if (!isWordChar(haystack[at - 1]) && !isWordChar(haystack[at + needle.length])) return true;
  }
  return false;
}

/** `pattern` as whole words of `text`: literally when it has no glob characters. */
const matchesWords = (text: string, pattern: string): boolean =>
  /[*?]/.test(pattern) ? globRegex(pattern, true).test(text) : containsWords(text, pattern);

const isScalar = (v: JsonValue | undefined) =>
  v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean';

const MEMBER_COUNT = /^(==|<=|>=|<|>)?([0-9]+)$/;

function conditionHolds(condition: PushCondition, event: PushEvent, ctx: PushContext): boolean {
  switch (condition.kind) {
    case 'event_match': {
      const { key, pattern } = condition;
      if (typeof key !== 'string' || typeof pattern !== 'string') return false;
      const value = valueAt(event, key);
      if (typeof value !== 'string') return false;
      // content.body is matched by words (the spec's note for it); other keys whole.
      return key === 'content.body'
        ? matchesWords(value, pattern)
        : globRegex(pattern, false).test(value);
    }
    case 'event_property_is': {
      const { key, value } = condition;
      if (typeof key !== 'string' || !isScalar(value)) return false;
      const found = valueAt(event, key);
      return isScalar(found) && found === value;
    }
    case 'event_property_contains': {
      const { key, value } = condition;
      if (typeof key !== 'string' || !isScalar(value)) return false;
      const found = valueAt(event, key);
      return Array.isArray(found) && found.some((item) => isScalar(item) && item === value);
    }
    case 'contains_display_name': {
      const body = event.content.body;
      if (typeof body !== 'string' || !ctx.displayName) return false;
      return containsWords(body, ctx.displayName);
    }
    case 'room_member_count': {
      const match = typeof condition.is === 'string' ? MEMBER_COUNT.exec(condition.is) : null;
      if (!match) return false;
      const n = Number(match[2]);
      const count = ctx.memberCount;
      switch (match[1]) {
        case '<':
          return count < n;
        case '>':
          return count > n;
        case '<=':
          return count <= n;
        case '>=':
          return count >= n;
        default:
          return count === n;
      }
    }
    case 'sender_notification_permission': {
      const { key } = condition;
      if (typeof key !== 'string') return false;
      return ctx.senderPowerLevel >= (ctx.notificationLevels[key] ?? 50);
    }
    default:
      // Unknown conditions never match (the spec).
      return false;
  }
}

function ruleMatches(
  kind: (typeof PUSH_RULE_KINDS)[number],
  rule: PushRule,
  event: PushEvent,
  ctx: PushContext,
): boolean {
  switch (kind) {
    case 'content': {
      const body = event.content.body;
      return (
        typeof rule.pattern === 'string' &&
        typeof body === 'string' &&
        matchesWords(body, rule.pattern)
      );
    }
    case 'room':
      return rule.rule_id === event.room_id;
    case 'sender':
      return rule.rule_id === event.sender;
    default:
      return (rule.conditions ?? []).every((c) => conditionHolds(c, event, ctx));
  }
}

/** What `actions` ask for: a notification, and whether highlighted. */
export function outcomeOf(actions: readonly PushAction[]): PushOutcome {
  const notify = actions.includes('notify');
  const highlight = actions.some(
    (a) => typeof a === 'object' && a.set_tweak === 'highlight' && a.value !== false,
  );
  return { actions: [...actions], notify, highlight: notify && highlight };
}

/** The outcome of the first enabled rule that matches the event; nothing when none does. */
export function evaluatePushRules(
  ruleset: PushRuleset,
  event: PushEvent,
  ctx: PushContext,
): PushOutcome {
  for (const kind of PUSH_RULE_KINDS) {
    for (const rule of ruleset[kind]) {
      if (!rule.enabled) continue;
      if (ruleMatches(kind, rule, event, ctx)) return outcomeOf(rule.actions);
    }
  }
  return NOTHING;
}
