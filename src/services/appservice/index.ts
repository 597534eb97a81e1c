/** Application services: acting on the client API, and the queues that push to them. */
import type { AccountService } from '../accounts.js';
import type { ServiceContext } from '../context.js';
import type { EventWriter } from '../event-writer.js';
import { createAppServiceActing } from './acting.js';
import { createAppServiceCalls } from './calls.js';
import { createAppServiceDirectory } from './directory.js';
import { appServiceDeriver, appServiceStateDeriver } from './interest.js';
import { createAppServiceSender } from './sender.js';
import { recordRegistrations } from './startup.js';

export function createAppServices(
  ctx: ServiceContext,
  accounts: AccountService,
  writer: EventWriter,
) {
  const registrations = ctx.settings.appServices ?? [];
  if (registrations.length > 0) {
    writer.addDeriver(appServiceDeriver(registrations, ctx.settings.serverName));
    writer.addStateDeriver(appServiceStateDeriver(registrations, ctx.settings.serverName));
  }
  const sender = createAppServiceSender(ctx, registrations);
  const acting = createAppServiceActing(ctx, accounts);
  return {
    ...acting,
    /** At start: the senders' accounts, and the records of the registrations (./startup.ts). */
    async ensureSenders(): Promise<void> {
      await acting.ensureSenders();
      await recordRegistrations(ctx, registrations);
    },
    /** Ping, user and alias queries, third-party lookups. */
    calls: createAppServiceCalls(ctx),
    /** The room directories of the services' networks. */
    directory: createAppServiceDirectory(ctx),
    /** Starts pushing transactions (after start-up). */
    startSending: sender.start,
    stopSending: sender.stop,
  };
}

export type AppServices = ReturnType<typeof createAppServices>;
export type { Masquerade } from './acting.js';
export { networkOfRequest } from './directory.js';
