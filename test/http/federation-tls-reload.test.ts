/**
 * The federation listener's certificate is replaced without a restart: a renewed certificate
 * written over the configured files is served to new connections (the files are watched), and
 * `reloadTls()` (what SIGHUP calls) takes it at once. A key that does not match the
 * certificate, or a file that is not PEM, is refused and the certificate in use kept.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { connect } from 'node:tls';
import { after, before, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { eventually } from '../helpers/eventually.js';
import {
  federationEnv,
  freePort,
  httpsJson,
  issueServerCert,
  makeTestCa,
  type TestCa,
} from '../helpers/federation.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

/** The fingerprint of the certificate a new TLS connection to the listener is given. */
function servedFingerprint(ca: TestCa, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(
      { host: '127.0.0.1', port, ca: ca.caPem, servername: 'localhost' },
      () => {
        const fingerprint = socket.getPeerCertificate().fingerprint256;
        socket.end();
        resolve(fingerprint);
      },
    );
    socket.on('error', reject);
  });
}

forEachDatabase('the federation TLS certificate reloads without a restart', (dialect) => {
  let ca: TestCa;
  let dir: string;
  let port: number;
  let server: TestServer;
  let certFile: string;
  let keyFile: string;
  const fingerprintOf = (pem: string) => new X509Certificate(pem).fingerprint256;

  before(async () => {
    ca = makeTestCa();
    dir = mkdtempSync(path.join(tmpdir(), 'commons-tls-'));
    certFile = path.join(dir, 'federation.pem');
    keyFile = path.join(dir, 'federation.key');
    copyFileSync(ca.certFile, certFile);
    copyFileSync(ca.keyFile, keyFile);
    port = await freePort();
    server = await startTestServer(dialect, {
      ...federationEnv(ca, port),
      COMMONS_FEDERATION_TLS_CERTIFICATE: certFile,
      COMMONS_FEDERATION_TLS_PRIVATE_KEY: keyFile,
    });
  });
  after(async () => {
    await server?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
    if (ca) rmSync(ca.dir, { recursive: true, force: true });
  });

  it('a renewed certificate written over the files is served to new connections', async () => {
    assert.equal(await servedFingerprint(ca, port), fingerprintOf(ca.certPem));
    const renewed = issueServerCert(ca, dir, 'renewed');
    // The key first, then the certificate (a renewal tool writes one after the other).
    writeFileSync(keyFile, renewed.keyPem);
    writeFileSync(certFile, renewed.certPem);
    const served = await eventually(
      () => servedFingerprint(ca, port),
      (fingerprint) => fingerprint === fingerprintOf(renewed.certPem),
      30_000,
    );
    assert.equal(served, fingerprintOf(renewed.certPem));
    // Federation is served with it.
    const version = await httpsJson(ca, `https://127.0.0.1:${port}/_matrix/federation/v1/version`);
    assert.equal(version.status, 200);
  });

  it('reloadTls (SIGHUP) takes new files at once; a mismatched pair or garbage is refused', async () => {
    const next = issueServerCert(ca, dir, 'next');
    const other = issueServerCert(ca, dir, 'other');
    const before = await servedFingerprint(ca, port);
    // A key that is not the certificate's: refused, the certificate in use kept.
    writeFileSync(certFile, next.certPem);
    writeFileSync(keyFile, other.keyPem);
    assert.equal(server.running.reloadTls(), false);
    assert.equal(await servedFingerprint(ca, port), before);
    // Not PEM at all: refused too.
    writeFileSync(certFile, 'not a certificate');
    assert.equal(server.running.reloadTls(), false);
    assert.equal(await servedFingerprint(ca, port), before);
    // A matching pair: served from the next connection on.
    writeFileSync(certFile, next.certPem);
    writeFileSync(keyFile, next.keyPem);
    assert.equal(server.running.reloadTls(), true);
    assert.equal(await servedFingerprint(ca, port), fingerprintOf(next.certPem));
  });
});
