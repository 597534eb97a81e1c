/**
 * The rooms application services publish in their networks' room directories
 * (`PUT /directory/list/appservice/{networkId}/{roomId}`), apart from the server's own
 * directory (`rooms.is_public`).
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('appservice_room_directory')
    .addColumn('service_id', 'text', (c) => c.notNull())
    .addColumn('network_id', 'text', (c) => c.notNull())
    .addColumn('room_id', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('appservice_room_directory_pk', [
      'service_id',
      'network_id',
      'room_id',
    ])
    .execute();
  await db.schema
    .createIndex('appservice_room_directory_room')
    .on('appservice_room_directory')
    .column('room_id')
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('appservice_room_directory').execute();
}
