/**
 * End-to-end encryption between servers: serving local users' device lists and keys to other
 * servers (`/user/devices`, `/user/keys/query`, `/user/keys/claim`), asking other servers for
 * their users' (the client's `/keys/query` and `/keys/claim` fan out, each server within the
 * timeout, unreachable ones listed in `failures`), and the cache of remote device lists kept
 * current by `m.device_list_update` and `m.signing_key_update` EDUs: an update whose `prev_id`
 * follows on from the cached list is applied; a gap drops the list and fetches it again.
 * https://spec.matrix.org/v1.19/server-server-api/#end-to-end-encryption
 */
import { invalidParam } from '../../core/errors.js';
import { parseUserId } from '../../core/identifiers.js';
import type { JsonObject, JsonValue } from '../../core/pdu.js';
import type { Stores } from '../../storage/index.js';
import type { Requester, ServiceContext } from '../context.js';
import type { CrossSigningService } from '../cross-signing.js';
import type { DeviceKeyService } from '../device-keys.js';
import type { EventDeriver } from '../event-writer.js';
import type { FederationClient } from './client.js';

/** The longest a client's `timeout` may keep it waiting for other servers. */
const MAX_TIMEOUT_MS = 30_000;
export const DEFAULT_TIMEOUT_MS = 10_000;

/** A remote user's device list as cached. */
interface CachedList {
  devices: Record<string, { keys?: JsonObject; device_display_name?: string }>;
  master_key?: JsonObject;
  self_signing_key?: JsonObject;
}

export interface KeysQueryAnswer {
  device_keys: Record<string, Record<string, JsonObject>>;
  master_keys: Record<string, JsonObject>;
  self_signing_keys: Record<string, JsonObject>;
  failures: Record<string, JsonObject>;
}

export interface KeysClaimAnswer {
  one_time_keys: Record<string, Record<string, Record<string, JsonValue>>>;
  failures: Record<string, JsonObject>;
}

/** Who asks on behalf of another server: nobody local (no user-signing keys, no own signatures). */
const FEDERATION_REQUESTER: Requester = { userId: '', deviceId: '', isAdmin: false };

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export function createFederationDeviceService(
  ctx: ServiceContext,
  client: FederationClient,
  deps: { deviceKeys: DeviceKeyService; crossSigning: CrossSigningService },
) {
  const { serverName } = ctx.settings;
  const stores = () => ctx.storage.stores;

  function localUser(userId: string): string {
    const user = parseUserId(userId);
    if (!user) throw invalidParam(`${userId} is not a user ID`);
    if (user.serverName !== serverName)
      throw invalidParam(`${userId} is not a user of ${serverName}`);
    return user.userId;
  }

  /** Groups users by their server, leaving out this server's. */
  function byServer<T>(request: Record<string, T>): Map<string, Record<string, T>> {
    const out = new Map<string, Record<string, T>>();
    for (const [userId, value] of Object.entries(request)) {
      const user = parseUserId(userId);
      if (!user || user.serverName === serverName) continue;
      const forServer = out.get(user.serverName) ?? {};
      forServer[user.userId] = value;
      out.set(user.serverName, forServer);
    }
    return out;
  }

  const clampTimeout = (ms: number | undefined) =>
    Math.min(Math.max(ms ?? DEFAULT_TIMEOUT_MS, 0), MAX_TIMEOUT_MS);

  const failure = (err: unknown): JsonObject => ({
    status: 503,
    message: err instanceof Error ? err.message : String(err),
  });

  /**
   * Whether we receive the user's device-list updates: they are joined to a room a local
   * user is joined to (their server sends updates to the servers of their rooms' members).
   */
  async function tracked(tx: Stores, userId: string): Promise<boolean> {
    return tx.remoteDevices.selectSharesRoomWithLocal(userId, serverName);
  }

  /**
   * Keeps the cache to the users we receive updates for: a member event that ends a share
   * (a remote user leaving, kicked or banned; a local user leaving) drops the cached lists of
   * the remote users it leaves sharing no room with a local user. Their updates stop coming,
   * so a list kept would go stale; once they share a room again it is fetched afresh.
   */
  const deriver: EventDeriver = async (tx, event) => {
    const { pdu } = event;
    const membership = pdu.content.membership;
    if (pdu.type !== 'm.room.member' || (membership !== 'leave' && membership !== 'ban')) return;
    const target = parseUserId(pdu.state_key ?? '');
    if (!target) return;
    const candidates =
      target.serverName !== serverName
        ? [target.userId]
        : (await tx.rooms.selectMembersOfRoom(event.roomId, 'join')).filter(
            (userId) => parseUserId(userId)?.serverName !== serverName,
          );
    if (candidates.length > 0)
      await tx.remoteDevices.deleteUntrackedRemoteDeviceLists(candidates, serverName);
  };

  function parseCached(json: string): CachedList {
    const value = JSON.parse(json) as CachedList;
    return { ...value, devices: value.devices ?? {} };
  }

  /** Fetches a remote user's device list (`/user/devices`) and caches it. */
  async function resync(userId: string): Promise<CachedList | null> {
    const user = parseUserId(userId);
    if (!user || user.serverName === serverName) return null;
    const response = await client.request(
      user.serverName,
      'GET',
      `/_matrix/federation/v1/user/devices/${encodeURIComponent(userId)}`,
    );
    const body = response.body;
    if (response.status !== 200 || !isObject(body) || body.user_id !== userId) return null;
    const list: CachedList = { devices: {} };
    for (const device of Array.isArray(body.devices) ? body.devices : []) {
      if (!isObject(device) || typeof device.device_id !== 'string') continue;
      const keys = isObject(device.keys) ? (device.keys as JsonObject) : undefined;
      if (keys && (keys.user_id !== userId || keys.device_id !== device.device_id)) continue;
      list.devices[device.device_id] = {
        ...(keys ? { keys } : {}),
        ...(typeof device.device_display_name === 'string'
          ? { device_display_name: device.device_display_name }
          : {}),
      };
    }
    if (isObject(body.master_key) && body.master_key.user_id === userId)
      list.master_key = body.master_key as JsonObject;
    if (isObject(body.self_signing_key) && body.self_signing_key.user_id === userId)
      list.self_signing_key = body.self_signing_key as JsonObject;
    const streamId = typeof body.stream_id === 'number' ? body.stream_id : 0;
    await stores().remoteDevices.upsertRemoteDeviceList({
      userId,
      streamId,
      listJson: JSON.stringify(list),
      fetchedTs: ctx.now(),
    });
    return list;
  }

  /** The device list of a remote user whose updates we receive, cached or fetched now. */
  async function cachedList(userId: string): Promise<CachedList | null> {
    if (!(await tracked(stores(), userId))) return null;
    const [row] = await stores().remoteDevices.selectRemoteDeviceLists([userId]);
    if (row) return parseCached(row.listJson);
    return resync(userId);
  }

  return {
    /** The event deriver that drops the lists of users no longer sharing a room with us. */
    deriver,

    /** `GET /user/devices/{userId}`: a local user's devices with their keys. */
    async localDevices(userId: string): Promise<JsonObject> {
      const id = localUser(userId);
      const [devices, keyRows, position] = await Promise.all([
        stores().devices.selectDevices(id),
        stores().deviceKeys.selectDeviceKeysOfUsers([id]),
        stores().deviceKeys.selectLastDeviceListChange(id, Number.MAX_SAFE_INTEGER),
      ]);
      const keys = new Map(keyRows.map((r) => [r.deviceId, JSON.parse(r.keysJson) as JsonObject]));
      const cross = await deps.crossSigning.addToQuery(FEDERATION_REQUESTER, {
        device_keys: { [id]: {} },
      });
      return {
        user_id: id,
        stream_id: position,
        // Display names stay private to the user's own server (as Synapse does by default).
        devices: devices.map((d) => ({
          device_id: d.deviceId,
          ...(keys.has(d.deviceId) ? { keys: keys.get(d.deviceId) as JsonObject } : {}),
        })),
        ...(cross.master_keys[id] ? { master_key: cross.master_keys[id] } : {}),
        ...(cross.self_signing_keys[id] ? { self_signing_key: cross.self_signing_keys[id] } : {}),
      };
    },

    /** `POST /user/keys/query`: local users' device and cross-signing keys. */
    async localKeysQuery(request: Record<string, readonly string[]>): Promise<JsonObject> {
      for (const userId of Object.keys(request)) localUser(userId);
      const answer = await deps.deviceKeys.query(FEDERATION_REQUESTER, request);
      for (const devices of Object.values(answer.device_keys))
        for (const device of Object.values(devices)) device.unsigned = {};
      const full = await deps.crossSigning.addToQuery(FEDERATION_REQUESTER, answer);
      return {
        device_keys: full.device_keys,
        master_keys: full.master_keys,
        self_signing_keys: full.self_signing_keys,
      };
    },

    /** `POST /user/keys/claim`: one key per local device asked for. */
    async localKeysClaim(request: Record<string, Record<string, string>>): Promise<JsonObject> {
      for (const userId of Object.keys(request)) localUser(userId);
      const answer = await deps.deviceKeys.claim(FEDERATION_REQUESTER, request);
      return { one_time_keys: answer.one_time_keys };
    },

    /**
     * The keys of other servers' users for the client's `/keys/query`: from the cached device
     * list of users we share a room with, else asked of their server; a server that does not
     * answer within the timeout is listed in `failures`.
     */
    async queryRemote(
      request: Record<string, readonly string[]>,
      timeoutMs?: number,
    ): Promise<KeysQueryAnswer> {
      const answer: KeysQueryAnswer = {
        device_keys: {},
        master_keys: {},
        self_signing_keys: {},
        failures: {},
      };
      const ask = new Map<string, Record<string, readonly string[]>>();
      for (const [server, users] of byServer(request)) {
        for (const [userId, wanted] of Object.entries(users)) {
          const list = await cachedList(userId).catch(() => null);
          if (!list) {
            const forServer = ask.get(server) ?? {};
            forServer[userId] = wanted;
            ask.set(server, forServer);
            continue;
          }
          const only = new Set(wanted);
          const devices: Record<string, JsonObject> = {};
          for (const [deviceId, device] of Object.entries(list.devices)) {
            if (!device.keys || (only.size > 0 && !only.has(deviceId))) continue;
            devices[deviceId] = {
              ...device.keys,
              unsigned:
                device.device_display_name !== undefined
                  ? { device_display_name: device.device_display_name }
                  : {},
            };
          }
          answer.device_keys[userId] = devices;
          if (list.master_key) answer.master_keys[userId] = list.master_key;
          if (list.self_signing_key) answer.self_signing_keys[userId] = list.self_signing_key;
        }
      }
      const timeout = clampTimeout(timeoutMs);
      await Promise.all(
        [...ask].map(async ([server, users]) => {
          try {
            const response = await withTimeout(
              client.request(server, 'POST', '/_matrix/federation/v1/user/keys/query', {
                body: { device_keys: users },
              }),
              timeout,
            );
            const body = response.body;
            if (response.status !== 200 || !isObject(body))
              throw new Error(`HTTP ${response.status}`);
            const deviceKeys = isObject(body.device_keys) ? body.device_keys : {};
            for (const userId of Object.keys(users)) {
              const devices = deviceKeys[userId];
              const out: Record<string, JsonObject> = {};
              if (isObject(devices))
                for (const [deviceId, keys] of Object.entries(devices))
                  if (isObject(keys) && keys.user_id === userId && keys.device_id === deviceId)
                    out[deviceId] = keys as JsonObject;
              answer.device_keys[userId] = out;
              for (const [field, target] of [
                ['master_keys', answer.master_keys],
                ['self_signing_keys', answer.self_signing_keys],
              ] as const) {
                const all = body[field];
                const key = isObject(all) ? all[userId] : undefined;
                if (isObject(key) && key.user_id === userId) target[userId] = key as JsonObject;
              }
            }
          } catch (err) {
            answer.failures[server] = failure(err);
          }
        }),
      );
      return answer;
    },

    /** One-time keys of other servers' devices for the client's `/keys/claim`. */
    async claimRemote(
      request: Record<string, Record<string, string>>,
      timeoutMs?: number,
    ): Promise<KeysClaimAnswer> {
      const answer: KeysClaimAnswer = { one_time_keys: {}, failures: {} };
      const timeout = clampTimeout(timeoutMs);
      await Promise.all(
        [...byServer(request)].map(async ([server, users]) => {
          try {
            const response = await withTimeout(
              client.request(server, 'POST', '/_matrix/federation/v1/user/keys/claim', {
                body: { one_time_keys: users },
              }),
              timeout,
            );
            const body = response.body;
            if (response.status !== 200 || !isObject(body))
              throw new Error(`HTTP ${response.status}`);
            const claimed = isObject(body.one_time_keys) ? body.one_time_keys : {};
            for (const userId of Object.keys(users)) {
              const devices = claimed[userId];
              if (!isObject(devices)) continue;
              const out: Record<string, Record<string, JsonValue>> = {};
              for (const [deviceId, keys] of Object.entries(devices))
                if (deviceId in (users[userId] ?? {}) && isObject(keys))
                  out[deviceId] = keys as Record<string, JsonValue>;
              answer.one_time_keys[userId] = out;
            }
          } catch (err) {
            answer.failures[server] = failure(err);
          }
        }),
      );
      return answer;
    },

    /**
     * An `m.device_list_update` from the user's server: applied to the cached list when its
     * `prev_id` follows on from it; otherwise the list is dropped and fetched again (a gap).
     * Either way local clients sharing a room with the user see them in `device_lists.changed`.
     * Answers whether the list must be fetched again.
     */
    async applyDeviceListUpdate(update: {
      userId: string;
      deviceId: string;
      streamId: number;
      prevIds: readonly number[];
      deleted: boolean;
      keys: JsonObject | null;
      displayName: string | null;
    }): Promise<boolean> {
      const resyncNeeded = await ctx.storage.tx('remoteDeviceListUpdate', async (tx) => {
        const [row] = await tx.remoteDevices.selectRemoteDeviceLists([update.userId]);
        if (row && update.streamId <= row.streamId) return false; // seen already
        let gap = true;
        if (row && (update.prevIds.length === 0 || update.prevIds.includes(row.streamId))) {
          gap = false;
          const list = parseCached(row.listJson);
          if (update.deleted) delete list.devices[update.deviceId];
          else
            list.devices[update.deviceId] = {
              ...(update.keys ? { keys: update.keys } : {}),
              ...(update.displayName !== null ? { device_display_name: update.displayName } : {}),
            };
          await tx.remoteDevices.upsertRemoteDeviceList({
            userId: update.userId,
            streamId: update.streamId,
            listJson: JSON.stringify(list),
            fetchedTs: row.fetchedTs,
          });
        } else if (row) {
          await tx.remoteDevices.deleteRemoteDeviceList(update.userId);
        }
        await recordRemoteChange(tx, update.userId);
        return gap && (await tracked(tx, update.userId));
      });
      if (resyncNeeded) {
        // Fetched in the background: the EDU's transaction is answered without waiting.
        void resync(update.userId)
          .then((list) => (list ? announce(update.userId) : undefined))
          .catch(() => undefined);
      }
      return resyncNeeded;
    },

    /** An `m.signing_key_update`: the user's new master and/or self-signing key. */
    async applySigningKeyUpdate(
      userId: string,
      masterKey: JsonObject | null,
      selfSigningKey: JsonObject | null,
    ): Promise<void> {
      await ctx.storage.tx('remoteSigningKeyUpdate', async (tx) => {
        const [row] = await tx.remoteDevices.selectRemoteDeviceLists([userId]);
        if (row) {
          const list = parseCached(row.listJson);
          if (masterKey) list.master_key = masterKey;
          if (selfSigningKey) list.self_signing_key = selfSigningKey;
          await tx.remoteDevices.upsertRemoteDeviceList({ ...row, listJson: JSON.stringify(list) });
        }
        await recordRemoteChange(tx, userId);
      });
    },

    resync,
  };

  /** Records that a remote user's devices changed, so that clients sharing a room re-query. */
  async function recordRemoteChange(tx: Stores, userId: string): Promise<void> {
    const rooms = await tx.rooms.selectRoomsOfUser(userId, 'join');
    await tx.deviceKeys.insertDeviceListChange(userId, await tx.stream.nextPosition());
    await tx.stream.notify({ users: [userId], rooms });
  }

  async function announce(userId: string): Promise<void> {
    await ctx.storage.tx('remoteDeviceListFetched', (tx) => recordRemoteChange(tx, userId));
  }
}

export type FederationDeviceService = ReturnType<typeof createFederationDeviceService>;
