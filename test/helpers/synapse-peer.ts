/**
 * Synapse as a federation peer: its own server name `127.0.0.1:<port>`, a TLS federation
 * listener with the test CA's certificate, the test CA trusted for its outbound requests, and
 * loopback allowed (its default outbound blocklist covers 127.0.0.0/8). The client API on a
 * plain HTTP port of its own. SQLite, in a directory of its own.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { SynapseInstall } from '../../bench/synapse.js';
import { freePort, type TestCa } from './federation.js';

export interface SynapsePeer {
  serverName: string;
  clientUrl: string;
  stop(): Promise<void>;
}

export async function startSynapsePeer(install: SynapseInstall, ca: TestCa): Promise<SynapsePeer> {
  const dir = mkdtempSync(path.join(tmpdir(), 'commons-synapse-'));
  const fedPort = await freePort();
  const clientPort = await freePort();
  const serverName = `127.0.0.1:${fedPort}`;
  const config = path.join(dir, 'homeserver.yaml');
  const generated = spawnSync(
    install.python,
    [
      '-m',
      'synapse.app.homeserver',
      '--server-name',
      serverName,
      '--config-path',
      config,
      '--data-directory',
      dir,
      '--generate-config',
      '--report-stats=no',
    ],
    { cwd: dir, encoding: 'utf8' },
  );
  if (generated.status !== 0) throw new Error(`synapse --generate-config: ${generated.stderr}`);
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
  };
  const overridesFile = path.join(dir, 'test-overrides.yaml');
  writeFileSync(overridesFile, JSON.stringify(overrides));
  const child: ChildProcess = spawn(
    install.python,
    ['-m', 'synapse.app.homeserver', '-c', config, '-c', overridesFile],
    { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-6000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const clientUrl = `http://127.0.0.1:${clientPort}`;
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`Synapse exited during start-up:\n${output}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`Synapse did not answer within 120 s:\n${output}`);
    }
    const ready = await fetch(`${clientUrl}/_matrix/client/versions`).catch(() => undefined);
    if (ready?.status === 200) break;
    await delay(200);
  }
  return {
    serverName,
    clientUrl,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timeout = delay(15_000, 'timeout', { ref: false });
        if ((await Promise.race([exited.then(() => 'exited'), timeout])) === 'timeout') {
          child.kill('SIGKILL');
          await exited;
        }
      }
      if (!process.env.COMMONS_TEST_KEEP_SYNAPSE) rmSync(dir, { recursive: true, force: true });
    },
  };
}
