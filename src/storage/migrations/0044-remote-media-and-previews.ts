/**
 * Media from other servers and URL previews: a row per remote media ID fetched over
 * federation (its bytes are kept by the media file store under their SHA-256, like local
 * media), and each URL preview made, kept until it expires.
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('remote_media')
    .addColumn('server_name', 'text', (c) => c.notNull())
    .addColumn('media_id', 'text', (c) => c.notNull())
    .addColumn('fetched_ts', 'bigint', (c) => c.notNull())
    .addColumn('content_type', 'text', (c) => c.notNull())
    .addColumn('upload_name', 'text')
    .addColumn('size', 'bigint', (c) => c.notNull())
    .addColumn('sha256', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('remote_media_pk', ['server_name', 'media_id'])
    .execute();
  await db.schema
    .createTable('url_previews')
    .addColumn('url', 'text', (c) => c.primaryKey())
    .addColumn('fetched_ts', 'bigint', (c) => c.notNull())
    .addColumn('expires_ts', 'bigint', (c) => c.notNull())
    .addColumn('og_json', 'text', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('url_previews').execute();
  await db.schema.dropTable('remote_media').execute();
}
