import type { RoutePlugin } from './plugin.js';

// https://spec.matrix.org/v1.19/client-server-api/#voice-over-ip
export const serverInfoRoutes: RoutePlugin = async (app) => {
  const auth = { auth: 'required' } as const;

  // No TURN server is configured: an empty object, which clients read as "no TURN".
  app.get('/voip/turnServer', { config: auth }, async () => ({}));
  // Third-party lookups (`/thirdparty/*`) are the application services': src/api/appservice.
};
