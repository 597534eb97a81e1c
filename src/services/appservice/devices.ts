/**
 * What else services are told besides room events, queued in the change's own transaction:
 * presence (MSC2409, with `receive_ephemeral`), to-device messages for their users (MSC2409's
 * `de.sorunome.msc2409.to_device`, with `receive_ephemeral` or `org.matrix.msc3202`), and the
 * one-time key counts and unused fallback key types of their users' devices (MSC3202).
 * Device-list changes are queued by the storage layer (`queueDeviceListChange`) for the
 * services recorded at start as wanting them.
 * https://github.com/matrix-org/matrix-spec-proposals/pull/2409
 * https://github.com/matrix-org/matrix-spec-proposals/pull/3202
 */
import {
  isServiceUser,
  userInExclusiveNamespace,
  type AppServiceRegistration,
} from '../../core/appservice.js';
import type { JsonObject } from '../../core/pdu.js';
import type { Stores, ToDeviceMessage } from '../../storage/index.js';

export function appServiceDeviceQueue(
  registrations: readonly AppServiceRegistration[],
  serverName: string,
) {
  const sending = registrations.filter((r) => r.url !== null);
  const ephemeral = sending.filter((r) => r.receiveEphemeral);
  const toDevice = sending.filter((r) => r.receiveEphemeral || r.msc3202);
  const keys = sending.filter((r) => r.msc3202);

  return {
    /**
     * The user's presence changed (at `position`): an m.presence event for each service that
     * receives ephemeral events and either owns the user or shares one of `rooms` (the
     * user's joined rooms) with one of its users.
     */
    async presence(
      stores: Stores,
      userId: string,
      rooms: readonly string[],
      position: number,
      content: JsonObject,
    ): Promise<void> {
      let json: string | null = null;
      for (const r of ephemeral) {
        if (
          !isServiceUser(r, userId, serverName) &&
          !(await stores.appservices.selectHasRoomUserIn(r.id, rooms))
        )
          continue;
        json ??= JSON.stringify({ type: 'm.presence', sender: userId, content });
        await stores.appservices.insertQueued(r.id, position, json, 'ephemeral');
      }
    },

    /**
     * To-device messages queued at `position`: those for a service's users go to it. Answers
     * the messages it took for users of an exclusive namespace: the service is their only
     * reader, so they are not kept for the device's `/sync` too (where nothing would ever
     * read or delete them).
     */
    async toDevice(
      stores: Stores,
      messages: readonly ToDeviceMessage[],
      position: number,
    ): Promise<Set<ToDeviceMessage>> {
      const taken = new Set<ToDeviceMessage>();
      for (const r of toDevice) {
        for (const m of messages) if (userInExclusiveNamespace(r, m.userId)) taken.add(m);
        const mine = messages
          .filter((m) => isServiceUser(r, m.userId, serverName))
          .map((m) => ({
            type: m.type,
            sender: m.sender,
            content: m.content,
            to_user_id: m.userId,
            to_device_id: m.deviceId,
          }));
        if (mine.length > 0)
          await stores.appservices.insertQueued(r.id, position, JSON.stringify(mine), 'to_device');
      }
      return taken;
    },

    /** Whether any service wants the key counts of this user's devices. */
    wantsKeyCounts(userId: string): boolean {
      return keys.some((r) => isServiceUser(r, userId, serverName));
    },

    /**
     * The one-time key counts or fallback keys of these devices changed: their counts and
     * unused fallback key types now (read in the caller's transaction), at a new position,
     * for the services that own the users and asked for MSC3202.
     */
    async keyCounts(
      stores: Stores,
      devices: readonly { userId: string; deviceId: string }[],
    ): Promise<void> {
      let position: number | null = null;
      for (const r of keys) {
        const mine = devices.filter((d) => isServiceUser(r, d.userId, serverName));
        if (mine.length === 0) continue;
        const counts: Record<string, Record<string, Record<string, number>>> = {};
        const fallback: Record<string, Record<string, string[]>> = {};
        for (const { userId, deviceId } of mine) {
          (counts[userId] ??= {})[deviceId] = {
            signed_curve25519: 0,
            ...(await stores.deviceKeys.countOneTimeKeys(userId, deviceId)),
          };
          (fallback[userId] ??= {})[deviceId] =
            await stores.deviceKeys.selectUnusedFallbackAlgorithms(userId, deviceId);
        }
        position ??= await stores.stream.nextPosition();
        await stores.appservices.insertQueued(
          r.id,
          position,
          JSON.stringify({ counts, fallback }),
          'key_counts',
        );
      }
    },
  };
}

export type AppServiceDeviceQueue = ReturnType<typeof appServiceDeviceQueue>;
