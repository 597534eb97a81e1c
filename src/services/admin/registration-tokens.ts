/**
 * Registration tokens (Synapse's /_synapse/admin/v1/registration_tokens; spec v1.2's
 * `m.login.registration_token` stage): made, changed and deleted by admins, spent by
 * registrations. A token is valid while it has not expired and its completed registrations
 * (with those pending in a UIA session) stay under `uses_allowed`.
 * https://element-hq.github.io/synapse/latest/usage/administration/admin_api/registration_tokens.html
 */
import { MatrixError, forbidden, invalidParam, notFound } from '../../core/errors.js';
import { randomString } from '../../core/secrets.js';
import type { RegistrationTokenRow } from '../../storage/index.js';
import type { ServiceContext } from '../context.js';

/** Characters a token may hold (Synapse: the unreserved characters of RFC 3986). */
const TOKEN_CHARS = /^[A-Za-z0-9._~-]{1,64}$/;
const GENERATED_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~-';

export interface NewToken {
  token?: string | undefined;
  usesAllowed?: number | null | undefined;
  expiryTime?: number | null | undefined;
  length?: number | undefined;
}

/** Whether `row` may still be used at `now`. */
export function tokenIsValid(row: RegistrationTokenRow, now: number): boolean {
  if (row.expiryTime !== null && row.expiryTime <= now) return false;
  if (row.usesAllowed !== null && row.pending + row.completed >= row.usesAllowed) return false;
  return true;
}

export function createRegistrationTokenService(ctx: ServiceContext) {
  const store = ctx.storage.stores.admin;

  function checkExpiry(expiryTime: number | null | undefined): void {
    if (expiryTime !== undefined && expiryTime !== null && expiryTime < ctx.now()) {
      throw invalidParam('expiry_time must not be in the past');
    }
  }

  async function existing(token: string): Promise<RegistrationTokenRow> {
    const row = await store.selectRegistrationToken(token);
    if (!row) throw notFound(`No such registration token: ${token}`);
    return row;
  }

  return {
    async list(valid?: boolean): Promise<RegistrationTokenRow[]> {
      const rows = await store.selectRegistrationTokens();
      if (valid === undefined) return rows;
      const now = ctx.now();
      return rows.filter((row) => tokenIsValid(row, now) === valid);
    },

    get: existing,

    async create(request: NewToken): Promise<RegistrationTokenRow> {
      if (request.token !== undefined && request.length !== undefined) {
        throw invalidParam('Give either token or length, not both');
      }
      if (request.token !== undefined && !TOKEN_CHARS.test(request.token)) {
        throw invalidParam('token must be 1-64 characters of A-Z, a-z, 0-9, ".", "_", "~" and "-"');
      }
      checkExpiry(request.expiryTime);
      const row: RegistrationTokenRow = {
        token: request.token ?? randomString(request.length ?? 16, GENERATED_CHARS),
        usesAllowed: request.usesAllowed ?? null,
        pending: 0,
        completed: 0,
        expiryTime: request.expiryTime ?? null,
      };
      if (!(await store.insertRegistrationToken(row))) {
        throw new MatrixError(400, 'M_INVALID_PARAM', `Token already exists: ${row.token}`);
      }
      return row;
    },

    async update(
      token: string,
      change: { usesAllowed?: number | null | undefined; expiryTime?: number | null | undefined },
    ): Promise<RegistrationTokenRow> {
      checkExpiry(change.expiryTime);
      const row = await store.updateRegistrationToken(token, {
        ...(change.usesAllowed !== undefined ? { usesAllowed: change.usesAllowed } : {}),
        ...(change.expiryTime !== undefined ? { expiryTime: change.expiryTime } : {}),
      });
      if (!row) throw notFound(`No such registration token: ${token}`);
      return row;
    },

    async delete(token: string): Promise<void> {
      if (!(await store.deleteRegistrationToken(token))) {
        throw notFound(`No such registration token: ${token}`);
      }
    },

    /**
     * Whether `token` may be used for a registration now (the spec's validity endpoint);
     * 403 when registration is closed, where no token is of any use.
     */
    async validForRegistration(token: string): Promise<boolean> {
      if (!ctx.settings.registrationEnabled) {
        throw forbidden('Registration is disabled on this server');
      }
      const row = await store.selectRegistrationToken(token);
      return row !== undefined && tokenIsValid(row, ctx.now());
    },
  };
}

export type RegistrationTokenService = ReturnType<typeof createRegistrationTokenService>;
