/**
 * Federation test set-up: a certificate authority made for the test (openssl CLI) with a
 * certificate for 127.0.0.1, and Commons servers named by IP literal (`127.0.0.1:PORT`, which
 * needs no DNS) with their TLS federation listener on that port.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type pino from 'pino';
import { freePort } from '../../bench/processes.js';
import { createTestDatabase, type TestDialect } from './databases.js';
import { startServerOn, startTestServer, type ConfigEnv, type TestServer } from './server.js';

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
  writeFileSync(at('ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  issueServerCert({ dir, caFile: at('ca.pem') }, dir, 'server');
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

/** Another certificate for 127.0.0.1 (a new key) signed by the test CA, written in `dir`. */
export function issueServerCert(
  ca: Pick<TestCa, 'dir' | 'caFile'>,
  dir: string,
  name: string,
): { certFile: string; keyFile: string; certPem: string; keyPem: string } {
  const at = (file: string) => path.join(dir, `${name}.${file}`);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  openssl(
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    at('key'),
    '-out',
    at('csr'),
    '-subj',
    `/CN=127.0.0.1/O=${name}`,
  );
  openssl(
    'x509',
    '-req',
    '-in',
    at('csr'),
    '-CA',
    ca.caFile,
    '-CAkey',
    path.join(ca.dir, 'ca.key'),
    '-CAcreateserial',
    '-out',
    at('pem'),
    '-days',
    '2',
    '-extfile',
    path.join(ca.dir, 'ext.cnf'),
  );
  return {
    certFile: at('pem'),
    keyFile: at('key'),
    certPem: readFileSync(at('pem'), 'utf8'),
    keyPem: readFileSync(at('key'), 'utf8'),
  };
}

export { freePort };

/** A federating Commons whose database and data_dir outlive it, so it can be restarted. */
export interface Restartable {
  serverName: string;
  server: TestServer;
  start(): Promise<void>;
  stop(): Promise<void>;
  destroy(): Promise<void>;
}

export async function restartable(
  dialect: TestDialect,
  ca: TestCa,
  /** More of its environment (over the federation one). */
  env: ConfigEnv = {},
): Promise<Restartable> {
  const port = await freePort();
  const database = await createTestDatabase(dialect);
  const dataDir = mkdtempSync(path.join(tmpdir(), 'commons-data-'));
  let running: TestServer | null = null;
  const self: Restartable = {
    serverName: `127.0.0.1:${port}`,
    get server() {
      if (!running) throw new Error('not running');
      return running;
    },
    async start() {
      running = await startServerOn(database, dataDir, { ...federationEnv(ca, port), ...env });
    },
    async stop() {
      await running?.close();
      running = null;
    },
    async destroy() {
      await self.stop();
      await database.drop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  await self.start();
  return self;
}

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
