/**
 * The shapes of room events. A PDU is an event in the federation format of its room
 * version (room versions 10, 11 and 12 here); clients get the client format derived from it.
 */
export type JsonValue =
  null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

export type RoomVersionId = '10' | '11' | '12';

/** An event as it is hashed, signed and stored (the federation format). */
export interface Pdu {
  /** Absent in room version 12 create events (the room ID is derived from the event ID). */
  room_id?: string;
  sender: string;
  origin_server_ts: number;
  type: string;
  state_key?: string;
  content: JsonObject;
  prev_events: string[];
  auth_events: string[];
  depth: number;
  hashes: { sha256: string };
  signatures: Record<string, Record<string, string>>;
  /** Present only on redaction events before room version 11 (from 11 on it is in content). */
  redacts?: string;
  unsigned?: JsonObject;
}

/** A PDU together with its reference-hash event ID (never stored inside the PDU itself). */
export interface StoredEvent {
  eventId: string;
  roomId: string;
  pdu: Pdu;
}

/** A PDU before hashes and signatures are added. */
export type UnsignedPdu = Omit<Pdu, 'hashes' | 'signatures'>;

export type Membership = 'join' | 'invite' | 'leave' | 'ban' | 'knock';
export const MEMBERSHIPS: readonly Membership[] = ['join', 'invite', 'leave', 'ban', 'knock'];

/** Key of the room state map: `${type}\u0000${stateKey}`. */
export type StateKey = string;
export const stateKeyOf = (type: string, stateKey: string): StateKey => `${type}\u0000${stateKey}`;
