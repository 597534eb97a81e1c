/** What every service is built from: configuration, storage and a clock. */
import type { AppServiceRegistration } from '../core/appservice.js';
import type { RoomVersionId } from '../core/pdu.js';
import type { PasswordPolicy } from '../core/password-policy.js';
import type { SigningKey } from '../core/signing.js';
import type { MediaFileStore, Storage } from '../storage/index.js';
import type { MediaSettings } from './media/index.js';
import type { OldVerifyKey } from '../core/server-keys.js';
import type { DiscoveryResolver } from '../core/server-discovery.js';
import type { CacheStats } from './cache-stats.js';
import type { RetentionSettings } from './admin/retention.js';
import type { PresenceTimers } from '../core/presence-timeouts.js';
import type { ServerNoticeSettings } from './admin/server-notices.js';

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
  /** The media repository's limits (none: its defaults). */
  media?: MediaSettings;
  /** `/user_directory/search` finds every local user (none: only those the requester shares a room with or who are in public rooms). */
  userDirectorySearchAll?: boolean;
  /**
   * Rooms of up to this many joined members have their members' directory reach moved in the
   * join rule change's own transaction; bigger ones after it (services/user-directory-reach.ts).
   * Absent: 100.
   */
  userDirectoryInlineReachMembers?: number;
  /** Application services (bridges), validated at start; none when absent. */
  appServices?: readonly AppServiceRegistration[];
  /** Absent or null: no federation (no routes, no sender, nothing queued). */
  federation?: FederationSettings | null;
  /**
   * False: events are not checked against push rules (no counts, no push). Only for building
   * bench datasets and measuring what evaluation costs; absent means true.
   */
  pushEvaluation?: boolean;
  /**
   * Rooms of up to this many joined members have push rules evaluated in the event's own
   * transaction; bigger ones after it (services/push/evaluation.ts). Absent: 100.
   */
  pushInlineMembers?: number;
  /** Server notices from a system user (admin API); absent or null: not configured. */
  serverNotices?: ServerNoticeSettings | null;
  /** Presence time-outs (absent: Synapse's, DEFAULT_PRESENCE_TIMERS). */
  presenceTimers?: PresenceTimers;
}

export interface FederationSettings {
  /** PEM text of certificate authorities trusted besides the system's (null: none). */
  extraCaPem: string | null;
  /** How long others may cache our key. */
  keyValidityMs: number;
  requestTimeoutMs: number;
  /** The longest wait between attempts to a failing destination. */
  retryMaxMs: number;
  /** Notary servers asked for keys a server does not serve itself. */
  trustedKeyServers: readonly string[];
  /** How often online local users' presence is sent again to other servers (absent: 25 min). */
  presenceRefreshMs?: number;
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
  /** Keys used before a rotation, still published as `old_verify_keys`. */
  oldSigningKeys?: readonly OldVerifyKey[];
  /** How federation finds servers (DNS and well-known); tests give a fake one. */
  discoveryResolver?: DiscoveryResolver;
  /** Where caches count their hits and misses (for metrics); none: not counted. */
  cacheStats?: CacheStats;
  /** Where media bytes are kept (none: media endpoints answer 500 M_UNKNOWN). */
  mediaFiles?: MediaFileStore;
}

/** The authenticated user behind a request. */
export interface Requester {
  userId: string;
  deviceId: string;
  isAdmin: boolean;
  /**
   * The application service acting (its `as_token` authenticated the request), as its
   * sender or one of its users; `deviceId` is then '' unless a device was named.
   */
  appservice?: AppServiceRegistration;
  /** Shadow-banned by an admin: what the user sends is answered but goes nowhere. */
  shadowBanned?: boolean;
  /** An admin's override of the user's rate limits (0 and 0: never limited). */
  rateLimitOverride?: { messagesPerSecond: number; burstCount: number } | null;
}

/**
 * Whether a statement holds the process while it runs (SQLite: better-sqlite3 runs it on
 * this thread), so that long work is best split into short statements with the event loop
 * free between them. On PostgreSQL the process waits for the answer, free meanwhile.
 */
export function statementsHoldProcess(ctx: ServiceContext): boolean {
  return ctx.storage.dialect === 'sqlite';
}
