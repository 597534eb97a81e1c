/**
 * Table types for Kysely. Column names match the SQL (snake_case); timestamps are
 * milliseconds since the epoch stored as BIGINT (read back as numbers on both dialects).
 */
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
  room_list_meta: RoomListMetaTable;
  sliding_sync_connections: SlidingSyncConnectionsTable;
  sliding_sync_rooms: SlidingSyncRoomsTable;
  sliding_sync_members: SlidingSyncMembersTable;
}
