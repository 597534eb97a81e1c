/**
 * Room deletion and history purges in the background (Synapse's DELETE /v2/rooms/{roomId}
 * and POST /v1/purge_history), each recorded with its status, resumed after a restart.
 *
 * Deleting a room: it is blocked at once (no join, invite, knock or other event gets in; only
 * leaves and bans), its local members leave it one by one through the ordinary event path
 * (so membership tables, the mutual-rooms index, /sync and every cache see ordinary leaves),
 * its aliases go and it leaves the directory; then, with `purge`, its rows are deleted in
 * batches, the event loop free between them. The block stays if asked for (`block`).
 *
 * Purging history deletes the room's events older than a point that are not state and not
 * its latest (forward extremities), in batches likewise; state, memberships and everything
 * derived from them stay as they are.
 */
import { forbidden, invalidParam, notFound, MatrixError } from '../../core/errors.js';
import { randomString } from '../../core/secrets.js';
import type { PurgeRow, PurgeStatus } from '../../storage/index.js';
import type { Requester, ServiceContext } from '../context.js';
import type { EventWriter } from '../event-writer.js';
import type { RoomService } from '../rooms.js';

/** Rows per batch: each batch is one or two short statements. */
export const PURGE_BATCH_ROWS = 200;
const LEFT_MEMBERSHIPS = ['join', 'invite', 'knock'] as const;

export interface DeleteRoomParams {
  block: boolean;
  purge: boolean;
  forcePurge: boolean;
}

export interface HistoryPurgeParams {
  /** Events before this stream position go. */
  before: number;
  deleteLocalEvents: boolean;
}

export interface DeleteRoomResult {
  kicked_users: string[];
  failed_to_kick_users: string[];
  local_aliases: string[];
  new_room_id: null;
}

export interface PurgeStatusAnswer {
  delete_id: string;
  room_id: string;
  status: PurgeStatus;
  error?: string;
  shutdown_room: DeleteRoomResult;
}

const EMPTY_RESULT: DeleteRoomResult = {
  kicked_users: [],
  failed_to_kick_users: [],
  local_aliases: [],
  new_room_id: null,
};

/** Lets the event loop run (timers, I/O, other requests) between two batches. */
const pause = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * How long a process holds a job's lease (job_leases, migration 0062) without renewing it;
 * it renews at half-time while it works, so a job is run by one process of several, and one
 * left by a process that died is taken up by another once the lease has run out.
 */
export const JOB_LEASE_MS = 60_000;

/**
 * A lease on a background job for this process: `renew()` between batches keeps it (false
 * once it is lost, the job then to be left), `release()` at the end.
 */
export function jobLease(ctx: ServiceContext, job: string, owner: string) {
  const stores = ctx.storage.stores;
  let renewedAt = 0;
  return {
    async take(): Promise<boolean> {
      const now = ctx.now();
      renewedAt = now;
      return stores.moderation.takeLease(job, owner, now, now + JOB_LEASE_MS);
    },
    async renew(): Promise<boolean> {
      const now = ctx.now();
      if (now - renewedAt < JOB_LEASE_MS / 2) return true;
      renewedAt = now;
      return stores.moderation.takeLease(job, owner, now, now + JOB_LEASE_MS);
    },
    release: () => stores.moderation.releaseLease(job, owner),
  };
}

export function createRoomPurgeService(
  ctx: ServiceContext,
  deps: { writer: EventWriter; rooms: RoomService },
) {
  const stores = ctx.storage.stores;
  let stopping = false;
  /** The purges this process is running, by ID. */
  const running = new Map<string, Promise<void>>();
  /** This process's name on the leases it takes. */
  const owner = randomString(16);
  let resumer: NodeJS.Timeout | null = null;
  /** Thrown between batches when the lease was lost: another process runs the purge now. */
  class LeaseLost extends Error {}

  // Nothing but leaving gets into a blocked room (or one being deleted).
  deps.writer.addDeriver(async (tx, event) => {
    if (event.pdu.type === 'm.room.create') return;
    if (!(await tx.roomPurges.selectBlock(event.roomId))) return;
    const membership = event.pdu.type === 'm.room.member' ? event.pdu.content.membership : null;
    if (membership === 'leave' || membership === 'ban') return;
    throw forbidden('This room has been blocked on this server');
  });

  /** Leaves the room as `userId` if still in it; false when the leave was refused. */
  async function leave(userId: string, roomId: string): Promise<boolean> {
    try {
      await ctx.storage.tx('adminKickFromRoom', async (tx) => {
        await tx.rooms.lockRoom(roomId);
        const current = await tx.rooms.selectMembership(roomId, userId);
        if (!current || !(LEFT_MEMBERSHIPS as readonly string[]).includes(current.membership)) {
          return;
        }
        await deps.writer.append(tx, roomId, {
          type: 'm.room.member',
          stateKey: userId,
          sender: userId,
          content: await deps.rooms.memberContent(tx, userId, 'leave'),
        });
      });
      return true;
    } catch (err) {
      if (err instanceof MatrixError) return false;
      throw err;
    }
  }

  const isLocal = (userId: string) => userId.endsWith(`:${ctx.settings.serverName}`);

  async function deleteRoom(row: PurgeRow, lease: ReturnType<typeof jobLease>): Promise<void> {
    const params = JSON.parse(row.params) as DeleteRoomParams;
    const roomId = row.roomId;
    const result: DeleteRoomResult = {
      ...EMPTY_RESULT,
      kicked_users: [],
      failed_to_kick_users: [],
    };
    const members = new Set<string>();
    for (const membership of LEFT_MEMBERSHIPS) {
      for (const userId of await stores.rooms.selectMembersOfRoom(roomId, membership)) {
        if (isLocal(userId)) members.add(userId);
      }
    }
    for (const userId of members) {
      if (stopping) return;
      if (await leave(userId, roomId)) result.kicked_users.push(userId);
      else result.failed_to_kick_users.push(userId);
      await pause();
      if (!(await lease.renew())) throw new LeaseLost();
    }
    result.local_aliases = await stores.directory.selectAliasesOfRoom(roomId);
    for (const alias of result.local_aliases) await stores.directory.deleteAlias(alias);
    if (await stores.rooms.selectRoom(roomId)) await stores.rooms.updateRoomPublic(roomId, false);
    if (params.purge) {
      if (result.failed_to_kick_users.length > 0 && !params.forcePurge) {
        throw new MatrixError(400, 'M_UNKNOWN', 'Could not remove every local member');
      }
      // Its remaining (remote) members are found no longer through it once its rows go.
      await stores.userDirectory.setRoomPublic(roomId, false);
      while (!stopping && (await stores.roomPurges.deleteRoomBatch(roomId, PURGE_BATCH_ROWS)) > 0) {
        await pause();
        if (!(await lease.renew())) throw new LeaseLost();
      }
      if (stopping) return;
    }
    await stores.stream.notify({
      rooms: [roomId],
      memberRooms: [roomId],
      historyRemoved: [roomId],
    });
    if (!params.block) await stores.roomPurges.deleteBlock(roomId);
    await stores.roomPurges.updatePurge(row.purgeId, {
      status: 'complete',
      result: JSON.stringify(result),
    });
  }

  async function purgeHistory(row: PurgeRow, lease: ReturnType<typeof jobLease>): Promise<void> {
    const params = JSON.parse(row.params) as HistoryPurgeParams;
    const localServer = params.deleteLocalEvents ? null : ctx.settings.serverName;
    while (
      !stopping &&
      (await stores.roomPurges.deleteHistoryBatch(
        row.roomId,
        params.before,
        PURGE_BATCH_ROWS,
        localServer,
      )) > 0
    ) {
      await pause();
      if (!(await lease.renew())) throw new LeaseLost();
    }
    if (stopping) return;
    await stores.stream.notify({ rooms: [row.roomId], historyRemoved: [row.roomId] });
    await stores.roomPurges.updatePurge(row.purgeId, { status: 'complete' });
  }

  /** Runs a recorded purge in the background (once per process). */
  function start(row: PurgeRow): Promise<void> {
    const existing = running.get(row.purgeId);
    if (existing) return existing;
    const run = (async () => {
      // One process of several runs it: the one holding its lease.
      const lease = jobLease(ctx, `purge:${row.purgeId}`, owner);
      try {
        if (!(await lease.take())) return;
        // Finished meanwhile by the process that held the lease before.
        const current = await stores.roomPurges.selectPurge(row.purgeId);
        if (!current || current.status === 'complete' || current.status === 'failed') {
          await lease.release();
          return;
        }
        await stores.roomPurges.updatePurge(row.purgeId, { status: 'active' });
        if (row.kind === 'delete_room') await deleteRoom(row, lease);
        else await purgeHistory(row, lease);
        await lease.release();
      } catch (err) {
        // A shutdown meanwhile (the database closing under a batch): resumed at the next start;
        // a lease lost: another process runs it now.
        if (stopping || err instanceof LeaseLost) return;
        const message = err instanceof Error ? err.message : String(err);
        await stores.roomPurges
          .updatePurge(row.purgeId, { status: 'failed', error: message })
          .catch(() => undefined);
        await lease.release().catch(() => undefined);
      } finally {
        running.delete(row.purgeId);
      }
    })();
    running.set(row.purgeId, run);
    return run;
  }

  async function record(
    requester: Requester,
    kind: PurgeRow['kind'],
    roomId: string,
    params: DeleteRoomParams | HistoryPurgeParams,
    block: boolean,
  ): Promise<PurgeRow> {
    const row: PurgeRow = {
      purgeId: randomString(16),
      kind,
      roomId,
      requester: requester.userId,
      params: JSON.stringify(params),
      status: 'scheduled',
      error: null,
      result: null,
      createdTs: ctx.now(),
    };
    await ctx.storage.tx('recordRoomPurge', async (tx) => {
      await tx.roomPurges.insertPurge(row);
      if (block) await tx.roomPurges.insertBlock(roomId, requester.userId, ctx.now());
    });
    return row;
  }

  function statusOf(row: PurgeRow): PurgeStatusAnswer {
    return {
      delete_id: row.purgeId,
      room_id: row.roomId,
      status: row.status,
      ...(row.error !== null ? { error: row.error } : {}),
      shutdown_room: row.result ? (JSON.parse(row.result) as DeleteRoomResult) : EMPTY_RESULT,
    };
  }

  return {
    /** Schedules the deletion of a room; resolves with its ID once it is recorded. */
    async deleteRoom(
      requester: Requester,
      roomId: string,
      params: DeleteRoomParams,
    ): Promise<string> {
      const exists = (await stores.rooms.selectRoom(roomId)) !== undefined;
      if (!exists && !params.block) throw notFound('Room not found');
      const active = (await stores.roomPurges.selectPurgesOfRoom(roomId, 'delete_room')).some(
        (p) => p.status === 'scheduled' || p.status === 'active',
      );
      if (active) throw invalidParam('The room is already being deleted');
      // Blocked while it is deleted; the block is lifted at the end unless asked to stay.
      const row = await record(requester, 'delete_room', roomId, params, true);
      void start(row);
      return row.purgeId;
    },

    async deletionStatus(purgeId: string): Promise<PurgeStatusAnswer> {
      const row = await stores.roomPurges.selectPurge(purgeId);
      if (!row || row.kind !== 'delete_room') throw notFound('Delete ID not found');
      return statusOf(row);
    },

    async deletionsOfRoom(roomId: string): Promise<PurgeStatusAnswer[]> {
      const rows = await stores.roomPurges.selectPurgesOfRoom(roomId, 'delete_room');
      if (rows.length === 0) throw notFound('No delete task for room');
      return rows.map(statusOf);
    },

    /**
     * Schedules the purge of a room's history before an event or a time; resolves with its
     * ID. Without `deleteLocalEvents`, only events of other servers' users go (as Synapse).
     */
    async purgeHistory(
      requester: Requester,
      roomId: string,
      point: { eventId?: string | undefined; ts?: number | undefined },
      deleteLocalEvents: boolean,
    ): Promise<string> {
      if (!(await stores.rooms.selectRoom(roomId))) throw notFound('Room not found');
      let before: number;
      if (point.eventId !== undefined) {
        const event = await stores.rooms.selectEvent(point.eventId);
        if (!event || event.roomId !== roomId) throw notFound('Event not found');
        before = event.streamOrdering;
      } else if (point.ts !== undefined) {
        before = (await stores.roomPurges.selectPositionBefore(roomId, point.ts)) + 1;
      } else {
        throw invalidParam('Give purge_up_to_event_id or purge_up_to_ts');
      }
      const row = await record(
        requester,
        'purge_history',
        roomId,
        { before, deleteLocalEvents },
        false,
      );
      void start(row);
      return row.purgeId;
    },

    async historyPurgeStatus(purgeId: string): Promise<{ status: PurgeStatus; error?: string }> {
      const row = await stores.roomPurges.selectPurge(purgeId);
      if (!row || row.kind !== 'purge_history') throw notFound('Purge ID not found');
      return { status: row.status, ...(row.error !== null ? { error: row.error } : {}) };
    },

    /** Blocks or unblocks a room (Synapse's PUT /v1/rooms/{roomId}/block). */
    async setBlocked(requester: Requester, roomId: string, block: boolean): Promise<void> {
      if (block) await stores.roomPurges.insertBlock(roomId, requester.userId, ctx.now());
      else await stores.roomPurges.deleteBlock(roomId);
    },

    async blockOf(roomId: string): Promise<{ blocked: boolean; user_id?: string }> {
      const block = await stores.roomPurges.selectBlock(roomId);
      return block ? { blocked: true, user_id: block.blockedBy } : { blocked: false };
    },

    /** Resumes the purges a stopped process left unfinished; resolves when they are done. */
    async resumePending(): Promise<number> {
      const rows = await stores.roomPurges.selectUnfinishedPurges();
      for (const row of rows) {
        if (stopping) break;
        await start(row);
      }
      return rows.length;
    },

    /** Resolves when the purge, if this process runs it, has finished or stopped. */
    async wait(purgeId: string): Promise<void> {
      await running.get(purgeId);
    },

    /** Resolves once the purges running in this process have stopped or finished (tests). */
    async idle(): Promise<void> {
      while (running.size > 0) await Promise.all([...running.values()]);
    },

    /**
     * Every lease period, takes up the purges left unfinished by a process that stopped
     * holding their lease (it died); `onError` hears of a failed round.
     */
    startResuming(onError: (err: unknown) => void): void {
      if (resumer) return;
      resumer = setInterval(() => {
        this.resumePending().catch(onError);
      }, JOB_LEASE_MS);
      resumer.unref();
    },

    /** Stops between batches (at shutdown); what is left is resumed at the next start. */
    stop(): void {
      stopping = true;
      if (resumer) clearInterval(resumer);
      resumer = null;
    },
  };
}

export type RoomPurgeService = ReturnType<typeof createRoomPurgeService>;
