import { Type } from 'typebox';
import type { RoutePlugin } from './plugin.js';

// https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv1registermloginregistration_tokenvalidity
export const registrationTokenValidityRoutes: RoutePlugin = async (app, { services }) => {
  app.get(
    '/_matrix/client/v1/register/m.login.registration_token/validity',
    {
      config: { rateLimit: 'registration' },
      schema: { querystring: Type.Object({ token: Type.String({ maxLength: 64 }) }) },
    },
    async (request) => ({
      valid: await services.admin.registrationTokens.validForRegistration(request.query.token),
    }),
  );
};
