/**
 * Push rules: the spec's server-default rules for a user, and the pure edits the push rules
 * API makes to a user's rule set. The set is kept whole as `m.push_rules` account data.
 * https://spec.matrix.org/v1.19/client-server-api/#push-rules
 */
import type { JsonObject, JsonValue } from './pdu.js';

/** The kinds of rule, in the order they are checked. */
export const PUSH_RULE_KINDS = ['override', 'content', 'room', 'sender', 'underride'] as const;
export type PushRuleKind = (typeof PUSH_RULE_KINDS)[number];

/** `notify`, or an object such as `{ set_tweak: 'sound', value: 'default' }`. */
export type PushAction = string | JsonObject;

/** A condition as the client gave it; `kind` says which other keys apply. */
export type PushCondition = JsonObject & { kind: string };

export interface PushRule {
  rule_id: string;
  default: boolean;
  enabled: boolean;
  actions: PushAction[];
  /** override and underride rules only. */
  conditions?: PushCondition[];
  /** content rules only. */
  pattern?: string;
}

export type PushRuleset = Record<PushRuleKind, PushRule[]>;

/** The account data type the rule set is stored under. */
export const PUSH_RULES_TYPE = 'm.push_rules';

/** The rule that turns every notification off, always checked first. */
export const MASTER_RULE_ID = '.m.rule.master';

export function isPushRuleKind(value: string): value is PushRuleKind {
  return (PUSH_RULE_KINDS as readonly string[]).includes(value);
}

/** Server-default rule IDs start with a dot; clients cannot create or delete them. */
export const isServerDefaultRuleId = (ruleId: string): boolean => ruleId.startsWith('.');

const SOUND_DEFAULT: JsonObject = { set_tweak: 'sound', value: 'default' };
const HIGHLIGHT: JsonObject = { set_tweak: 'highlight' };

const match = (key: string, pattern: string): PushCondition => ({
  kind: 'event_match',
  key,
  pattern,
});
const memberCountIsTwo: PushCondition = { kind: 'room_member_count', is: '2' };
const roomNotifyPermission: PushCondition = { kind: 'sender_notification_permission', key: 'room' };

function rule(
  ruleId: string,
  conditions: PushCondition[],
  actions: PushAction[],
  enabled = true,
): PushRule {
  return { rule_id: ruleId, default: true, enabled, conditions, actions };
}

/** The default rules that name the user: built for each user, the others shared. */
const inviteForMe = (userId: string): PushRule =>
  rule(
    '.m.rule.invite_for_me',
    [
      match('type', 'm.room.member'),
      match('content.membership', 'invite'),
      match('state_key', userId),
    ],
    ['notify', SOUND_DEFAULT],
  );
const isUserMention = (userId: string): PushRule =>
  rule(
    '.m.rule.is_user_mention',
    [{ kind: 'event_property_contains', key: 'content.m\\.mentions.user_ids', value: userId }],
    ['notify', SOUND_DEFAULT, HIGHLIGHT],
  );
const containsUserName = (userId: string): PushRule => {
  const colon = userId.indexOf(':');
  return {
    rule_id: '.m.rule.contains_user_name',
    default: true,
    enabled: true,
    pattern: userId.slice(1, colon < 0 ? undefined : colon),
    actions: ['notify', SOUND_DEFAULT, HIGHLIGHT],
  };
};
const PERSONAL: Record<string, (userId: string) => PushRule> = {
  '.m.rule.invite_for_me': inviteForMe,
  '.m.rule.is_user_mention': isUserMention,
  '.m.rule.contains_user_name': containsUserName,
};

let shared: PushRuleset | undefined;

/**
 * The server-default rules of the spec for `userId`, in the spec's order. The rules that do
 * not name the user are the same objects for everyone (built once; nothing changes a rule in
 * place): evaluating a room of 100,000 members builds three rules per member, not thirty.
 */
export function defaultPushRules(userId: string): PushRuleset {
  shared ??= buildDefaultPushRules('@_:_');
  const out = {} as PushRuleset;
  for (const kind of PUSH_RULE_KINDS)
    out[kind] = shared[kind].map((r) => PERSONAL[r.rule_id]?.(userId) ?? r);
  return out;
}

function buildDefaultPushRules(userId: string): PushRuleset {
  return {
    override: [
      rule(MASTER_RULE_ID, [], [], false),
      rule('.m.rule.suppress_notices', [match('content.msgtype', 'm.notice')], []),
      inviteForMe(userId),
      rule('.m.rule.member_event', [match('type', 'm.room.member')], []),
      isUserMention(userId),
      rule(
        '.m.rule.contains_display_name',
        [{ kind: 'contains_display_name' }],
        ['notify', SOUND_DEFAULT, HIGHLIGHT],
      ),
      rule(
        '.m.rule.is_room_mention',
        [
          { kind: 'event_property_is', key: 'content.m\\.mentions.room', value: true },
          roomNotifyPermission,
        ],
        ['notify', HIGHLIGHT],
      ),
      rule(
        '.m.rule.roomnotif',
        [match('content.body', '@room'), roomNotifyPermission],
        ['notify', HIGHLIGHT],
      ),
      rule(
        '.m.rule.tombstone',
        [match('type', 'm.room.tombstone'), match('state_key', '')],
        ['notify', HIGHLIGHT],
      ),
      rule('.m.rule.reaction', [match('type', 'm.reaction')], []),
      rule(
        '.m.rule.room.server_acl',
        [match('type', 'm.room.server_acl'), match('state_key', '')],
        [],
      ),
      rule(
        '.m.rule.suppress_edits',
        [{ kind: 'event_property_is', key: 'content.m\\.relates_to.rel_type', value: 'm.replace' }],
        [],
      ),
    ],
    content: [containsUserName(userId)],
    room: [],
    sender: [],
    underride: [
      rule(
        '.m.rule.call',
        [match('type', 'm.call.invite')],
        ['notify', { set_tweak: 'sound', value: 'ring' }],
      ),
      rule(
        '.m.rule.encrypted_room_one_to_one',
        [memberCountIsTwo, match('type', 'm.room.encrypted')],
        ['notify', SOUND_DEFAULT],
      ),
      rule(
        '.m.rule.room_one_to_one',
        [memberCountIsTwo, match('type', 'm.room.message')],
        ['notify', SOUND_DEFAULT],
      ),
      rule('.m.rule.message', [match('type', 'm.room.message')], ['notify']),
      rule('.m.rule.encrypted', [match('type', 'm.room.encrypted')], ['notify']),
    ],
  };
}

// ---------------------------------------------------------------------------
// Actions and conditions as clients send them

/** Actions older spec versions defined; servers MUST ignore them (we strip them). */
const HISTORICAL_ACTIONS = new Set(['dont_notify', 'coalesce']);

/**
 * The actions to store, or null when one is not an action: `notify`, or an object with a
 * string `set_tweak`. The historical `dont_notify` and `coalesce` are dropped.
 */
export function parseActions(value: unknown): PushAction[] | null {
  if (!Array.isArray(value)) return null;
  const actions: PushAction[] = [];
  for (const action of value) {
    if (typeof action === 'string') {
      if (HISTORICAL_ACTIONS.has(action)) continue;
      if (action !== 'notify') return null;
      actions.push(action);
    } else if (isObject(action) && typeof action.set_tweak === 'string') {
      actions.push(action);
    } else {
      return null;
    }
  }
  return actions;
}

/** Conditions to store, or null unless each is an object with a string `kind`. */
export function parseConditions(value: unknown): PushCondition[] | null {
  if (!Array.isArray(value)) return null;
  const conditions: PushCondition[] = [];
  for (const condition of value) {
    if (!isObject(condition) || typeof condition.kind !== 'string') return null;
    conditions.push(condition as PushCondition);
  }
  return conditions;
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// ---------------------------------------------------------------------------
// The stored rule set

function ruleFromJson(value: JsonValue | undefined, kind: PushRuleKind): PushRule | null {
  if (!isObject(value) || typeof value.rule_id !== 'string') return null;
  const actions = parseActions(value.actions);
  if (!actions) return null;
  const rule: PushRule = {
    rule_id: value.rule_id,
    default: isServerDefaultRuleId(value.rule_id),
    enabled: value.enabled !== false,
    actions,
  };
  if (kind === 'override' || kind === 'underride')
    rule.conditions = parseConditions(value.conditions) ?? [];
  if (kind === 'content') {
    if (typeof value.pattern !== 'string') return null;
    rule.pattern = value.pattern;
  }
  return rule;
}

/**
 * The rule set of `userId` from its stored `m.push_rules` content (undefined: never changed).
 * Server-default rules always come from `defaultPushRules` (so a server upgrade brings new
 * ones), keeping only the `enabled` and `actions` the user chose; user-defined rules keep
 * their order and rank above the server-default ones of their kind, below `.m.rule.master`.
 */
export function rulesetFromContent(content: JsonObject | undefined, userId: string): PushRuleset {
  const defaults = defaultPushRules(userId);
  // Never changed (most users): the defaults as they are, the master rule already first.
  if (!content || !isObject(content.global)) return defaults;
  const stored = content.global;
  const ruleset = {} as PushRuleset;
  for (const kind of PUSH_RULE_KINDS) {
    const list = stored[kind];
    const rules = (Array.isArray(list) ? list : [])
      .map((value) => ruleFromJson(value, kind))
      .filter((r): r is PushRule => r !== null);
    const chosen = new Map(rules.filter((r) => r.default).map((r) => [r.rule_id, r]));
    const userRules = rules.filter((r) => !r.default);
    const serverRules = defaults[kind].map((d) => {
      const mine = chosen.get(d.rule_id);
      return mine ? { ...d, enabled: mine.enabled, actions: mine.actions } : d;
    });
    const master = serverRules.filter((r) => r.rule_id === MASTER_RULE_ID);
    const others = serverRules.filter((r) => r.rule_id !== MASTER_RULE_ID);
    ruleset[kind] = [...master, ...userRules, ...others];
  }
  return ruleset;
}

export function ruleToJson(rule: PushRule): JsonObject {
  const json: JsonObject = {
    rule_id: rule.rule_id,
    default: rule.default,
    enabled: rule.enabled,
    actions: rule.actions,
  };
  if (rule.conditions) json.conditions = rule.conditions;
  if (rule.pattern !== undefined) json.pattern = rule.pattern;
  return json;
}

export function rulesetToJson(ruleset: PushRuleset): JsonObject {
  const json: JsonObject = {};
  for (const kind of PUSH_RULE_KINDS) json[kind] = ruleset[kind].map(ruleToJson);
  return json;
}

/** The `m.push_rules` account data content of a rule set. */
export function rulesetContent(ruleset: PushRuleset): JsonObject {
  return { global: rulesetToJson(ruleset) };
}

// ---------------------------------------------------------------------------
// Edits (each returns a new rule set, or null where the named rule does not exist)

export function findRule(
  ruleset: PushRuleset,
  kind: PushRuleKind,
  ruleId: string,
): PushRule | undefined {
  return ruleset[kind].find((r) => r.rule_id === ruleId);
}

/** Where a new or moved user-defined rule goes, relative to another user-defined rule. */
export interface RulePlacement {
  before?: string;
  after?: string;
}

export type PlaceResult = { ok: true; ruleset: PushRuleset } | { ok: false; missing: string };

/**
 * Adds or replaces the user-defined `rule` of `kind`. With `before` (which wins over
 * `after`) or `after`, it is placed next to that user-defined rule (`missing` names it when
 * there is none); otherwise a new rule becomes the most important user-defined rule of its
 * kind and a replaced one keeps its place and its `enabled`.
 */
export function putUserRule(
  ruleset: PushRuleset,
  kind: PushRuleKind,
  rule: PushRule,
  placement: RulePlacement = {},
): PlaceResult {
  const list = ruleset[kind];
  const existing = list.find((r) => r.rule_id === rule.rule_id);
  const next: PushRule = existing ? { ...rule, enabled: existing.enabled } : rule;
  const anchor = placement.before ?? placement.after;
  const rest = list.filter((r) => r.rule_id !== rule.rule_id);
  let index: number;
  if (anchor !== undefined) {
    const at = rest.findIndex((r) => r.rule_id === anchor && !r.default);
    if (at < 0) return { ok: false, missing: anchor };
    index = placement.before !== undefined ? at : at + 1;
  } else if (existing) {
    index = list.indexOf(existing);
  } else {
    index = rest.filter((r) => r.rule_id === MASTER_RULE_ID).length;
  }
  return { ok: true, ruleset: { ...ruleset, [kind]: rest.toSpliced(index, 0, next) } };
}

/** Removes a user-defined rule; null when there is none of that ID. */
export function deleteUserRule(
  ruleset: PushRuleset,
  kind: PushRuleKind,
  ruleId: string,
): PushRuleset | null {
  const list = ruleset[kind];
  if (!list.some((r) => r.rule_id === ruleId && !r.default)) return null;
  return { ...ruleset, [kind]: list.filter((r) => r.rule_id !== ruleId) };
}

/** Changes one rule (user-defined or server-default); null when there is none of that ID. */
export function updateRule(
  ruleset: PushRuleset,
  kind: PushRuleKind,
  ruleId: string,
  change: { enabled?: boolean; actions?: PushAction[] },
): PushRuleset | null {
  const list = ruleset[kind];
  if (!list.some((r) => r.rule_id === ruleId)) return null;
  return {
    ...ruleset,
    [kind]: list.map((r) => (r.rule_id === ruleId ? { ...r, ...change } : r)),
  };
}
