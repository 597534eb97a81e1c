/** Remote servers' signing keys, cached with their validity (migration 0020). */
import type { Kysely } from 'kysely';
import type { Database } from './schema.js';

export interface ServerKeyRow {
  serverName: string;
  keyId: string;
  /** Unpadded Base64. */
  publicKey: string;
  validUntilTs: number;
  expiredTs: number | null;
  fetchedTs: number;
  /** The whole answer the key came in, as received. */
  keyJson: string;
}

export interface ServerKeyStore {
  /** Stores keys, replacing an older copy unless it is valid for longer. */
  upsertServerKeys(rows: readonly ServerKeyRow[]): Promise<void>;
  /** The cached keys of a server (all of them, or those named). */
  selectServerKeys(serverName: string, keyIds?: readonly string[]): Promise<ServerKeyRow[]>;
}

const fromRow = (r: Database['server_keys']): ServerKeyRow => ({
  serverName: r.server_name,
  keyId: r.key_id,
  publicKey: r.public_key,
  validUntilTs: Number(r.valid_until_ts),
  expiredTs: r.expired_ts === null ? null : Number(r.expired_ts),
  fetchedTs: Number(r.fetched_ts),
  keyJson: r.key_json,
});

export function serverKeyStore(db: Kysely<Database>): ServerKeyStore {
  return {
    async upsertServerKeys(rows) {
      for (const row of rows) {
        const values = {
          server_name: row.serverName,
          key_id: row.keyId,
          public_key: row.publicKey,
          valid_until_ts: row.validUntilTs,
          expired_ts: row.expiredTs,
          fetched_ts: row.fetchedTs,
          key_json: row.keyJson,
        };
        await db
          .insertInto('server_keys')
          .values(values)
          .onConflict((oc) =>
            oc
              .columns(['server_name', 'key_id'])
              .doUpdateSet(values)
              .where('server_keys.valid_until_ts', '<=', row.validUntilTs),
          )
          .execute();
      }
    },

    async selectServerKeys(serverName, keyIds) {
      if (keyIds && keyIds.length === 0) return [];
      let query = db.selectFrom('server_keys').selectAll().where('server_name', '=', serverName);
      if (keyIds) query = query.where('key_id', 'in', [...keyIds]);
      return (await query.orderBy('key_id').execute()).map(fromRow);
    },
  };
}
