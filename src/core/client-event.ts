/**
 * The client format of a room event (ClientEvent).
 * https://spec.matrix.org/v1.19/client-server-api/#room-event-format
 */
import type { JsonObject, StoredEvent } from './pdu.js';

export interface ClientEvent {
  event_id: string;
  /** Left out where the room is implied (`ClientEventWithoutRoomID`, as in /sync). */
  room_id?: string;
  sender: string;
  origin_server_ts: number;
  type: string;
  state_key?: string;
  content: JsonObject;
  /** On `m.room.redaction` only, in every room version, for older clients. */
  redacts?: string;
  unsigned: JsonObject;
}

export interface ClientEventOptions {
  /** The `unsigned` object to serve (age, prev_content, redacted_because, transaction_id, …). */
  unsigned?: JsonObject;
  /** Leave out `room_id` (the `ClientEventWithoutRoomID` format). */
  omitRoomId?: boolean;
}

/**
 * Converts a stored PDU to the client format. Redaction events get `redacts` both at the
 * top level and in `content`, whichever of the two the room version stores it in.
 */
export function toClientEvent(stored: StoredEvent, opts: ClientEventOptions = {}): ClientEvent {
  const { pdu } = stored;
  const event: ClientEvent = {
    event_id: stored.eventId,
    room_id: stored.roomId,
    sender: pdu.sender,
    origin_server_ts: pdu.origin_server_ts,
    type: pdu.type,
    content: pdu.content,
    unsigned: opts.unsigned ?? {},
  };
  if (opts.omitRoomId === true) delete event.room_id;
  if (pdu.state_key !== undefined) event.state_key = pdu.state_key;
  if (pdu.type === 'm.room.redaction') {
    const inContent = pdu.content['redacts'];
    const redacts = typeof inContent === 'string' ? inContent : pdu.redacts;
    if (redacts !== undefined) {
      event.redacts = redacts;
      if (inContent === undefined) event.content = { ...pdu.content, redacts };
    }
  }
  return event;
}
