/**
 * What Commons knew of each application service when it last started: the namespaces its
 * record of room users was built for (rebuilt at start when they change, so a bridge added
 * or widened after its users joined rooms is told of those rooms), and whether it asked for
 * device-list changes (MSC3202). An index lets a user's rooms find the services in them.
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('appservice_registrations')
    .addColumn('service_id', 'text', (c) => c.primaryKey())
    .addColumn('users_key', 'text', (c) => c.notNull())
    .addColumn('device_lists', 'integer', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('appservice_room_users_room')
    .on('appservice_room_users')
    .column('room_id')
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex('appservice_room_users_room').execute();
  await db.schema.dropTable('appservice_registrations').execute();
}
