/**
 * Dehydrated devices (MSC3814, `org.matrix.msc3814.v1`): a device a client leaves on the
 * server, with its keys and an opaque encrypted account (`device_data`), so that to-device
 * messages (room keys) sent while the user has no device online wait for it. A new client
 * reads the data, collects the device's messages, then deletes it. One per user: storing a
 * new one deletes the earlier device, its keys and its messages.
 */
import { canonicalJson } from '../core/canonical-json.js';
import { forbidden, invalidParam, notFound } from '../core/errors.js';
import type { JsonObject } from '../core/pdu.js';
import type { Stores } from '../storage/index.js';
import type { Requester, ServiceContext } from './context.js';
import { forgetDevices, type DeviceKeysUpload } from './device-keys.js';
import type { DeviceKeyService } from './device-keys.js';

export interface DehydratedDeviceUpload {
  deviceId: string;
  deviceData: JsonObject;
  displayName: string | undefined;
  deviceKeys: DeviceKeysUpload | undefined;
  oneTimeKeys: Record<string, unknown> | undefined;
  fallbackKeys: Record<string, unknown> | undefined;
}

export interface DehydratedEvents {
  events: { type: string; sender: string; content: JsonObject }[];
  next_batch: string;
}

const noDevice = () => notFound('No dehydrated device');

export function createDehydratedDeviceService(ctx: ServiceContext, deviceKeys: DeviceKeyService) {
  const removeDevice = async (stores: Stores, userId: string, deviceId: string) => {
    await stores.devices.deleteDevices(userId, [deviceId]);
    await forgetDevices(stores, userId, [deviceId]);
  };

  return {
    /** PUT: stores the device (replacing the user's earlier one), then its keys. */
    async put(requester: Requester, upload: DehydratedDeviceUpload): Promise<string> {
      const { userId } = requester;
      const { deviceId } = upload;
      // Checked before anything is stored, so a refused PUT leaves nothing behind.
      const keys = upload.deviceKeys;
      if (keys && (keys.user_id !== userId || keys.device_id !== deviceId))
        throw invalidParam('device_keys must be those of the user and the dehydrated device');
      await ctx.storage.tx('putDehydratedDevice', async (stores) => {
        const earlier = await stores.dehydratedDevices.selectDehydratedDevice(userId);
        const existing = await stores.devices.selectDevice(userId, deviceId);
        // The ID must not be one of the user's ordinary devices.
        if (existing && earlier?.device_id !== deviceId)
          throw invalidParam('device_id is already in use by another device');
        if (earlier) await removeDevice(stores, userId, earlier.device_id);
        await stores.devices.upsertDevice(
          userId,
          deviceId,
          upload.displayName ?? null,
          ctx.now(),
          null,
        );
        await stores.dehydratedDevices.upsertDehydratedDevice(
          userId,
          deviceId,
          canonicalJson(upload.deviceData),
          ctx.now(),
        );
      });
      if (upload.deviceKeys || upload.oneTimeKeys || upload.fallbackKeys) {
        await deviceKeys.upload(
          { userId, deviceId, isAdmin: false },
          {
            deviceKeys: upload.deviceKeys,
            oneTimeKeys: upload.oneTimeKeys,
            fallbackKeys: upload.fallbackKeys,
          },
        );
      }
      return deviceId;
    },

    /** GET: the device's ID and data; 404 M_NOT_FOUND when the user has none. */
    async get(requester: Requester): Promise<{ device_id: string; device_data: JsonObject }> {
      const row = await ctx.storage.stores.dehydratedDevices.selectDehydratedDevice(
        requester.userId,
      );
      if (!row) throw noDevice();
      return { device_id: row.device_id, device_data: JSON.parse(row.device_data) as JsonObject };
    },

    /** DELETE: the device, its keys and its messages. */
    async delete(requester: Requester): Promise<string> {
      return ctx.storage.tx('deleteDehydratedDevice', async (stores) => {
        const row = await stores.dehydratedDevices.selectDehydratedDevice(requester.userId);
        if (!row) throw noDevice();
        await removeDevice(stores, requester.userId, row.device_id);
        await stores.dehydratedDevices.deleteDehydratedDevice(requester.userId);
        return row.device_id;
      });
    },

    /**
     * POST …/{deviceId}/events: the device's to-device messages after `nextBatch` (those up to
     * it are deleted: the client has them). Another device than the user's dehydrated one:
     * 403 M_FORBIDDEN.
     */
    async events(
      requester: Requester,
      deviceId: string,
      nextBatch: string | undefined,
    ): Promise<DehydratedEvents> {
      const { userId } = requester;
      let after = 0;
      if (nextBatch !== undefined) {
        if (!/^\d{1,15}$/.test(nextBatch)) throw invalidParam('next_batch is not one of ours');
        after = Number(nextBatch);
      }
      return ctx.storage.tx('dehydratedDeviceEvents', async (stores) => {
        const row = await stores.dehydratedDevices.selectDehydratedDevice(userId);
        if (!row || row.device_id !== deviceId)
          throw forbidden('That is not your dehydrated device');
        const upTo = await stores.stream.selectCurrentPosition();
        if (after > 0) await stores.toDevice.deleteMessagesUpTo(userId, deviceId, after);
        const messages = await stores.toDevice.selectMessages(userId, deviceId, after, upTo);
        return {
          events: messages.map((m) => ({ type: m.type, sender: m.sender, content: m.content })),
          next_batch: String(Math.max(upTo, after)),
        };
      });
    },
  };
}

export type DehydratedDeviceService = ReturnType<typeof createDehydratedDeviceService>;
