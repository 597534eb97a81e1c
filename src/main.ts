/**
 * Wires concrete things together: opens storage, builds services and the app, listens,
 * and shuts down gracefully (stop accepting, finish in-flight requests, close the database).
 */
import { isValidRange } from './core/url-preview.js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { existsSync, readFileSync, rmdirSync, rmSync } from 'node:fs';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import path from 'node:path';
import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';
import { buildApp, type App } from './app.js';
import { InFlight } from './http/in-flight.js';
import { reloadTlsOnChange, type TlsReloader } from './http/tls-reload.js';
import { createMetrics, type Metrics } from './metrics.js';
import { CacheStats } from './services/cache-stats.js';
import type { ResolvedConfig } from './config/load.js';
import type { RoomVersionId } from './core/pdu.js';
import { loadServerSecrets } from './config/server-secrets.js';
import { loadAppServiceRegistrations } from './config/appservices.js';
import type { AppServiceRegistration } from './core/appservice.js';
import { createServices, type ServiceSettings, type Services } from './services/index.js';
import type { FederationSettings } from './services/context.js';
import { openStorage, type Storage } from './storage/index.js';
import { openFileMediaStore } from './storage/media-files.js';
import { dialectOf } from './storage/database.js';
import { VERSION } from './version.js';

export interface RunningServer {
  app: App;
  /** The services the app serves with (tests reach the federation sender through them). */
  services: Services;
  storage: Storage;
  /** The address actually bound, e.g. http://127.0.0.1:8008. */
  url: string;
  /** Where Prometheus metrics are served (null unless metrics.enabled). */
  metricsUrl: string | null;
  /** The TLS federation listener, e.g. https://127.0.0.1:8448 (null when it has none). */
  federationUrl: string | null;
  /**
   * Reads the federation listener's certificate and key files again and serves them (SIGHUP;
   * changed files are also picked up by themselves). False when they do not make a pair (the
   * ones in use are kept) or there is no TLS listener.
   */
  reloadTls(): boolean;
  /**
   * Stops: no new requests, in-flight ones get `shutdown.grace_seconds` to finish (then their
   * connections are cut), and the database closes once no handler runs any more.
   */
  close(): Promise<ShutdownReport>;
}

export interface ShutdownReport {
  /** Requests whose connections were cut at the deadline (0: every request finished). */
  cut: number;
  /** Handlers still running when the process gave up waiting (the database was left open). */
  unfinished: number;
}

/** After the deadline (connections cut), how long handlers get to notice before we give up. */
const AFTER_DEADLINE_MS = 1000;

/** MSC2666: a `next_batch` token should remain valid for at least ten minutes. */
const MIN_SPEC_TOKEN_TTL_SECONDS = 600;

export interface StartOptions {
  logger?: Logger;
}

/** The settings services take, from the resolved configuration. */
export function serviceSettingsOf(
  config: ResolvedConfig,
  appServices: readonly AppServiceRegistration[] = [],
): ServiceSettings {
  return {
    appServices,
    serverName: config.server_name,
    registrationEnabled: config.registration.enabled,
    registrationSharedSecret: config.registration.shared_secret,
    registrationRequiresToken: config.registration.requires_token,
    retention: {
      enabled: config.retention.enabled,
      defaultMaxLifetimeMs:
        config.retention.default_max_lifetime_seconds === null
          ? null
          : config.retention.default_max_lifetime_seconds * 1000,
      minLifetimeMs: config.retention.allowed_lifetime_min_seconds * 1000,
      maxLifetimeMs:
        config.retention.allowed_lifetime_max_seconds === null
          ? null
          : config.retention.allowed_lifetime_max_seconds * 1000,
      intervalSeconds: config.retention.purge_interval_seconds,
    },
    passwordPolicy: {
      minimumLength: config.password_policy.minimum_length,
      requireDigit: config.password_policy.require_digit,
      requireLowercase: config.password_policy.require_lowercase,
      requireUppercase: config.password_policy.require_uppercase,
      requireSymbol: config.password_policy.require_symbol,
    },
    passwordCostLog2N: config.password_hashing.scrypt_log2_n,
    mutualRooms: {
      batchSize: config.mutual_rooms.batch_size,
      tokenTtlSeconds: config.mutual_rooms.token_ttl_seconds,
      multiUser: config.mutual_rooms.multi_user,
      cacheIdleSeconds: config.mutual_rooms.cache_idle_seconds,
    },
    defaultRoomVersion: String(config.rooms.default_version) as RoomVersionId,
    pushInlineMembers: config.push.inline_evaluation_max_members,
    federation: config.federation.enabled ? federationSettingsOf(config) : null,

    media: {
      maxUploadBytes: config.media.max_upload_bytes,
      maxThumbnailSourceBytes: config.media.max_thumbnail_source_bytes,
      maxAwaitedUploads: config.media.max_awaited_uploads,
      unusedExpirySeconds: config.media.unused_expiry_seconds,
      urlPreview: {
        enabled: config.media.url_preview_enabled,
        denyRanges: checkedRanges(config.media.url_preview_ip_range_deny, 'deny'),
        allowRanges: checkedRanges(config.media.url_preview_ip_range_allow, 'allow'),
        maxBytes: config.media.url_preview_max_bytes,
        timeoutMs: config.media.url_preview_timeout_seconds * 1000,
        cacheSeconds: config.media.url_preview_cache_seconds,
      },
    },
    userDirectorySearchAll: config.user_directory.search_all_users,
    presenceTimers: {
      syncTimeoutMs: config.presence.sync_timeout_seconds * 1000,
      idleMs: config.presence.idle_timeout_seconds * 1000,
      activeMs: config.presence.currently_active_seconds * 1000,
      remoteTimeoutMs: config.presence.remote_timeout_seconds * 1000,
    },
    userDirectoryInlineReachMembers: config.user_directory.inline_reach_max_members,
    serverNotices:
      config.server_notices.system_mxid_localpart === null
        ? null
        : {
            systemLocalpart: config.server_notices.system_mxid_localpart,
            systemDisplayname: config.server_notices.system_mxid_display_name,
            systemAvatarUrl: config.server_notices.system_mxid_avatar_url,
            roomName: config.server_notices.room_name,
            roomTopic: config.server_notices.room_topic,
            roomAvatarUrl: config.server_notices.room_avatar_url,
          },
  };
}

/** Address ranges of the URL preview config, each checked (a bad one stops the start). */
function checkedRanges(ranges: readonly string[], which: string): readonly string[] {
  for (const range of ranges) {
    if (!isValidRange(range))
      throw new Error(
        `config: media.url_preview_ip_range_${which}: ${range} is not an address range`,
      );
  }
  return ranges;
}

function readPem(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`${what} ${file} cannot be read: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/** Federation's settings; the extra trusted CA file is read here (a missing one is an error). */
export function federationSettingsOf(config: ResolvedConfig): FederationSettings {
  const f = config.federation;
  return {
    extraCaPem:
      f.trusted_ca_file === null ? null : readPem(f.trusted_ca_file, 'federation.trusted_ca_file'),
    keyValidityMs: f.key_validity_hours * 3600_000,
    requestTimeoutMs: f.request_timeout_seconds * 1000,
    retryMaxMs: f.retry_max_seconds * 1000,
    trustedKeyServers: f.trusted_key_servers,
    presenceRefreshMs: f.presence_refresh_seconds * 1000,
  };
}

/** Paths the TLS federation listener serves; anything else there is 404 M_UNRECOGNIZED. */
const FEDERATION_PATHS = /^\/_matrix\/(federation|key)\//;

/**
 * The TLS federation listener (`federation.listen`, when a certificate and key are set): the
 * same application as the client listener, limited to the server-server paths.
 */
async function listenFederation(
  config: ResolvedConfig,
  app: App,
  logger: Logger,
): Promise<{ server: HttpsServer; url: string; tls: TlsReloader } | null> {
  const f = config.federation;
  if (!f.enabled || f.tls_certificate === null || f.tls_private_key === null) {
    if (f.enabled && (f.tls_certificate === null) !== (f.tls_private_key === null))
      throw new Error(
        'federation.tls_certificate and federation.tls_private_key are set together or not at all',
      );
    return null;
  }
  const server = createHttpsServer(
    {
      cert: readPem(f.tls_certificate, 'federation.tls_certificate'),
      key: readPem(f.tls_private_key, 'federation.tls_private_key'),
    },
    (req, res) => {
      if (FEDERATION_PATHS.test(req.url ?? '')) {
        app.routing(req, res);
        return;
      }
      const body = JSON.stringify({ errcode: 'M_UNRECOGNIZED', error: 'Unrecognized request' });
      res.writeHead(404, { 'Content-Type': 'application/json' }).end(body);
    },
  );
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(f.listen.port, f.listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : f.listen.port;
  const host = f.listen.host.includes(':') ? `[${f.listen.host}]` : f.listen.host;
  const tls = reloadTlsOnChange(
    server,
    { cert: f.tls_certificate, key: f.tls_private_key },
    logger,
  );
  return { server, url: `https://${host}:${port}`, tls };
}

/** `log.format` for this process: `auto` is pretty on a terminal, JSON otherwise. */
export function logFormatFor(
  setting: 'auto' | 'json' | 'pretty',
  stdoutIsTTY: boolean,
): 'json' | 'pretty' {
  if (setting === 'auto') return stdoutIsTTY ? 'pretty' : 'json';
  return setting === 'pretty' ? 'pretty' : 'json';
}

export function createLogger(config: ResolvedConfig): Logger {
  const options = {
    level: config.log.level,
    redact: {
      paths: ['req.headers.authorization', 'password', '*.password', 'access_token'],
      censor: '<redacted>',
    },
    hooks: {
      // Fastify's own "Server listening at …" says less than our start-up line: left out.
      logMethod(this: Logger, args: Parameters<pino.LogFn>, method: pino.LogFn) {
        const [first] = args;
        if (typeof first === 'string' && first.startsWith('Server listening at ')) return;
        method.apply(this, args);
      },
    },
  };
  const tty = process.stdout.isTTY === true;
  if (logFormatFor(config.log.format, tty) === 'json') return pino(options);
  // In this thread and synchronous, so the last lines before an exit are written.
  return pino(
    options,
    pretty({
      colorize: tty,
      sync: true,
      singleLine: true,
      translateTime: 'SYS:HH:MM:ss.l',
      ignore: 'pid,hostname',
    }),
  );
}

/** A database URL without its password, for logs. */
export function describeDatabase(url: string): string {
  if (url.startsWith('sqlite:')) return url;
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return url.replace(/:[^:@/]*@/, ':***@');
  }
}

/**
 * The one line that says what started, e.g. `Commons 0.1.0 listening on http://127.0.0.1:8008
 * as localhost; database sqlite:/srv/data/commons.db, data_dir /srv/data, config
 * /srv/homeserver.yaml`, with the same facts as fields (`event: "listening"`).
 */
export function listeningLine(
  config: ResolvedConfig,
  url: string,
  configFile: string | undefined,
  metricsUrl: string | null = null,
): { fields: Record<string, unknown>; msg: string } {
  const database = describeDatabase(config.database.url);
  const file = configFile === undefined ? null : path.resolve(configFile);
  return {
    fields: {
      event: 'listening',
      version: VERSION,
      url,
      server_name: config.server_name,
      database: dialectOf(config.database.url),
      database_url: database,
      data_dir: config.data_dir,
      config: file,
      metrics: metricsUrl,
    },
    msg:
      `Commons ${VERSION} listening on ${url} as ${config.server_name}; database ${database}, ` +
      `data_dir ${config.data_dir}, config ${file ?? '(none: defaults and COMMONS_* variables)'}` +
      (metricsUrl ? `, metrics ${metricsUrl}` : ''),
  };
}

/** Why a database made for one server name is not served under another. */
function serverNameMismatch(recorded: string, config: ResolvedConfig): string {
  return (
    `the database ${describeDatabase(config.database.url)} belongs to server_name "${recorded}" ` +
    `(recorded at its first start), but the configuration says "${config.server_name}": every ` +
    `user ID, room and event in it names "${recorded}". Set server_name: ${recorded} to serve ` +
    `it, or give database.url a new database for a server named "${config.server_name}"`
  );
}

/**
 * The files and directories a first start creates (data_dir and the directories above it
 * that are missing, the media directories, the secrets, an SQLite database and its companions), as they are before
 * it: removeNew() deletes those that did not exist then, and directories only when empty,
 * so nothing that was there before is ever touched.
 */
export function filesToCreate(config: ResolvedConfig): { removeNew(): void } {
  const missingDirs = (dir: string): string[] => {
    const missing: string[] = [];
    for (let at = path.resolve(dir); !existsSync(at); at = path.dirname(at)) {
      missing.push(at);
      if (path.dirname(at) === at) break;
    }
    return missing;
  };
  const files = [
    path.join(config.data_dir, 'token.key'),
    path.join(config.data_dir, 'signing.key'),
  ];
  // The media file store's directories are inside data_dir, made at start as well.
  const dirs = missingDirs(path.join(config.data_dir, 'media', 'tmp'));
  const url = config.database.url;
  if (url.startsWith('sqlite:') && url !== 'sqlite::memory:') {
    const file = path.resolve(url.slice('sqlite:'.length));
    files.push(file, `${file}-wal`, `${file}-shm`, `${file}-journal`, `${file}-lock`);
    dirs.push(...missingDirs(path.dirname(file)));
  }
  const newFiles = files.filter((file) => !existsSync(file));
  return {
    removeNew() {
      for (const file of newFiles) rmSync(file, { force: true });
      // Deepest first; a directory something else has put a file in stays.
      for (const dir of [...new Set(dirs)].sort((a, b) => b.length - a.length)) {
        try {
          rmdirSync(dir);
        } catch {
          // not empty, or already gone
        }
      }
    },
  };
}

export async function startServer(
  config: ResolvedConfig,
  options: StartOptions = {},
): Promise<RunningServer> {
  const logger = options.logger ?? createLogger(config);
  if (config.mutual_rooms.token_ttl_seconds < MIN_SPEC_TOKEN_TTL_SECONDS) {
    logger.warn(
      `mutual_rooms.token_ttl_seconds is ${config.mutual_rooms.token_ttl_seconds}: the spec expects paging tokens to stay valid for at least ${MIN_SPEC_TOKEN_TTL_SECONDS} seconds`,
    );
  }
  // What this start creates is removed again if it fails: no half-made data_dir is left.
  const created = filesToCreate(config);
  let storage: Storage | undefined;
  let metrics: Metrics | null = null;
  let metricsUrl: string | null = null;
  let federationListener: { server: HttpsServer; url: string; tls: TlsReloader } | null = null;
  let app: App;
  let services: Services | undefined;
  const inFlight = new InFlight();
  try {
    // Each registration file is checked before anything is opened: a bad one stops the start.
    const appServices = loadAppServiceRegistrations(config.app_services.config_files);
    const secrets = loadServerSecrets(config.data_dir);
    storage = await openStorage(config.database.url, {
      poolSize: config.database.pool_size,
      logger,
    });
    const recorded = await storage.claimServerName(config.server_name);
    if (recorded !== config.server_name) throw new Error(serverNameMismatch(recorded, config));
    await storage.changes.listen();
    const cacheStats = new CacheStats();
    services = createServices({
      settings: serviceSettingsOf(config, appServices),
      storage,
      now: Date.now,
      signingKey: secrets.signingKey,
      oldSigningKeys: secrets.oldSigningKeys,
      cacheStats,
      mediaFiles: await openFileMediaStore(path.join(config.data_dir, 'media')),
    });
    if (config.metrics.enabled) {
      const notifier = services.notifier;
      const opened = storage;
      metrics = createMetrics({
        version: VERSION,
        waitingSyncs: () => notifier.waiting,
        poolStats: () => opened.poolStats(),
        caches: cacheStats,
      });
      // Before the client listener: a start that fails here has served nobody yet.
      metricsUrl = await metrics.listen(config.metrics.listen.host, config.metrics.listen.port);
    }
    await services.appservices.ensureSenders();
    app = await buildApp({ config, services, logger, inFlight, requestObserver: metrics });
    await app.listen({ host: config.listen.host, port: config.listen.port });
    federationListener = await listenFederation(config, app, logger);
  } catch (err) {
    await services?.federation?.close();
    await metrics?.close();
    await storage?.close();
    created.removeNew();
    throw err;
  }
  // Deactivations a stopped process left unfinished (their rooms not all left).
  const resuming = services.deactivation.resumePending().then(
    (finished) => {
      if (finished > 0) logger.info(`finished ${finished} pending account deactivation(s)`);
    },
    (err: unknown) => logger.error({ err }, 'finishing pending account deactivations failed'),
  );
  if (services.federation) {
    services.federation.setLog(logger);
    services.federation.sender.start();
    services.federation.leaveRetrier.start();
    // Online users' presence told again to other servers, before they time it out.
    services.federation.presenceRefresh.start((err: unknown) =>
      logger.error({ err }, 'presence refresh failed'),
    );
    // Rooms joined with partial state before a restart: their full state is fetched again.
    void services.federation.partialState
      .start((message, fields) => logger.info(fields ?? {}, message))
      .catch((err: unknown) => logger.error({ err }, 'resuming partial-state rooms failed'));
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.listen.port;
  const host = config.listen.host.includes(':') ? `[${config.listen.host}]` : config.listen.host;
  // A keep-alive connection whose request is still running when we close would stay open
  // after its response (until keepAliveTimeout, 72 s) and hold up the exit: tell those
  // clients `Connection: close`, and drop connections that go idle while we wait.
  const pending = new Set<ServerResponse>();
  app.server.on('request', (_req: IncomingMessage, res: ServerResponse) => {
    pending.add(res);
    res.on('close', () => pending.delete(res));
  });
  let closing: Promise<ShutdownReport> | null = null;
  // Bridges' queues: what earlier runs left queued is sent first.
  services.appservices.startSending({
    retryMaxMs: config.app_services.retry_max_seconds * 1000,
    log: logger,
  });
  // Push gateways: what earlier runs left queued is sent first.
  services.pushSender.start({
    retryMaxMs: config.push.retry_max_seconds * 1000,
    log: logger,
  });
  // Push rules of events into big rooms: what earlier runs left pending first.
  services.pushEvaluation.start({ log: logger });
  // User-directory reach of big rooms whose join rule changed: what earlier runs left first.
  services.userDirectoryReach.start({ log: logger });
  // Presence: syncing users' times written; stopped clients and idle users timed out.
  services.presenceTimeouts.start((err: unknown) => {
    if (!closing) logger.error({ err }, 'presence time-outs failed');
  });
  // Profile changes a process left part-way: their rooms get the member events still owed
  // (services/profiles.ts). In the background; a shutdown meanwhile leaves the rest for later.
  services.profiles.resumePending().catch((err: unknown) => {
    if (!closing) logger.error({ err }, 'resuming profile changes failed');
  });
  // Room retention: old history purged every purge_interval_seconds (when enabled).
  services.admin.retention.start((err: unknown) => {
    if (!closing) logger.error({ err }, 'room retention purge failed');
  });
  // Room deletions and history purges a stopped process left unfinished (admin API).
  services.admin.purges.resumePending().catch((err: unknown) => {
    if (!closing) logger.error({ err }, 'resuming room purges failed');
  });
  // … and those a process that died left behind, once their leases have run out.
  services.admin.purges.startResuming((err: unknown) => {
    if (!closing) logger.error({ err }, 'resuming room purges failed');
  });
  return {
    app,
    services,
    storage,
    url: `http://${host}:${port}`,
    metricsUrl,
    federationUrl: federationListener?.url ?? null,
    reloadTls: () => federationListener?.tls.reload() ?? false,
    close() {
      closing ??= (async () => {
        // Long-polling /sync requests answer now rather than hold up the shutdown.
        services.notifier.close();
        services.deactivation.stop();
        if (federationListener) {
          federationListener.tls.close();
          const fed = federationListener.server;
          fed.close();
          fed.closeIdleConnections();
          setTimeout(() => fed.closeAllConnections(), config.shutdown.grace_seconds * 1000).unref();
        }
        const stoppingFederation = services.federation?.close();
        const stoppingSenders = services.appservices.stopSending();
        const stoppingPushes = services.pushSender.stop();
        const stoppingEvaluation = services.pushEvaluation.stop();
        const stoppingReach = services.userDirectoryReach.stop();
        const stoppingPresence = services.presenceTimeouts.stop();

        services.admin.purges.stop();
        services.admin.retention.stop();
        for (const res of pending) if (!res.headersSent) res.shouldKeepAlive = false;
        const sweep = setInterval(() => app.server.closeIdleConnections(), 100);
        let cut = 0;
        let timer: NodeJS.Timeout | undefined;
        const deadline = new Promise<void>((resolve) => {
          timer = setTimeout(resolve, config.shutdown.grace_seconds * 1000);
        });
        const closed = app.close();
        try {
          if (
            (await Promise.race([closed.then(() => false), deadline.then(() => true)])) === true
          ) {
            cut = pending.size;
            logger.warn(
              `shutdown: ${config.shutdown.grace_seconds} s passed with ${cut} request(s) unfinished: cutting their connections`,
            );
            app.server.closeAllConnections();
            await closed;
          }
        } finally {
          clearInterval(sweep);
          clearTimeout(timer);
        }
        // Handlers whose client went away (or was cut) may still be working: the database
        // closes after them, or not at all if they do not finish soon after the deadline.
        const remaining = cut > 0 ? AFTER_DEADLINE_MS : config.shutdown.grace_seconds * 1000;
        if (!(await inFlight.idle(remaining))) {
          logger.warn(`shutdown: ${inFlight.count} request handler(s) still running; not waiting`);
          return { cut, unfinished: inFlight.count };
        }
        await resuming;
        await stoppingFederation;
        await stoppingSenders;
        await stoppingPushes;
        await stoppingEvaluation;
        await stoppingReach;
        await stoppingPresence;
        await metrics?.close();
        await storage.close();
        return { cut, unfinished: 0 };
      })();
      return closing;
    },
  };
}
