import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { registerUser, type TestUser } from '../helpers/client.js';
import { assertMatchesSpec } from '../helpers/spec-contract.js';
import { expectError, uniqueName, type SpecOperation } from '../helpers/assertions.js';
import { defaultPushRules, rulesetToJson } from '../../src/core/push-rules.js';

const V3 = '/_matrix/client/v3';
const SPEC = 'pushrules.yaml';
const RULE = '/pushrules/global/{kind}/{ruleId}';
const spec = (method: string, path: string): SpecOperation => ({ file: SPEC, method, path });

interface Rule {
  rule_id: string;
  default: boolean;
  enabled: boolean;
  actions: unknown[];
  conditions?: unknown[];
  pattern?: string;
}
type Ruleset = Record<'override' | 'content' | 'room' | 'sender' | 'underride', Rule[]>;

forEachDatabase('push rules', (dialect) => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer(dialect);
  });
  after(async () => server.close());

  const e = encodeURIComponent;
  const rulePath = (kind: string, ruleId: string, suffix = '') =>
    `${V3}/pushrules/global/${kind}/${e(ruleId)}${suffix}`;
  const newUser = () => registerUser(server, uniqueName('pusher'));

  async function ruleset(user: TestUser): Promise<Ruleset> {
    const response = await server.request<{ global: Ruleset }>('GET', `${V3}/pushrules/`, {
      token: user.accessToken,
    });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assertMatchesSpec(SPEC, 'get', '/pushrules/', 200, response.body);
    return response.body.global;
  }
  const ids = (rules: Rule[]) => rules.map((r) => r.rule_id);

  async function putRule(
    user: TestUser,
    kind: string,
    ruleId: string,
    body: unknown,
    query = '',
  ): Promise<void> {
    const response = await server.request('PUT', `${rulePath(kind, ruleId)}${query}`, {
      token: user.accessToken,
      body,
    });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assertMatchesSpec(SPEC, 'put', RULE, 200, response.body);
    assert.deepEqual(response.body, {});
  }

  async function getRule(user: TestUser, kind: string, ruleId: string): Promise<Rule> {
    const response = await server.request<Rule>('GET', rulePath(kind, ruleId), {
      token: user.accessToken,
    });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assertMatchesSpec(SPEC, 'get', RULE, 200, response.body);
    return response.body;
  }

  it('GET /pushrules/ (and without the slash, and on r0): the default rules of the user', async () => {
    const user = await newUser();
    const expected = rulesetToJson(defaultPushRules(user.userId));
    assert.deepEqual(await ruleset(user), expected);
    for (const path of [
      `${V3}/pushrules`,
      '/_matrix/client/r0/pushrules/',
      '/_matrix/client/r0/pushrules',
    ]) {
      const response = await server.request('GET', path, { token: user.accessToken });
      assert.equal(response.status, 200, `${path}: ${JSON.stringify(response.body)}`);
      assert.deepEqual(response.body, { global: expected }, path);
    }
    for (const path of [`${V3}/pushrules/global/`, `${V3}/pushrules/global`]) {
      const response = await server.request('GET', path, { token: user.accessToken });
      assert.equal(response.status, 200, JSON.stringify(response.body));
      assertMatchesSpec(SPEC, 'get', '/pushrules/global/', 200, response.body);
      assert.deepEqual(response.body, expected, path);
    }
  });

  it('GET one server-default rule, its enabled and its actions', async () => {
    const user = await newUser();
    const rule = await getRule(user, 'override', '.m.rule.master');
    assert.deepEqual(rule, {
      rule_id: '.m.rule.master',
      default: true,
      enabled: false,
      conditions: [],
      actions: [],
    });
    const enabled = await server.request(
      'GET',
      rulePath('underride', '.m.rule.message', '/enabled'),
      {
        token: user.accessToken,
      },
    );
    assert.equal(enabled.status, 200);
    assertMatchesSpec(SPEC, 'get', `${RULE}/enabled`, 200, enabled.body);
    assert.deepEqual(enabled.body, { enabled: true });
    const actions = await server.request('GET', rulePath('underride', '.m.rule.call', '/actions'), {
      token: user.accessToken,
    });
    assert.equal(actions.status, 200);
    assertMatchesSpec(SPEC, 'get', `${RULE}/actions`, 200, actions.body);
    assert.deepEqual(actions.body, {
      actions: ['notify', { set_tweak: 'sound', value: 'ring' }],
    });
  });

  it('PUT a content rule: created enabled, most important of its kind, readable back', async () => {
    const user = await newUser();
    await putRule(user, 'content', 'nocake', { pattern: 'cake*lie', actions: ['notify'] });
    assert.deepEqual(await getRule(user, 'content', 'nocake'), {
      rule_id: 'nocake',
      default: false,
      enabled: true,
      pattern: 'cake*lie',
      actions: ['notify'],
    });
    assert.deepEqual(ids((await ruleset(user)).content), ['nocake', '.m.rule.contains_user_name']);
  });

  it('PUT rules of every kind, each with the fields of its kind only', async () => {
    const user = await newUser();
    const conditions = [
      { kind: 'event_match', key: 'content.body', pattern: 'beer' },
      { kind: 'room_member_count', is: '<=10' },
    ];
    const actions = ['notify', { set_tweak: 'sound', value: 'beeroclock.wav' }];
    await putRule(user, 'override', 'beer', { conditions, actions, pattern: 'ignored' });
    await putRule(user, 'underride', 'always', { actions: ['notify'] });
    await putRule(user, 'room', '!dj234r78wl45Gh4D:matrix.org', { actions: [] });
    await putRule(user, 'sender', '@spambot:matrix.org', { actions: [], conditions });
    const rules = await ruleset(user);
    assert.deepEqual(rules.override[1], {
      rule_id: 'beer',
      default: false,
      enabled: true,
      conditions,
      actions,
    });
    assert.deepEqual(ids(rules.override).slice(0, 3), [
      '.m.rule.master',
      'beer',
      '.m.rule.suppress_notices',
    ]);
    assert.deepEqual(rules.underride[0], {
      rule_id: 'always',
      default: false,
      enabled: true,
      conditions: [],
      actions: ['notify'],
    });
    assert.deepEqual(rules.room, [
      { rule_id: '!dj234r78wl45Gh4D:matrix.org', default: false, enabled: true, actions: [] },
    ]);
    assert.deepEqual(rules.sender, [
      { rule_id: '@spambot:matrix.org', default: false, enabled: true, actions: [] },
    ]);
  });

  it('PUT with before/after places the rule; before wins over after', async () => {
    const user = await newUser();
    for (const id of ['c', 'b', 'a']) await putRule(user, 'override', id, { actions: [] });
    const userIds = async () =>
      ids((await ruleset(user)).override).filter((id) => !id.startsWith('.'));
    assert.deepEqual(await userIds(), ['a', 'b', 'c']);
    await putRule(user, 'override', 'x', { actions: [] }, '?after=c');
    assert.deepEqual(await userIds(), ['a', 'b', 'c', 'x']);
    await putRule(user, 'override', 'y', { actions: [] }, '?before=b');
    assert.deepEqual(await userIds(), ['a', 'y', 'b', 'c', 'x']);
    await putRule(user, 'override', 'z', { actions: [] }, '?before=c&after=a');
    assert.deepEqual(await userIds(), ['a', 'y', 'b', 'z', 'c', 'x']);
    // An existing rule moves when told where, and stays put otherwise.
    await putRule(user, 'override', 'a', { actions: ['notify'] }, '?after=x');
    await putRule(user, 'override', 'c', { actions: ['notify'] });
    assert.deepEqual(await userIds(), ['y', 'b', 'z', 'c', 'x', 'a']);
  });

  it('PUT before/after a missing or server-default rule: 400, nothing added', async () => {
    const user = await newUser();
    await putRule(user, 'override', 'mine', { actions: [] });
    for (const query of [
      '?before=nope',
      '?after=nope',
      '?after=.m.rule.master',
      '?before=.m.rule.suppress_notices',
    ]) {
      const response = await server.request('PUT', `${rulePath('override', 'new')}${query}`, {
        token: user.accessToken,
        body: { actions: [] },
      });
      expectError(response, 400, 'M_UNKNOWN', spec('put', RULE));
    }
    expectError(
      await server.request('GET', rulePath('override', 'new'), { token: user.accessToken }),
      404,
      'M_NOT_FOUND',
    );
  });

  it('PUT over an existing rule replaces it and keeps it disabled if it was', async () => {
    const user = await newUser();
    await putRule(user, 'content', 'tea', { pattern: 'tea', actions: ['notify'] });
    const disable = await server.request('PUT', rulePath('content', 'tea', '/enabled'), {
      token: user.accessToken,
      body: { enabled: false },
    });
    assert.equal(disable.status, 200, JSON.stringify(disable.body));
    assertMatchesSpec(SPEC, 'put', `${RULE}/enabled`, 200, disable.body);
    await putRule(user, 'content', 'tea', { pattern: 'time', actions: [] });
    assert.deepEqual(await getRule(user, 'content', 'tea'), {
      rule_id: 'tea',
      default: false,
      enabled: false,
      pattern: 'time',
      actions: [],
    });
  });

  it('the historical dont_notify and coalesce actions are dropped', async () => {
    const user = await newUser();
    await putRule(user, 'room', '!quiet:example.org', { actions: ['dont_notify'] });
    assert.deepEqual((await getRule(user, 'room', '!quiet:example.org')).actions, []);
    const response = await server.request(
      'PUT',
      rulePath('underride', '.m.rule.message', '/actions'),
      { token: user.accessToken, body: { actions: ['notify', 'coalesce'] } },
    );
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assert.deepEqual((await getRule(user, 'underride', '.m.rule.message')).actions, ['notify']);
  });

  const badRuleIds: [string, string, string][] = [
    ['override', '.m.rule.mine', 'a leading dot (reserved for server-default rules)'],
    ['override', '.m.rule.master', 'a server-default rule ID'],
    ['content', 'a/b', 'a slash'],
    ['content', 'a\\b', 'a backslash'],
    ['room', 'not-a-room', 'a room rule whose ID is not a room ID'],
    ['sender', '!room:example.org', 'a sender rule whose ID is not a user ID'],
  ];
  for (const [kind, ruleId, what] of badRuleIds) {
    it(`PUT a rule with ${what}: 400 M_INVALID_PARAM`, async () => {
      const user = await newUser();
      const response = await server.request('PUT', rulePath(kind, ruleId), {
        token: user.accessToken,
        body: { actions: ['notify'], pattern: 'x' },
      });
      expectError(response, 400, 'M_INVALID_PARAM', spec('put', RULE));
      assert.deepEqual(await ruleset(user), rulesetToJson(defaultPushRules(user.userId)));
    });
  }

  const badBodies: [string, string, unknown][] = [
    ['no actions', 'override', { conditions: [] }],
    ['actions not an array', 'override', { actions: 'notify' }],
    ['an unknown action', 'override', { actions: ['beep'] }],
    ['an action object without set_tweak', 'override', { actions: [{ value: 1 }] }],
    ['conditions not an array', 'override', { actions: [], conditions: {} }],
    ['a condition without kind', 'underride', { actions: [], conditions: [{ key: 'type' }] }],
    ['a content rule without pattern', 'content', { actions: ['notify'] }],
    ['a content rule with an empty pattern', 'content', { actions: [], pattern: '' }],
    ['a pattern that is not a string', 'content', { actions: [], pattern: 7 }],
    ['an array body', 'override', [1]],
  ];
  for (const [what, kind, body] of badBodies) {
    it(`PUT a rule with ${what}: 400 M_BAD_JSON`, async () => {
      const user = await newUser();
      expectError(
        await server.request('PUT', rulePath(kind, 'r1'), { token: user.accessToken, body }),
        400,
        'M_BAD_JSON',
        spec('put', RULE),
      );
      expectError(
        await server.request('GET', rulePath(kind, 'r1'), { token: user.accessToken }),
        404,
        'M_NOT_FOUND',
      );
    });
  }

  it('PUT with a body that is not JSON: 400 M_NOT_JSON', async () => {
    const user = await newUser();
    for (const path of [
      rulePath('override', 'r1'),
      rulePath('override', '.m.rule.master', '/enabled'),
      rulePath('override', '.m.rule.master', '/actions'),
    ]) {
      expectError(
        await server.request('PUT', path, { token: user.accessToken, rawBody: '{nope' }),
        400,
        'M_NOT_JSON',
      );
    }
  });

  it('PUT enabled or actions with a malformed body: 400 M_BAD_JSON', async () => {
    const user = await newUser();
    for (const body of [{}, { enabled: 'true' }, { enabled: 1 }]) {
      expectError(
        await server.request('PUT', rulePath('override', '.m.rule.master', '/enabled'), {
          token: user.accessToken,
          body,
        }),
        400,
        'M_BAD_JSON',
      );
    }
    for (const body of [{}, { actions: 'notify' }, { actions: ['beep'] }]) {
      expectError(
        await server.request('PUT', rulePath('override', '.m.rule.master', '/actions'), {
          token: user.accessToken,
          body,
        }),
        400,
        'M_BAD_JSON',
      );
    }
    assert.deepEqual(await getRule(user, 'override', '.m.rule.master'), {
      rule_id: '.m.rule.master',
      default: true,
      enabled: false,
      conditions: [],
      actions: [],
    });
  });

  it('an unknown kind: 400 M_INVALID_PARAM on every endpoint', async () => {
    const user = await newUser();
    const requests: [string, string, unknown][] = [
      ['GET', rulePath('global', 'x'), undefined],
      ['PUT', rulePath('device', 'x'), { actions: [] }],
      ['DELETE', rulePath('Override', 'x'), undefined],
      ['GET', rulePath('nope', 'x', '/enabled'), undefined],
      ['PUT', rulePath('nope', 'x', '/enabled'), { enabled: true }],
      ['GET', rulePath('nope', 'x', '/actions'), undefined],
      ['PUT', rulePath('nope', 'x', '/actions'), { actions: [] }],
    ];
    for (const [method, path, body] of requests) {
      expectError(
        await server.request(method, path, { token: user.accessToken, body }),
        400,
        'M_INVALID_PARAM',
      );
    }
  });

  it('an unknown rule: 404 M_NOT_FOUND on GET, DELETE, enabled and actions', async () => {
    const user = await newUser();
    await putRule(user, 'room', '!r:example.org', { actions: [] });
    // A rule of one kind is not found under another.
    for (const [kind, ruleId] of [
      ['override', 'nope'],
      ['override', '!r:example.org'],
      ['override', '.m.rule.message'],
    ] as const) {
      const checks: [string, string, unknown, string][] = [
        ['GET', rulePath(kind, ruleId), undefined, RULE],
        ['GET', rulePath(kind, ruleId, '/enabled'), undefined, `${RULE}/enabled`],
        ['PUT', rulePath(kind, ruleId, '/enabled'), { enabled: true }, `${RULE}/enabled`],
        ['GET', rulePath(kind, ruleId, '/actions'), undefined, `${RULE}/actions`],
        ['PUT', rulePath(kind, ruleId, '/actions'), { actions: [] }, `${RULE}/actions`],
      ];
      if (!ruleId.startsWith('.')) checks.push(['DELETE', rulePath(kind, ruleId), undefined, RULE]);
      for (const [method, path, body, template] of checks) {
        expectError(
          await server.request(method, path, { token: user.accessToken, body }),
          404,
          'M_NOT_FOUND',
          spec(method.toLowerCase(), template),
        );
      }
    }
  });

  it('DELETE a user rule: 200 {}, then it is gone', async () => {
    const user = await newUser();
    await putRule(user, 'sender', '@noisy:example.org', { actions: [] });
    const response = await server.request('DELETE', rulePath('sender', '@noisy:example.org'), {
      token: user.accessToken,
    });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assertMatchesSpec(SPEC, 'delete', RULE, 200, response.body);
    assert.deepEqual(response.body, {});
    assert.deepEqual((await ruleset(user)).sender, []);
    expectError(
      await server.request('DELETE', rulePath('sender', '@noisy:example.org'), {
        token: user.accessToken,
      }),
      404,
      'M_NOT_FOUND',
      spec('delete', RULE),
    );
  });

  it('DELETE a server-default rule: 400 M_INVALID_PARAM, it stays', async () => {
    const user = await newUser();
    expectError(
      await server.request('DELETE', rulePath('underride', '.m.rule.message'), {
        token: user.accessToken,
      }),
      400,
      'M_INVALID_PARAM',
    );
    assert.ok(ids((await ruleset(user)).underride).includes('.m.rule.message'));
  });

  it('enabled and actions of server-default rules can be changed; they stay default', async () => {
    const user = await newUser();
    const enable = await server.request('PUT', rulePath('override', '.m.rule.master', '/enabled'), {
      token: user.accessToken,
      body: { enabled: true },
    });
    assert.equal(enable.status, 200, JSON.stringify(enable.body));
    assert.deepEqual(enable.body, {});
    const actions = [{ set_tweak: 'sound', value: 'bing' }, 'notify'];
    const setActions = await server.request(
      'PUT',
      rulePath('content', '.m.rule.contains_user_name', '/actions'),
      { token: user.accessToken, body: { actions } },
    );
    assert.equal(setActions.status, 200, JSON.stringify(setActions.body));
    assertMatchesSpec(SPEC, 'put', `${RULE}/actions`, 200, setActions.body);

    const enabled = await server.request(
      'GET',
      rulePath('override', '.m.rule.master', '/enabled'),
      {
        token: user.accessToken,
      },
    );
    assert.deepEqual(enabled.body, { enabled: true });
    const read = await server.request(
      'GET',
      rulePath('content', '.m.rule.contains_user_name', '/actions'),
      { token: user.accessToken },
    );
    assert.deepEqual(read.body, { actions });

    const expected = rulesetToJson(defaultPushRules(user.userId)) as unknown as Ruleset;
    expected.override[0] = { ...expected.override[0]!, enabled: true };
    expected.content[0] = { ...expected.content[0]!, actions };
    assert.deepEqual(await ruleset(user), expected);
  });

  it("one user's rules do not touch another's", async () => {
    const alice = await newUser();
    const bob = await newUser();
    await putRule(alice, 'override', 'alices', { actions: [] });
    await server.request('PUT', rulePath('underride', '.m.rule.message', '/enabled'), {
      token: alice.accessToken,
      body: { enabled: false },
    });
    assert.deepEqual(await ruleset(bob), rulesetToJson(defaultPushRules(bob.userId)));
  });

  it('concurrent changes are all kept', async () => {
    const user = await newUser();
    const names = Array.from({ length: 12 }, (_, i) => `rule${i}`);
    const responses = await Promise.all([
      ...names.map((name) =>
        server.request('PUT', rulePath('override', name), {
          token: user.accessToken,
          body: { actions: ['notify'] },
        }),
      ),
      server.request('PUT', rulePath('override', '.m.rule.master', '/enabled'), {
        token: user.accessToken,
        body: { enabled: true },
      }),
    ]);
    for (const response of responses) assert.equal(response.status, 200);
    const rules = await ruleset(user);
    assert.deepEqual(
      ids(rules.override)
        .filter((id) => id.startsWith('rule'))
        .sort(),
      [...names].sort(),
    );
    assert.equal(rules.override[0]?.enabled, true);
  });

  it('changes reach /sync and GET account_data as m.push_rules', async () => {
    const user = await newUser();
    const initial = await server.request<{ next_batch: string }>('GET', `${V3}/sync`, {
      token: user.accessToken,
    });
    assert.equal(initial.status, 200, JSON.stringify(initial.body));
    await putRule(user, 'room', '!muted:example.org', { actions: [] });
    const next = await server.request<{
      account_data?: { events: { type: string; content: { global: Ruleset } }[] };
    }>('GET', `${V3}/sync?since=${e(initial.body.next_batch)}&timeout=0`, {
      token: user.accessToken,
    });
    assert.equal(next.status, 200, JSON.stringify(next.body));
    const events = next.body.account_data?.events ?? [];
    assert.deepEqual(
      events.map((ev) => ev.type),
      ['m.push_rules'],
    );
    assert.deepEqual(events[0]?.content.global, await ruleset(user));
    const stored = await server.request<{ global: Ruleset }>(
      'GET',
      `${V3}/user/${e(user.userId)}/account_data/m.push_rules`,
      { token: user.accessToken },
    );
    assert.deepEqual(stored.body.global.room, [
      { rule_id: '!muted:example.org', default: false, enabled: true, actions: [] },
    ]);
  });

  it('without a token: 401 M_MISSING_TOKEN; with a bad one: 401 M_UNKNOWN_TOKEN', async () => {
    const requests: [string, string, unknown][] = [
      ['GET', `${V3}/pushrules/`, undefined],
      ['GET', `${V3}/pushrules`, undefined],
      ['GET', `${V3}/pushrules/global/`, undefined],
      ['GET', rulePath('override', '.m.rule.master'), undefined],
      ['PUT', rulePath('override', 'x'), { actions: [] }],
      ['DELETE', rulePath('override', 'x'), undefined],
      ['GET', rulePath('override', '.m.rule.master', '/enabled'), undefined],
      ['PUT', rulePath('override', '.m.rule.master', '/enabled'), { enabled: true }],
      ['GET', rulePath('override', '.m.rule.master', '/actions'), undefined],
      ['PUT', rulePath('override', '.m.rule.master', '/actions'), { actions: [] }],
    ];
    for (const [method, path, body] of requests) {
      expectError(await server.request(method, path, { body }), 401, 'M_MISSING_TOKEN');
      expectError(
        await server.request(method, path, { body, token: 'mct_bogus' }),
        401,
        'M_UNKNOWN_TOKEN',
      );
    }
  });
});
