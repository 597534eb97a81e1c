/**
 * Whether a user ID column belongs to a server: an exact, case-sensitive comparison of the
 * ID's end with `:server`, the same on SQLite and PostgreSQL. (`LIKE '%:server'` is not:
 * SQLite's LIKE ignores ASCII case, and `_` or `%` in a server name match any character.)
 * A user ID's localpart holds no `:`, and a server name is a host with an optional port, so
 * an ID ends with `:server` exactly when its server part is `server`.
 */
import { sql, type RawBuilder, type SqlBool } from 'kysely';

export function userOfServer(column: string, server: string): RawBuilder<SqlBool> {
  const suffix = `:${server}`;
  const ref = sql.ref(column);
  return sql<SqlBool>`(substr(${ref}, length(${ref}) - length(CAST(${suffix} AS TEXT)) + 1) = ${suffix})`;
}

export function userNotOfServer(column: string, server: string): RawBuilder<SqlBool> {
  return sql<SqlBool>`NOT ${userOfServer(column, server)}`;
}
