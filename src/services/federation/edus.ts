/**
 * EDUs received from another server (the `edus` of `PUT /send/{txnId}`), applied to local
 * state so that local clients see them in /sync: typing and read receipts of remote users in
 * rooms they are joined to, their presence, changes to their device lists and cross-signing
 * keys, and to-device messages for local devices. Each EDU is checked on its own: one that is
 * malformed, of an unknown type, or about a user of a server other than the sender is
 * skipped without failing the others. https://spec.matrix.org/v1.19/server-server-api/#edus
 */
import { parseRoomId, parseUserId } from '../../core/identifiers.js';
import type { JsonObject } from '../../core/pdu.js';
import type { PresenceService } from '../presence.js';
import type { ReceiptService } from '../receipts.js';
import type { ToDeviceMessages, ToDeviceService } from '../to-device.js';
import type { TypingService } from '../typing.js';
import type { FederationDeviceService } from './devices.js';

export interface EduReceiverDeps {
  typing: TypingService;
  receipts: ReceiptService;
  presence: PresenceService;
  toDevice: ToDeviceService;
  devices: FederationDeviceService;
}

/** What happened to each EDU of a transaction (for logs and tests). */
export type EduOutcome = 'applied' | 'ignored' | 'invalid';

export interface EduLog {
  warn(fields: Record<string, unknown>, message: string): void;
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const isSafeInteger = (value: unknown): value is number =>
  typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;

export function createEduReceiver(deps: EduReceiverDeps, log?: EduLog) {
  /** A user ID of the origin server (another server may not speak for its users). */
  const userOf = (origin: string, value: unknown): string | null => {
    if (typeof value !== 'string') return null;
    const user = parseUserId(value);
    return user && user.serverName === origin ? user.userId : null;
  };

  async function typing(origin: string, content: Record<string, unknown>): Promise<EduOutcome> {
    const userId = userOf(origin, content.user_id);
    const roomId = content.room_id;
    if (!userId || typeof roomId !== 'string' || !parseRoomId(roomId)) return 'invalid';
    if (typeof content.typing !== 'boolean') return 'invalid';
    await deps.typing.setRemote(roomId, userId, content.typing);
    return 'applied';
  }

  async function receipt(origin: string, content: Record<string, unknown>): Promise<EduOutcome> {
    let outcome: EduOutcome = 'ignored';
    for (const [roomId, byType] of Object.entries(content)) {
      if (!parseRoomId(roomId) || !isObject(byType)) return 'invalid';
      const reads = byType['m.read'];
      if (!isObject(reads)) continue; // other receipt types are not kept from other servers
      for (const [rawUserId, entry] of Object.entries(reads)) {
        const userId = userOf(origin, rawUserId);
        if (!userId || !isObject(entry) || !Array.isArray(entry.event_ids)) continue;
        const data = isObject(entry.data) ? entry.data : {};
        const threadId = typeof data.thread_id === 'string' ? data.thread_id : '';
        for (const eventId of entry.event_ids) {
          if (typeof eventId !== 'string') continue;
          if (await deps.receipts.setRemote(roomId, userId, eventId, threadId)) outcome = 'applied';
        }
      }
    }
    return outcome;
  }

  async function presence(origin: string, content: Record<string, unknown>): Promise<EduOutcome> {
    if (!Array.isArray(content.push)) return 'invalid';
    let outcome: EduOutcome = 'ignored';
    for (const update of content.push) {
      if (!isObject(update)) continue;
      const userId = userOf(origin, update.user_id);
      if (!userId || typeof update.presence !== 'string') continue;
      const lastActiveAgo = isSafeInteger(update.last_active_ago) ? update.last_active_ago : 0;
      const statusMsg = typeof update.status_msg === 'string' ? update.status_msg : null;
      const currentlyActive =
        typeof update.currently_active === 'boolean'
          ? update.currently_active
          : update.presence === 'online';
      await deps.presence.setRemote(
        userId,
        update.presence,
        statusMsg,
        lastActiveAgo,
        currentlyActive,
      );
      outcome = 'applied';
    }
    return outcome;
  }

  async function deviceListUpdate(
    origin: string,
    content: Record<string, unknown>,
  ): Promise<EduOutcome> {
    const userId = userOf(origin, content.user_id);
    if (!userId || typeof content.device_id !== 'string' || !isSafeInteger(content.stream_id))
      return 'invalid';
    const prevIds = Array.isArray(content.prev_id) ? content.prev_id.filter(isSafeInteger) : [];
    const keys = isObject(content.keys) ? (content.keys as JsonObject) : null;
    if (keys && (keys.user_id !== userId || keys.device_id !== content.device_id)) return 'invalid';
    await deps.devices.applyDeviceListUpdate({
      userId,
      deviceId: content.device_id,
      streamId: content.stream_id,
      prevIds,
      deleted: content.deleted === true,
      keys,
      displayName:
        typeof content.device_display_name === 'string' ? content.device_display_name : null,
    });
    return 'applied';
  }

  async function signingKeyUpdate(
    origin: string,
    content: Record<string, unknown>,
  ): Promise<EduOutcome> {
    const userId = userOf(origin, content.user_id);
    if (!userId) return 'invalid';
    const key = (value: unknown) =>
      isObject(value) && value.user_id === userId ? (value as JsonObject) : null;
    await deps.devices.applySigningKeyUpdate(
      userId,
      key(content.master_key),
      key(content.self_signing_key),
    );
    return 'applied';
  }

  async function directToDevice(
    origin: string,
    content: Record<string, unknown>,
  ): Promise<EduOutcome> {
    const sender = userOf(origin, content.sender);
    const { type, message_id: messageId, messages } = content;
    if (!sender || typeof type !== 'string' || typeof messageId !== 'string' || !isObject(messages))
      return 'invalid';
    const valid: ToDeviceMessages = {};
    for (const [userId, byDevice] of Object.entries(messages)) {
      if (!isObject(byDevice)) continue;
      const devices: Record<string, JsonObject> = {};
      for (const [deviceId, message] of Object.entries(byDevice))
        if (isObject(message)) devices[deviceId] = message as JsonObject;
      valid[userId] = devices;
    }
    await deps.toDevice.receiveRemote(sender, type, messageId, valid);
    return 'applied';
  }

  const handlers: Record<
    string,
    (origin: string, content: Record<string, unknown>) => Promise<EduOutcome>
  > = {
    'm.typing': typing,
    'm.receipt': receipt,
    'm.presence': presence,
    'm.device_list_update': deviceListUpdate,
    'm.signing_key_update': signingKeyUpdate,
    'm.direct_to_device': directToDevice,
  };

  return {
    /**
     * Applies the EDUs of a transaction from `origin` (already authenticated), in order;
     * unknown types are ignored, malformed ones skipped. Never throws for bad input.
     */
    async receiveEdus(origin: string, edus: readonly unknown[]): Promise<EduOutcome[]> {
      const outcomes: EduOutcome[] = [];
      for (const edu of edus) {
        if (!isObject(edu) || typeof edu.edu_type !== 'string' || !isObject(edu.content)) {
          outcomes.push('invalid');
          continue;
        }
        const handler = Object.hasOwn(handlers, edu.edu_type) ? handlers[edu.edu_type] : undefined;
        if (!handler) {
          outcomes.push('ignored');
          continue;
        }
        try {
          outcomes.push(await handler(origin, edu.content));
        } catch (err) {
          // One EDU failing (a database error) does not lose the others of the transaction.
          log?.warn(
            { origin, eduType: edu.edu_type, err: (err as Error).message },
            'inbound EDU failed',
          );
          outcomes.push('invalid');
        }
      }
      return outcomes;
    },
  };
}

export type EduReceiver = ReturnType<typeof createEduReceiver>;
