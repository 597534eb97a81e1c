/**
 * Federation test set-up: a certificate authority made for the test (openssl CLI) with a
 * certificate for 127.0.0.1, and Commons servers named by IP literal (`127.0.0.1:PORT`, which
 * needs no DNS) with their TLS federation listener on that port.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type pino from 'pino';
import { freePort } from '../../bench/processes.js';
import type { TestDialect } from './databases.js';
import { startTestServer, type ConfigEnv, type TestServer } from './server.js';

export interface TestCa {
  dir: string;
  caFile: string;
  certFile: string;
  keyFile: string;
  caPem: string;
  certPem: string;
  keyPem: string;
}

/** A CA and a server certificate for IP 127.0.0.1 (and localhost) it signed. */
export function makeTestCa(): TestCa {
  const dir = mkdtempSync(path.join(tmpdir(), 'commons-ca-'));
  const at = (name: string) => path.join(dir, name);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  openssl(
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    at('ca.key'),
    '-out',
    at('ca.pem'),
    '-days',
    '2',
    '-subj',
    '/CN=Commons test CA',
  );
  openssl(
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    at('server.key'),
    '-out',
    at('server.csr'),
    '-subj',
    '/CN=127.0.0.1',
  );
  writeFileSync(at('ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  openssl(
    'x509',
    '-req',
    '-in',
    at('server.csr'),
    '-CA',
    at('ca.pem'),
    '-CAkey',
    at('ca.key'),
    '-CAcreateserial',
    '-out',
    at('server.pem'),
    '-days',
    '2',
    '-extfile',
    at('ext.cnf'),
  );
  return {
    dir,
    caFile: at('ca.pem'),
    certFile: at('server.pem'),
    keyFile: at('server.key'),
    caPem: readFileSync(at('ca.pem'), 'utf8'),
    certPem: readFileSync(at('server.pem'), 'utf8'),
    keyPem: readFileSync(at('server.key'), 'utf8'),
  };
}

/** The environment of a federating Commons named `127.0.0.1:<port>`, listening there with TLS. */
export function federationEnv(ca: TestCa, port: number): ConfigEnv {
  return {
    COMMONS_SERVER_NAME: `127.0.0.1:${port}`,
    COMMONS_FEDERATION_ENABLED: 'true',
    COMMONS_FEDERATION_LISTEN_HOST: '127.0.0.1',
    COMMONS_FEDERATION_LISTEN_PORT: String(port),
    COMMONS_FEDERATION_TLS_CERTIFICATE: ca.certFile,
    COMMONS_FEDERATION_TLS_PRIVATE_KEY: ca.keyFile,
    COMMONS_FEDERATION_TRUSTED_CA_FILE: ca.caFile,
    COMMONS_FEDERATION_REQUEST_TIMEOUT_SECONDS: '10',
  };
}

export async function startFederatedServer(
  dialect: TestDialect,
  ca: TestCa,
  port?: number,
  logger?: pino.Logger,
): Promise<TestServer & { serverName: string; port: number }> {
  const chosen = port ?? (await freePort());
  const server = await startTestServer(dialect, federationEnv(ca, chosen), logger);
  return Object.assign(server, { serverName: `127.0.0.1:${chosen}`, port: chosen });
}

export { freePort };

/** An HTTPS request trusting the test CA; the body parsed as JSON when it is JSON. */
export function httpsJson(
  ca: TestCa,
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: unknown } = {},
): Promise<{ status: number; body: unknown }> {
  const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: options.method ?? 'GET',
        ca: ca.caPem,
        headers: {
          ...options.headers,
          ...(payload !== undefined ? { 'Content-Type': 'application/json' } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown = text;
          try {
            body = JSON.parse(text);
          } catch {
            // left as text
          }
          resolve({ status: res.statusCode ?? 0, body });
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}
