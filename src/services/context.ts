/** What every service is built from: configuration, storage and a clock. */
import type { RoomVersionId } from '../core/pdu.js';
import type { PasswordPolicy } from '../core/password-policy.js';
import type { SigningKey } from '../core/signing.js';
import type { Storage } from '../storage/index.js';
import type { CacheStats } from './cache-stats.js';
import type { RetentionSettings } from './admin/retention.js';

export interface ServiceSettings {
  serverName: string;
  registrationEnabled: boolean;
  registrationSharedSecret: string | null;
  /** Registration through `/register` only with a registration token (none: not required). */
  registrationRequiresToken?: boolean;
  /** Room retention (none: off). */
  retention?: RetentionSettings;
  /** What new passwords must be like (none: anything). */
  passwordPolicy?: PasswordPolicy;
  /** scrypt cost as log2(N). */
  passwordCostLog2N: number;
  mutualRooms: MutualRoomsSettings;
  /** The version of rooms created without `room_version`. */
  defaultRoomVersion: RoomVersionId;
}

export interface MutualRoomsSettings {
  /** Rooms per page. */
  batchSize: number;
  tokenTtlSeconds: number;
  /** Whether several `user_id`s may be asked about at once. */
  multiUser: boolean;
  /** Pairs of the index unused for this long are dropped. */
  cacheIdleSeconds: number;
}

export interface ServiceContext {
  settings: ServiceSettings;
  storage: Storage;
  now: () => number;
  /** The key that signs this server's events. */
  signingKey: SigningKey;
  /** Where caches count their hits and misses (for metrics); none: not counted. */
  cacheStats?: CacheStats;
}

/** The authenticated user behind a request. */
export interface Requester {
  userId: string;
  deviceId: string;
  isAdmin: boolean;
}

/**
 * Whether a statement holds the process while it runs (SQLite: better-sqlite3 runs it on
 * this thread), so that long work is best split into short statements with the event loop
 * free between them. On PostgreSQL the process waits for the answer, free meanwhile.
 */
export function statementsHoldProcess(ctx: ServiceContext): boolean {
  return ctx.storage.dialect === 'sqlite';
}
