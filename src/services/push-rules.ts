/**
 * The push rules API: a user's rules, kept whole as their `m.push_rules` global account data
 * so /sync delivers every change. The edits themselves are pure (core/push-rules.ts).
 */
import { badJson, invalidParam, notFound, unknown } from '../core/errors.js';
import { parseRoomId, parseUserId } from '../core/identifiers.js';
import {
  deleteUserRule,
  findRule,
  isServerDefaultRuleId,
  parseActions,
  parseConditions,
  PUSH_RULES_TYPE,
  putUserRule,
  rulesetContent,
  rulesetFromContent,
  updateRule,
  type PushAction,
  type PushRule,
  type PushRuleKind,
  type PushRuleset,
  type RulePlacement,
} from '../core/push-rules.js';
import type { AccountDataService } from './account-data.js';
import type { Requester } from './context.js';

/** A rule as a client sends it to PUT /pushrules/global/{kind}/{ruleId}. */
export interface PushRuleInput {
  actions: unknown;
  conditions?: unknown;
  pattern?: string;
}

const ruleNotFound = () => notFound('The push rule was not found');

function validActions(value: unknown): PushAction[] {
  const actions = parseActions(value);
  if (!actions) throw badJson('"actions" must be "notify" or {"set_tweak": …} objects');
  return actions;
}

/** The rule to store for a PUT, or a 400 naming what is wrong with the request. */
function ruleFromInput(kind: PushRuleKind, ruleId: string, input: PushRuleInput): PushRule {
  if (isServerDefaultRuleId(ruleId))
    throw invalidParam('Rule IDs starting with "." are reserved for server-default rules');
  if (/[/\\]/.test(ruleId)) throw invalidParam('Rule IDs may not contain "/" or "\\"');
  if (kind === 'room' && !parseRoomId(ruleId))
    throw invalidParam('The rule ID of a room rule must be a room ID');
  if (kind === 'sender' && !parseUserId(ruleId))
    throw invalidParam('The rule ID of a sender rule must be a user ID');
  const rule: PushRule = {
    rule_id: ruleId,
    default: false,
    enabled: true,
    actions: validActions(input.actions),
  };
  if (kind === 'override' || kind === 'underride') {
    const conditions = input.conditions === undefined ? [] : parseConditions(input.conditions);
    if (!conditions) throw badJson('"conditions" must be objects with a string "kind"');
    rule.conditions = conditions;
  }
  if (kind === 'content') {
    if (input.pattern === undefined || input.pattern === '')
      throw badJson('A content rule needs a "pattern"');
    rule.pattern = input.pattern;
  }
  return rule;
}

export function createPushRuleService(accountData: AccountDataService) {
  async function rulesetOf(userId: string): Promise<PushRuleset> {
    return rulesetFromContent(await accountData.readGlobal(userId, PUSH_RULES_TYPE), userId);
  }

  async function ruleOf(userId: string, kind: PushRuleKind, ruleId: string): Promise<PushRule> {
    const rule = findRule(await rulesetOf(userId), kind, ruleId);
    if (!rule) throw ruleNotFound();
    return rule;
  }

  /** Applies `edit` to the user's rule set in one transaction; `edit` throws to refuse. */
  function edit(
    name: string,
    userId: string,
    change: (ruleset: PushRuleset) => PushRuleset,
  ): Promise<void> {
    return accountData.updateGlobal(name, userId, PUSH_RULES_TYPE, (current) =>
      rulesetContent(change(rulesetFromContent(current, userId))),
    );
  }

  return {
    /** The whole `global` rule set, every kind in priority order. */
    async getAll(requester: Requester): Promise<PushRuleset> {
      return rulesetOf(requester.userId);
    },

    async get(requester: Requester, kind: PushRuleKind, ruleId: string): Promise<PushRule> {
      return ruleOf(requester.userId, kind, ruleId);
    },

    /** Creates or replaces a user-defined rule, placed per `before`/`after`. */
    async put(
      requester: Requester,
      kind: PushRuleKind,
      ruleId: string,
      input: PushRuleInput,
      placement: RulePlacement,
    ): Promise<void> {
      const rule = ruleFromInput(kind, ruleId, input);
      await edit('putPushRule', requester.userId, (ruleset) => {
        const placed = putUserRule(ruleset, kind, rule, placement);
        if (!placed.ok) throw unknown(`before/after rule not found: ${placed.missing}`);
        return placed.ruleset;
      });
    },

    async delete(requester: Requester, kind: PushRuleKind, ruleId: string): Promise<void> {
      if (isServerDefaultRuleId(ruleId))
        throw invalidParam('Server-default rules cannot be deleted; disable them instead');
      await edit('deletePushRule', requester.userId, (ruleset) => {
        const next = deleteUserRule(ruleset, kind, ruleId);
        if (!next) throw ruleNotFound();
        return next;
      });
    },

    async isEnabled(requester: Requester, kind: PushRuleKind, ruleId: string): Promise<boolean> {
      return (await ruleOf(requester.userId, kind, ruleId)).enabled;
    },

    async setEnabled(
      requester: Requester,
      kind: PushRuleKind,
      ruleId: string,
      enabled: boolean,
    ): Promise<void> {
      await edit('setPushRuleEnabled', requester.userId, (ruleset) => {
        const next = updateRule(ruleset, kind, ruleId, { enabled });
        if (!next) throw ruleNotFound();
        return next;
      });
    },

    async getActions(
      requester: Requester,
      kind: PushRuleKind,
      ruleId: string,
    ): Promise<PushAction[]> {
      return (await ruleOf(requester.userId, kind, ruleId)).actions;
    },

    /** Changes the actions of any rule, server-default ones included. */
    async setActions(
      requester: Requester,
      kind: PushRuleKind,
      ruleId: string,
      actions: unknown,
    ): Promise<void> {
      const valid = validActions(actions);
      await edit('setPushRuleActions', requester.userId, (ruleset) => {
        const next = updateRule(ruleset, kind, ruleId, { actions: valid });
        if (!next) throw ruleNotFound();
        return next;
      });
    },
  };
}

export type PushRuleService = ReturnType<typeof createPushRuleService>;
