/**
 * The storage facade services see: the stores, bound either to the database or to one
 * named transaction. SQL lives in the stores and nowhere else.
 */
import { sql, type Kysely } from 'kysely';
import { accountStore, type AccountStore } from './account-store.js';
import { deviceStore, type DeviceStore } from './device-store.js';
import { uiaStore, type UiaStore } from './uia-store.js';
import { roomStore, type RoomStore } from './room-store.js';
import { directoryStore, type DirectoryStore } from './directory-store.js';
import { mutualRoomsStore, type MutualRoomsStore } from './mutual-rooms-store.js';
import { memberListStore, type MemberListStore } from './member-list-store.js';
import { secretStore, type SecretStore } from './secret-store.js';
import { accountDataStore, type AccountDataStore } from './account-data-store.js';
import { presenceStore, type PresenceStore } from './presence-store.js';
import { syncStore, type SyncStore } from './sync-store.js';
import { filterStore, type FilterStore } from './filter-store.js';
import { typingStore, type TypingStore } from './typing-store.js';
import { receiptStore, type ReceiptStore } from './receipt-store.js';
import { deviceKeyStore, type DeviceKeyStore } from './device-key-store.js';
import { toDeviceStore, type ToDeviceStore } from './to-device-store.js';
import { profileUpdateStore, type ProfileUpdateStore } from './profile-update-store.js';
import { serverKeyStore, type ServerKeyStore } from './server-key-store.js';
import { federationOutboxStore, type FederationOutboxStore } from './federation-outbox-store.js';
import { roomDagStore, type RoomDagStore } from './room-dag-store.js';
import { appServiceStore, type AppServiceStore } from './appservice-store.js';

import { mediaStore, type MediaStore } from './media-store.js';
import { crossSigningStore, type CrossSigningStore } from './cross-signing-store.js';
import { keyBackupStore, type KeyBackupStore } from './key-backup-store.js';
import { dehydratedDeviceStore, type DehydratedDeviceStore } from './dehydrated-device-store.js';
import { userDirectoryStore, type UserDirectoryStore } from './user-directory-store.js';

import { relationStore, type RelationStore } from './relation-store.js';
export type { SearchStore, SearchQuery, SearchHit } from './search-store.js';
export type {
  PushStore,
  PushActionRow,
  UnreadCount,
  ReadMark,
  NotifiedAction,
} from './push-store.js';
export type { PendingEvaluation } from './push-store.js';
import { searchStore, type SearchStore } from './search-store.js';
import { pushStore, type PushStore } from './push-store.js';
export type { PusherStore, PusherRow, QueuedPush } from './pusher-store.js';
import { pusherStore, type PusherStore } from './pusher-store.js';

import { adminStore, type AdminStore } from './admin-store.js';
import { roomPurgeStore, type RoomPurgeStore } from './room-purge-store.js';
import { moderationStore, type ModerationStore } from './moderation-store.js';
import { slidingSyncStore, type SlidingSyncStore } from './sliding-sync-store.js';
import { remoteDeviceStore, type RemoteDeviceStore } from './remote-device-store.js';
import { backfillStore, type BackfillStore } from './backfill-store.js';
import { partialStateStore, type PartialStateStore } from './partial-state-store.js';
import {
  announcer,
  streamStore,
  type ChangeSink,
  type StreamChange,
  type StreamStore,
} from './stream-store.js';
import { createChangeFeed, type ChangeFeed } from './change-feed.js';
import type { Database } from './schema.js';
import { openDatabase, type DialectName, type OpenOptions, type PoolStats } from './database.js';
import { claimServerName } from './server-metadata-store.js';

export interface Stores {
  readonly accounts: AccountStore;
  readonly devices: DeviceStore;
  readonly uia: UiaStore;
  readonly rooms: RoomStore;
  readonly directory: DirectoryStore;
  readonly mutualRooms: MutualRoomsStore;
  readonly memberLists: MemberListStore;
  readonly secrets: SecretStore;
  readonly accountData: AccountDataStore;
  readonly presence: PresenceStore;
  readonly stream: StreamStore;
  readonly sync: SyncStore;
  readonly filters: FilterStore;
  readonly typing: TypingStore;
  readonly receipts: ReceiptStore;
  readonly deviceKeys: DeviceKeyStore;
  readonly toDevice: ToDeviceStore;
  readonly profileUpdates: ProfileUpdateStore;
  readonly serverKeys: ServerKeyStore;
  readonly federationOutbox: FederationOutboxStore;
  readonly appservices: AppServiceStore;

  readonly media: MediaStore;
  readonly crossSigning: CrossSigningStore;
  readonly keyBackup: KeyBackupStore;
  readonly dehydratedDevices: DehydratedDeviceStore;
  readonly userDirectory: UserDirectoryStore;

  readonly relations: RelationStore;
  readonly search: SearchStore;
  readonly push: PushStore;
  readonly pushers: PusherStore;

  readonly admin: AdminStore;
  readonly roomPurges: RoomPurgeStore;
  readonly moderation: ModerationStore;
  readonly slidingSync: SlidingSyncStore;
  readonly remoteDevices: RemoteDeviceStore;
  readonly backfill: BackfillStore;
  readonly roomDag: RoomDagStore;
  readonly partialState: PartialStateStore;
}

export interface Storage {
  readonly dialect: DialectName;
  /** Stores on the database, outside any transaction (single statements). */
  readonly stores: Stores;
  /** Runs `fn` with stores bound to one transaction named `name`. */
  tx<T>(name: string, fn: (stores: Stores) => Promise<T>): Promise<T>;
  /** Committed changes (from every process sharing the database), for caches and waiting /sync requests. */
  readonly changes: ChangeFeed;
  /** Resolves once the database answers a `SELECT 1`. */
  ping(): Promise<void>;
  /** The PostgreSQL pool's connections (null on SQLite). */
  poolStats(): PoolStats | null;
  /** The server name the database belongs to, recording `candidate` if it has none yet. */
  claimServerName(candidate: string): Promise<string>;
  close(): Promise<void>;
}

export function storesFor(
  db: Kysely<Database>,
  dialect: DialectName,
  sink: ChangeSink,
  origin: string,
): Stores {
  const announce = announcer(db, dialect, sink, origin);
  return {
    accounts: accountStore(db),
    devices: deviceStore(db, announce),
    uia: uiaStore(db),
    rooms: roomStore(db, dialect),
    directory: directoryStore(db, dialect),
    mutualRooms: mutualRoomsStore(db, dialect),
    memberLists: memberListStore(db, dialect),
    secrets: secretStore(db),
    accountData: accountDataStore(db),
    presence: presenceStore(db),
    stream: streamStore(db, announce),
    sync: syncStore(db),
    filters: filterStore(db),
    typing: typingStore(db),
    receipts: receiptStore(db),
    deviceKeys: deviceKeyStore(db),
    toDevice: toDeviceStore(db),
    profileUpdates: profileUpdateStore(db),
    serverKeys: serverKeyStore(db),
    federationOutbox: federationOutboxStore(db),
    appservices: appServiceStore(db),

    media: mediaStore(db),
    crossSigning: crossSigningStore(db),
    keyBackup: keyBackupStore(db),
    dehydratedDevices: dehydratedDeviceStore(db),
    userDirectory: userDirectoryStore(db),

    relations: relationStore(db),
    search: searchStore(db, dialect),
    push: pushStore(db),
    pushers: pusherStore(db),

    admin: adminStore(db, dialect, announce),
    roomPurges: roomPurgeStore(db),
    moderation: moderationStore(db, announce),
    slidingSync: slidingSyncStore(db),
    remoteDevices: remoteDeviceStore(db),
    backfill: backfillStore(db),
    roomDag: roomDagStore(db),
    partialState: partialStateStore(db),
  };
}

export async function openStorage(url: string, options: OpenOptions = {}): Promise<Storage> {
  const handle = await openDatabase(url, options);
  const changes = createChangeFeed(handle.dialect, url, options.logger);
  // A revoked session must be refused by every process once the revoking request is answered:
  // wait until the other processes have dropped it (change-feed.ts, barrier).
  const revokesSessions = (change: StreamChange) => (change.sessions?.length ?? 0) > 0;
  const publishNow: ChangeSink = async (change) => {
    changes.publish(change);
    if (revokesSessions(change)) await changes.barrier();
  };
  return {
    dialect: handle.dialect,
    stores: storesFor(handle.db, handle.dialect, publishNow, changes.origin),
    async tx(name, fn) {
      // Changes announced inside the transaction reach listeners only once it commits.
      const pending: StreamChange[] = [];
      const held: ChangeSink = async (change) => {
        pending.push(change);
      };
      const result = await handle.tx(name, (trx) =>
        fn(storesFor(trx, handle.dialect, held, changes.origin)),
      );
      for (const change of pending) changes.publish(change);
      if (pending.some(revokesSessions)) await changes.barrier();
      return result;
    },
    changes,
    claimServerName: (candidate) => claimServerName(handle.db, candidate),
    poolStats: () => handle.poolStats(),
    async ping() {
      await sql`SELECT 1`.execute(handle.db);
    },
    async close() {
      await changes.close();
      await handle.close();
    },
  };
}

export type {
  AccountStore,
  DeviceStore,
  UiaStore,
  RoomStore,
  DirectoryStore,
  MutualRoomsStore,
  MemberListStore,
  SecretStore,
  StreamStore,
};
export type { StreamChange } from './stream-store.js';
export type { StateChange, StateRemoval } from './room-store.js';
export type {
  DagStatus,
  KnownEvent,
  RoomDagStore,
  StateEntry,
  StateGroupHead,
} from './room-dag-store.js';
export type {
  ModerationStore,
  RateLimitOverride,
  UserMediaRow,
  UserMediaOrder,
} from './moderation-store.js';
export { USER_MEDIA_ORDERS } from './moderation-store.js';
export type { PoolStats } from './database.js';
export type { AccountDataStore, AccountDataRow } from './account-data-store.js';
export type { PresenceStore, PresenceRow } from './presence-store.js';
export type { SyncStore, UserMembershipRow, MemberCounts } from './sync-store.js';
export type { FilterStore } from './filter-store.js';
export type { TypingStore, TypingRow } from './typing-store.js';
export type { ReceiptStore, ReceiptRow } from './receipt-store.js';
export type {
  DeviceKeyStore,
  DeviceKeysRow,
  OneTimeKeyRow,
  FallbackKeyRow,
} from './device-key-store.js';
export type { ToDeviceStore, ToDeviceMessage } from './to-device-store.js';
export type { ProfileUpdateStore, PendingProfileUpdate } from './profile-update-store.js';
export type { AppServiceStore, QueuedEvent, InFlightTxn } from './appservice-store.js';
export type { ChangeFeed, ChangeListener } from './change-feed.js';
export type { ServerKeyStore, ServerKeyRow } from './server-key-store.js';
export type {
  FederationOutboxStore,
  OutboxEntry,
  OutboxKind,
  DestinationState,
  PendingLeave,
} from './federation-outbox-store.js';

export type {
  RelationStore,
  RelationToStore,
  RelationRange,
  RelationCount,
  ThreadRow,
} from './relation-store.js';
export type { MutualRoomPair, MutualRoomEntry } from './mutual-rooms-store.js';
export type {
  MemberRow,
  MembershipSelector,
  JoinedProfileRow,
  UserRoomRow,
} from './member-list-store.js';
export type { AliasRow, PublicRoomRow, PublicRoomsFilter } from './directory-store.js';
export type {
  RoomRow,
  EventRow,
  EventToPersist,
  MembershipChange,
  MembershipHistoryEntry,
} from './room-store.js';
export type { UserRow, ProfileRow, NewUser } from './account-store.js';
export type { DeviceRow, TokenOwner } from './device-store.js';
export type {
  MediaStore,
  MediaRow,
  RemoteMediaRow,
  ThumbnailRow,
  UploadedContent,
} from './media-store.js';
export type { MediaFileStore, StoredFile } from './media-files.js';
export type {
  CrossSigningStore,
  CrossSigningKeyRow,
  CrossSigningKeyType,
  KeySignatureRow,
} from './cross-signing-store.js';
export type { KeyBackupStore, BackupVersionRow, BackupKeyRow } from './key-backup-store.js';
export type { UserDirectoryStore, DirectoryUserRow } from './user-directory-store.js';

export type {
  AdminStore,
  AdminUserRow,
  AdminRoomRow,
  UserQuery,
  RoomQuery,
  UserOrder,
  RoomOrder,
  SortDirection,
  RegistrationTokenRow,
  ContentReportRow,
  ReportQuery,
} from './admin-store.js';
export type { RoomPurgeStore, PurgeRow, PurgeKind, PurgeStatus } from './room-purge-store.js';
export type {
  SlidingSyncStore,
  RoomListEntry,
  ConnectionRow,
  SentRoom,
  ListedRoom,
  RoomListCriteria,
} from './sliding-sync-store.js';
export type { RemoteDeviceStore, RemoteDeviceListRow } from './remote-device-store.js';
export type { PartialStateStore, PartialStateRoomRow } from './partial-state-store.js';
export type { PartialStateCompletion, PastStateEntry } from './partial-state-store.js';
