import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  defaultPushRules,
  deleteUserRule,
  findRule,
  MASTER_RULE_ID,
  parseActions,
  parseConditions,
  PUSH_RULE_KINDS,
  putUserRule,
  rulesetContent,
  rulesetFromContent,
  rulesetToJson,
  updateRule,
  type PushRule,
  type PushRuleset,
} from '../../src/core/push-rules.js';
import { assertMatchesSpec } from '../helpers/spec-contract.js';
import type { JsonObject } from '../../src/core/pdu.js';

const ALICE = '@alice:example.com';
const ids = (ruleset: PushRuleset, kind: keyof PushRuleset) => ruleset[kind].map((r) => r.rule_id);
const userRule = (ruleId: string, pattern?: string): PushRule => ({
  rule_id: ruleId,
  default: false,
  enabled: true,
  actions: ['notify'],
  ...(pattern !== undefined ? { pattern } : { conditions: [] }),
});
const placed = (result: ReturnType<typeof putUserRule>): PushRuleset => {
  assert.ok(result.ok, JSON.stringify(result));
  return result.ruleset;
};

describe('push rules: the server-default rules', () => {
  const rules = defaultPushRules(ALICE);

  it('lists every kind, in the spec order within each', () => {
    assert.deepEqual(Object.keys(rules), [...PUSH_RULE_KINDS]);
    assert.deepEqual(ids(rules, 'override'), [
      '.m.rule.master',
      '.m.rule.suppress_notices',
      '.m.rule.invite_for_me',
      '.m.rule.member_event',
      '.m.rule.is_user_mention',
      '.m.rule.contains_display_name',
      '.m.rule.is_room_mention',
      '.m.rule.roomnotif',
      '.m.rule.tombstone',
      '.m.rule.reaction',
      '.m.rule.room.server_acl',
      '.m.rule.suppress_edits',
    ]);
    assert.deepEqual(ids(rules, 'content'), ['.m.rule.contains_user_name']);
    assert.deepEqual(ids(rules, 'room'), []);
    assert.deepEqual(ids(rules, 'sender'), []);
    assert.deepEqual(ids(rules, 'underride'), [
      '.m.rule.call',
      '.m.rule.encrypted_room_one_to_one',
      '.m.rule.room_one_to_one',
      '.m.rule.message',
      '.m.rule.encrypted',
    ]);
  });

  it('are all default, all enabled except .m.rule.master', () => {
    for (const kind of PUSH_RULE_KINDS) {
      for (const rule of rules[kind]) {
        assert.equal(rule.default, true, rule.rule_id);
        assert.equal(rule.enabled, rule.rule_id !== MASTER_RULE_ID, rule.rule_id);
      }
    }
  });

  it('match the spec definitions that name the user', () => {
    assert.deepEqual(findRule(rules, 'override', '.m.rule.invite_for_me'), {
      rule_id: '.m.rule.invite_for_me',
      default: true,
      enabled: true,
      conditions: [
        { kind: 'event_match', key: 'type', pattern: 'm.room.member' },
        { kind: 'event_match', key: 'content.membership', pattern: 'invite' },
        { kind: 'event_match', key: 'state_key', pattern: ALICE },
      ],
      actions: ['notify', { set_tweak: 'sound', value: 'default' }],
    });
    assert.deepEqual(findRule(rules, 'override', '.m.rule.is_user_mention')?.conditions, [
      { kind: 'event_property_contains', key: 'content.m\\.mentions.user_ids', value: ALICE },
    ]);
    assert.deepEqual(findRule(rules, 'content', '.m.rule.contains_user_name'), {
      rule_id: '.m.rule.contains_user_name',
      default: true,
      enabled: true,
      pattern: 'alice',
      actions: ['notify', { set_tweak: 'sound', value: 'default' }, { set_tweak: 'highlight' }],
    });
  });

  it('match the spec definitions of the other rules', () => {
    const table: [string, 'override' | 'underride', unknown[], unknown[]][] = [
      [MASTER_RULE_ID, 'override', [], []],
      [
        '.m.rule.is_room_mention',
        'override',
        [
          { kind: 'event_property_is', key: 'content.m\\.mentions.room', value: true },
          { kind: 'sender_notification_permission', key: 'room' },
        ],
        ['notify', { set_tweak: 'highlight' }],
      ],
      [
        '.m.rule.tombstone',
        'override',
        [
          { kind: 'event_match', key: 'type', pattern: 'm.room.tombstone' },
          { kind: 'event_match', key: 'state_key', pattern: '' },
        ],
        ['notify', { set_tweak: 'highlight' }],
      ],
      [
        '.m.rule.suppress_edits',
        'override',
        [{ kind: 'event_property_is', key: 'content.m\\.relates_to.rel_type', value: 'm.replace' }],
        [],
      ],
      [
        '.m.rule.call',
        'underride',
        [{ kind: 'event_match', key: 'type', pattern: 'm.call.invite' }],
        ['notify', { set_tweak: 'sound', value: 'ring' }],
      ],
      [
        '.m.rule.encrypted_room_one_to_one',
        'underride',
        [
          { kind: 'room_member_count', is: '2' },
          { kind: 'event_match', key: 'type', pattern: 'm.room.encrypted' },
        ],
        ['notify', { set_tweak: 'sound', value: 'default' }],
      ],
      [
        '.m.rule.message',
        'underride',
        [{ kind: 'event_match', key: 'type', pattern: 'm.room.message' }],
        ['notify'],
      ],
    ];
    for (const [ruleId, kind, conditions, actions] of table) {
      const rule = findRule(rules, kind, ruleId);
      assert.deepEqual(rule?.conditions, conditions, ruleId);
      assert.deepEqual(rule?.actions, actions, ruleId);
    }
  });

  it('as JSON, match the spec schema of GET /pushrules/', () => {
    assertMatchesSpec('pushrules.yaml', 'get', '/pushrules/', 200, {
      global: rulesetToJson(rules),
    });
  });
});

describe('push rules: actions and conditions from clients', () => {
  it('keeps notify and set_tweak objects, drops the historical actions', () => {
    assert.deepEqual(
      parseActions(['dont_notify', 'notify', 'coalesce', { set_tweak: 'sound', value: 'a' }]),
      ['notify', { set_tweak: 'sound', value: 'a' }],
    );
    assert.deepEqual(parseActions(['dont_notify']), []);
    assert.deepEqual(parseActions([]), []);
  });

  it('refuses anything else', () => {
    for (const value of [
      'notify',
      null,
      {},
      ['notify', 'beep'],
      [{ value: 'x' }],
      [{ set_tweak: 3 }],
      [3],
      [null],
      [['notify']],
    ]) {
      assert.equal(parseActions(value), null, JSON.stringify(value));
    }
  });

  it('conditions must be objects with a string kind', () => {
    assert.deepEqual(parseConditions([{ kind: 'org.example', x: 1 }]), [
      { kind: 'org.example', x: 1 },
    ]);
    for (const value of [{}, [{}], [{ kind: 1 }], ['event_match'], [null]]) {
      assert.equal(parseConditions(value), null, JSON.stringify(value));
    }
  });
});

describe('push rules: the stored rule set', () => {
  it('is the default set when nothing is stored', () => {
    assert.deepEqual(rulesetFromContent(undefined, ALICE), defaultPushRules(ALICE));
    assert.deepEqual(rulesetFromContent({}, ALICE), defaultPushRules(ALICE));
  });

  it('reads back what it wrote', () => {
    let ruleset = defaultPushRules(ALICE);
    ruleset = placed(putUserRule(ruleset, 'content', userRule('cake', 'cake*')));
    ruleset = updateRule(ruleset, 'underride', '.m.rule.message', { enabled: false })!;
    assert.deepEqual(rulesetFromContent(rulesetContent(ruleset), ALICE), ruleset);
  });

  it('takes server-default rules from the current defaults, with the user’s enabled and actions', () => {
    const content: JsonObject = {
      global: {
        override: [
          { rule_id: '.m.rule.master', default: true, enabled: true, actions: [], conditions: [] },
          { rule_id: 'mine', default: false, enabled: true, actions: ['notify'], conditions: [] },
          // A rule the spec no longer defines is dropped; a changed one keeps the user's choices.
          { rule_id: '.m.rule.gone', default: true, enabled: true, actions: [] },
          {
            rule_id: '.m.rule.reaction',
            default: true,
            enabled: false,
            actions: ['notify'],
            conditions: [{ kind: 'tampered' }],
          },
        ],
        // Malformed entries are skipped.
        content: [{ rule_id: 'nopattern', actions: [] }, 'junk'],
        underride: 'junk',
      },
    };
    const ruleset = rulesetFromContent(content, ALICE);
    const defaults = defaultPushRules(ALICE);
    assert.deepEqual(ids(ruleset, 'override'), [
      MASTER_RULE_ID,
      'mine',
      ...ids(defaults, 'override').slice(1),
    ]);
    assert.equal(ruleset.override[0]?.enabled, true);
    assert.deepEqual(findRule(ruleset, 'override', '.m.rule.reaction'), {
      ...findRule(defaults, 'override', '.m.rule.reaction'),
      enabled: false,
      actions: ['notify'],
    });
    assert.deepEqual(ruleset.content, defaults.content);
    assert.deepEqual(ruleset.underride, defaults.underride);
  });
});

describe('push rules: edits', () => {
  const base = defaultPushRules(ALICE);

  it('a new rule becomes the most important user rule, below .m.rule.master', () => {
    let ruleset = placed(putUserRule(base, 'override', userRule('a')));
    ruleset = placed(putUserRule(ruleset, 'override', userRule('b')));
    assert.deepEqual(ids(ruleset, 'override').slice(0, 4), [
      MASTER_RULE_ID,
      'b',
      'a',
      '.m.rule.suppress_notices',
    ]);
    ruleset = placed(putUserRule(ruleset, 'content', userRule('c', 'cake')));
    assert.deepEqual(ids(ruleset, 'content'), ['c', '.m.rule.contains_user_name']);
  });

  it('before and after place a rule next to a user rule; before wins', () => {
    let ruleset = base;
    for (const id of ['c', 'b', 'a']) ruleset = placed(putUserRule(ruleset, 'room', userRule(id)));
    assert.deepEqual(ids(ruleset, 'room'), ['a', 'b', 'c']);
    assert.deepEqual(
      ids(placed(putUserRule(ruleset, 'room', userRule('x'), { after: 'c' })), 'room'),
      ['a', 'b', 'c', 'x'],
    );
    assert.deepEqual(
      ids(placed(putUserRule(ruleset, 'room', userRule('x'), { before: 'b' })), 'room'),
      ['a', 'x', 'b', 'c'],
    );
    assert.deepEqual(
      ids(placed(putUserRule(ruleset, 'room', userRule('x'), { before: 'c', after: 'a' })), 'room'),
      ['a', 'b', 'x', 'c'],
    );
    // Moving an existing rule.
    assert.deepEqual(
      ids(placed(putUserRule(ruleset, 'room', userRule('a'), { after: 'c' })), 'room'),
      ['b', 'c', 'a'],
    );
  });

  it('before/after naming a missing or server-default rule is refused', () => {
    assert.deepEqual(putUserRule(base, 'override', userRule('x'), { before: 'nope' }), {
      ok: false,
      missing: 'nope',
    });
    assert.deepEqual(putUserRule(base, 'override', userRule('x'), { after: MASTER_RULE_ID }), {
      ok: false,
      missing: MASTER_RULE_ID,
    });
    const withA = placed(putUserRule(base, 'override', userRule('a')));
    assert.deepEqual(putUserRule(withA, 'override', userRule('a'), { before: 'a' }), {
      ok: false,
      missing: 'a',
    });
  });

  it('replacing a rule keeps its place and whether it is enabled', () => {
    let ruleset = base;
    for (const id of ['b', 'a']) ruleset = placed(putUserRule(ruleset, 'sender', userRule(id)));
    ruleset = updateRule(ruleset, 'sender', 'b', { enabled: false })!;
    ruleset = placed(putUserRule(ruleset, 'sender', { ...userRule('b'), actions: [] }));
    assert.deepEqual(ruleset.sender, [
      userRule('a'),
      { ...userRule('b'), actions: [], enabled: false },
    ]);
  });

  it('deletes user rules only', () => {
    const ruleset = placed(putUserRule(base, 'underride', userRule('u')));
    assert.deepEqual(deleteUserRule(ruleset, 'underride', 'u'), base);
    assert.equal(deleteUserRule(ruleset, 'underride', 'nope'), null);
    assert.equal(deleteUserRule(ruleset, 'underride', '.m.rule.message'), null);
    assert.equal(deleteUserRule(ruleset, 'override', 'u'), null);
  });

  it('updates enabled and actions of any rule, leaving the others alone', () => {
    const ruleset = updateRule(base, 'override', MASTER_RULE_ID, { enabled: true })!;
    assert.equal(ruleset.override[0]?.enabled, true);
    assert.deepEqual(ruleset.override.slice(1), base.override.slice(1));
    assert.equal(base.override[0]?.enabled, false, 'the input is not changed');
    const quiet = updateRule(base, 'underride', '.m.rule.message', { actions: [] })!;
    assert.deepEqual(findRule(quiet, 'underride', '.m.rule.message')?.actions, []);
    assert.equal(updateRule(base, 'room', '!nope:example.com', { enabled: true }), null);
  });
});
