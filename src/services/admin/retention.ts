/**
 * Room retention: the history of each room older than its lifetime is purged in the
 * background — the room's `m.room.retention` `max_lifetime` (ms), or the server's default,
 * held within the server's allowed range (config `retention`). The purge is the history purge
 * of the admin API: events that are not state and not the room's latest, in batches, the event
 * loop free between them. Rooms are visited one at a time, every `purge_interval_seconds`.
 */
import type { ServiceContext } from '../context.js';
import { randomString } from '../../core/secrets.js';
import { PURGE_BATCH_ROWS, jobLease } from './room-purges.js';

export interface RetentionSettings {
  enabled: boolean;
  /** Lifetime of rooms without `m.room.retention` (ms); null: kept for ever. */
  defaultMaxLifetimeMs: number | null;
  /** Bounds of a room's own lifetime (ms); null: no upper bound. */
  minLifetimeMs: number;
  maxLifetimeMs: number | null;
  intervalSeconds: number;
}

/** Rooms read per statement while visiting every room. */
const ROOM_PAGE = 200;

const pause = () => new Promise<void>((resolve) => setImmediate(resolve));

/** The lifetime that applies to a room, from its `max_lifetime` and the server's settings. */
export function effectiveLifetime(
  settings: RetentionSettings,
  roomMaxLifetime: unknown,
): number | null {
  const own =
    typeof roomMaxLifetime === 'number' &&
    Number.isSafeInteger(roomMaxLifetime) &&
    roomMaxLifetime > 0
      ? roomMaxLifetime
      : null;
  const lifetime = own ?? settings.defaultMaxLifetimeMs;
  if (lifetime === null) return null;
  const atLeast = Math.max(lifetime, settings.minLifetimeMs);
  return settings.maxLifetimeMs === null ? atLeast : Math.min(atLeast, settings.maxLifetimeMs);
}

export function createRetentionService(ctx: ServiceContext) {
  const stores = ctx.storage.stores;
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<number> | null = null;
  let stopping = false;
  let leaseLost = false;

  /** One pass at a time among every process: the one holding the `retention` lease. */
  const lease = jobLease(ctx, 'retention', randomString(16));

  async function purgeRoom(settings: RetentionSettings, roomId: string): Promise<number> {
    const [retention] = await stores.rooms.selectStateEvents(roomId, [['m.room.retention', '']]);
    const lifetime = effectiveLifetime(settings, retention?.pdu.content.max_lifetime);
    if (lifetime === null) return 0;
    const before = (await stores.roomPurges.selectPositionBefore(roomId, ctx.now() - lifetime)) + 1;
    let deleted = 0;
    for (;;) {
      if (stopping || leaseLost) break;
      const n = await stores.roomPurges.deleteHistoryBatch(roomId, before, PURGE_BATCH_ROWS, null);
      if (n === 0) break;
      deleted += n;
      await pause();
      if (!(await lease.renew())) {
        // Another process took the pass over (this one was too slow to renew).
        leaseLost = true;
        break;
      }
    }
    if (deleted > 0) await stores.stream.notify({ rooms: [roomId], historyRemoved: [roomId] });
    return deleted;
  }

  /**
   * One pass over every room, unless another process is making one; resolves with how many
   * events were purged.
   */
  async function runOnce(): Promise<number> {
    const settings = ctx.settings.retention;
    if (!settings?.enabled) return 0;
    if (!(await lease.take())) return 0;
    leaseLost = false;
    try {
      return await pass(settings);
    } finally {
      await lease.release().catch(() => undefined);
    }
  }

  async function pass(settings: RetentionSettings): Promise<number> {
    let deleted = 0;
    let after = '';
    for (;;) {
      const roomIds = await stores.roomPurges.selectRoomIdsAfter(after, ROOM_PAGE);
      for (const roomId of roomIds) {
        if (stopping || leaseLost) return deleted;
        deleted += await purgeRoom(settings, roomId);
        await pause();
      }
      if (roomIds.length < ROOM_PAGE) return deleted;
      after = roomIds[roomIds.length - 1] as string;
    }
  }

  return {
    runOnce(): Promise<number> {
      running ??= runOnce().finally(() => {
        running = null;
      });
      return running;
    },

    /** Runs a pass every interval (when enabled); `onError` hears of a failed pass. */
    start(onError: (err: unknown) => void): void {
      const settings = ctx.settings.retention;
      if (!settings?.enabled || timer) return;
      timer = setInterval(() => {
        this.runOnce().catch(onError);
      }, settings.intervalSeconds * 1000);
      timer.unref();
    },

    stop(): void {
      stopping = true;
      if (timer) clearInterval(timer);
      timer = null;
    },
  };
}

export type RetentionService = ReturnType<typeof createRetentionService>;
