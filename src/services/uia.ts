/**
 * User-interactive authentication (spec: Client-Server API, "User-Interactive
 * Authentication API"). Sessions live in the database so any process can continue them.
 */
import { MatrixError, type ErrorExtra } from '../core/errors.js';
import { newSessionId } from '../core/secrets.js';
import type { ServiceContext } from './context.js';

export type Flow = readonly string[];

/** The 401 answer of user-interactive auth: the flows, and what is done so far. */
export class UiaRequiredError extends MatrixError {
  constructor(body: ErrorExtra, failure?: { errcode: string; message: string }) {
    super(
      401,
      failure?.errcode ?? 'M_UNAUTHORIZED',
      failure?.message ?? 'Additional authentication required',
      body,
    );
    this.failed = failure !== undefined;
  }
  readonly failed: boolean;

  override toJSON(): Record<string, unknown> {
    return this.failed ? super.toJSON() : { ...this.extra };
  }
}

/** Checks one stage's credentials; returns a refusal message, or null when it passes. */
export type StageCheck = (auth: Record<string, unknown>) => Promise<string | null>;

export interface UiaRequest {
  /** The request's `auth` object, if any. */
  auth: unknown;
  /** What the session is for; a session started for one purpose cannot serve another. */
  purpose: string;
  flows: readonly Flow[];
  stages: Readonly<Record<string, StageCheck>>;
}

const SESSION_LIFETIME_MS = 30 * 60 * 1000;

export function createUiaService(ctx: ServiceContext) {
  const { uia } = ctx.storage.stores;

  const challenge = (
    request: UiaRequest,
    session: string,
    completed: readonly string[],
    failure?: { errcode: string; message: string },
  ): UiaRequiredError =>
    new UiaRequiredError(
      {
        flows: request.flows.map((stages) => ({ stages: [...stages] })),
        params: {},
        session,
        ...(completed.length > 0 ? { completed: [...completed] } : {}),
      },
      failure,
    );

  return {
    /**
     * Resolves when the request's `auth` completes a flow; otherwise throws the 401
     * answer (with a new or continued session), or a 400 for a malformed `auth`.
     */
    async authenticate(request: UiaRequest): Promise<void> {
      const now = ctx.now();
      if (request.auth === undefined || request.auth === null) {
        const session = newSessionId();
        await uia.insertSession(session, request.purpose, now);
        if (Math.random() < 0.01) await uia.deleteSessionsBefore(now - SESSION_LIFETIME_MS);
        throw challenge(request, session, []);
      }
      if (typeof request.auth !== 'object' || Array.isArray(request.auth)) {
        throw new MatrixError(400, 'M_BAD_JSON', '"auth" must be an object');
      }
      const auth = request.auth as Record<string, unknown>;
      let session = auth.session;
      let completed: string[] = [];
      if (session === undefined) {
        session = newSessionId();
        await uia.insertSession(session as string, request.purpose, now);
      } else {
        if (typeof session !== 'string')
          throw new MatrixError(400, 'M_BAD_JSON', '"auth.session" must be a string');
        const row = await uia.selectSession(session);
        if (!row || row.createdTs < now - SESSION_LIFETIME_MS) {
          throw new MatrixError(
            400,
            'M_UNKNOWN',
            'Unknown or expired user-interactive auth session',
          );
        }
        if (row.purpose !== request.purpose) {
          throw new MatrixError(
            400,
            'M_UNKNOWN',
            'This auth session was started for a different request',
          );
        }
        completed = row.completed;
      }
      const sessionId = session as string;
      const type = auth.type;
      if (type !== undefined) {
        if (typeof type !== 'string')
          throw new MatrixError(400, 'M_BAD_JSON', '"auth.type" must be a string');
        const check = request.stages[type];
        const offered = request.flows.some((flow) => flow.includes(type));
        if (!check || !offered) {
          throw challenge(request, sessionId, completed, {
            errcode: 'M_UNRECOGNIZED',
            message: `Authentication stage ${type} is not offered here`,
          });
        }
        const refusal = await check(auth);
        if (refusal !== null)
          throw challenge(request, sessionId, completed, {
            errcode: 'M_FORBIDDEN',
            message: refusal,
          });
        if (!completed.includes(type)) completed = [...completed, type];
      }
      const done = request.flows.some((flow) => flow.every((stage) => completed.includes(stage)));
      if (done) {
        await uia.deleteSession(sessionId);
        return;
      }
      await uia.updateCompleted(sessionId, completed);
      throw challenge(request, sessionId, completed);
    },
  };
}

export type UiaService = ReturnType<typeof createUiaService>;
