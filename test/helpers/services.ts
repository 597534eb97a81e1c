/**
 * The services of a running test server, built over its own storage: for checking what
 * other services (such as /sync) read from a service, after writing through HTTP.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { loadServerSecrets } from '../../src/config/server-secrets.js';
import { serviceSettingsOf } from '../../src/main.js';
import { createServices, type ServiceContext, type Services } from '../../src/services/index.js';
import type { StreamChange } from '../../src/storage/index.js';
import type { TestServer } from './server.js';

export function serviceContextOf(server: TestServer, now: () => number = Date.now): ServiceContext {
  const { config } = server;
  return {
    settings: serviceSettingsOf(config),
    storage: server.running.storage,
    now,
    signingKey: loadServerSecrets(config.data_dir).signingKey,
  };
}

/** Every service, over the server's storage (a second set, beside the server's own). */
export function servicesOf(server: TestServer, now?: () => number): Services {
  return createServices(serviceContextOf(server, now));
}

/** Records the changes the server announces to waiting /sync requests, from now on. */
export function watchChanges(server: TestServer) {
  const seen: StreamChange[] = [];
  const stop = server.running.storage.changes.subscribe((change) => seen.push(change));
  return {
    /** The first change (seen so far or arriving within `timeoutMs`) matching `predicate`. */
    async waitFor(
      predicate: (change: StreamChange) => boolean,
      timeoutMs = 5000,
    ): Promise<StreamChange> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = seen.find(predicate);
        if (found) return found;
        if (Date.now() > deadline) {
          throw new Error(`no matching change announced; saw ${JSON.stringify(seen)}`);
        }
        await sleep(10);
      }
    },
    stop,
  };
}
