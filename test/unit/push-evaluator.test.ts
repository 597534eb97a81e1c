import assert from 'node:assert/strict';
import { it } from 'node:test';
import {
  evaluatePushRules,
  type PushContext,
  type PushEvent,
} from '../../src/core/push-evaluator.js';
import { defaultPushRules, type PushRuleset } from '../../src/core/push-rules.js';

const me = '@bob:example.org';
const ctx: PushContext = {
  userId: me,
  displayName: 'Bobby Tables',
  memberCount: 3,
  senderPowerLevel: 0,
  notificationLevels: {},
};
const message = (content: Record<string, unknown>, extra: Partial<PushEvent> = {}): PushEvent => ({
  type: 'm.room.message',
  sender: '@alice:example.org',
  room_id: '!r:example.org',
  content: { msgtype: 'm.text', ...content },
  ...extra,
});
const outcome = (event: PushEvent, rules: PushRuleset = defaultPushRules(me), c = ctx) => {
  const { notify, highlight } = evaluatePushRules(rules, event, c);
  return { notify, highlight };
};

it('applies the server-default rules as the spec describes them', () => {
  const cases: [
    string,
    PushEvent,
    Partial<PushContext>,
    { notify: boolean; highlight: boolean },
  ][] = [
    ['a plain message', message({ body: 'hello' }), {}, { notify: true, highlight: false }],
    [
      'a notice',
      message({ msgtype: 'm.notice', body: 'bob' }),
      {},
      { notify: false, highlight: false },
    ],
    [
      'the localpart as a word',
      message({ body: 'hey BOB!' }),
      {},
      { notify: true, highlight: true },
    ],
    [
      'the localpart inside a word',
      message({ body: 'bobsled' }),
      {},
      { notify: true, highlight: false },
    ],
    [
      'the display name',
      message({ body: 'ping bobby tables.' }),
      {},
      { notify: true, highlight: true },
    ],
    [
      'm.mentions',
      message({ body: 'x', 'm.mentions': { user_ids: [me] } }),
      {},
      { notify: true, highlight: true },
    ],
    [
      '@room without permission',
      message({ body: '@room hi' }),
      {},
      { notify: true, highlight: false },
    ],
    [
      '@room with permission',
      message({ body: '@room hi' }),
      { senderPowerLevel: 50 },
      { notify: true, highlight: true },
    ],
    [
      'a raised room level',
      message({ body: '@room hi' }),
      { senderPowerLevel: 50, notificationLevels: { room: 60 } },
      { notify: true, highlight: false },
    ],
    [
      'an edit',
      message({ body: '* bob', 'm.relates_to': { rel_type: 'm.replace', event_id: '$e' } }),
      {},
      { notify: false, highlight: false },
    ],
    ['a reaction', { ...message({}), type: 'm.reaction' }, {}, { notify: false, highlight: false }],
    [
      'a member event',
      { ...message({ membership: 'join' }), type: 'm.room.member', state_key: '@c:x' },
      {},
      { notify: false, highlight: false },
    ],
    [
      'an invite for me',
      { ...message({ membership: 'invite' }), type: 'm.room.member', state_key: me },
      {},
      { notify: true, highlight: false },
    ],
    [
      'an unknown event type',
      { ...message({}), type: 'org.example' },
      {},
      { notify: false, highlight: false },
    ],
    [
      'a one-to-one message',
      message({ body: 'hi' }),
      { memberCount: 2 },
      { notify: true, highlight: false },
    ],
  ];
  for (const [name, event, extra, expected] of cases)
    assert.deepEqual(outcome(event, defaultPushRules(me), { ...ctx, ...extra }), expected, name);
});

it('honours user rules, disabled rules, the master rule and unknown conditions', () => {
  const rules = defaultPushRules(me);
  const muted: PushRuleset = {
    ...rules,
    room: [{ rule_id: '!r:example.org', default: false, enabled: true, actions: [] }],
  };
  assert.deepEqual(outcome(message({ body: 'hello' }), muted), { notify: false, highlight: false });
  const master: PushRuleset = {
    ...rules,
    override: rules.override.map((r) =>
      r.rule_id === '.m.rule.master' ? { ...r, enabled: true } : r,
    ),
  };
  assert.deepEqual(outcome(message({ body: 'bob' }), master), { notify: false, highlight: false });
  const odd: PushRuleset = {
    ...rules,
    override: [
      {
        rule_id: 'x',
        default: false,
        enabled: true,
        conditions: [{ kind: 'org.unknown' }],
        actions: ['notify'],
      },
    ],
    underride: [],
  };
  assert.deepEqual(outcome(message({ body: 'hello' }), odd), { notify: false, highlight: false });
  const glob: PushRuleset = {
    ...rules,
    override: [
      {
        rule_id: 'g',
        default: false,
        enabled: true,
        conditions: [{ kind: 'event_match', key: 'content.msgtype', pattern: 'm.t?x*' }],
        actions: ['notify', { set_tweak: 'highlight' }],
      },
    ],
  };
  assert.deepEqual(outcome(message({ body: 'hello' }), glob), { notify: true, highlight: true });
  const counted: PushRuleset = {
    ...rules,
    override: [
      {
        rule_id: 'c',
        default: false,
        enabled: true,
        conditions: [{ kind: 'room_member_count', is: '>=3' }],
        actions: [],
      },
    ],
  };
  assert.deepEqual(outcome(message({ body: 'hello' }), counted), {
    notify: false,
    highlight: false,
  });
  assert.deepEqual(outcome(message({ body: 'hello' }), counted, { ...ctx, memberCount: 2 }), {
    notify: true,
    highlight: false,
  });
});
