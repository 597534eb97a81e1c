/**
 * The event deriver of application services: inside each event's own transaction, it keeps
 * the record of which namespaced users are joined or invited where, and queues the event for
 * every service that wants it — one of its users sent it or is its subject, one of its users
 * is joined or invited in the room, or the room's ID or an alias of it is in a namespace.
 * https://spec.matrix.org/v1.19/application-service-api/#pushing-events
 */
import {
  aliasInNamespace,
  isServiceUser,
  roomInNamespace,
  type AppServiceRegistration,
} from '../../core/appservice.js';
import { toClientEvent } from '../../core/client-event.js';
import type { Stores } from '../../storage/index.js';
import type { AppendedEvent, EventDeriver } from '../event-writer.js';

async function wants(
  stores: Stores,
  r: AppServiceRegistration,
  event: AppendedEvent,
  subject: string | null,
  serverName: string,
): Promise<boolean> {
  if (isServiceUser(r, event.pdu.sender, serverName)) return true;
  if (subject !== null && isServiceUser(r, subject, serverName)) return true;
  if (roomInNamespace(r, event.roomId)) return true;
  if (await stores.appservices.selectHasRoomUser(r.id, event.roomId)) return true;
  if (r.namespaces.aliases.length === 0) return false;
  const aliases = await stores.appservices.selectRoomAliases(event.roomId);
  return aliases.some((alias) => aliasInNamespace(r, alias));
}

/** Queues MSC3202 `left` users for the service, at a position of its own after the event. */
async function queueLeft(stores: Stores, r: AppServiceRegistration, users: string[]) {
  if (users.length === 0) return;
  await stores.appservices.insertQueued(
    r.id,
    await stores.stream.nextPosition(),
    JSON.stringify({ left: users }),
    'device_list',
  );
}

/**
 * MSC3202's `left` (as /sync's): the users the service's users no longer share any room with.
 * A user other than the service's who leaves (or is banned from) a room where the service has
 * users, and is joined to no other room where it has any, is listed. When it is one of the
 * service's own users who leaves (`wasRecorded`: it was joined or invited there) and none of
 * its users is left in the room, the room's members joined to no other room with one of them
 * are listed.
 */
async function deviceListLeft(
  stores: Stores,
  r: AppServiceRegistration,
  event: AppendedEvent,
  subject: string,
  serverName: string,
  wasRecorded: boolean,
): Promise<void> {
  const membership = event.pdu.content.membership;
  if (membership !== 'leave' && membership !== 'ban') return;
  if (isServiceUser(r, subject, serverName)) {
    if (!wasRecorded || (await stores.appservices.selectHasRoomUser(r.id, event.roomId))) return;
    const members = await stores.appservices.selectMembersSharingNoRoom(r.id, event.roomId);
    await queueLeft(
      stores,
      r,
      members.filter((user) => !isServiceUser(r, user, serverName)),
    );
    return;
  }
  if (!(await stores.appservices.selectHasRoomUser(r.id, event.roomId))) return;
  const rooms = await stores.rooms.selectRoomsOfUser(subject, 'join');
  if (await stores.appservices.selectHasRoomUserIn(r.id, rooms)) return;
  await queueLeft(stores, r, [subject]);
}

export function appServiceDeriver(
  registrations: readonly AppServiceRegistration[],
  serverName: string,
): EventDeriver {
  return async (stores, event) => {
    const { pdu } = event;
    const subject =
      pdu.type === 'm.room.member' && typeof pdu.state_key === 'string' ? pdu.state_key : null;
    let json: string | null = null;
    for (const r of registrations) {
      let wasRecorded = false;
      if (subject !== null && isServiceUser(r, subject, serverName)) {
        const membership = pdu.content.membership;
        if (membership === 'join' || membership === 'invite')
          await stores.appservices.insertRoomUser(r.id, event.roomId, subject);
        else wasRecorded = await stores.appservices.deleteRoomUser(r.id, event.roomId, subject);
      }
      if (r.url === null) continue;
      if (subject !== null && r.msc3202)
        await deviceListLeft(stores, r, event, subject, serverName, wasRecorded);
      if (!(await wants(stores, r, event, subject, serverName))) continue;
      json ??= JSON.stringify(toClientEvent(event));
      await stores.appservices.insertQueued(r.id, event.streamOrdering, json);
    }
  };
}

/**
 * Ephemeral events (MSC2409) for services with `receive_ephemeral`: queued in the caller's
 * transaction, at the stream position the caller took for the change, for each such service
 * with one of its users joined or invited in the room, or the room in its namespace.
 */
export function appServiceEphemeralQueue(registrations: readonly AppServiceRegistration[]) {
  const receiving = registrations.filter((r) => r.url !== null && r.receiveEphemeral);
  return {
    /** Whether any service receives ephemeral events (nothing to do otherwise). */
    active: receiving.length > 0,
    async queue(stores: Stores, roomId: string, position: number, edu: object): Promise<void> {
      let json: string | null = null;
      for (const r of receiving) {
        if (
          !roomInNamespace(r, roomId) &&
          !(await stores.appservices.selectHasRoomUser(r.id, roomId))
        )
          continue;
        json ??= JSON.stringify(edu);
        await stores.appservices.insertQueued(r.id, position, json, 'ephemeral');
      }
    },
  };
}
