/**
 * Accounts: registration (open, and Synapse-compatible shared-secret admin registration),
 * username availability, password changes.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { MatrixError, forbidden } from '../core/errors.js';
import { MAX_IDENTIFIER_BYTES, isValidNewLocalpart, makeUserId } from '../core/identifiers.js';
import { hashPassword } from '../core/password-hash.js';
import { assertPasswordAllowed, NO_PASSWORD_POLICY } from '../core/password-policy.js';
import { newAccessToken, hashAccessToken, newDeviceId, randomString } from '../core/secrets.js';
import type { Stores } from '../storage/index.js';
import type { Requester, ServiceContext } from './context.js';
import { forgetDevices } from './device-keys.js';
import { checkPassword, userIdFromLogin } from './credentials.js';
import type { UiaService } from './uia.js';
import { assertNotExclusive } from './appservice/acting.js';

import { tokenIsValid } from './admin/registration-tokens.js';

export interface RegisterRequest {
  auth?: unknown;
  username?: string | undefined;
  password?: string | undefined;
  deviceId?: string | undefined;
  initialDeviceDisplayName?: string | undefined;
  inhibitLogin?: boolean | undefined;
  kind?: string | undefined;
  ip: string | null;
}

export interface LoginResult {
  userId: string;
  accessToken: string;
  deviceId: string;
}

export interface AdminRegisterRequest {
  nonce: string;
  username: string;
  password: string;
  admin: boolean;
  mac: string;
  displayname?: string | undefined;
  userType?: string | undefined;
}

const NONCE_LIFETIME_MS = 60_000;

export function createAccountService(ctx: ServiceContext, uia: UiaService) {
  const { serverName } = ctx.settings;
  const accounts = ctx.storage.stores.accounts;

  /** Throws M_INVALID_USERNAME / M_USER_IN_USE when `localpart` cannot be registered. */
  async function assertAvailable(localpart: string): Promise<string> {
    if (!isValidNewLocalpart(localpart)) {
      throw new MatrixError(
        400,
        'M_INVALID_USERNAME',
        'User IDs may only contain a-z, 0-9, ".", "_", "=", "-", "/" and "+"',
      );
    }
    const userId = makeUserId(localpart, serverName);
    if (Buffer.byteLength(userId) > MAX_IDENTIFIER_BYTES) {
      throw new MatrixError(
        400,
        'M_INVALID_USERNAME',
        `User ID may not be longer than ${MAX_IDENTIFIER_BYTES} bytes`,
      );
    }
    if (await accounts.selectUser(userId))
      throw new MatrixError(400, 'M_USER_IN_USE', 'User ID already taken');
    // A user in an application service's exclusive namespace is the service's to create.
    assertNotExclusive(ctx.settings.appServices ?? [], userId);
    return userId;
  }

  /** Creates the user, and unless `inhibitLogin`, a device with a new access token. */
  async function createAccount(
    stores: Stores,
    user: {
      userId: string;
      localpart: string;
      passwordHash: string | null;
      isAdmin: boolean;
      displayname: string;
    },
    login: {
      deviceId?: string | undefined;
      displayName?: string | undefined;
      ip: string | null;
    } | null,
  ): Promise<LoginResult | { userId: string }> {
    const now = ctx.now();
    const inserted = await stores.accounts.insertUser({ ...user, createdTs: now });
    if (!inserted) throw new MatrixError(400, 'M_USER_IN_USE', 'User ID already taken');
    if (!login) return { userId: user.userId };
    return issueLogin(stores, user.userId, login, now);
  }

  async function issueLogin(
    stores: Stores,
    userId: string,
    login: { deviceId?: string | undefined; displayName?: string | undefined; ip: string | null },
    now: number,
  ): Promise<LoginResult> {
    const deviceId = login.deviceId ?? newDeviceId();
    await stores.devices.upsertDevice(userId, deviceId, login.displayName ?? null, now, login.ip);
    const accessToken = newAccessToken();
    await stores.devices.insertAccessToken(hashAccessToken(accessToken), userId, deviceId, now);
    return { userId, accessToken, deviceId };
  }

  const passwordStage = (userId: string) => async (auth: Record<string, unknown>) => {
    const named = userIdFromLogin(auth, serverName);
    if (named !== userId) return 'You can only authenticate as yourself';
    const result = await checkPassword(ctx, named, auth.password);
    return result.ok ? null : 'Invalid password';
  };

  return {
    issueLogin: (
      userId: string,
      login: { deviceId?: string | undefined; displayName?: string | undefined; ip: string | null },
    ) => ctx.storage.tx('login', (stores) => issueLogin(stores, userId, login, ctx.now())),

    /** The m.login.password stage for re-authenticating as `userId`. */
    passwordStage,

    async checkAvailable(username: string): Promise<void> {
      await assertAvailable(username);
    },

    async register(request: RegisterRequest): Promise<LoginResult | { userId: string }> {
      if (request.kind !== undefined && request.kind !== 'user') {
        if (request.kind === 'guest')
          throw new MatrixError(403, 'M_GUEST_ACCESS_FORBIDDEN', 'Guest access is disabled');
        throw new MatrixError(400, 'M_INVALID_PARAM', 'kind must be "user" or "guest"');
      }
      if (!ctx.settings.registrationEnabled)
        throw forbidden('Registration is disabled on this server');
      const localpart =
        request.username ?? `u${randomString(11, 'abcdefghijklmnopqrstuvwxyz0123456789')}`;
      const userId = await assertAvailable(localpart);
      if (request.password !== undefined) assertPasswordAllowed(policyOf(ctx), request.password);
      const requiresToken = ctx.settings.registrationRequiresToken === true;
      await uia.authenticate({
        auth: request.auth,
        purpose: 'register',
        flows: requiresToken ? [[REGISTRATION_TOKEN]] : [['m.login.dummy']],
        stages: {
          'm.login.dummy': async () => null,
          [REGISTRATION_TOKEN]: async (auth) =>
            typeof auth.token === 'string' &&
            (await registrationTokenValid(ctx.storage.stores, auth.token, ctx.now()))
              ? null
              : 'Invalid registration token',
        },
      });
      // The token of the request that completed the flow (the flow's one stage).
      const auth = request.auth as Record<string, unknown>;
      const token =
        requiresToken && auth.type === REGISTRATION_TOKEN && typeof auth.token === 'string'
          ? auth.token
          : null;
      const passwordHash =
        request.password === undefined ? null : await hashPassword(request.password, costOf(ctx));
      return ctx.storage.tx('registerUser', async (stores) => {
        // Counted with the account, so that no more accounts than allowed are made with it.
        if (token !== null && !(await stores.admin.updateTokenCompleted(token, ctx.now()))) {
          throw forbidden('The registration token is no longer valid');
        }
        return createAccount(
          stores,
          { userId, localpart, passwordHash, isAdmin: false, displayname: localpart },
          request.inhibitLogin
            ? null
            : {
                deviceId: request.deviceId,
                displayName: request.initialDeviceDisplayName,
                ip: request.ip,
              },
        );
      });
    },

    /** A nonce for shared-secret registration, valid for one use within a minute. */
    async newAdminNonce(): Promise<string> {
      if (ctx.settings.registrationSharedSecret === null) {
        throw new MatrixError(400, 'M_UNKNOWN', 'Shared secret registration is not enabled');
      }
      const nonce = randomString(32);
      await ctx.storage.stores.uia.insertNonce(nonce, ctx.now());
      return nonce;
    },

    /** Synapse's `/_synapse/admin/v1/register`: HMAC-SHA1 over nonce, user, password, admin. */
    async adminRegister(request: AdminRegisterRequest): Promise<LoginResult> {
      const secret = ctx.settings.registrationSharedSecret;
      if (secret === null)
        throw new MatrixError(400, 'M_UNKNOWN', 'Shared secret registration is not enabled');
      const fresh = await ctx.storage.stores.uia.consumeNonce(
        request.nonce,
        ctx.now() - NONCE_LIFETIME_MS,
      );
      if (!fresh) throw new MatrixError(400, 'M_UNKNOWN', 'Unrecognised or expired nonce');
      const expected = adminRegistrationMac(secret, request);
      const given = Buffer.from(request.mac, 'utf8');
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
        throw forbidden('HMAC incorrect');
      }
      const localpart = request.username.toLowerCase();
      const userId = await assertAvailable(localpart);
      const passwordHash = await hashPassword(request.password, costOf(ctx));
      const result = await ctx.storage.tx('adminRegisterUser', (stores) =>
        createAccount(
          stores,
          {
            userId,
            localpart,
            passwordHash,
            isAdmin: request.admin,
            displayname: request.displayname ?? localpart,
          },
          { ip: null },
        ),
      );
      return result as LoginResult;
    },

    /** Changes the password after re-authentication; optionally logs out other devices. */
    async changePassword(
      requester: Requester,
      request: { auth: unknown; newPassword: string; logoutDevices: boolean },
    ): Promise<void> {
      await uia.authenticate({
        auth: request.auth,
        purpose: `change_password:${requester.userId}`,
        flows: [['m.login.password']],
        stages: { 'm.login.password': passwordStage(requester.userId) },
      });
      assertPasswordAllowed(policyOf(ctx), request.newPassword);
      const passwordHash = await hashPassword(request.newPassword, costOf(ctx));
      await ctx.storage.tx('changePassword', async (stores) => {
        await stores.accounts.updatePasswordHash(requester.userId, passwordHash);
        if (request.logoutDevices) {
          const others = (await stores.devices.selectDevices(requester.userId))
            .map((d) => d.deviceId)
            .filter((id) => id !== requester.deviceId);
          await forgetDevices(stores, requester.userId, others, ctx);
          await stores.devices.deleteAllDevices(requester.userId, requester.deviceId);
        }
      });
    },
  };
}

const policyOf = (ctx: ServiceContext) => ctx.settings.passwordPolicy ?? NO_PASSWORD_POLICY;

/** The UIA stage of registration tokens (spec v1.2). */
export const REGISTRATION_TOKEN = 'm.login.registration_token';

/** Whether `token` may be used to register at `now` (expiry and uses left). */
export async function registrationTokenValid(
  stores: Stores,
  token: string,
  now: number,
): Promise<boolean> {
  const row = await stores.admin.selectRegistrationToken(token);
  return row !== undefined && tokenIsValid(row, now);
}

const costOf = (ctx: ServiceContext) => ({ log2N: ctx.settings.passwordCostLog2N, r: 8, p: 1 });

/** The MAC Synapse's shared-secret registration expects, as hex bytes. */
export function adminRegistrationMac(
  secret: string,
  request: {
    nonce: string;
    username: string;
    password: string;
    admin: boolean;
    userType?: string | undefined;
  },
): Buffer {
  const mac = createHmac('sha1', secret);
  mac
    .update(request.nonce)
    .update('\x00')
    .update(request.username)
    .update('\x00')
    .update(request.password);
  mac.update('\x00').update(request.admin ? 'admin' : 'notadmin');
  if (request.userType !== undefined) mac.update('\x00').update(request.userType);
  return Buffer.from(mac.digest('hex'), 'utf8');
}

export type AccountService = ReturnType<typeof createAccountService>;
