/**
 * matrix-js-sdk as a real client of a test server.
 *
 * - `loadMatrixJsSdk()` imports the SDK once. Recent SDK releases call
 *   `Promise.withResolvers` (Node 22+); on Node 20 a small polyfill is installed first,
 *   which is why the SDK must be imported dynamically through this function and never
 *   with a static `import` (type-only imports are fine).
 * - A started client (`startClient()`) leaves a timer behind per /sync request: the SDK's
 *   `timeoutSignal()` (node_modules/matrix-js-sdk/lib/http-api/utils.js:23, used by fetch.js:214)
 *   sets an 80 s + poll-timeout timer and never clears it, which kept a test process alive
 *   for almost two minutes after its last test (and its Rust crypto's requests leave 60 s
 *   ones). `loadMatrixJsSdk()` therefore makes timers of 60 s or more `unref()`ed: they
 *   still fire while the process runs, but no longer keep it from exiting. It also silences the SDK's child loggers (MatrixRTC logs through its
 *   own, at debug level).
 * - `createSdkClient(server, user)` makes a `MatrixClient` logged in as `user`, with the
 *   SDK's logging silenced. It does not call `startClient()`: tests call the client's
 *   request methods directly. Pass `fetchFn` to observe the requests the SDK sends (wrap
 *   the global `fetch`; do not fake answers).
 */
import type * as MatrixJsSdk from 'matrix-js-sdk';
import type { MatrixClient } from 'matrix-js-sdk';
import type { Logger } from 'matrix-js-sdk/lib/logger.js';
import type { TestUser } from './client.js';
import type { TestServer } from './server.js';

type Sdk = typeof MatrixJsSdk;

interface WithResolvers<T> {
  promise: Promise<T>;
  resolve: (value: T | PromiseLike<T>) => void;
  reject: (reason?: unknown) => void;
}

/** Installs `Promise.withResolvers` when the runtime lacks it (Node 20). */
function polyfillPromiseWithResolvers(): void {
  const ctor = Promise as unknown as { withResolvers?: <T>() => WithResolvers<T> };
  if (typeof ctor.withResolvers === 'function') return;
  Object.defineProperty(Promise, 'withResolvers', {
    configurable: true,
    writable: true,
    value<T>(): WithResolvers<T> {
      let resolve!: WithResolvers<T>['resolve'];
      let reject!: WithResolvers<T>['reject'];
      const promise = new Promise<T>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      return { promise, resolve, reject };
    },
  });
}

/**
 * Timers at least this long (the SDK's leaked request timeouts: 80 s and more for /sync, 60 s
 * for the requests of its Rust crypto) do not hold the process.
 */
const LONG_TIMER_MS = 60_000;

/** Makes every timer of LONG_TIMER_MS or more unref()ed, once. */
function unrefLongTimers(): void {
  const original = globalThis.setTimeout;
  if ((original as { unrefsLongTimers?: boolean }).unrefsLongTimers) return;
  const patched = ((handler: (...args: unknown[]) => void, ms?: number, ...args: unknown[]) => {
    const timer = original(handler, ms, ...args);
    if (typeof ms === 'number' && ms >= LONG_TIMER_MS) timer.unref();
    return timer;
  }) as typeof globalThis.setTimeout;
  Object.assign(patched, original, { unrefsLongTimers: true });
  globalThis.setTimeout = patched;
}

let loading: Promise<Sdk> | undefined;

/** The matrix-js-sdk module, imported once, after the polyfills it needs. */
export function loadMatrixJsSdk(): Promise<Sdk> {
  loading ??= (async () => {
    polyfillPromiseWithResolvers();
    unrefLongTimers();
    const sdk = await import('matrix-js-sdk');
    // The SDK's global logger (used by code outside a client) logs at debug level, and so
    // does every child logger made from it (each child sets its own level to debug, but
    // inherits the parent's method factory): a factory that makes no-op methods.
    const { logger } = await import('matrix-js-sdk/lib/logger.js');
    const root = logger as unknown as {
      setLevel?: (level: string) => void;
      methodFactory?: unknown;
      rebuild?: () => void;
    };
    root.methodFactory = () => () => {};
    root.rebuild?.();
    root.setLevel?.('silent');
    return sdk;
  })();
  return loading;
}

/** A logger that drops everything, for the client's own `logger` option. */
const silentLogger: Logger = {
  trace: () => {},
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
  getChild: () => silentLogger,
};

export interface SdkClientOptions {
  /** Used for every HTTP request of the client (default: the global fetch). */
  fetchFn?: typeof globalThis.fetch;
}

/** A MatrixClient for `user` on `server`, not started (no /sync), SDK logging off. */
export async function createSdkClient(
  server: TestServer,
  user: TestUser,
  options: SdkClientOptions = {},
): Promise<MatrixClient> {
  const sdk = await loadMatrixJsSdk();
  return sdk.createClient({
    baseUrl: server.url,
    accessToken: user.accessToken,
    userId: user.userId,
    deviceId: user.deviceId,
    logger: silentLogger,
    ...(options.fetchFn ? { fetchFn: options.fetchFn } : {}),
  });
}
