/**
 * Going through the servers of a room we are not in (joins, knocks, leaves): each server is
 * tried in turn until one accepts; each refusal or failure is kept as an attempt, and when
 * none accepted, the client gets a refusal passed on (the last 4xx a server answered) or 502.
 */
import { MatrixError, notFound, unknown } from '../../core/errors.js';

/** Why one resident server could not be used. */
export interface Attempt {
  server: string;
  status: number;
  errcode: string;
  error: string;
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** A server's answer (its `errcode` and `error` when it gave them), as an attempt. */
export function attemptOf(
  server: string,
  status: number,
  body: unknown,
  fallback: string,
): Attempt {
  return {
    server,
    status,
    errcode: isObject(body) && typeof body.errcode === 'string' ? body.errcode : 'M_UNKNOWN',
    error: isObject(body) && typeof body.error === 'string' ? body.error : fallback,
  };
}

/**
 * Tries `servers` (without duplicates and `ownServer`) in order with `through`: the first
 * result that is not an attempt, or every attempt. A room version we cannot handle does not
 * change with another server, so it ends the tries; a MatrixError thrown is passed on.
 */
export async function firstAccepting<T extends object>(
  servers: readonly string[],
  ownServer: string,
  through: (server: string) => Promise<T | { attempt: Attempt }>,
): Promise<T | { attempts: Attempt[] }> {
  const attempts: Attempt[] = [];
  for (const server of [...new Set(servers)].filter((s) => s !== ownServer)) {
    try {
      const result = await through(server);
      if (!('attempt' in result)) return result;
      attempts.push(result.attempt);
      if (result.attempt.errcode === 'M_INCOMPATIBLE_ROOM_VERSION') break;
    } catch (err) {
      if (err instanceof MatrixError) throw err;
      attempts.push({ server, status: 502, errcode: 'M_UNKNOWN', error: (err as Error).message });
    }
  }
  return { attempts };
}

/** The client's error when no server accepted: the last refusal passed on, else 502. */
export function noServerAccepted(attempts: readonly Attempt[], purpose: string): MatrixError {
  const refusal = [...attempts].reverse().find((a) => a.status >= 400 && a.status < 500);
  if (refusal)
    return new MatrixError(refusal.status, refusal.errcode, `${refusal.server}: ${refusal.error}`);
  if (attempts.length === 0) return notFound(`No server to ${purpose} through`);
  return unknown(
    `No server could be used to ${purpose}: ${attempts.map((a) => `${a.server} (${a.error})`).join('; ')}`,
    502,
  );
}
