/**
 * What a person or a load balancer finds at the server's root: `GET /`, a small page saying
 * what this server is, and `GET /health`, 200 while the database answers.
 */
import type { RoutePlugin } from './client/plugin.js';
import { VERSION } from '../version.js';

const escapeHtml = (text: string): string =>
  text.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c,
  );

export function rootPage(serverName: string, version: string): string {
  const name = escapeHtml(serverName);
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${name} — Matrix homeserver</title>
<style>body{font-family:system-ui,sans-serif;max-width:40em;margin:3em auto;padding:0 1em;line-height:1.5;color:#222}code{background:#f2f2f2;padding:0 .2em}</style>
</head>
<body>
<h1>${name}</h1>
<p>This is a <a href="https://matrix.org/">Matrix</a> homeserver (Commons ${escapeHtml(version)}).
There is nothing to see here with a browser: use a Matrix client, such as
<a href="https://matrix.org/ecosystem/clients/">one of these</a>, and give it this server's address.
User IDs here end in <code>:${name}</code>.</p>
<p>For clients and tools: <a href="/_matrix/client/versions">/_matrix/client/versions</a>
(the <a href="https://spec.matrix.org/latest/client-server-api/">Client-Server API</a> versions
served), <a href="/health">/health</a>.</p>
</body>
</html>
`;
}

export const rootRoutes: RoutePlugin = async (app, { services, config }) => {
  const page = rootPage(config.server_name, VERSION);
  app.get('/', { config: { rateLimit: false } }, async (_request, reply) =>
    reply.type('text/html; charset=utf-8').send(page),
  );

  app.get('/health', { config: { rateLimit: false } }, async (request, reply) => {
    const problem = await services.health.databaseProblem();
    if (problem === null) return { status: 'ok' };
    request.log.warn({ problem }, 'health check failed');
    return reply.code(503).send({ status: 'unavailable', error: problem });
  });
};
