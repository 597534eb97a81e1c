/**
 * Synapse as a federation peer: its own server name `127.0.0.1:<port>`, a TLS federation
 * listener with the test CA's certificate, the test CA trusted for its outbound requests, and
 * loopback allowed (its default outbound blocklist covers 127.0.0.0/8). The client API on a
 * plain HTTP port of its own. SQLite, in a directory of its own.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { launchSynapse, type SynapseInstall } from '../../bench/synapse.js';
import { freePort, type TestCa } from './federation.js';

export interface SynapsePeer {
  serverName: string;
  clientUrl: string;
  stop(): Promise<void>;
}

/**
 * `extra`: more of Synapse's configuration (experimental features, say), over the defaults.
 * `at`: a data directory and federation port to use (a bench's kept Synapse, whose server name
 * must stay the same); that directory is left in place when it stops.
 */
export async function startSynapsePeer(
  install: SynapseInstall,
  ca: TestCa,
  extra: Record<string, unknown> = {},
  at?: { dir: string; fedPort: number },
): Promise<SynapsePeer> {
  const dir = at?.dir ?? mkdtempSync(path.join(tmpdir(), 'commons-synapse-'));
  const fedPort = at?.fedPort ?? (await freePort());
  const clientPort = await freePort();
  const serverName = `127.0.0.1:${fedPort}`;
  const overrides = {
    listeners: [
      {
        port: clientPort,
        bind_addresses: ['127.0.0.1'],
        type: 'http',
        tls: false,
        resources: [{ names: ['client'], compress: false }],
      },
      {
        port: fedPort,
        bind_addresses: ['127.0.0.1'],
        type: 'http',
        tls: true,
        resources: [{ names: ['federation', 'keys'], compress: false }],
      },
    ],
    tls_certificate_path: ca.certFile,
    tls_private_key_path: ca.keyFile,
    federation_verify_certificates: true,
    federation_custom_ca_list: [ca.caFile],
    ip_range_whitelist: ['127.0.0.0/8'],
    ip_range_blacklist: ['10.0.0.0/8', '192.168.0.0/16', '172.16.0.0/12', '169.254.0.0/16'],
    database: { name: 'sqlite3', args: { database: path.join(dir, 'homeserver.db') } },
    trusted_key_servers: [],
    suppress_key_server_warning: true,
    enable_registration: true,
    enable_registration_without_verification: true,
    bcrypt_rounds: 4,
    presence: { enabled: false },
    rc_registration: { per_second: 1000, burst_count: 1000 },
    ...extra,
  };
  const clientUrl = `http://127.0.0.1:${clientPort}`;
  const synapse = await launchSynapse({
    install,
    dataDir: dir,
    serverName,
    overrides,
    readyUrl: `${clientUrl}/_matrix/client/versions`,
  });
  return {
    serverName,
    clientUrl,
    async stop() {
      await synapse.stop();
      if (!at && !process.env.COMMONS_TEST_KEEP_SYNAPSE)
        rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** An HTTP answer read as JSON (a Synapse or Commons client API call in these tests). */
export interface JsonAnswer {
  status: number;
  body: Record<string, unknown>;
}

/** Calls `url` with an optional JSON body and access token; the answer read as JSON. */
export async function requestJson(
  url: string,
  method = 'GET',
  body?: unknown,
  token?: string,
): Promise<JsonAnswer> {
  const response = await fetch(url, {
    method,
    headers: {
      ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
      ...(token ? { Authorization: `Bearer ${token}` } : {}),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}
