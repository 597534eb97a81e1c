/**
 * Federation, the network layer: remote servers' signing keys as fetched (directly or through
 * a notary) with their validity; the durable outbox of PDUs and EDUs per destination, written
 * in the same transaction as the event they come from; and each destination's sending state
 * (failures in a row, when to try again, which process holds the right to send to it).
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('server_keys')
    .addColumn('server_name', 'text', (c) => c.notNull())
    .addColumn('key_id', 'text', (c) => c.notNull())
    /** Unpadded Base64 of the raw 32-byte ed25519 key. */
    .addColumn('public_key', 'text', (c) => c.notNull())
    .addColumn('valid_until_ts', 'bigint', (c) => c.notNull())
    .addColumn('expired_ts', 'bigint')
    .addColumn('fetched_ts', 'bigint', (c) => c.notNull())
    /** The whole `/_matrix/key/v2/server` answer the key came in, as received (a notary serves it). */
    .addColumn('key_json', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('server_keys_pk', ['server_name', 'key_id'])
    .execute();
  await db.schema
    .createTable('federation_outbox')
    .addColumn('position', 'bigint', (c) => c.primaryKey())
    .addColumn('destination', 'text', (c) => c.notNull())
    /** 'pdu' or 'edu'. */
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('payload', 'text', (c) => c.notNull())
    .addColumn('created_ts', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('federation_outbox_by_destination')
    .on('federation_outbox')
    .columns(['destination', 'position'])
    .execute();
  await db.schema
    .createTable('federation_destinations')
    .addColumn('destination', 'text', (c) => c.primaryKey())
    .addColumn('failures', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('retry_at_ts', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('lease_owner', 'text')
    .addColumn('lease_until_ts', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('last_success_ts', 'bigint')
    .execute();
  await sql`INSERT INTO stream_positions (stream, position) VALUES ('federation_outbox', 0)`.execute(
    db,
  );
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DELETE FROM stream_positions WHERE stream = 'federation_outbox'`.execute(db);
  await db.schema.dropTable('federation_destinations').execute();
  await db.schema.dropTable('federation_outbox').execute();
  await db.schema.dropTable('server_keys').execute();
}
