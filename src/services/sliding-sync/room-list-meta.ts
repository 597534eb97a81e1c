/**
 * Keeps `room_list_meta` with every event, inside the event's transaction (an event deriver):
 * the latest bump event's position, the room type from the create event, encryption.
 */
import { BUMP_EVENT_TYPES } from '../../core/sliding-sync.js';
import type { EventDeriver, StateDeriver } from '../event-writer.js';

export const deriveRoomListMeta: EventDeriver = async (stores, event) => {
  const { pdu } = event;
  const isState = pdu.state_key === '';
  const bumps = BUMP_EVENT_TYPES.has(pdu.type);
  const roomType =
    isState && pdu.type === 'm.room.create' && typeof pdu.content.type === 'string'
      ? pdu.content.type
      : undefined;
  const encrypted = isState && pdu.type === 'm.room.encryption' ? true : undefined;
  if (!bumps && roomType === undefined && encrypted === undefined) return;
  await stores.slidingSync.upsertRoomListMeta(event.roomId, {
    ...(bumps ? { bumpStamp: event.streamOrdering } : {}),
    ...(roomType !== undefined ? { roomType } : {}),
    ...(encrypted !== undefined ? { encrypted } : {}),
  });
};

/**
 * The same for entries state resolution changed without an event of their own: encryption
 * set or removed (a room's type comes from its create event, which resolution never moves).
 */
export const deriveRoomListMetaState: StateDeriver = async (stores, change) => {
  if (change.type !== 'm.room.encryption' || change.stateKey !== '') return;
  await stores.slidingSync.upsertRoomListMeta(change.roomId, { encrypted: change.event !== null });
};
