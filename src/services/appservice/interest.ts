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
import type { AppendedEvent, EventDeriver, StateDeriver } from '../event-writer.js';

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

/**
 * Queues an MSC3202 device-list item (`changed` or `left` users) for the service, at a
 * position of its own after the event.
 */
async function queueDeviceList(
  stores: Stores,
  r: AppServiceRegistration,
  field: 'changed' | 'left',
  users: string[],
) {
  if (users.length === 0) return;
  await stores.appservices.insertQueued(
    r.id,
    await stores.stream.nextPosition(),
    JSON.stringify({ [field]: users }),
    'device_list',
  );
}

/** What the deriver knew of the service's users in the room before the member event. */
interface ServiceUsersBefore {
  /** One of the service's users was joined or invited in the room. */
  inRoom: boolean;
  /** The event's subject (one of the service's users) was recorded as joined or invited. */
  subjectRecorded: boolean;
}

/**
 * MSC3202's device lists as /sync's: in `changed`, the users the service's users start sharing
 * a room with; in `left`, those they no longer share any room with. A user other than the
 * service's who joins a room where it has users, and was joined to no other room where it has
 * any, is changed; who leaves (or is banned from) such a room and is joined to no other one,
 * left. When the service's first user in a room joins or is invited, the room's members joined
 * to no other room with one of its users are changed; when its last user there leaves, left.
 */
async function deviceListMembership(
  stores: Stores,
  r: AppServiceRegistration,
  event: AppendedEvent,
  subject: string,
  serverName: string,
  before: ServiceUsersBefore,
): Promise<void> {
  const membership = event.pdu.content.membership;
  const joins = membership === 'join' || membership === 'invite';
  if (!joins && membership !== 'leave' && membership !== 'ban') return;
  if (isServiceUser(r, subject, serverName)) {
    // Its first user in the room arrives, or its last one goes.
    if (joins) {
      if (before.inRoom) return;
    } else if (
      !before.subjectRecorded ||
      (await stores.appservices.selectHasRoomUser(r.id, event.roomId))
    )
      return;
    const members = await stores.appservices.selectMembersSharingNoRoom(r.id, event.roomId);
    const others = members.filter((user) => !isServiceUser(r, user, serverName));
    await queueDeviceList(stores, r, joins ? 'changed' : 'left', others);
    return;
  }
  if (membership === 'invite') return;
  if (!(await stores.appservices.selectHasRoomUser(r.id, event.roomId))) return;
  if (membership === 'join') {
    // A profile change (join after join) is no new sharing.
    const history = await stores.rooms.selectMembershipHistory(event.roomId, subject);
    const previous = history.filter((h) => h.streamOrdering < event.streamOrdering).at(-1);
    if (previous?.membership === 'join') return;
  }
  const rooms = await stores.rooms.selectRoomsOfUser(subject, 'join');
  const others = rooms.filter((roomId) => roomId !== event.roomId);
  if (await stores.appservices.selectHasRoomUserIn(r.id, others)) return;
  await queueDeviceList(stores, r, membership === 'join' ? 'changed' : 'left', [subject]);
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
      const deviceLists = subject !== null && r.url !== null && r.msc3202;
      const before: ServiceUsersBefore = { inRoom: false, subjectRecorded: false };
      if (subject !== null && isServiceUser(r, subject, serverName)) {
        if (deviceLists)
          before.inRoom = await stores.appservices.selectHasRoomUser(r.id, event.roomId);
        const membership = pdu.content.membership;
        if (membership === 'join' || membership === 'invite')
          await stores.appservices.insertRoomUser(r.id, event.roomId, subject);
        else
          before.subjectRecorded = await stores.appservices.deleteRoomUser(
            r.id,
            event.roomId,
            subject,
          );
      }
      if (r.url === null) continue;
      if (deviceLists)
        await deviceListMembership(stores, r, event, subject as string, serverName, before);
      if (!(await wants(stores, r, event, subject, serverName))) continue;
      json ??= JSON.stringify(toClientEvent(event));
      await stores.appservices.insertQueued(r.id, event.streamOrdering, json);
    }
  };
}

/**
 * Application services' users in rooms, for the member entries state resolution changed
 * without an event of their own: joined or invited keeps the user, anything else (a removed
 * entry included) drops them.
 */
export function appServiceStateDeriver(
  registrations: readonly AppServiceRegistration[],
  serverName: string,
): StateDeriver {
  return async (stores, change) => {
    if (change.type !== 'm.room.member') return;
    const membership = change.event?.pdu.content.membership;
    for (const r of registrations) {
      if (!isServiceUser(r, change.stateKey, serverName)) continue;
      if (membership === 'join' || membership === 'invite')
        await stores.appservices.insertRoomUser(r.id, change.roomId, change.stateKey);
      else await stores.appservices.deleteRoomUser(r.id, change.roomId, change.stateKey);
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
