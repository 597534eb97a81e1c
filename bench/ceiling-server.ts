/**
 * The ceiling: a bare node:http server answering each fixture path with the exact status,
 * Content-Type and body bytes Commons answered, and nothing else (no routing framework, no
 * auth, no database). Measured exactly as Commons is, it shows what the machine, Node.js
 * and the load generator allow. Usage: node --import tsx bench/ceiling-server.ts <fixtures.json>
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

interface Fixture {
  path: string;
  status: number;
  contentType: string;
  body: string;
}

const file = process.argv[2];
if (!file) {
  process.stderr.write('usage: ceiling-server.ts <fixtures.json>\n');
  process.exit(2);
}
const fixtures = JSON.parse(readFileSync(file, 'utf8')) as Fixture[];
const responses = new Map(
  fixtures.map((f) => {
    const body = Buffer.from(f.body, 'base64');
    const headers = { 'Content-Type': f.contentType, 'Content-Length': String(body.length) };
    return [f.path, { status: f.status, headers, body }] as const;
  }),
);
const notFound = Buffer.from('{"errcode":"M_UNRECOGNIZED","error":"Unrecognized request"}');

const server = createServer((req, res) => {
  const found = responses.get(req.url ?? '');
  if (found) {
    res.writeHead(found.status, found.headers);
    res.end(found.body);
  } else {
    res.writeHead(404, { 'Content-Type': 'application/json' });
    res.end(notFound);
  }
});
server.keepAliveTimeout = 72_000;
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  process.stdout.write(`listening on ${port}\n`);
});
process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
