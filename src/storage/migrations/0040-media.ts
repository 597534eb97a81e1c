/**
 * The media repository: one row per media ID (its bytes are kept by the media file store
 * under their SHA-256; `sha256` is null while an upload created by `/create` is awaited),
 * and the thumbnails made of each stored content, keyed by that content's hash.
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('media')
    .addColumn('media_id', 'text', (c) => c.primaryKey())
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('created_ts', 'bigint', (c) => c.notNull())
    .addColumn('unused_expires_ts', 'bigint')
    .addColumn('content_type', 'text')
    .addColumn('upload_name', 'text')
    .addColumn('size', 'bigint')
    .addColumn('sha256', 'text')
    .execute();
  await db.schema
    .createIndex('media_by_user_created')
    .on('media')
    .columns(['user_id', 'created_ts'])
    .execute();
  await db.schema
    .createTable('media_thumbnails')
    .addColumn('source_sha256', 'text', (c) => c.notNull())
    .addColumn('width', 'integer', (c) => c.notNull())
    .addColumn('height', 'integer', (c) => c.notNull())
    .addColumn('method', 'text', (c) => c.notNull())
    .addColumn('animated', 'integer', (c) => c.notNull())
    .addColumn('content_type', 'text', (c) => c.notNull())
    .addColumn('sha256', 'text', (c) => c.notNull())
    .addColumn('size', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('media_thumbnails_pk', [
      'source_sha256',
      'width',
      'height',
      'method',
      'animated',
    ])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('media_thumbnails').execute();
  await db.schema.dropTable('media').execute();
}
