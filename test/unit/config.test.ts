import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { parse as parseYaml } from 'yaml';
import {
  ConfigError,
  configLeaves,
  envName,
  loadConfig,
  type LoadOptions,
  type ResolvedConfig,
} from '../../src/config/load.js';
import { generateConfigYaml } from '../../src/config/generate.js';

const dir = mkdtempSync(path.join(tmpdir(), 'commons-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let files = 0;
/** Writes `text` to a new file and returns its path. */
function configFile(text: string): string {
  const file = path.join(dir, `config-${++files}.yaml`);
  writeFileSync(file, text);
  return file;
}

/** loadConfig with an explicit (empty by default) environment, never process.env. */
function load(options: { yaml?: string; env?: Record<string, string> } = {}): ResolvedConfig {
  const loadOptions: LoadOptions = { env: options.env ?? {} };
  if (options.yaml !== undefined) loadOptions.file = configFile(options.yaml);
  return loadConfig(loadOptions);
}

function assertConfigError(run: () => unknown, expected: string | RegExp): void {
  assert.throws(run, (err: unknown) => {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    if (typeof expected === 'string') assert.equal(err.message, expected);
    else assert.match(err.message, expected);
    return true;
  });
}

const defaultDataDir = path.resolve('data');

describe('config defaults', () => {
  it('gives every key its default when nothing is set', () => {
    const config = load();
    assert.equal(config.server_name, 'localhost');
    assert.equal(config.public_baseurl, null);
    assert.deepEqual(config.listen, { host: '127.0.0.1', port: 8008 });
    assert.deepEqual(config.registration, {
      enabled: true,
      shared_secret: null,
      requires_token: false,
    });
    assert.equal(config.database.pool_size, 10);
    assert.equal(config.rate_limits.enabled, true);
    assert.deepEqual(config.rate_limits.classes.login, { per_second: 0.2, burst: 5 });
    assert.deepEqual(config.rate_limits.classes.default, { per_second: 20, burst: 100 });
    assert.deepEqual(config.http, {
      max_body_bytes: 1048576,
      trust_proxy: false,
      fast_reads: true,
    });
    assert.equal(config.password_hashing.scrypt_log2_n, 15);
    assert.equal(config.log.level, 'info');
    assert.equal(config.rooms.default_version, '10');
  });

  it('resolves data_dir to an absolute path and puts the SQLite database in it', () => {
    const config = load();
    assert.ok(path.isAbsolute(config.data_dir));
    assert.equal(config.data_dir, defaultDataDir);
    assert.equal(config.database.url, `sqlite:${path.join(defaultDataDir, 'commons.db')}`);
  });

  it('derives the database URL from a data_dir that was set', () => {
    const config = load({ yaml: 'data_dir: some/where\n' });
    assert.equal(config.data_dir, path.resolve('some/where'));
    assert.equal(config.database.url, `sqlite:${path.resolve('some/where', 'commons.db')}`);
  });

  it('reads an empty file, and a section whose keys are all commented out, as defaults', () => {
    assert.deepEqual(load({ yaml: '' }), load());
    assert.deepEqual(load({ yaml: '# nothing yet\n' }), load());
    assert.deepEqual(load({ yaml: 'listen:\n  # port: 9000\nlog:\n' }), load());
  });
});

describe('config file', () => {
  it('takes values from the YAML file, nested keys included', () => {
    const config = load({
      yaml: [
        'server_name: example.org',
        'public_baseurl: https://matrix.example.org',
        'listen:',
        '  host: 0.0.0.0',
        '  port: 9999',
        'database:',
        '  url: postgres://commons@db:5432/commons',
        '  pool_size: 4',
        'registration:',
        '  enabled: false',
        '  shared_secret: a-long-enough-shared-secret',
        'rate_limits:',
        '  classes:',
        '    login:',
        '      burst: 10',
        'log:',
        '  level: debug',
        '',
      ].join('\n'),
    });
    assert.equal(config.server_name, 'example.org');
    assert.equal(config.public_baseurl, 'https://matrix.example.org');
    assert.deepEqual(config.listen, { host: '0.0.0.0', port: 9999 });
    assert.deepEqual(config.database, { url: 'postgres://commons@db:5432/commons', pool_size: 4 });
    assert.deepEqual(config.registration, {
      enabled: false,
      shared_secret: 'a-long-enough-shared-secret',
      requires_token: false,
    });
    assert.equal(config.log.level, 'debug');
    // One key of one class changes; the rest of that class and the other classes keep defaults.
    assert.deepEqual(config.rate_limits.classes.login, { per_second: 0.2, burst: 10 });
    assert.deepEqual(config.rate_limits.classes.message, { per_second: 5, burst: 20 });
  });

  it('fills in the keys a section leaves out', () => {
    const config = load({ yaml: 'listen:\n  port: 1234\n' });
    assert.deepEqual(config.listen, { host: '127.0.0.1', port: 1234 });
    assert.equal(config.server_name, 'localhost');
  });

  it('reports a file that cannot be read', () => {
    assertConfigError(
      () => loadConfig({ file: path.join(dir, 'missing.yaml'), env: {} }),
      /^config: cannot read .*missing\.yaml/,
    );
  });

  it('reports invalid YAML, naming the file', () => {
    const file = configFile('listen:\n  port: [8008\n');
    assertConfigError(
      () => loadConfig({ file, env: {} }),
      new RegExp(`^config: ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is not valid YAML: `),
    );
  });

  for (const [what, yaml] of [
    ['a list', '- server_name\n- listen\n'],
    ['a string', 'just some words\n'],
    ['a number', '8008\n'],
  ] as const) {
    it(`refuses a file holding ${what} instead of a mapping`, () => {
      assertConfigError(() => load({ yaml }), /must hold a mapping of keys$/);
    });
  }
});

describe('config environment overrides', () => {
  it('turns COMMONS_LISTEN_PORT=9000 into the number 9000', () => {
    const config = load({ env: { COMMONS_LISTEN_PORT: '9000' } });
    assert.equal(config.listen.port, 9000);
    assert.equal(config.listen.host, '127.0.0.1');
  });

  it('takes the database URL from COMMONS_DATABASE_URL', () => {
    const url = 'postgres://commons:secret@db.internal:5432/commons';
    assert.equal(load({ env: { COMMONS_DATABASE_URL: url } }).database.url, url);
  });

  it('reads true and false as booleans', () => {
    const config = load({
      env: { COMMONS_REGISTRATION_ENABLED: 'false', COMMONS_HTTP_TRUST_PROXY: 'true' },
    });
    assert.equal(config.registration.enabled, false);
    assert.equal(config.http.trust_proxy, true);
  });

  it('reads null (or an empty value) as null where the key allows it', () => {
    const yaml =
      'public_baseurl: https://matrix.example.org\nregistration:\n  shared_secret: a-long-enough-shared-secret\n';
    const config = load({
      yaml,
      env: { COMMONS_PUBLIC_BASEURL: 'null', COMMONS_REGISTRATION_SHARED_SECRET: '' },
    });
    assert.equal(config.public_baseurl, null);
    assert.equal(config.registration.shared_secret, null);
  });

  for (const name of [
    '127_0_0_1:8448',
    'my server',
    'example.org:0',
    'example.org:99999',
    '[::1',
  ]) {
    it(`refuses the server name ${JSON.stringify(name)}, naming the key`, () => {
      assertConfigError(
        () => load({ env: { COMMONS_SERVER_NAME: name } }),
        /^config: server_name: .* is not a server name/,
      );
    });
  }

  it('takes a server name with a port, an IPv4 address or a bracketed IPv6 one', () => {
    for (const name of ['matrix.example.org:8448', '127.0.0.1:8448', '[::1]:8448']) {
      assert.equal(load({ env: { COMMONS_SERVER_NAME: name } }).server_name, name);
    }
  });

  it('keeps strings as strings, even when they look like numbers', () => {
    assert.equal(load({ env: { COMMONS_SERVER_NAME: '1234' } }).server_name, '1234');
  });

  it('sets one key of a rate-limit class, leaving the rest at their defaults', () => {
    const config = load({
      env: {
        COMMONS_RATE_LIMITS_CLASSES_LOGIN_BURST: '50',
        COMMONS_RATE_LIMITS_CLASSES_MESSAGE_PER_SECOND: '0.5',
      },
    });
    assert.deepEqual(config.rate_limits.classes.login, { per_second: 0.2, burst: 50 });
    assert.deepEqual(config.rate_limits.classes.message, { per_second: 0.5, burst: 20 });
    assert.deepEqual(config.rate_limits.classes.query, { per_second: 20, burst: 100 });
  });

  it('beats the file', () => {
    const config = load({
      yaml: 'server_name: file.example\nlisten:\n  host: 0.0.0.0\n  port: 1111\n',
      env: { COMMONS_LISTEN_PORT: '2222', COMMONS_SERVER_NAME: 'env.example' },
    });
    assert.equal(config.server_name, 'env.example');
    assert.deepEqual(config.listen, { host: '0.0.0.0', port: 2222 });
  });

  it('has one variable per key, named COMMONS_ + its path in upper snake case', () => {
    const names = configLeaves().map((leaf) => envName(leaf.path));
    assert.equal(new Set(names).size, names.length, 'two keys share a variable name');
    assert.ok(names.includes('COMMONS_LISTEN_PORT'));
    assert.ok(names.includes('COMMONS_RATE_LIMITS_CLASSES_LOGIN_PER_SECOND'));
    for (const name of names) assert.match(name, /^COMMONS_[A-Z0-9_]+$/);
  });

  it('warns about a COMMONS_ variable that matches no key, and ignores it', () => {
    const warnings: string[] = [];
    const config = loadConfig({
      env: {
        COMMONS_LISTEN_PROT: '9000',
        COMMONS_TEST_DATABASE_URL: 'postgres://x@y/z',
        COMMONS_CONFIG: '/etc/commons.yaml',
        COMMONS_REGISTER_PASSWORD: 'pw',
        HOME: '/root',
      },
      warn: (message) => warnings.push(message),
    });
    assert.deepEqual(warnings, [
      'config: environment variable COMMONS_LISTEN_PROT matches no configuration key; ignored',
    ]);
    assert.equal(config.listen.port, 8008);
  });
});

describe('config errors name the key', () => {
  const unknownKeys: [string, string][] = [
    ['listen:\n  prot: 8008\n', 'listen.prot'],
    ['severname: example.org\n', 'severname'],
    ['rate_limits:\n  classes:\n    chat:\n      burst: 5\n', 'rate_limits.classes.chat'],
    ['rate_limits:\n  classes:\n    login:\n      bursts: 5\n', 'rate_limits.classes.login.bursts'],
  ];
  for (const [yaml, key] of unknownKeys) {
    it(`refuses the unknown key ${key}`, () => {
      assertConfigError(() => load({ yaml }), `config: unknown key "${key}"`);
    });
  }

  const badValues: [string, { yaml?: string; env?: Record<string, string> }, string][] = [
    ['port 70000 in the file', { yaml: 'listen:\n  port: 70000\n' }, 'listen.port'],
    ['a negative port', { yaml: 'listen:\n  port: -1\n' }, 'listen.port'],
    ['port "abc" from the environment', { env: { COMMONS_LISTEN_PORT: 'abc' } }, 'listen.port'],
    ['a fractional port', { env: { COMMONS_LISTEN_PORT: '80.5' } }, 'listen.port'],
    ['an unknown log level', { yaml: 'log:\n  level: loud\n' }, 'log.level'],
    ['a MySQL database URL', { env: { COMMONS_DATABASE_URL: 'mysql://db/x' } }, 'database.url'],
    ['a database URL without scheme', { yaml: 'database:\n  url: ./x.db\n' }, 'database.url'],
    ['a boolean that is not one', { env: { COMMONS_HTTP_TRUST_PROXY: 'yes' } }, 'http.trust_proxy'],
    [
      'a short shared secret',
      { yaml: 'registration:\n  shared_secret: short\n' },
      'registration.shared_secret',
    ],
    ['an empty server name', { yaml: 'server_name: ""\n' }, 'server_name'],
    [
      'a baseurl without scheme',
      { yaml: 'public_baseurl: matrix.example.org\n' },
      'public_baseurl',
    ],
    [
      'a zero refill rate',
      { env: { COMMONS_RATE_LIMITS_CLASSES_LOGIN_PER_SECOND: '0' } },
      'rate_limits.classes.login.per_second',
    ],
    ['a section given as a number', { yaml: 'listen: 8008\n' }, 'listen'],
  ];
  for (const [what, source, key] of badValues) {
    it(`refuses ${what}, naming ${key}`, () => {
      assertConfigError(
        () => load(source),
        new RegExp(`^config: bad value for "${key.replace(/\./g, '\\.')}" `),
      );
    });
  }

  it('says which value was wrong and which variable sets it', () => {
    assertConfigError(
      () => load({ env: { COMMONS_LISTEN_PORT: 'abc' } }),
      'config: bad value for "listen.port" ("abc"): must be integer (env COMMONS_LISTEN_PORT)',
    );
  });

  it('takes the default room version as a string or an unquoted YAML number', () => {
    assert.equal(load({ env: { COMMONS_ROOMS_DEFAULT_VERSION: '12' } }).rooms.default_version, 12);
    assert.equal(load({ yaml: 'rooms:\n  default_version: 11\n' }).rooms.default_version, 11);
    assert.equal(load({ yaml: "rooms:\n  default_version: '12'\n" }).rooms.default_version, '12');
  });

  it('refuses a room version this server does not support, listing those it does', () => {
    for (const bad of ['9', '13', 'org.matrix.msc4291']) {
      assertConfigError(
        () => load({ env: { COMMONS_ROOMS_DEFAULT_VERSION: bad } }),
        /^config: bad value for "rooms\.default_version" .*must be one of "10", "11", "12"/,
      );
    }
  });

  it('lists the allowed log levels', () => {
    assertConfigError(
      () => load({ env: { COMMONS_LOG_LEVEL: 'loud' } }),
      /must be one of "fatal", "error", "warn", "info", "debug", "trace", "silent"/,
    );
  });
});

describe('generateConfigYaml()', () => {
  it('is YAML that loads back to exactly the defaults', () => {
    const yaml = generateConfigYaml();
    const parsed: unknown = parseYaml(yaml);
    assert.ok(parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed));
    assert.deepEqual(load({ yaml }), load());
  });

  it('writes every key out, with a comment above each section', () => {
    const parsed = parseYaml(generateConfigYaml()) as Record<string, unknown>;
    for (const leaf of configLeaves()) {
      let node: unknown = parsed;
      for (const key of leaf.path) {
        assert.ok(node !== null && typeof node === 'object', leaf.path.join('.'));
        assert.ok(key in node, `${leaf.path.join('.')} is missing from the generated file`);
        node = (node as Record<string, unknown>)[key];
      }
    }
    const lines = generateConfigYaml().split('\n');
    for (const section of ['listen', 'database', 'registration', 'rate_limits', 'log']) {
      const at = lines.indexOf(`${section}:`);
      assert.ok(at > 0, `no ${section}: line`);
      assert.match(lines[at - 1] ?? '', /^# /, `no comment above ${section}`);
    }
  });
});
