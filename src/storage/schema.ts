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

export interface Database {
  users: UsersTable;
  profiles: ProfilesTable;
  devices: DevicesTable;
  access_tokens: AccessTokensTable;
  uia_sessions: UiaSessionsTable;
  admin_registration_nonces: AdminRegistrationNoncesTable;
}
