/**
 * Send-to-device messages waiting for their device, and the transaction IDs senders used
 * (PUT /sendToDevice is idempotent per sender device and transaction ID).
 */
import type { Kysely } from 'kysely';
import type { JsonObject } from '../core/pdu.js';
import type { Database } from './schema.js';

const INSERT_CHUNK = 200;

export interface ToDeviceMessage {
  /** The recipient. */
  userId: string;
  deviceId: string;
  sender: string;
  type: string;
  content: JsonObject;
}

export interface ToDeviceStore {
  /** Records the transaction; false when the sender's device already used this ID. */
  insertTxn(userId: string, deviceId: string, txnId: string, ts: number): Promise<boolean>;
  /** Queues the messages at `position` (one per recipient device). */
  insertMessages(messages: readonly ToDeviceMessage[], position: number): Promise<void>;
  /** Deletes the device's messages at or before `upTo`. */
  deleteMessagesUpTo(userId: string, deviceId: string, upTo: number): Promise<void>;
  /** The device's messages in (after, upTo], oldest first. */
  selectMessages(
    userId: string,
    deviceId: string,
    after: number,
    upTo: number,
  ): Promise<ToDeviceMessage[]>;
  /** Deletes everything queued for these devices of the user. */
  deleteMessagesOfDevices(userId: string, deviceIds: readonly string[]): Promise<void>;
}

export function toDeviceStore(db: Kysely<Database>): ToDeviceStore {
  return {
    async insertTxn(userId, deviceId, txnId, ts) {
      const result = await db
        .insertInto('to_device_txns')
        .values({ user_id: userId, device_id: deviceId, txn_id: txnId, created_ts: ts })
        .onConflict((oc) => oc.doNothing())
        .executeTakeFirst();
      return Number(result.numInsertedOrUpdatedRows ?? 0) > 0;
    },

    async insertMessages(messages, position) {
      for (let i = 0; i < messages.length; i += INSERT_CHUNK) {
        await db
          .insertInto('to_device_messages')
          .values(
            messages.slice(i, i + INSERT_CHUNK).map((m) => ({
              stream_ordering: position,
              user_id: m.userId,
              device_id: m.deviceId,
              sender: m.sender,
              type: m.type,
              content: JSON.stringify(m.content),
            })),
          )
          .execute();
      }
    },

    async deleteMessagesUpTo(userId, deviceId, upTo) {
      await db
        .deleteFrom('to_device_messages')
        .where('user_id', '=', userId)
        .where('device_id', '=', deviceId)
        .where('stream_ordering', '<=', upTo)
        .execute();
    },

    async selectMessages(userId, deviceId, after, upTo) {
      if (upTo <= after) return [];
      const rows = await db
        .selectFrom('to_device_messages')
        .select(['user_id', 'device_id', 'sender', 'type', 'content'])
        .where('user_id', '=', userId)
        .where('device_id', '=', deviceId)
        .where('stream_ordering', '>', after)
        .where('stream_ordering', '<=', upTo)
        .orderBy('stream_ordering')
        .execute();
      return rows.map((row) => ({
        userId: row.user_id,
        deviceId: row.device_id,
        sender: row.sender,
        type: row.type,
        content: JSON.parse(row.content) as JsonObject,
      }));
    },

    async deleteMessagesOfDevices(userId, deviceIds) {
      if (deviceIds.length === 0) return;
      await db
        .deleteFrom('to_device_messages')
        .where('user_id', '=', userId)
        .where('device_id', 'in', deviceIds)
        .execute();
    },
  };
}
