import { Type } from 'typebox';
import { PUSH_RULE_KINDS, ruleToJson, rulesetToJson } from '../../core/push-rules.js';
import { requesterOf } from '../../http/request-context.js';
import type { RoutePlugin } from './plugin.js';

const MAX_ITEMS = 100;
const RuleParams = Type.Object({
  kind: Type.Union(PUSH_RULE_KINDS.map((kind) => Type.Literal(kind))),
  ruleId: Type.String({ minLength: 1, maxLength: 255 }),
});
const Actions = Type.Array(Type.Unknown(), { maxItems: MAX_ITEMS });
const PutRuleBody = Type.Object({
  actions: Actions,
  conditions: Type.Optional(Type.Array(Type.Unknown(), { maxItems: MAX_ITEMS })),
  pattern: Type.Optional(Type.String({ maxLength: 1000 })),
});
const Placement = Type.Object({
  before: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
  after: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
});

// https://spec.matrix.org/v1.19/client-server-api/#push-rules-api
export const pushRuleRoutes: RoutePlugin = async (app, { services }) => {
  const { pushRules } = services;
  const auth = { auth: 'required' } as const;

  // The spec's path ends in a slash (clients send it so); the bare path is answered too.
  for (const path of ['/pushrules/', '/pushrules']) {
    app.get(path, { config: auth }, async (request) => ({
      global: rulesetToJson(await pushRules.getAll(requesterOf(request))),
    }));
  }
  for (const path of ['/pushrules/global/', '/pushrules/global']) {
    app.get(path, { config: auth }, async (request) =>
      rulesetToJson(await pushRules.getAll(requesterOf(request))),
    );
  }

  app.get(
    '/pushrules/global/:kind/:ruleId',
    { config: auth, schema: { params: RuleParams } },
    async (request) =>
      ruleToJson(
        await pushRules.get(requesterOf(request), request.params.kind, request.params.ruleId),
      ),
  );

  app.put(
    '/pushrules/global/:kind/:ruleId',
    { config: auth, schema: { params: RuleParams, querystring: Placement, body: PutRuleBody } },
    async (request) => {
      const { before, after } = request.query;
      await pushRules.put(
        requesterOf(request),
        request.params.kind,
        request.params.ruleId,
        request.body,
        { before, after },
      );
      return {};
    },
  );

  app.delete(
    '/pushrules/global/:kind/:ruleId',
    { config: auth, schema: { params: RuleParams } },
    async (request) => {
      await pushRules.delete(requesterOf(request), request.params.kind, request.params.ruleId);
      return {};
    },
  );

  app.get(
    '/pushrules/global/:kind/:ruleId/enabled',
    { config: auth, schema: { params: RuleParams } },
    async (request) => ({
      enabled: await pushRules.isEnabled(
        requesterOf(request),
        request.params.kind,
        request.params.ruleId,
      ),
    }),
  );

  app.put(
    '/pushrules/global/:kind/:ruleId/enabled',
    {
      config: auth,
      schema: { params: RuleParams, body: Type.Object({ enabled: Type.Boolean() }) },
    },
    async (request) => {
      await pushRules.setEnabled(
        requesterOf(request),
        request.params.kind,
        request.params.ruleId,
        request.body.enabled,
      );
      return {};
    },
  );

  app.get(
    '/pushrules/global/:kind/:ruleId/actions',
    { config: auth, schema: { params: RuleParams } },
    async (request) => ({
      actions: await pushRules.getActions(
        requesterOf(request),
        request.params.kind,
        request.params.ruleId,
      ),
    }),
  );

  app.put(
    '/pushrules/global/:kind/:ruleId/actions',
    { config: auth, schema: { params: RuleParams, body: Type.Object({ actions: Actions }) } },
    async (request) => {
      await pushRules.setActions(
        requesterOf(request),
        request.params.kind,
        request.params.ruleId,
        request.body.actions,
      );
      return {};
    },
  );
};
