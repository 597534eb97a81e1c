/** A user's devices: listing, naming, and deleting them (with re-authentication). */
import { notFound } from '../core/errors.js';
import type { DeviceRow } from '../storage/index.js';

export type { DeviceRow };
import type { AccountService } from './accounts.js';
import type { Requester, ServiceContext } from './context.js';
import { forgetDevices } from './device-keys.js';
import type { UiaService } from './uia.js';

export function createDeviceService(
  ctx: ServiceContext,
  uia: UiaService,
  accounts: AccountService,
) {
  const devices = ctx.storage.stores.devices;
  return {
    list: (requester: Requester): Promise<DeviceRow[]> => devices.selectDevices(requester.userId),

    async get(requester: Requester, deviceId: string): Promise<DeviceRow> {
      const device = await devices.selectDevice(requester.userId, deviceId);
      if (!device) throw notFound('Unknown device');
      return device;
    },

    async rename(requester: Requester, deviceId: string, displayName: string): Promise<void> {
      const updated = await devices.updateDeviceDisplayName(
        requester.userId,
        deviceId,
        displayName,
      );
      if (!updated) throw notFound('Unknown device');
    },

    /** Deletes devices (and their tokens) after the user re-enters their password. */
    async delete(requester: Requester, deviceIds: readonly string[], auth: unknown): Promise<void> {
      // MSC4190: an application service deletes its users' devices without re-authenticating.
      if (!requester.appservice?.msc4190)
        await uia.authenticate({
          auth,
          purpose: `delete_devices:${requester.userId}:${[...deviceIds].sort().join(',')}`,
          flows: [['m.login.password']],
          stages: { 'm.login.password': accounts.passwordStage(requester.userId) },
        });
      await ctx.storage.tx('deleteDevices', async (stores) => {
        await stores.devices.deleteDevices(requester.userId, deviceIds);
        await forgetDevices(stores, requester.userId, deviceIds, ctx);
      });
    },
  };
}

export type DeviceService = ReturnType<typeof createDeviceService>;
