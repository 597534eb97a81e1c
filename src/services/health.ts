/** Whether this process can serve: today, whether its database answers. */
import type { ServiceContext } from './context.js';

/** A database that has not answered in this long counts as down. */
const PING_TIMEOUT_MS = 5000;

export function createHealthService(ctx: ServiceContext) {
  return {
    /** Null when the database answered a `SELECT 1` in time, else why not. */
    async databaseProblem(): Promise<string | null> {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<string>((resolve) => {
        timer = setTimeout(
          () => resolve(`the database did not answer within ${PING_TIMEOUT_MS / 1000} s`),
          PING_TIMEOUT_MS,
        );
      });
      try {
        return await Promise.race([
          ctx.storage.ping().then(
            () => null,
            (err: unknown) => `the database did not answer: ${(err as Error).message}`,
          ),
          timeout,
        ]);
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

export type HealthService = ReturnType<typeof createHealthService>;
