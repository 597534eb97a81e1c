/** The configuration docs/deployment.md shows is one Commons accepts. */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { it } from 'node:test';
import { loadConfig } from '../../src/config/load.js';

it("docs/deployment.md's homeserver.yaml loads, with the values it describes", () => {
  const guide = readFileSync(new URL('../../docs/deployment.md', import.meta.url), 'utf8');
  const yaml = /```yaml\n([\s\S]*?)```/.exec(guide)?.[1];
  assert.ok(yaml, 'the guide has a yaml block');
  const dir = mkdtempSync(path.join(tmpdir(), 'commons-deploy-'));
  try {
    const file = path.join(dir, 'homeserver.yaml');
    writeFileSync(file, yaml);
    const config = loadConfig({ file, env: {} });
    assert.equal(config.server_name, 'example.org');
    assert.equal(config.http.trust_proxy, true);
    assert.equal(config.registration.enabled, false);
    assert.equal(config.listen.host, '127.0.0.1');
    assert.equal(String(config.rooms.default_version), '10');
    assert.equal(config.database.url, 'sqlite:/var/lib/commons/commons.db');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
