/**
 * Requests Commons makes to application services besides transactions: the ping, the user
 * and room-alias queries, and third-party lookups passed through. Each carries the service's
 * `hs_token` (Authorization header) and is bounded in time.
 * https://spec.matrix.org/v1.19/application-service-api/#querying
 */
import {
  isServiceUser,
  aliasInNamespace,
  type AppServiceRegistration,
} from '../../core/appservice.js';
import { MatrixError } from '../../core/errors.js';
import type { ServiceContext } from '../context.js';

const QUERY_TIMEOUT_MS = 10_000;
const PING_TIMEOUT_MS = 15_000;

export interface ServiceAnswer {
  status: number;
  text: string;
}

export class ServiceUnreachable extends Error {
  constructor(
    readonly timedOut: boolean,
    message: string,
  ) {
    super(message);
    this.name = 'ServiceUnreachable';
  }
}

/** One request to a service (which has a URL); throws ServiceUnreachable when no answer came. */
export async function callService(
  r: AppServiceRegistration,
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
  timeoutMs = QUERY_TIMEOUT_MS,
): Promise<ServiceAnswer> {
  if (r.url === null) throw new ServiceUnreachable(false, `${r.id} has no URL`);
  let response: Response;
  try {
    response = await fetch(`${r.url}${path}`, {
      method,
      headers: {
        Authorization: `Bearer ${r.hsToken}`,
        ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    const timedOut = (err as Error).name === 'TimeoutError';
    throw new ServiceUnreachable(timedOut, timedOut ? 'timed out' : (err as Error).message);
  }
  const text = await response.text().catch(() => '');
  return { status: response.status, text };
}

/** The JSON value of an answer, or undefined when it is not JSON. */
function jsonOf(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

export function createAppServiceCalls(ctx: ServiceContext) {
  const registrations = (ctx.settings.appServices ?? []).filter((r) => r.url !== null);
  const { serverName } = ctx.settings;

  return {
    /**
     * `POST /_matrix/client/v1/appservice/{id}/ping` for the service `acting`: it pings
     * itself through Commons. The round trip's time, or the spec's errors.
     * https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv1appserviceappserviceidping
     */
    async ping(
      acting: AppServiceRegistration | undefined,
      id: string,
      transactionId: string | undefined,
    ): Promise<{ durationMs: number }> {
      if (!acting || acting.id !== id)
        throw new MatrixError(
          403,
          'M_FORBIDDEN',
          'Only the application service itself can ping it',
        );
      if (acting.url === null)
        throw new MatrixError(400, 'M_URL_NOT_SET', 'The application service has no URL');
      const started = performance.now();
      let answer: ServiceAnswer;
      try {
        answer = await callService(
          acting,
          'POST',
          '/_matrix/app/v1/ping',
          transactionId !== undefined ? { transaction_id: transactionId } : {},
          PING_TIMEOUT_MS,
        );
      } catch (err) {
        if (err instanceof ServiceUnreachable && err.timedOut)
          throw new MatrixError(504, 'M_CONNECTION_TIMEOUT', 'Ping timed out');
        throw new MatrixError(
          502,
          'M_CONNECTION_FAILED',
          'Connection to the application service failed',
        );
      }
      if (answer.status < 200 || answer.status > 299)
        throw new MatrixError(502, 'M_BAD_STATUS', `Ping returned status ${answer.status}`, {
          status: answer.status,
          body: answer.text,
        });
      return { durationMs: Math.round(performance.now() - started) };
    },

    /** Whether a service with a URL holds `userId` in its namespaces (a query may be made). */
    mayQueryUser: (userId: string): boolean =>
      registrations.some((r) => isServiceUser(r, userId, serverName)),

    /**
     * Asks the services whose namespaces hold `userId` whether it exists (they create it
     * before answering 200). True when one said so.
     */
    async queryUser(userId: string): Promise<boolean> {
      for (const r of registrations) {
        if (!isServiceUser(r, userId, serverName)) continue;
        const answer = await callService(
          r,
          'GET',
          `/_matrix/app/v1/users/${encodeURIComponent(userId)}`,
        ).catch(() => null);
        if (answer && answer.status >= 200 && answer.status < 300) return true;
      }
      return false;
    },

    /** The same for a room alias: the service creates the room and the alias, then answers 200. */
    async queryAlias(alias: string): Promise<boolean> {
      for (const r of registrations) {
        if (!aliasInNamespace(r, alias)) continue;
        const answer = await callService(
          r,
          'GET',
          `/_matrix/app/v1/rooms/${encodeURIComponent(alias)}`,
        ).catch(() => null);
        if (answer && answer.status >= 200 && answer.status < 300) return true;
      }
      return false;
    },

    /** `GET /thirdparty/protocols`: each service's protocol metadata, by protocol. */
    async protocols(): Promise<Record<string, unknown>> {
      const result: Record<string, unknown> = {};
      for (const r of registrations) {
        for (const protocol of r.protocols) {
          const answer = await callService(
            r,
            'GET',
            `/_matrix/app/v1/thirdparty/protocol/${encodeURIComponent(protocol)}`,
          ).catch(() => null);
          const value = answer && answer.status === 200 ? jsonOf(answer.text) : undefined;
          if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
            result[protocol] = {
              ...value,
              instances: (value as { instances?: unknown }).instances ?? [],
            };
          }
        }
      }
      return result;
    },

    /**
     * A third-party lookup passed through to the services of `protocol` (or every service,
     * for the reverse lookups): `kind` is `protocol`, `user` or `location`. Lists are merged.
     */
    async thirdParty(
      kind: 'protocol' | 'user' | 'location',
      protocol: string | null,
      query: Record<string, string>,
    ): Promise<unknown> {
      const serving =
        protocol === null
          ? registrations
          : registrations.filter((r) => r.protocols.includes(protocol));
      if (serving.length === 0)
        throw new MatrixError(
          404,
          'M_NOT_FOUND',
          `No application service serves ${protocol ?? kind}`,
        );
      const search = new URLSearchParams(query).toString();
      const path =
        `/_matrix/app/v1/thirdparty/${kind}` +
        (protocol !== null ? `/${encodeURIComponent(protocol)}` : '') +
        (search !== '' ? `?${search}` : '');
      const lists: unknown[] = [];
      for (const r of serving) {
        const answer = await callService(r, 'GET', path).catch(() => null);
        const value = answer && answer.status === 200 ? jsonOf(answer.text) : undefined;
        if (kind === 'protocol') {
          if (typeof value === 'object' && value !== null) return value;
        } else if (Array.isArray(value)) lists.push(...(value as unknown[]));
      }
      if (kind === 'protocol')
        throw new MatrixError(404, 'M_NOT_FOUND', `Protocol ${protocol} not found`);
      return lists;
    },
  };
}

export type AppServiceCalls = ReturnType<typeof createAppServiceCalls>;
