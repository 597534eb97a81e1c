/**
 * Send-to-device messaging: messages for particular devices (or all of a user's devices),
 * delivered by /sync and deleted once a later sync shows the device received them.
 */
import { parseUserId } from '../core/identifiers.js';
import type { JsonObject } from '../core/pdu.js';
import { randomBytes } from 'node:crypto';
import type { Stores, ToDeviceMessage } from '../storage/index.js';
import type { Requester, ServiceContext } from './context.js';
import { appServiceDeviceQueue } from './appservice/devices.js';
import { queueEdu } from './federation/edu-queue.js';

/** `messages` of PUT /sendToDevice: user ID → device ID (or `*`) → content. */
export type ToDeviceMessages = Record<string, Record<string, JsonObject>>;

export interface ToDeviceEvent {
  type: string;
  sender: string;
  content: JsonObject;
}

export function createToDeviceService(ctx: ServiceContext) {
  const bridges = appServiceDeviceQueue(ctx.settings.appServices ?? [], ctx.settings.serverName);
  /**
   * Queues the messages for local recipients, in the caller's transaction. `*` stands for all
   * the recipient's devices (a message for a device named explicitly wins over it); unknown
   * local users and devices, and users of other servers, are skipped.
   */
  async function deliver(
    stores: Stores,
    sender: string,
    eventType: string,
    messages: ToDeviceMessages,
  ): Promise<void> {
    const queued: ToDeviceMessage[] = [];
    const recipients: string[] = [];
    for (const [rawUserId, byDevice] of Object.entries(messages)) {
      const user = parseUserId(rawUserId);
      if (!user || user.serverName !== ctx.settings.serverName) continue;
      const devices = new Set(
        (await stores.devices.selectDevices(user.userId)).map((d) => d.deviceId),
      );
      const contents = new Map<string, JsonObject>();
      const everyone = byDevice['*'];
      if (everyone !== undefined) for (const deviceId of devices) contents.set(deviceId, everyone);
      for (const [deviceId, content] of Object.entries(byDevice)) {
        if (deviceId !== '*' && devices.has(deviceId)) contents.set(deviceId, content);
      }
      if (contents.size === 0) continue;
      recipients.push(user.userId);
      for (const [deviceId, content] of contents)
        queued.push({ userId: user.userId, deviceId, sender, type: eventType, content });
    }
    if (queued.length === 0) return;
    const position = await stores.stream.nextPosition();
    // Services asking for their users' to-device messages (MSC2409) get them; those of users
    // of an exclusive namespace are theirs alone, the rest are kept for the devices' /sync.
    const taken = await bridges.toDevice(stores, queued, position);
    const kept = taken.size === 0 ? queued : queued.filter((m) => !taken.has(m));
    if (kept.length > 0) await stores.toDevice.insertMessages(kept, position);
    await stores.stream.notify({ users: recipients });
  }

  return {
    /**
     * Queues the messages, once per sender device and transaction ID: for local users' devices
     * (see `deliver`), and for users of other servers through their servers.
     */
    async send(
      requester: Requester,
      eventType: string,
      txnId: string,
      messages: ToDeviceMessages,
    ): Promise<void> {
      await ctx.storage.tx('sendToDevice', async (stores) => {
        const fresh = await stores.toDevice.insertTxn(
          requester.userId,
          requester.deviceId,
          txnId,
          ctx.now(),
        );
        if (!fresh) return;
        const remote = new Map<string, ToDeviceMessages>();
        for (const [rawUserId, byDevice] of Object.entries(messages)) {
          const user = parseUserId(rawUserId);
          if (!user || user.serverName === ctx.settings.serverName) continue;
          const forServer = remote.get(user.serverName) ?? {};
          forServer[user.userId] = byDevice;
          remote.set(user.serverName, forServer);
        }
        // Users of other servers get theirs through their server (m.direct_to_device EDU).
        for (const [server, forServer] of remote)
          await queueEdu(ctx, stores, [server], 'm.direct_to_device', {
            sender: requester.userId,
            type: eventType,
            message_id: randomBytes(12).toString('hex'),
            messages: forServer,
          });
        await deliver(stores, requester.userId, eventType, messages);
      });
    },

    /**
     * Messages from another server's user (an m.direct_to_device EDU), delivered once per
     * `message_id` to the local users and devices named; the rest are skipped.
     */
    async receiveRemote(
      sender: string,
      eventType: string,
      messageId: string,
      messages: ToDeviceMessages,
    ): Promise<void> {
      await ctx.storage.tx('receiveToDevice', async (stores) => {
        if (!(await stores.toDevice.insertTxn(sender, '', `federation:${messageId}`, ctx.now())))
          return;
        await deliver(stores, sender, eventType, messages);
      });
    },

    /**
     * Deletes the device's messages at or before `after` (the client had them) and returns
     * those in (after, upTo], oldest first. The two touch different messages, so they run at
     * once, outside a transaction: one round trip of a /sync's last step rather than four
     * (begin, delete, select, commit) on PostgreSQL.
     */
    async forSync(
      userId: string,
      deviceId: string,
      after: number,
      upTo: number,
    ): Promise<ToDeviceEvent[]> {
      const { toDevice } = ctx.storage.stores;
      const [, messages] = await Promise.all([
        after > 0 ? toDevice.deleteMessagesUpTo(userId, deviceId, after) : undefined,
        toDevice.selectMessages(userId, deviceId, after, upTo),
      ]);
      return messages.map((m) => ({ type: m.type, sender: m.sender, content: m.content }));
    },
  };
}

export type ToDeviceService = ReturnType<typeof createToDeviceService>;
