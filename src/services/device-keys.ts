/**
 * End-to-end encryption keys: the server stores what devices publish and hands it out
 * (identity keys, one-time keys claimed once each, fallback keys), and records each change
 * of a user's device list for /sync and /keys/changes. Encryption itself stays in clients.
 */
import { canonicalJson } from '../core/canonical-json.js';
import { invalidParam } from '../core/errors.js';
import { parseUserId } from '../core/identifiers.js';
import type { JsonObject, JsonValue } from '../core/pdu.js';
import { parseStreamToken } from '../core/stream-token.js';
import type { OneTimeKeyRow, Stores } from '../storage/index.js';
import type { Requester, ServiceContext } from './context.js';
import { appServiceDeviceQueue } from './appservice/devices.js';
import { queueUserEdu } from './federation/edu-queue.js';

/** The identity keys a device publishes (DeviceKeys); other fields are kept as sent. */
export interface DeviceKeysUpload {
  user_id: string;
  device_id: string;
  [field: string]: unknown;
}

export interface KeysUpload {
  deviceKeys?: DeviceKeysUpload | undefined;
  /** `<algorithm>:<key_id>` → key (a string or a signed key object). */
  oneTimeKeys?: Record<string, unknown> | undefined;
  fallbackKeys?: Record<string, unknown> | undefined;
}

export interface DeviceLists {
  changed: string[];
  left: string[];
}

/** Counted even at zero: some clients only replenish keys of an algorithm they see listed. */
const ALWAYS_COUNTED = 'signed_curve25519';

/** Which devices of a local user changed, for the servers sharing a room with them. */
export interface DeviceListFederation {
  ctx: Pick<ServiceContext, 'settings' | 'now'>;
  deviceIds: readonly string[];
}

/**
 * Records that the user's device list changed, in the caller's transaction, and wakes syncs.
 * With `federation`, an `m.device_list_update` per device (its keys, or `deleted`) is queued
 * for the servers sharing a room with the user, in the same transaction: its `stream_id` is
 * this change's position, its `prev_id` the user's change before it.
 * https://spec.matrix.org/v1.19/server-server-api/#device-management
 */
export async function recordDeviceListChange(
  stores: Stores,
  userId: string,
  federation?: DeviceListFederation,
): Promise<void> {
  const rooms = await stores.rooms.selectRoomsOfUser(userId, 'join');
  const position = await stores.stream.nextPosition();
  await stores.deviceKeys.insertDeviceListChange(userId, position);
  // Services sharing a room with the user that asked for device lists (MSC3202).
  await stores.appservices.queueDeviceListChange(
    userId,
    position,
    `{"changed":${JSON.stringify([userId])}}`,
  );
  await stores.stream.notify({ users: [userId], rooms });
  if (!federation?.ctx.settings.federation || federation.deviceIds.length === 0) return;
  const previous = await stores.deviceKeys.selectLastDeviceListChange(userId, position);
  const rows = new Map(
    (await stores.deviceKeys.selectDeviceKeysOfUsers([userId])).map((r) => [r.deviceId, r]),
  );
  for (const deviceId of federation.deviceIds) {
    const row = rows.get(deviceId);
    await queueUserEdu(federation.ctx, stores, userId, 'm.device_list_update', {
      user_id: userId,
      device_id: deviceId,
      stream_id: position,
      prev_id: previous > 0 ? [previous] : [],
      ...(row
        ? {
            keys: JSON.parse(row.keysJson) as JsonObject,
            ...(row.displayName !== null ? { device_display_name: row.displayName } : {}),
          }
        : { deleted: true }),
    });
  }
}

/**
 * Forgets what deleted devices leave behind (keys, queued to-device messages), in the
 * deleting transaction; a device that had published keys is a device-list change.
 */
export async function forgetDevices(
  stores: Stores,
  userId: string,
  deviceIds: readonly string[],
  /** Given: the servers sharing a room with the user are told the devices are gone. */
  ctx?: Pick<ServiceContext, 'settings' | 'now'>,
): Promise<void> {
  if (deviceIds.length === 0) return;
  await stores.toDevice.deleteMessagesOfDevices(userId, deviceIds);
  if ((await stores.deviceKeys.deleteKeysOfDevices(userId, deviceIds)) > 0) {
    await recordDeviceListChange(stores, userId, ctx ? { ctx, deviceIds } : undefined);
  }
}

/** Splits `<algorithm>:<key_id>` and encodes the key; 400 M_INVALID_PARAM when malformed. */
function parseKeys(keys: Record<string, unknown> | undefined): OneTimeKeyRow[] {
  return Object.entries(keys ?? {}).map(([name, value]) => {
    const colon = name.indexOf(':');
    if (colon < 1 || colon === name.length - 1) {
      throw invalidParam(`Key name "${name}" is not of the form <algorithm>:<key_id>`);
    }
    return {
      algorithm: name.slice(0, colon),
      keyId: name.slice(colon + 1),
      keyJson: canonicalJson(value),
    };
  });
}

function streamPosition(token: string, name: string): number {
  const position = parseStreamToken(token);
  if (position === null) throw invalidParam(`Invalid ${name} token`);
  return position;
}

export function createDeviceKeyService(ctx: ServiceContext) {
  const stores = () => ctx.storage.stores;
  const bridges = appServiceDeviceQueue(ctx.settings.appServices ?? [], ctx.settings.serverName);

  function isLocal(userId: string): boolean {
    const user = parseUserId(userId);
    if (!user) throw invalidParam(`Invalid user ID: ${userId}`);
    return user.serverName === ctx.settings.serverName;
  }

  async function oneTimeKeyCounts(
    userId: string,
    deviceId: string,
  ): Promise<Record<string, number>> {
    return {
      [ALWAYS_COUNTED]: 0,
      ...(await stores().deviceKeys.countOneTimeKeys(userId, deviceId)),
    };
  }

  /** Takes one key of the algorithm: a one-time key while any is left, else the fallback key. */
  async function claimOne(
    tx: Stores,
    userId: string,
    deviceId: string,
    algorithm: string,
  ): Promise<OneTimeKeyRow | undefined> {
    for (;;) {
      const key = await tx.deviceKeys.selectFirstOneTimeKey(userId, deviceId, algorithm);
      if (!key) break;
      // Lost to a concurrent claim when the delete finds it gone: take the next one.
      if (await tx.deviceKeys.deleteOneTimeKey(userId, deviceId, algorithm, key.keyId)) return key;
    }
    const fallback = await tx.deviceKeys.selectFallbackKey(userId, deviceId, algorithm);
    if (!fallback) return undefined;
    if (!fallback.used) await tx.deviceKeys.updateFallbackKeyUsed(userId, deviceId, algorithm);
    return fallback;
  }

  /** Users whose devices changed in (after, upTo] and still share a room, and those who no longer do. */
  async function changesBetween(userId: string, after: number, upTo: number): Promise<DeviceLists> {
    if (upTo <= after) return { changed: [], left: [] };
    const store = stores().deviceKeys;
    const [keyChanges, memberships] = await Promise.all([
      store.selectDeviceListChanges(after, upTo),
      store.selectMembershipChangesAround(userId, after, upTo),
    ]);
    // Users who came to share a room with the user in the span, and who may have stopped.
    const arrived = new Set<string>();
    const departed = new Set<string>();
    const ownChanges = new Map<string, string>();
    for (const change of memberships) {
      if (change.userId === userId) ownChanges.set(change.roomId, change.membership);
      else if (change.membership === 'join') arrived.add(change.userId);
      else if (change.membership === 'leave' || change.membership === 'ban')
        departed.add(change.userId);
    }
    for (const [roomId, membership] of ownChanges) {
      const target =
        membership === 'join'
          ? arrived
          : membership === 'leave' || membership === 'ban'
            ? departed
            : null;
      if (!target) continue;
      for (const member of await stores().rooms.selectMembersOfRoom(roomId, 'join'))
        target.add(member);
    }
    const candidates = new Set([...keyChanges, ...arrived, ...departed]);
    candidates.delete(userId);
    const sharing = new Set(await store.selectUsersSharingRoom(userId, [...candidates]));
    sharing.add(userId);
    const changed = new Set([...keyChanges, ...arrived].filter((u) => sharing.has(u)));
    if (!keyChanges.includes(userId)) changed.delete(userId);
    const left = [...departed].filter((u) => !sharing.has(u));
    return { changed: [...changed].sort(), left: left.sort() };
  }

  return {
    /** POST /keys/upload: publishes the requester's device keys; answers the one-time key counts. */
    async upload(requester: Requester, upload: KeysUpload): Promise<Record<string, number>> {
      const { userId, deviceId } = requester;
      let deviceKeysJson: string | undefined;
      if (upload.deviceKeys) {
        if (upload.deviceKeys.user_id !== userId || upload.deviceKeys.device_id !== deviceId) {
          throw invalidParam('device_keys must be those of the requesting user and device');
        }
        // `unsigned` is added by servers (/keys/query), never taken from the device.
        deviceKeysJson = canonicalJson({ ...upload.deviceKeys, unsigned: undefined });
      }
      const oneTimeKeys = parseKeys(upload.oneTimeKeys);
      const fallbackKeys = parseKeys(upload.fallbackKeys);
      let keysChanged = false;
      await ctx.storage.tx('uploadKeys', async (tx) => {
        if (oneTimeKeys.length > 0) {
          const existing = new Map(
            (await tx.deviceKeys.selectOneTimeKeys(userId, deviceId)).map((k) => [
              `${k.algorithm}:${k.keyId}`,
              k.keyJson,
            ]),
          );
          const fresh = oneTimeKeys.filter((key) => {
            const stored = existing.get(`${key.algorithm}:${key.keyId}`);
            if (stored !== undefined && stored !== key.keyJson) {
              throw invalidParam(
                `One-time key ${key.algorithm}:${key.keyId} already exists with other content`,
              );
            }
            return stored === undefined;
          });
          await tx.deviceKeys.insertOneTimeKeys(userId, deviceId, fresh);
          keysChanged ||= fresh.length > 0;
        }
        for (const key of fallbackKeys) {
          const stored = await tx.deviceKeys.selectFallbackKey(userId, deviceId, key.algorithm);
          // The same key uploaded again keeps its `used` flag.
          if (stored?.keyId === key.keyId && stored.keyJson === key.keyJson) continue;
          await tx.deviceKeys.upsertFallbackKey(userId, deviceId, key);
          keysChanged = true;
        }
        // The counts /sync carries changed: the user's kept empty answers are no longer true.
        if (keysChanged) {
          await tx.stream.notify({ users: [userId] });
          if (bridges.wantsKeyCounts(userId)) await bridges.keyCounts(tx, [{ userId, deviceId }]);
        }
        if (deviceKeysJson !== undefined) {
          const stored = await tx.deviceKeys.selectDeviceKeys(userId, deviceId);
          if (stored !== deviceKeysJson) {
            await tx.deviceKeys.upsertDeviceKeys(userId, deviceId, deviceKeysJson);
            await recordDeviceListChange(tx, userId, { ctx, deviceIds: [deviceId] });
          }
        }
      });
      return oneTimeKeyCounts(userId, deviceId);
    },

    /**
     * POST /keys/query: the identity keys of the devices asked for (all of a user's devices for
     * an empty list), with their display names; every local user asked about is listed.
     */
    async query(
      _requester: Requester,
      request: Record<string, readonly string[]>,
    ): Promise<{ device_keys: Record<string, Record<string, JsonObject>>; failures: JsonObject }> {
      const wanted = Object.entries(request).filter(([userId]) => isLocal(userId));
      const deviceKeys: Record<string, Record<string, JsonObject>> = {};
      for (const [userId] of wanted) deviceKeys[userId] = {};
      const only = new Map(wanted.map(([userId, devices]) => [userId, new Set(devices)]));
      const rows = await stores().deviceKeys.selectDeviceKeysOfUsers([...only.keys()]);
      for (const row of rows) {
        const devices = only.get(row.userId);
        if (!devices || (devices.size > 0 && !devices.has(row.deviceId))) continue;
        const keys = JSON.parse(row.keysJson) as JsonObject;
        keys.unsigned = row.displayName !== null ? { device_display_name: row.displayName } : {};
        (deviceKeys[row.userId] ??= {})[row.deviceId] = keys;
      }
      return { device_keys: deviceKeys, failures: {} };
    },

    /**
     * POST /keys/claim: one key per device asked for, of the algorithm asked for: a one-time
     * key (never handed out twice), else the device's fallback key (then marked used).
     */
    async claim(
      _requester: Requester,
      request: Record<string, Record<string, string>>,
    ): Promise<{
      one_time_keys: Record<string, Record<string, Record<string, JsonValue>>>;
      failures: JsonObject;
    }> {
      const claimed: Record<string, Record<string, Record<string, JsonValue>>> = {};
      const wanted = Object.entries(request).filter(([userId]) => isLocal(userId));
      await ctx.storage.tx('claimKeys', async (tx) => {
        for (const [userId, devices] of wanted) {
          for (const [deviceId, algorithm] of Object.entries(devices)) {
            const key = await claimOne(tx, userId, deviceId, algorithm);
            if (!key) continue;
            (claimed[userId] ??= {})[deviceId] = {
              [`${key.algorithm}:${key.keyId}`]: JSON.parse(key.keyJson) as JsonValue,
            };
          }
        }
        // Their one-time key counts (or unused fallback keys) in /sync changed.
        const owners = Object.keys(claimed);
        if (owners.length > 0) await tx.stream.notify({ users: owners });
        const bridged = Object.entries(claimed)
          .filter(([userId]) => bridges.wantsKeyCounts(userId))
          .flatMap(([userId, devices]) =>
            Object.keys(devices).map((deviceId) => ({ userId, deviceId })),
          );
        if (bridged.length > 0) await bridges.keyCounts(tx, bridged);
      });
      return { one_time_keys: claimed, failures: {} };
    },

    /** GET /keys/changes: device-list changes between two sync tokens. */
    async changes(requester: Requester, from: string, to: string): Promise<DeviceLists> {
      const after = streamPosition(from, 'from');
      const upTo = Math.min(
        streamPosition(to, 'to'),
        await stores().stream.selectCurrentPosition(),
      );
      return changesBetween(requester.userId, after, upTo);
    },

    /**
     * Users sharing a room with userId whose devices changed in (after, upTo] (changed), and
     * users who stopped sharing any room in that span (left). after = 0: both empty.
     */
    async deviceListsSince(userId: string, after: number, upTo: number): Promise<DeviceLists> {
      if (after === 0) return { changed: [], left: [] };
      return changesBetween(userId, after, upTo);
    },

    oneTimeKeyCounts,

    unusedFallbackKeyTypes: (userId: string, deviceId: string): Promise<string[]> =>
      stores().deviceKeys.selectUnusedFallbackAlgorithms(userId, deviceId),
  };
}

export type DeviceKeyService = ReturnType<typeof createDeviceKeyService>;
