/**
 * Which member events each device has been sent, so a lazy-loading /sync sends a member once
 * (unless the filter asks for redundant members). Kept in memory per process: after a restart,
 * or when a device's syncs go to another worker, members are sent again, which the spec allows.
 */
import type { CacheCounts } from './cache-stats.js';

const MAX_DEVICES = 10_000;

export class LazyMemberCache {
  private readonly devices = new Map<string, Map<string, Set<string>>>();

  /** `stats` counts each lookup: a hit is a member the device was sent already. */
  constructor(private readonly stats: CacheCounts = { hits: 0, misses: 0 }) {}

  /** Forgets what the device was sent (its client starts over with an initial sync). */
  reset(device: string): void {
    this.devices.delete(device);
  }

  has(device: string, roomId: string, userId: string): boolean {
    const sent = this.devices.get(device)?.get(roomId)?.has(userId) ?? false;
    if (sent) this.stats.hits++;
    else this.stats.misses++;
    return sent;
  }

  add(device: string, roomId: string, userId: string): void {
    let rooms = this.devices.get(device);
    if (rooms) {
      // Most recently used last: the first entry is the one to evict.
      this.devices.delete(device);
    } else {
      rooms = new Map();
      if (this.devices.size >= MAX_DEVICES) {
        const oldest = this.devices.keys().next().value;
        if (oldest !== undefined) this.devices.delete(oldest);
      }
    }
    this.devices.set(device, rooms);
    let members = rooms.get(roomId);
    if (!members) {
      members = new Set();
      rooms.set(roomId, members);
    }
    members.add(userId);
  }
}
