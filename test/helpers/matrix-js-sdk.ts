/**
 * matrix-js-sdk as a real client of a test server.
 *
 * - `loadMatrixJsSdk()` imports the SDK once. Recent SDK releases call
 *   `Promise.withResolvers` (Node 22+); on Node 20 a small polyfill is installed first,
 *   which is why the SDK must be imported dynamically through this function and never
 *   with a static `import` (type-only imports are fine).
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

let loading: Promise<Sdk> | undefined;

/** The matrix-js-sdk module, imported once, after the polyfills it needs. */
export function loadMatrixJsSdk(): Promise<Sdk> {
  loading ??= (async () => {
    polyfillPromiseWithResolvers();
    const sdk = await import('matrix-js-sdk');
    // The SDK's global logger (used by code outside a client) logs at debug level.
    const { logger } = await import('matrix-js-sdk/lib/logger.js');
    (logger as unknown as { setLevel?: (level: string) => void }).setLevel?.('silent');
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
