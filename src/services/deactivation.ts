/**
 * Account deactivation (spec: POST /account/deactivate; Synapse's admin
 * /_synapse/admin/v1/deactivate/{userId}).
 *
 * One transaction marks the user deactivated, records the deactivation as pending, ends every
 * session (deleting devices and tokens announces it, so every process drops the sessions it
 * has cached) and, with `erase`, clears the profile. From then on no token of the user works
 * and logging in answers 403 M_USER_DEACTIVATED. Then the user leaves each room they are
 * joined to, invited to or knocking on, one room per transaction, and the pending record
 * goes. Every step is idempotent: a process that stops in between finishes the pending
 * deactivations when it starts again (`resumePending`), and deactivating again (the admin
 * route) finishes what is left.
 */
import { MatrixError, forbidden, invalidParam, notFound } from '../core/errors.js';
import { parseUserId } from '../core/identifiers.js';
import type { AccountService } from './accounts.js';
import type { Requester, ServiceContext } from './context.js';
import { forgetDevices } from './device-keys.js';
import type { EventWriter } from './event-writer.js';
import type { RoomService } from './rooms.js';
import type { UiaService } from './uia.js';

/** The memberships a deactivated user gives up (bans stay, as they are not the user's). */
const LEFT_MEMBERSHIPS = ['join', 'invite', 'knock'] as const;
/**
 * Passes over the user's rooms: a join that was under way when the sessions ended (and had
 * read the account before it was marked) is caught by the next.
 */
const MAX_PASSES = 3;

export interface DeactivateRequest {
  auth: unknown;
  erase: boolean;
}

export function createDeactivationService(
  ctx: ServiceContext,
  uia: UiaService,
  accounts: AccountService,
  writer: EventWriter,
  rooms: RoomService,
  /** Leaves an invite or knock of a room on another server (true when it was one). */
  leaveRemoteRoom: (userId: string, roomId: string) => Promise<boolean> = async () => false,
) {
  let stopping = false;

  /** The first, atomic step; false when there is no such user. */
  async function begin(userId: string, erase: boolean): Promise<boolean> {
    return ctx.storage.tx('deactivateUser', async (stores) => {
      if (!(await stores.accounts.markDeactivated(userId, ctx.now()))) return false;
      const devices = await stores.devices.selectDevices(userId);
      await forgetDevices(
        stores,
        userId,
        devices.map((d) => d.deviceId),
        ctx,
      );
      // Announces the user's sessions as ended (also when there were none: the cached
      // sessions of this user, whatever they hold, are dropped everywhere).
      await stores.devices.deleteAllDevices(userId);
      if (erase) {
        await stores.accounts.updateDisplayname(userId, null);
        await stores.accounts.updateAvatarUrl(userId, null);
      }
      return true;
    });
  }

  /** Leaves one room if the user is still in it (joined, invited or knocking). */
  async function leaveRoom(userId: string, roomId: string): Promise<void> {
    if (await leaveRemoteRoom(userId, roomId)) return;
    await ctx.storage.tx('deactivateLeaveRoom', async (stores) => {
      await stores.rooms.lockRoom(roomId);
      const current = await stores.rooms.selectMembership(roomId, userId);
      if (!current || !(LEFT_MEMBERSHIPS as readonly string[]).includes(current.membership)) return;
      await writer.append(stores, roomId, {
        type: 'm.room.member',
        stateKey: userId,
        sender: userId,
        content: await rooms.memberContent(stores, userId, 'leave'),
      });
    });
  }

  /**
   * The rest: leaves every room, then drops the pending record. Resolves false when a room
   * could not be left (the record stays, for the next start-up or the next attempt).
   */
  async function finish(userId: string): Promise<boolean> {
    const store = ctx.storage.stores.rooms;
    for (let pass = 0; ; pass++) {
      const roomIds: string[] = [];
      for (const membership of LEFT_MEMBERSHIPS) {
        roomIds.push(...(await store.selectRoomsOfUser(userId, membership)));
      }
      if (roomIds.length === 0) {
        await ctx.storage.stores.accounts.deletePendingDeactivation(userId);
        return true;
      }
      if (pass === MAX_PASSES) return false;
      let refused = false;
      for (const roomId of roomIds) {
        if (stopping) return false;
        try {
          await leaveRoom(userId, roomId);
        } catch (err) {
          // A room whose rules refuse the leave (none should) keeps the deactivation pending
          // without holding up the other rooms.
          if (!(err instanceof MatrixError)) throw err;
          refused = true;
        }
      }
      if (refused) return false;
    }
  }

  async function deactivateUser(userId: string, erase: boolean): Promise<void> {
    if (!(await begin(userId, erase))) throw notFound('Unknown user');
    await finish(userId);
  }

  return {
    /** POST /account/deactivate: after re-authentication with the account's password. */
    async deactivate(requester: Requester, request: DeactivateRequest): Promise<void> {
      await uia.authenticate({
        auth: request.auth,
        purpose: `deactivate:${requester.userId}`,
        flows: [['m.login.password']],
        stages: { 'm.login.password': accounts.passwordStage(requester.userId) },
      });
      await deactivateUser(requester.userId, request.erase);
    },

    /** Synapse's admin deactivation: any local user, by a server admin. */
    async adminDeactivate(requester: Requester, userId: string, erase: boolean): Promise<void> {
      if (!requester.isAdmin) throw forbidden('You are not a server admin');
      const parsed = parseUserId(userId);
      if (!parsed) throw invalidParam('Invalid user ID');
      if (parsed.serverName !== ctx.settings.serverName) {
        throw new MatrixError(400, 'M_UNKNOWN', 'Can only deactivate local users');
      }
      await deactivateUser(parsed.userId, erase);
    },

    /** Deactivates a local user named by an already checked ID (the admin API's users). */
    deactivateLocal: deactivateUser,

    /**
     * Finishes the deactivations a stopped process left pending; resolves with how many were
     * finished. Errors are the caller's to log.
     */
    async resumePending(): Promise<number> {
      let finished = 0;
      for (const userId of await ctx.storage.stores.accounts.selectPendingDeactivations()) {
        if (stopping) break;
        if (await finish(userId)) finished++;
      }
      return finished;
    },

    /** The first step alone, as a process that stops right after it leaves things (tests). */
    begin,

    /** Stops between rooms (at shutdown); what is left stays pending. */
    stop(): void {
      stopping = true;
    },
  };
}

export type DeactivationService = ReturnType<typeof createDeactivationService>;
