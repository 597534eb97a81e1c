/**
 * What /sync reads from the services around it (account data, presence, receipts, typing,
 * to-device messages, device keys). `after` = 0 asks for everything (an initial sync);
 * otherwise for changes in (after, upTo] of the global stream.
 */
import type { JsonObject } from '../core/pdu.js';
import type { NewlyShared } from './presence.js';

export interface TypedContent {
  type: string;
  content: JsonObject;
}

export interface SyncSources {
  accountData: {
    changesSince(
      userId: string,
      after: number,
      upTo: number,
    ): Promise<{ global: TypedContent[]; rooms: Map<string, TypedContent[]> }>;
  };
  presence: {
    setFromSync(userId: string, presence: 'online' | 'offline' | 'unavailable'): Promise<void>;
    /** A /sync starts (it keeps the user from timing out); the function returned ends it. */
    syncing(userId: string, presence: 'online' | 'offline' | 'unavailable'): () => void;
    /** Activity (a /sync saying online); resolves with whether a change was written. */
    activity(userId: string, fromSync: boolean): Promise<boolean>;
    changesSince(
      userId: string,
      after: number,
      upTo: number,
      newlyShared?: NewlyShared,
    ): Promise<{ type: 'm.presence'; sender: string; content: JsonObject }[]>;
  };
  receipts: {
    ephemeralSince(
      userId: string,
      roomIds: readonly string[],
      after: number,
      upTo: number,
    ): Promise<Map<string, { type: 'm.receipt'; content: JsonObject }>>;
  };
  typing: {
    ephemeralSince(
      roomIds: readonly string[],
      after: number,
      upTo: number,
    ): Promise<Map<string, { type: 'm.typing'; content: { user_ids: string[] } }>>;
  };
  toDevice: {
    forSync(
      userId: string,
      deviceId: string,
      after: number,
      upTo: number,
    ): Promise<{ type: string; sender: string; content: JsonObject }[]>;
  };
  deviceKeys: {
    deviceListsSince(
      userId: string,
      after: number,
      upTo: number,
    ): Promise<{ changed: string[]; left: string[] }>;
    oneTimeKeyCounts(userId: string, deviceId: string): Promise<Record<string, number>>;
    unusedFallbackKeyTypes(userId: string, deviceId: string): Promise<string[]>;
  };
  /** Unread notification counts per room (none: always 0). */
  unread?: {
    unreadOf(
      userId: string,
      roomIds: readonly string[],
      upTo?: number,
    ): Promise<
      Map<
        string,
        {
          total: { notification_count: number; highlight_count: number };
          main: { notification_count: number; highlight_count: number };
          threads: Map<string, { notification_count: number; highlight_count: number }>;
        }
      >
    >;
    /** Rooms whose counts rose at positions in (`after`, `upTo`] (maybe without an event). */
    notifiedBetween?(userId: string, after: number, upTo: number): Promise<string[]>;
  };
}
