#!/usr/bin/env node
/**
 * The `commons` command:
 *   commons [--config homeserver.yaml]         start the homeserver
 *   commons --generate-config                  print a commented default configuration
 *   commons --version                          print the version
 *   commons register-user --user U [--password P] [--admin] [--config F] [--url URL]
 *                                              create a user through shared-secret registration
 *   commons rotate-signing-key [--config F]    replace the signing key, keeping the old one
 *                                              published in old_verify_keys (restart after)
 *   commons port-db --from sqlite:PATH --to postgres://…
 *                                              move a SQLite database to an empty PostgreSQL one
 */
import { parseArgs } from 'node:util';
import v8 from 'node:v8';
import { ConfigError, loadConfig, type ResolvedConfig } from './config/load.js';
import { generateConfigYaml } from './config/generate.js';
import { registerUserWithSharedSecret } from './register-user.js';
import {
  createLogger,
  listeningLine,
  logFormatFor,
  startServer,
  type RunningServer,
} from './main.js';
import { PORT_DB_USAGE, runPortDb } from './port-db.js';
import { rotateSigningKey } from './config/server-secrets.js';
import { VERSION } from './version.js';

const USAGE = `usage:
  commons [--config FILE]                   start the homeserver
  commons --generate-config                 print a commented default configuration
  commons --version                         print the version
  commons register-user --user NAME [--password PASS] [--admin] [--config FILE] [--url URL]
  commons rotate-signing-key [--config FILE]
  ${PORT_DB_USAGE}`;

function fail(message: string): never {
  process.stderr.write(`${message}\n`);
  process.exit(1);
}

function readConfig(file: string | undefined): ResolvedConfig {
  try {
    return loadConfig({
      file: file ?? process.env.COMMONS_CONFIG,
      warn: (message) => process.stderr.write(`warning: ${message}\n`),
    });
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message);
    throw err;
  }
}

/** Where this machine reaches the server configured to listen on listen.host/port. */
function localUrl(config: ResolvedConfig): string {
  const wildcard: Record<string, string> = { '0.0.0.0': '127.0.0.1', '::': '::1' };
  const host = wildcard[config.listen.host] ?? config.listen.host;
  return `http://${host.includes(':') ? `[${host}]` : host}:${config.listen.port}`;
}

/**
 * memory.heap_growth_percent as V8's flag, unless node was given one: V8 reads it whenever it
 * sets the heap's next limit, so setting it at start applies to the whole run.
 */
function limitHeapGrowth(config: ResolvedConfig): void {
  const percent = config.memory.heap_growth_percent;
  const given = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].some(
    (arg) => /^--heap[-_]growing[-_]percent\b/.test(arg),
  );
  if (percent !== null && !given) v8.setFlagsFromString(`--heap-growing-percent=${percent}`);
}

async function runServer(configFile: string | undefined): Promise<void> {
  const config = readConfig(configFile);
  limitHeapGrowth(config);
  const logger = createLogger(config);
  let server: RunningServer | undefined;
  let stopping: NodeJS.Signals | null = null;
  const stop = (running: RunningServer, signal: NodeJS.Signals) => {
    logger.info(
      { signal, grace_seconds: config.shutdown.grace_seconds },
      'shutting down: finishing in-flight requests',
    );
    running
      .close()
      .then(() => {
        logger.info('stopped');
        process.exit(0);
      })
      .catch((err: unknown) => {
        logger.error({ err }, 'error during shutdown');
        process.exit(1);
      });
  };
  // Installed before anything starts, so a signal is never met by the default action (an
  // exit without cleaning up). The first one stops gracefully, within shutdown.grace_seconds;
  // a second one exits at once.
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping !== null) {
      logger.warn({ signal }, `second signal (${signal}): exiting now`);
      process.exit(1);
    }
    stopping = signal;
    if (server) stop(server, signal);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  // SIGHUP: the federation listener's certificate is read again (docs/federation.md).
  process.on('SIGHUP', () => {
    if (server && stopping === null) server.reloadTls();
  });
  try {
    server = await startServer(config, { logger });
  } catch (err) {
    fail(`commons: could not start: ${(err as Error).message}`);
  }
  const listening = listeningLine(
    config,
    server.url,
    configFile ?? process.env.COMMONS_CONFIG,
    server.metricsUrl,
  );
  // On a terminal the line says it all; JSON lines carry its facts as fields too.
  const pretty = logFormatFor(config.log.format, process.stdout.isTTY === true) === 'pretty';
  logger.info(pretty ? {} : listening.fields, listening.msg);
  if (config.registration.enabled)
    logger.warn('open registration is enabled (registration.enabled)');
  // A signal that came while starting: stop now that there is something to stop.
  if (stopping !== null) stop(server, stopping);
}

async function main(argv: string[]): Promise<void> {
  if (argv[0] === 'port-db') {
    const write = (stream: NodeJS.WriteStream) => (line: string) => stream.write(`${line}\n`);
    process.exitCode = await runPortDb(argv.slice(1), write(process.stdout), write(process.stderr));
    return;
  }
  if (argv[0] === 'rotate-signing-key') {
    let values;
    try {
      ({ values } = parseArgs({ args: argv.slice(1), options: { config: { type: 'string' } } }));
    } catch (err) {
      fail(`rotate-signing-key: ${(err as Error).message}\n${USAGE}`);
    }
    const config = readConfig(values.config);
    try {
      const rotated = rotateSigningKey(config.data_dir, Date.now());
      process.stdout.write(
        `signing key ${rotated.old} replaced by ${rotated.new}; ${rotated.old} stays published ` +
          `in old_verify_keys. Restart the server (every worker) to use the new key.\n`,
      );
    } catch (err) {
      fail(`rotate-signing-key: ${(err as Error).message}`);
    }
    return;
  }
  if (argv[0] === 'register-user') {
    let values;
    try {
      ({ values } = parseArgs({
        args: argv.slice(1),
        options: {
          config: { type: 'string' },
          user: { type: 'string', short: 'u' },
          password: { type: 'string', short: 'p' },
          admin: { type: 'boolean', default: false },
          url: { type: 'string' },
        },
      }));
    } catch (err) {
      fail(`register-user: ${(err as Error).message}\n${USAGE}`);
    }
    if (!values.user) fail(`register-user: --user is required\n${USAGE}`);
    const password = values.password ?? process.env.COMMONS_REGISTER_PASSWORD;
    if (!password) fail('register-user: give --password or set COMMONS_REGISTER_PASSWORD');
    const config = readConfig(values.config);
    if (!config.registration.shared_secret)
      fail('register-user: registration.shared_secret is not set in the configuration');
    const url = values.url ?? localUrl(config);
    try {
      const result = await registerUserWithSharedSecret(url, config.registration.shared_secret, {
        username: values.user,
        password,
        admin: values.admin ?? false,
      });
      process.stdout.write(`registered ${result.user_id}\n`);
    } catch (err) {
      fail(`register-user: ${(err as Error).message}`);
    }
    return;
  }
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        config: { type: 'string', short: 'c' },
        'generate-config': { type: 'boolean', default: false },
        version: { type: 'boolean', short: 'v', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (err) {
    fail(`${(err as Error).message}\n${USAGE}`);
  }
  if (parsed.values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (parsed.values.version) {
    process.stdout.write(`commons ${VERSION}\n`);
    return;
  }
  if (parsed.values['generate-config']) {
    process.stdout.write(generateConfigYaml());
    return;
  }
  await runServer(parsed.values.config);
}

main(process.argv.slice(2)).catch((err: unknown) =>
  fail(`commons: ${(err as Error).stack ?? String(err)}`),
);
