/**
 * A membership event of a room this server holds no state of (an invite or knock from
 * another server, or the leave that ends one): stored in the timeline as the room's only
 * state entry for its user, without a state snapshot or a forward extremity.
 */
import { canonicalJson } from '../../core/canonical-json.js';
import { toClientEvent } from '../../core/client-event.js';
import type { Pdu } from '../../core/pdu.js';
import type { Stores } from '../../storage/index.js';
import { membershipOf } from '../event-writer.js';

/** Stores the event (once: an event already known is left as it is) and announces it. */
export async function persistMembershipWithoutState(
  stores: Stores,
  roomId: string,
  eventId: string,
  pdu: Pdu,
): Promise<void> {
  if ((await stores.roomDag.selectKnownEvents([eventId])).has(eventId)) return;
  const userId = pdu.state_key ?? '';
  const json = canonicalJson(pdu);
  const clientJson = JSON.stringify(
    toClientEvent({ eventId, roomId, pdu: JSON.parse(json) as Pdu }),
  );
  const membership = membershipOf(pdu);
  const position = await stores.rooms.nextStreamPosition();
  await stores.rooms.persistEvent(
    { eventId, roomId, pdu, json, clientJson, ...(membership ? { membership } : {}) },
    position,
    { applyState: false, extremity: false },
  );
  await stores.rooms.applyStateChanges(
    roomId,
    [
      {
        type: pdu.type,
        stateKey: userId,
        eventId,
        sender: pdu.sender,
        clientJson,
        ...(membership ? { membership } : {}),
      },
    ],
    position,
  );
  await stores.stream.notify({ rooms: [roomId], users: [userId], memberRooms: [roomId] });
}
