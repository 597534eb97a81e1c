/**
 * Application services acting on the client API: `as_token` authentication, `user_id` and
 * device masquerading, registration and login of their users, and their devices (MSC4190).
 * https://spec.matrix.org/v1.19/application-service-api/#client-server-api-extensions
 */
import {
  aliasInNamespace,
  isServiceUser,
  senderOf,
  userInExclusiveNamespace,
  type AppServiceRegistration,
} from '../../core/appservice.js';
import { MatrixError, forbidden, missingToken, unknownToken } from '../../core/errors.js';
import {
  MAX_IDENTIFIER_BYTES,
  isValidNewLocalpart,
  makeUserId,
  parseUserId,
} from '../../core/identifiers.js';
import { hashAccessToken } from '../../core/secrets.js';
import type { AccountService, LoginResult } from '../accounts.js';
import type { Requester, ServiceContext } from '../context.js';
import { userIdFromLogin } from '../credentials.js';

/** What a request names besides the token: `user_id`, and a device (MSC3202 or its stable name). */
export interface Masquerade {
  userId?: string | undefined;
  deviceId?: string | undefined;
}

export interface AppServiceRegisterRequest {
  username: string | undefined;
  deviceId?: string | undefined;
  initialDeviceDisplayName?: string | undefined;
  inhibitLogin?: boolean | undefined;
  ip: string | null;
}

const exclusive = (message: string) => new MatrixError(400, 'M_EXCLUSIVE', message);
const invalidUsername = (message: string) => new MatrixError(400, 'M_INVALID_USERNAME', message);

export function createAppServiceActing(ctx: ServiceContext, accounts: AccountService) {
  const { serverName } = ctx.settings;
  const registrations = ctx.settings.appServices ?? [];
  // By the token's hash, as access tokens are looked up: a map probe on the token itself
  // would take longer the more of its prefix matches a registered one.
  const byTokenHash = new Map(registrations.map((r) => [hashAccessToken(r.asToken), r]));
  const senders = new Map(
    registrations.map((r): [AppServiceRegistration, Requester] => [
      r,
      Object.freeze({
        userId: senderOf(r, serverName),
        deviceId: '',
        isAdmin: false,
        appservice: r,
      }),
    ]),
  );

  /** The service whose exclusive user namespace holds `userId`, if one does. */
  function exclusiveOwner(userId: string): AppServiceRegistration | null {
    return registrations.find((r) => userInExclusiveNamespace(r, userId)) ?? null;
  }

  function assertServiceUser(r: AppServiceRegistration, userId: string): void {
    if (!isServiceUser(r, userId, serverName))
      throw forbidden(`Application service cannot act as ${userId}: not in its namespace`);
  }

  /** The service a `/register` or `/login` of its type names by its token: 401 when none. */
  function serviceOf(token: string | null): AppServiceRegistration {
    if (token === null) throw missingToken();
    const r = byTokenHash.get(hashAccessToken(token));
    if (!r) throw unknownToken(false);
    return r;
  }

  return {
    registrations,
    exclusiveOwner,
    serviceOf,

    /** The service whose `as_token` this is (never its `hs_token`), or null. */
    byToken(token: string): AppServiceRegistration | null {
      return byTokenHash.size === 0 ? null : (byTokenHash.get(hashAccessToken(token)) ?? null);
    },

    /** `byToken` by the token's hash (`hashAccessToken`), for a caller that has it. */
    byTokenHash(hash: string): AppServiceRegistration | null {
      return byTokenHash.get(hash) ?? null;
    },

    /**
     * The requester an `as_token` request acts as: the service's sender, or `user_id` when it
     * is in the service's namespace (403 otherwise) and registered; with a device, that device
     * of the user's (it must exist).
     */
    requester(r: AppServiceRegistration, named: Masquerade): Requester | Promise<Requester> {
      const sender = senders.get(r) as Requester;
      const userId = named.userId ?? sender.userId;
      if (userId === sender.userId && named.deviceId === undefined) return sender;
      return (async () => {
        if (parseUserId(userId) === null)
          throw new MatrixError(400, 'M_INVALID_PARAM', 'user_id is not a user ID');
        assertServiceUser(r, userId);
        const user = await ctx.storage.stores.accounts.selectUser(userId);
        if (!user) throw forbidden(`Application service has not registered ${userId}`);
        if (user.deactivated)
          throw new MatrixError(403, 'M_USER_DEACTIVATED', 'This account has been deactivated');
        let deviceId = '';
        if (named.deviceId !== undefined) {
          const device = await ctx.storage.stores.devices.selectDevice(userId, named.deviceId);
          if (!device)
            throw new MatrixError(
              400,
              'M_UNKNOWN_DEVICE',
              `Device ${named.deviceId} does not belong to ${userId}`,
            );
          deviceId = named.deviceId;
        }
        return Object.freeze({ userId, deviceId, isAdmin: false, appservice: r });
      })();
    },

    /** Creates the services' senders that do not exist yet (at start). */
    async ensureSenders(): Promise<void> {
      for (const r of registrations) {
        const userId = senderOf(r, serverName);
        await ctx.storage.stores.accounts.insertUser({
          userId,
          localpart: r.senderLocalpart,
          passwordHash: null,
          isAdmin: false,
          displayname: r.senderLocalpart,
          createdTs: ctx.now(),
        });
      }
    },

    /** `/register` with `m.login.application_service`: a user in the service's namespace. */
    async register(
      r: AppServiceRegistration,
      request: AppServiceRegisterRequest,
    ): Promise<LoginResult | { userId: string }> {
      if (request.username === undefined)
        throw new MatrixError(400, 'M_MISSING_PARAM', 'username is required');
      const localpart = request.username.startsWith('@')
        ? (parseUserId(request.username)?.localpart ?? request.username)
        : request.username;
      if (!isValidNewLocalpart(localpart))
        throw invalidUsername(
          'User IDs may only contain a-z, 0-9, ".", "_", "=", "-", "/" and "+"',
        );
      const userId = makeUserId(localpart, serverName);
      if (Buffer.byteLength(userId) > MAX_IDENTIFIER_BYTES)
        throw invalidUsername(`User ID may not be longer than ${MAX_IDENTIFIER_BYTES} bytes`);
      if (!isServiceUser(r, userId, serverName))
        throw exclusive(`${userId} is not in the application service's namespace`);
      const owner = exclusiveOwner(userId);
      if (owner !== null && owner !== r)
        throw exclusive(`${userId} is in the exclusive namespace of another application service`);
      const inserted = await ctx.storage.stores.accounts.insertUser({
        userId,
        localpart,
        passwordHash: null,
        isAdmin: false,
        displayname: localpart,
        createdTs: ctx.now(),
      });
      if (!inserted) throw new MatrixError(400, 'M_USER_IN_USE', 'User ID already taken');
      // MSC4190 services make their devices themselves (PUT /devices); logins are for others.
      if (request.inhibitLogin) return { userId };
      return accounts.issueLogin(userId, {
        deviceId: request.deviceId,
        displayName: request.initialDeviceDisplayName,
        ip: request.ip,
      });
    },

    /** `/login` with `m.login.application_service`: any registered user of its namespace. */
    async login(
      r: AppServiceRegistration,
      body: { identifier?: unknown; user?: unknown },
      login: { deviceId?: string | undefined; displayName?: string | undefined; ip: string | null },
    ): Promise<LoginResult> {
      const userId = userIdFromLogin(body, serverName);
      if (userId === null) throw exclusive('Only users of this server can log in');
      if (!isServiceUser(r, userId, serverName))
        throw exclusive(`${userId} is not in the application service's namespace`);
      const user = await ctx.storage.stores.accounts.selectUser(userId);
      if (!user) throw forbidden(`Application service has not registered ${userId}`);
      if (user.deactivated)
        throw new MatrixError(403, 'M_USER_DEACTIVATED', 'This account has been deactivated');
      return accounts.issueLogin(userId, login);
    },

    /**
     * MSC4190: `PUT /devices/{id}` by a service for one of its users creates the device when
     * it does not exist. True when it was created.
     */
    async createDevice(
      requester: Requester,
      deviceId: string,
      displayName: string | undefined,
      ip: string | null,
    ): Promise<boolean> {
      const r = requester.appservice;
      if (!r?.msc4190) return false;
      const devices = ctx.storage.stores.devices;
      if (await devices.selectDevice(requester.userId, deviceId)) return false;
      await devices.upsertDevice(requester.userId, deviceId, displayName ?? null, ctx.now(), ip);
      return true;
    },
  };
}

export type AppServiceActing = ReturnType<typeof createAppServiceActing>;

/** Whether a normal registration of `userId` must be refused as another's (M_EXCLUSIVE). */
export function assertNotExclusive(
  registrations: readonly AppServiceRegistration[],
  userId: string,
): void {
  if (registrations.some((r) => userInExclusiveNamespace(r, userId)))
    throw exclusive(`${userId} is reserved by an application service`);
}

/**
 * Who may create an alias: a service within its alias namespace (true: no room membership
 * needed), outside it 400 M_EXCLUSIVE; a user, unless the alias is in an exclusive namespace
 * (400 M_EXCLUSIVE), under the usual rules (false).
 */
export function serviceMayClaimAlias(
  registrations: readonly AppServiceRegistration[],
  requester: Requester,
  alias: string,
): boolean {
  const acting = requester.appservice;
  if (acting) {
    if (aliasInNamespace(acting, alias)) return true;
    throw exclusive(`${alias} is not in the application service's alias namespace`);
  }
  if (registrations.some((r) => aliasInNamespace(r, alias, true)))
    throw exclusive(`${alias} is reserved by an application service`);
  return false;
}
