/**
 * Synapse's registration token admin API.
 * https://element-hq.github.io/synapse/latest/usage/administration/admin_api/registration_tokens.html
 */
import { Type } from 'typebox';
import type { RegistrationTokenRow } from '../../services/admin/index.js';
import type { RoutePlugin } from '../client/plugin.js';

const TOKENS = '/_synapse/admin/v1/registration_tokens';
const TokenParams = Type.Object({ token: Type.String({ minLength: 1, maxLength: 64 }) });
/** A count of uses or a time in ms; null: unlimited / never. */
const NullableCount = Type.Optional(Type.Union([Type.Integer({ minimum: 0 }), Type.Null()]));

const tokenJson = (row: RegistrationTokenRow) => ({
  token: row.token,
  uses_allowed: row.usesAllowed,
  pending: row.pending,
  completed: row.completed,
  expiry_time: row.expiryTime,
});

export const adminRegistrationTokenRoutes: RoutePlugin = async (app, { services }) => {
  const tokens = services.admin.registrationTokens;
  const auth = { auth: 'required' } as const;

  app.get(
    TOKENS,
    {
      config: auth,
      schema: {
        querystring: Type.Object({
          // matrix-bot-sdk sends `valid=` when it means neither: taken as absent.
          valid: Type.Optional(
            Type.Union([Type.Literal('true'), Type.Literal('false'), Type.Literal('')]),
          ),
        }),
      },
    },
    async (request) => {
      const valid = request.query.valid;
      return {
        registration_tokens: (
          await tokens.list(valid === 'true' ? true : valid === 'false' ? false : undefined)
        ).map(tokenJson),
      };
    },
  );

  // Before /:token, which would take "new" as a token for GET (Synapse likewise).
  app.post(
    `${TOKENS}/new`,
    {
      config: auth,
      schema: {
        body: Type.Optional(
          Type.Object({
            token: Type.Optional(Type.String({ maxLength: 64 })),
            uses_allowed: NullableCount,
            expiry_time: NullableCount,
            length: Type.Optional(Type.Integer({ minimum: 1, maximum: 64 })),
          }),
        ),
      },
    },
    async (request) => {
      const body = request.body ?? {};
      return tokenJson(
        await tokens.create({
          token: body.token,
          usesAllowed: body.uses_allowed,
          expiryTime: body.expiry_time,
          length: body.length,
        }),
      );
    },
  );

  app.get(`${TOKENS}/:token`, { config: auth, schema: { params: TokenParams } }, async (request) =>
    tokenJson(await tokens.get(request.params.token)),
  );

  app.put(
    `${TOKENS}/:token`,
    {
      config: auth,
      schema: {
        params: TokenParams,
        body: Type.Object({ uses_allowed: NullableCount, expiry_time: NullableCount }),
      },
    },
    async (request) =>
      tokenJson(
        await tokens.update(request.params.token, {
          usesAllowed: request.body.uses_allowed,
          expiryTime: request.body.expiry_time,
        }),
      ),
  );

  app.delete(
    `${TOKENS}/:token`,
    { config: auth, schema: { params: TokenParams } },
    async (request) => {
      await tokens.delete(request.params.token);
      return {};
    },
  );
};
