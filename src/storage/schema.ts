/**
 * Table types for Kysely. Column names match the SQL (snake_case); timestamps are
 * milliseconds since the epoch stored as BIGINT (read back as numbers on both dialects).
 */
import type { Generated } from 'kysely';

export interface UsersTable {
  user_id: string;
  localpart: string;
  password_hash: string | null;
  is_admin: number;
  deactivated: number;
  created_ts: number;
}

/** A deactivation begun and not yet finished (its rooms not all left). */
export interface PendingDeactivationsTable {
  user_id: string;
  requested_ts: number;
}

export interface ProfilesTable {
  user_id: string;
  displayname: string | null;
  avatar_url: string | null;
}

export interface DevicesTable {
  user_id: string;
  device_id: string;
  display_name: string | null;
  last_seen_ts: number | null;
  last_seen_ip: string | null;
  created_ts: number;
}

export interface AccessTokensTable {
  token_hash: string;
  user_id: string;
  device_id: string;
  created_ts: number;
}

export interface UiaSessionsTable {
  session_id: string;
  /** What the session authorises, e.g. "register" or "delete_device:@u:hs:DEV". */
  purpose: string;
  /** JSON array of completed stage types. */
  completed: string;
  created_ts: number;
}

export interface AdminRegistrationNoncesTable {
  nonce: string;
  created_ts: number;
}

export interface StreamPositionsTable {
  stream: string;
  position: number;
}

export interface RoomsTable {
  room_id: string;
  room_version: string;
  creator: string;
  is_public: number;
  created_ts: number;
  /** A compact number in creation order: the order and paging cursor of mutual rooms. */
  room_nid: number;
}

export interface EventsTable {
  stream_ordering: number;
  event_id: string;
  room_id: string;
  type: string;
  state_key: string | null;
  sender: string;
  origin_server_ts: number;
  depth: number;
  /** The PDU as canonical JSON. */
  pdu: string;
  redacted_by: string | null;
  /** The client format (ClientEvent) as JSON; null when redacted (present the PDU instead). */
  client_json: string | null;
}

export interface RoomExtremitiesTable {
  room_id: string;
  event_id: string;
}

export interface CurrentStateTable {
  room_id: string;
  type: string;
  state_key: string;
  event_id: string;
  stream_ordering: number;
}

export interface StateHistoryTable {
  room_id: string;
  type: string;
  state_key: string;
  stream_ordering: number;
  event_id: string;
}

export interface RoomMembershipsTable {
  room_id: string;
  user_id: string;
  membership: string;
  event_id: string;
  stream_ordering: number;
  displayname: string | null;
  avatar_url: string | null;
  forgotten: number;
  /** The member event's client form (events.client_json), null when redacted. */
  client_json: string | null;
  /** The member event's sender. */
  sender: string | null;
}

export interface MembershipHistoryTable {
  room_id: string;
  user_id: string;
  stream_ordering: number;
  membership: string;
  event_id: string;
}

export interface RoomAliasesTable {
  alias: string;
  room_id: string;
  creator: string;
}

export interface EventTxnsTable {
  user_id: string;
  device_id: string;
  room_id: string;
  txn_id: string;
  event_id: string;
  created_ts: number;
}

/** A pair of users (user_low < user_high) whose shared rooms are indexed. */
export interface MutualRoomPairsTable {
  user_low: string;
  user_high: string;
  room_count: number;
  used_ts: number;
  /** Random; replaced whenever the pair's rooms change, so cached pages can be checked. */
  revision: number;
}

/** One room both users of an indexed pair have joined. */
export interface MutualRoomEntriesTable {
  user_low: string;
  user_high: string;
  room_nid: number;
  room_id: string;
}

export interface ServerMetadataTable {
  name: string;
  value: string;
}

export interface ServerSecretsTable {
  name: string;
  secret: string;
}

export interface FiltersTable {
  user_id: string;
  filter_id: number;
  filter_json: string;
}

/** Account data; `room_id` is '' for global account data. */
export interface AccountDataTable {
  user_id: string;
  room_id: string;
  type: string;
  /** The content as JSON. */
  content: string;
  stream_ordering: number;
}

export interface ReceiptsTable {
  room_id: string;
  receipt_type: string;
  user_id: string;
  /** '' for an unthreaded receipt. */
  thread_id: string;
  event_id: string;
  ts: number;
  stream_ordering: number;
}

export interface TypingTable {
  room_id: string;
  user_id: string;
  /** 0 once the user stopped typing. */
  expires_ts: number;
  stream_ordering: number;
}

export interface PresenceTable {
  user_id: string;
  presence: string;
  status_msg: string | null;
  last_active_ts: number;
  stream_ordering: number;
  /** 1 while the user is currently active. */
  currently_active: number;
  /** (Local users) when a /sync of theirs was last seen running or ending; 0: never. */
  last_sync_ts: number;
  /** When the row was last written or (remote users) last heard of from their server. */
  last_update_ts: number;
}

export interface ToDeviceMessagesTable {
  stream_ordering: number;
  user_id: string;
  device_id: string;
  sender: string;
  type: string;
  content: string;
}

export interface ToDeviceTxnsTable {
  user_id: string;
  device_id: string;
  txn_id: string;
  created_ts: number;
}

export interface DeviceKeysTable {
  user_id: string;
  device_id: string;
  keys_json: string;
}

export interface OneTimeKeysTable {
  user_id: string;
  device_id: string;
  algorithm: string;
  key_id: string;
  key_json: string;
}

export interface FallbackKeysTable {
  user_id: string;
  device_id: string;
  algorithm: string;
  key_id: string;
  key_json: string;
  used: number;
}

export interface DeviceListChangesTable {
  stream_ordering: number;
  user_id: string;
}

/** A profile change whose member events may still be owed (migration 0011). */
export interface ProfileRoomUpdatesTable {
  user_id: string;
  /** Which change wrote the row: only that change's end deletes it. */
  revision: number;
  requested_ts: number;
}

/** Remote servers' signing keys (migration 0020). */
export interface ServerKeysTable {
  server_name: string;
  key_id: string;
  public_key: string;
  valid_until_ts: number;
  expired_ts: number | null;
  fetched_ts: number;
  key_json: string;
}

/** PDUs and EDUs waiting for a destination (migration 0020), in `position` order. */
export interface FederationOutboxTable {
  position: number;
  destination: string;
  kind: string;
  payload: string;
  created_ts: number;
}

/** Each destination's sending state (migration 0020). */
export interface FederationDestinationsTable {
  destination: string;
  failures: Generated<number>;
  retry_at_ts: Generated<number>;
  lease_owner: string | null;
  lease_until_ts: Generated<number>;
  last_success_ts: number | null;
}

export interface FederationPendingLeavesTable {
  room_id: string;
  user_id: string;
  event_id: string;
  servers: string;
  content: string;
  failures: Generated<number>;
  retry_at_ts: number;
  created_ts: number;
}

export interface AppserviceRoomUsersTable {
  service_id: string;
  room_id: string;
  user_id: string;
}

export interface AppserviceQueueTable {
  service_id: string;
  position: number;
  kind: 'event' | 'ephemeral' | 'to_device' | 'device_list' | 'key_counts';
  event_json: string;
}

export interface AppserviceRegistrationsTable {
  service_id: string;
  users_key: string;
  device_lists: number;
}

export interface AppserviceSendersTable {
  service_id: string;
  last_txn_id: number;
  in_flight_txn_id: number | null;
  in_flight_up_to: number | null;
  lease_owner: string | null;
  lease_until: number;
}

export interface AppserviceRoomDirectoryTable {
  service_id: string;
  network_id: string;
  room_id: string;
}

/** Media IDs (migration 0040); `sha256` null while an upload is awaited. */
export interface MediaTable {
  media_id: string;
  user_id: string;
  created_ts: number;
  unused_expires_ts: number | null;
  content_type: string | null;
  upload_name: string | null;
  size: number | null;
  sha256: string | null;
}

/** Each user's dehydrated device (MSC3814, migration 0045). */
export interface DehydratedDevicesTable {
  user_id: string;
  device_id: string;
  device_data: string;
  created_ts: number;
}

/** Media of other servers fetched over federation (migration 0044). */
export interface RemoteMediaTable {
  server_name: string;
  media_id: string;
  fetched_ts: number;
  content_type: string;
  upload_name: string | null;
  size: number;
  sha256: string;
}

/** URL previews made, until they expire (migration 0044). */
export interface UrlPreviewsTable {
  url: string;
  fetched_ts: number;
  expires_ts: number;
  og_json: string;
}

/** Thumbnails made of stored content, by the content's hash (migration 0040). */
export interface MediaThumbnailsTable {
  source_sha256: string;
  width: number;
  height: number;
  method: string;
  animated: number;
  content_type: string;
  sha256: string;
  size: number;
}

/** Cross-signing keys, the latest of each type per user (migration 0041). */
export interface CrossSigningKeysTable {
  user_id: string;
  key_type: string;
  key_json: string;
}

/** Signatures uploaded for device keys and master keys (migration 0041). */
export interface KeySignaturesTable {
  target_user_id: string;
  target_key_id: string;
  signer_user_id: string;
  signer_key_id: string;
  signature: string;
}

/** Key backup versions (migration 0042). */
export interface KeyBackupVersionsTable {
  user_id: string;
  version: number;
  algorithm: string;
  auth_data: string;
  etag: number;
  deleted: number;
}

/** Room keys stored in a backup version (migration 0042). */
export interface KeyBackupKeysTable {
  user_id: string;
  version: number;
  room_id: string;
  session_id: string;
  first_message_index: number;
  forwarded_count: number;
  is_verified: number;
  session_data: string;
}

/** Users who can be found (migration 0043). */
export interface UserDirectoryTable {
  user_id: string;
  display_name: string | null;
  avatar_url: string | null;
  /** Who may find the user (migration 0046): 2 anyone, 1 with search_all_users, 0 room-mates. */
  reach: number;
}

/** Every prefix of each user's folded words, with their reach (migration 0046). */
export interface UserDirectorySearchTable {
  prefix: string;
  reach: number;
  user_id: string;
}

/** Rooms whose join rule is public (migration 0043). */
export interface UserDirectoryPublicRoomsTable {
  room_id: string;
}

/** A registration token (migration 0060). */
export interface RegistrationTokensTable {
  token: string;
  /** null: unlimited. */
  uses_allowed: number | null;
  pending: number;
  completed: number;
  /** Milliseconds since the epoch; null: never expires. */
  expiry_time: number | null;
}

/** A client's report of an event, a room or a user (migration 0060). */
export interface ContentReportsTable {
  id: number;
  received_ts: number;
  reporter: string;
  room_id: string | null;
  event_id: string | null;
  target_user_id: string | null;
  reason: string | null;
  score: number | null;
}

/** A room deletion or history purge of the admin API (migration 0061). */
export interface RoomPurgesTable {
  purge_id: string;
  kind: string;
  room_id: string;
  requester: string;
  params: string;
  status: string;
  error: string | null;
  result: string | null;
  created_ts: number;
}

/** A room no one may join (migration 0061). */
export interface BlockedRoomsTable {
  room_id: string;
  blocked_by: string;
  blocked_ts: number;
}

/** Per room, what orders and filters room lists (sliding sync). */
export interface RoomListMetaTable {
  room_id: string;
  /** Stream position of the latest event of a type that bumps the room. */
  bump_stamp: number;
  room_type: string | null;
  encrypted: number;
}

/** A sliding sync connection of a device (`conn_id`), at its latest position. */
export interface SlidingSyncConnectionsTable {
  user_id: string;
  device_id: string;
  conn_id: string;
  connection_id: string;
  pos: number;
  stream_position: number;
  prev_stream_position: number | null;
  /** The lists' counts last sent, as JSON. */
  list_counts: string;
  last_used_ts: number;
}

/** A room a connection has been sent, up to which stream position, in which response. */
export interface SlidingSyncRoomsTable {
  connection_id: string;
  room_id: string;
  sent_position: number;
  pos: number;
}

/** A member event a connection has been sent (lazy loading), in which response. */
export interface SlidingSyncMembersTable {
  connection_id: string;
  room_id: string;
  user_id: string;
  pos: number;
}

export interface Database {
  users: UsersTable;
  profiles: ProfilesTable;
  pending_deactivations: PendingDeactivationsTable;
  devices: DevicesTable;
  access_tokens: AccessTokensTable;
  uia_sessions: UiaSessionsTable;
  admin_registration_nonces: AdminRegistrationNoncesTable;
  stream_positions: StreamPositionsTable;
  rooms: RoomsTable;
  events: EventsTable;
  room_extremities: RoomExtremitiesTable;
  current_state: CurrentStateTable;
  state_history: StateHistoryTable;
  room_memberships: RoomMembershipsTable;
  membership_history: MembershipHistoryTable;
  room_aliases: RoomAliasesTable;
  event_txns: EventTxnsTable;
  mutual_room_pairs: MutualRoomPairsTable;
  mutual_room_entries: MutualRoomEntriesTable;
  server_secrets: ServerSecretsTable;
  server_metadata: ServerMetadataTable;
  filters: FiltersTable;
  account_data: AccountDataTable;
  receipts: ReceiptsTable;
  typing: TypingTable;
  presence: PresenceTable;
  to_device_messages: ToDeviceMessagesTable;
  to_device_txns: ToDeviceTxnsTable;
  device_keys: DeviceKeysTable;
  one_time_keys: OneTimeKeysTable;
  fallback_keys: FallbackKeysTable;
  device_list_changes: DeviceListChangesTable;
  profile_room_updates: ProfileRoomUpdatesTable;
  server_keys: ServerKeysTable;
  federation_outbox: FederationOutboxTable;
  federation_destinations: FederationDestinationsTable;
  federation_pending_leaves: FederationPendingLeavesTable;
  knock_via_servers: KnockViaServersTable;
  appservice_room_users: AppserviceRoomUsersTable;
  appservice_queue: AppserviceQueueTable;
  appservice_senders: AppserviceSendersTable;
  appservice_room_directory: AppserviceRoomDirectoryTable;
  appservice_registrations: AppserviceRegistrationsTable;
  media: MediaTable;
  media_thumbnails: MediaThumbnailsTable;
  remote_media: RemoteMediaTable;
  url_previews: UrlPreviewsTable;
  dehydrated_devices: DehydratedDevicesTable;
  cross_signing_keys: CrossSigningKeysTable;
  key_signatures: KeySignaturesTable;
  key_backup_versions: KeyBackupVersionsTable;
  key_backup_keys: KeyBackupKeysTable;
  user_directory: UserDirectoryTable;
  user_directory_search: UserDirectorySearchTable;
  user_directory_public_rooms: UserDirectoryPublicRoomsTable;

  event_relations: EventRelationsTable;
  event_threads: EventThreadsTable;
  event_search: EventSearchTable;
  event_push_actions: EventPushActionsTable;
  pushers: PushersTable;
  push_queue: PushQueueTable;
  push_sender_lease: PushSenderLeaseTable;
  push_pending: PushPendingTable;
  user_directory_pending: UserDirectoryPendingTable;
  registration_tokens: RegistrationTokensTable;
  content_reports: ContentReportsTable;
  room_purges: RoomPurgesTable;
  blocked_rooms: BlockedRoomsTable;
  user_moderation: UserModerationTable;
  server_notice_rooms: ServerNoticeRoomsTable;
  media_quarantine: MediaQuarantineTable;
  job_leases: JobLeasesTable;
  room_list_meta: RoomListMetaTable;
  sliding_sync_connections: SlidingSyncConnectionsTable;
  sliding_sync_rooms: SlidingSyncRoomsTable;
  sliding_sync_members: SlidingSyncMembersTable;

  state_groups: StateGroupsTable;
  state_group_entries: StateGroupEntriesTable;
  event_state_groups: EventStateGroupsTable;
  event_auth_edges: EventAuthEdgesTable;
  room_state_heads: RoomStateHeadsTable;
  state_resolutions: StateResolutionsTable;
  room_dag_events: RoomDagEventsTable;
  federation_received_txns: FederationReceivedTxnsTable;
  invite_room_state: InviteRoomStateTable;
  room_backfill_points: RoomBackfillPointsTable;
  room_history_floors: RoomHistoryFloorsTable;
  remote_device_lists: RemoteDeviceListsTable;
  partial_state_rooms: PartialStateRoomsTable;
  partial_state_completions: PartialStateCompletionsTable;
}

/** A room state, as a delta on `prev_group` (or whole when that is null). */
export interface StateGroupsTable {
  group_id: number;
  room_id: string;
  prev_group: number | null;
  hops: number;
}

export interface StateGroupEntriesTable {
  group_id: number;
  type: string;
  state_key: string;
  event_id: string | null;
}

/** The state before and after each event that has a known state (not outliers). */
export interface EventStateGroupsTable {
  event_id: string;
  room_id: string;
  before_group: number;
  after_group: number;
}

export interface EventAuthEdgesTable {
  event_id: string;
  auth_event_id: string;
}

export interface RoomStateHeadsTable {
  room_id: string;
  current_group: number;
}

/** The group holding the resolution of a set of state groups (migration 0080). */
export interface StateResolutionsTable {
  /** The resolved groups' IDs, ascending, joined by ','. */
  input_groups: string;
  room_id: string;
  result_group: number;
}

/** Events kept outside the timeline: outliers, rejected and soft-failed events. */
export interface RoomDagEventsTable {
  event_id: string;
  room_id: string;
  status: string;
  reason: string | null;
  pdu: string;
  received_ts: number;
}

/** The stripped state of a remote room a local user was invited to. */
/** Prev events of a room's events that it does not hold: where to backfill from. */
export interface RoomBackfillPointsTable {
  room_id: string;
  event_id: string;
}

/** Below this position a room's events were backfilled (the state it was joined with above). */
export interface RoomHistoryFloorsTable {
  room_id: string;
  position: number;
}

export interface InviteRoomStateTable {
  room_id: string;
  user_id: string;
  event_id: string;
  state_json: string;
}

export interface KnockViaServersTable {
  room_id: string;
  user_id: string;
  event_id: string;
  server: string;
}

export interface FederationReceivedTxnsTable {
  origin: string;
  txn_id: string;
  response: string;
  received_ts: number;
}

/** Another server's user's device list as cached (migration 0025). */
export interface RemoteDeviceListsTable {
  user_id: string;
  stream_id: number;
  list_json: string;
  fetched_ts: number;
}

/** An event that relates to another (`m.relates_to` with a `rel_type`); gone once redacted. */
export interface EventRelationsTable {
  event_id: string;
  room_id: string;
  /** The event it relates to. */
  parent_id: string;
  rel_type: string;
  /** The relating event's type. */
  event_type: string;
  sender: string;
  stream_ordering: number;
}

/** A thread: a root with `m.thread` children, and its latest child. */
export interface EventThreadsTable {
  room_id: string;
  root_id: string;
  latest_event_id: string;
  latest_ordering: number;
}

/** The searchable text of an event (migration 0051); the full-text index is the database's. */
export interface EventSearchTable {
  stream_ordering: number;
  event_id: string;
  room_id: string;
  /** `content.body`, `content.name` or `content.topic`. */
  key: string;
  value: string;
}

/** An event a member's push rules say to notify them of (migration 0052). */
export interface EventPushActionsTable {
  user_id: string;
  room_id: string;
  stream_ordering: number;
  event_id: string;
  /** `main`, or the thread's root event. */
  thread_id: string;
  highlight: number;
  /** The actions as JSON. */
  actions: string;
  /** The stream position at which the row was written (migration 0054). */
  notified_at: number;
}

/** An event whose members' push rules are still to be evaluated (migration 0054). */
export interface PushPendingTable {
  stream_ordering: number;
  room_id: string;
  event_id: string;
  /** The last member evaluated ('' before the first). */
  after_user: string;
}

/** An HTTP pusher (`/pushers/set`). */
export interface PushersTable {
  pusher_id: string;
  user_id: string;
  /** The device that set it ('' for none). */
  device_id: string;
  kind: string;
  app_id: string;
  pushkey: string;
  app_display_name: string;
  device_display_name: string;
  profile_tag: string | null;
  lang: string;
  /** `data` as JSON. */
  data: string;
  pushkey_ts: number;
}

/** A notification owed to a pusher's gateway. */
export interface PushQueueTable {
  pusher_id: string;
  stream_ordering: number;
  event_id: string;
  room_id: string;
  actions: string;
}

export interface PushSenderLeaseTable {
  name: string;
  lease_owner: string | null;
  lease_until: number;
}

/** Shadow-bans and rate-limit overrides of users (migration 0062). */
export interface UserModerationTable {
  user_id: string;
  shadow_banned: Generated<number>;
  messages_per_second: number | null;
  burst_count: number | null;
}

/** Each user's server-notices room (migration 0062). */
export interface ServerNoticeRoomsTable {
  user_id: string;
  room_id: string;
}

/** Local media an admin quarantined: downloads answer 404 (migration 0062). */
export interface MediaQuarantineTable {
  media_id: string;
  quarantined_by: string;
  quarantined_ts: number;
}

/** Which process runs a background job, until when (migration 0062). */
export interface JobLeasesTable {
  job: string;
  owner: string;
  until_ts: number;
}

/** A room joined with partial state, its full state still being fetched (migration 0028). */
export interface PartialStateRoomsTable {
  room_id: string;
  join_event_id: string;
  resident: string;
  servers_json: string;
  joined_ts: number;
  attempts: Generated<number>;
  /** The process fetching the room's full state now, until `lease_until_ts` (migration 0033). */
  lease_owner: string | null;
  lease_until_ts: Generated<number>;
}

/** A room whose members' directory reach is still to be recomputed (migration 0047). */
export interface UserDirectoryPendingTable {
  room_id: string;
  /** 1: the room stopped being public meanwhile; unprocessed members are not shown publicly. */
  restrictive: number;
  after_user: string;
}

/** A partial-state room's completion (migration 0072): its position and our join's. */
export interface PartialStateCompletionsTable {
  room_id: string;
  stream_ordering: number;
  join_stream_ordering: number;
}
