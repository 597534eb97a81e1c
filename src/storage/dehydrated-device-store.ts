/** Each user's dehydrated device (MSC3814, migration 0045). */
import type { Kysely } from 'kysely';
import type { Database } from './schema.js';

export interface DehydratedDeviceRow {
  device_id: string;
  /** JSON text, as the client gave it. */
  device_data: string;
}

export interface DehydratedDeviceStore {
  selectDehydratedDevice(userId: string): Promise<DehydratedDeviceRow | undefined>;
  /** Records the user's dehydrated device, replacing any earlier one. */
  upsertDehydratedDevice(
    userId: string,
    deviceId: string,
    deviceData: string,
    ts: number,
  ): Promise<void>;
  deleteDehydratedDevice(userId: string): Promise<void>;
}

export function dehydratedDeviceStore(db: Kysely<Database>): DehydratedDeviceStore {
  return {
    async selectDehydratedDevice(userId) {
      return db
        .selectFrom('dehydrated_devices')
        .select(['device_id', 'device_data'])
        .where('user_id', '=', userId)
        .executeTakeFirst();
    },

    async upsertDehydratedDevice(userId, deviceId, deviceData, ts) {
      await db
        .insertInto('dehydrated_devices')
        .values({ user_id: userId, device_id: deviceId, device_data: deviceData, created_ts: ts })
        .onConflict((oc) =>
          oc.column('user_id').doUpdateSet({
            device_id: deviceId,
            device_data: deviceData,
            created_ts: ts,
          }),
        )
        .execute();
    },

    async deleteDehydratedDevice(userId) {
      await db.deleteFrom('dehydrated_devices').where('user_id', '=', userId).execute();
    },
  };
}
