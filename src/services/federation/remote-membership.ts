/**
 * Memberships of rooms this server is not in: knocking on a room of another server
 * (make_knock / send_knock v1) and leaving a room we are only invited to or knocking on —
 * rejecting an invite, rescinding a knock (make_leave / send_leave v2). The event is built
 * from the resident server's template, signed here and sent; once accepted it is kept in the
 * room's timeline (without state: we have none) and the user's membership follows it, so
 * /sync shows the room under `knock` (with the `knock_room_state` the server answered) or
 * `leave`. When no resident server can be reached, a leave is kept here alone (as Synapse
 * does): the user can always drop an invite or a knock; it is queued and sent again later
 * through the room's servers, with a backoff (leave-retry.ts).
 * https://spec.matrix.org/v1.19/server-server-api/#leaving-rooms-rejecting-invites
 * https://spec.matrix.org/v1.19/server-server-api/#knocking-upon-a-room
 */
import { MatrixError } from '../../core/errors.js';
import { computeEventId } from '../../core/event-hashing.js';
import { parseUserId } from '../../core/identifiers.js';
import type { JsonObject, Pdu, RoomVersionId, UnsignedPdu } from '../../core/pdu.js';
import { ROOM_VERSIONS } from '../../core/room-versions.js';
import { hashAndSignPdu } from '../../core/signing.js';
import type { PendingLeave, Stores } from '../../storage/index.js';
import type { ServiceContext } from '../context.js';
import type { FederationClient } from './client.js';
import { attemptOf, firstAccepting, noServerAccepted, type Attempt } from './resident-attempts.js';
import { retryDelayMs } from './sender.js';
import { persistMembershipWithoutState } from '../rooms-dag/index.js';

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** A membership event made with a resident server and accepted by it. */
interface Made {
  server: string;
  version: RoomVersionId;
  eventId: string;
  pdu: Pdu;
  answer: Record<string, unknown>;
}

/** What a leave of a room we are not in did: sent to a resident server, or kept here only. */
export interface RemoteLeaveResult {
  eventId: string;
  /** The server that accepted it; null when none could be reached (kept locally only). */
  via: string | null;
}

/** A leave kept here alone is tried again for this long, then given up. */
export const PENDING_LEAVE_MAX_AGE_MS = 7 * 24 * 3600_000;

export function createRemoteMembership(
  ctx: ServiceContext,
  client: FederationClient,
  /** The longest wait between two attempts at a pending leave. */
  retryMaxMs: number,
  /** Told after a leave was kept here alone (and queued to be sent again). */
  onKeptAlone: () => void = () => undefined,
) {
  const { serverName } = ctx.settings;
  const versions = Object.keys(ROOM_VERSIONS);

  /** make_{kind}, the template filled in and signed, send_{kind}: through one server. */
  async function through(
    server: string,
    kind: 'leave' | 'knock',
    roomId: string,
    userId: string,
    content: JsonObject,
    knownVersion: RoomVersionId | undefined,
  ): Promise<Made | { attempt: Attempt }> {
    const r = encodeURIComponent;
    const query = kind === 'knock' ? `?${versions.map((v) => `ver=${r(v)}`).join('&')}` : '';
    const made = await client.request(
      server,
      'GET',
      `/_matrix/federation/v1/make_${kind}/${r(roomId)}/${r(userId)}${query}`,
    );
    if (made.status !== 200 || !isObject(made.body))
      return { attempt: attemptOf(server, made.status, made.body, `make_${kind} refused`) };
    const version = made.body.room_version ?? knownVersion ?? '1';
    if (typeof version !== 'string' || !(version in ROOM_VERSIONS))
      return {
        attempt: {
          server,
          status: 400,
          errcode: 'M_INCOMPATIBLE_ROOM_VERSION',
          error: `room version ${String(version)} is not supported here`,
        },
      };
    const template = made.body.event;
    if (
      !isObject(template) ||
      template.type !== 'm.room.member' ||
      template.state_key !== userId ||
      template.sender !== userId ||
      !Array.isArray(template.prev_events) ||
      !Array.isArray(template.auth_events) ||
      !template.prev_events.every((id) => typeof id === 'string') ||
      !template.auth_events.every((id) => typeof id === 'string') ||
      typeof template.depth !== 'number'
    )
      return { attempt: attemptOf(server, 502, {}, `make_${kind} answered a wrong template`) };
    const roomVersion = version as RoomVersionId;
    const unsigned: UnsignedPdu = {
      room_id: roomId,
      sender: userId,
      state_key: userId,
      type: 'm.room.member',
      content: { ...content, membership: kind },
      prev_events: template.prev_events as string[],
      auth_events: template.auth_events as string[],
      depth: template.depth,
      origin_server_ts: ctx.now(),
    };
    const pdu = hashAndSignPdu(unsigned, roomVersion, serverName, ctx.signingKey);
    const eventId = computeEventId(pdu, roomVersion);
    const path =
      kind === 'leave'
        ? `/_matrix/federation/v2/send_leave/${r(roomId)}/${r(eventId)}`
        : `/_matrix/federation/v1/send_knock/${r(roomId)}/${r(eventId)}`;
    const sent = await client.request(server, 'PUT', path, { body: pdu });
    if (sent.status !== 200 || !isObject(sent.body))
      return { attempt: attemptOf(server, sent.status, sent.body, `send_${kind} refused`) };
    return { server, version: roomVersion, eventId, pdu, answer: sent.body };
  }

  /** Tries each server in turn; the first that accepts, or every attempt's failure. */
  const firstThrough = (
    servers: readonly string[],
    kind: 'leave' | 'knock',
    roomId: string,
    userId: string,
    content: JsonObject,
    knownVersion?: RoomVersionId,
  ): Promise<Made | { attempts: Attempt[] }> =>
    firstAccepting(servers, serverName, (server) =>
      through(server, kind, roomId, userId, content, knownVersion),
    );

  /**
   * A membership event of a room we have no state of, kept in its timeline (no state group,
   * no forward extremity) with the user's membership following it; `strippedState` (the
   * room as the resident server described it) kept for /sync.
   */
  async function keep(
    stores: Stores,
    event: {
      roomId: string;
      version: RoomVersionId;
      eventId: string;
      pdu: Pdu;
      strippedState?: readonly Record<string, unknown>[];
      /** The server a knock went through. */
      via?: string;
    },
  ): Promise<void> {
    const { roomId, eventId, pdu } = event;
    const userId = pdu.state_key ?? '';
    const create = event.strippedState?.find((e) => e.type === 'm.room.create');
    await stores.rooms.insertRoom(
      {
        roomId,
        roomVersion: event.version,
        creator: typeof create?.sender === 'string' ? create.sender : pdu.sender,
        isPublic: false,
      },
      ctx.now(),
    );
    if (event.strippedState)
      await stores.roomDag.upsertInviteRoomState(
        roomId,
        userId,
        eventId,
        JSON.stringify(event.strippedState),
      );
    if (event.via) await stores.roomDag.upsertKnockViaServer(roomId, userId, eventId, event.via);
    await persistMembershipWithoutState(stores, roomId, eventId, pdu);
  }

  /** The user's invite or knock in a room we are not in, under the room's lock. */
  async function pendingMembership(stores: Stores, roomId: string, userId: string) {
    const [member] = await stores.rooms.selectStateEvents(roomId, [['m.room.member', userId]]);
    const membership = member?.pdu.content.membership;
    return member && (membership === 'invite' || membership === 'knock') ? member : undefined;
  }

  return {
    /**
     * Servers to reach a room we are invited to or knocking on: the server a knock went
     * through (kept with it, migration 0015), the inviter's (or knocker's) server, the
     * servers of the stripped state's senders (the create event's last: its sender may have
     * left long ago), and the room ID's server (before room version 12).
     */
    async serversFor(stores: Stores, roomId: string, userId: string): Promise<string[]> {
      const servers: string[] = [];
      const add = (user: unknown) => {
        const server = typeof user === 'string' ? parseUserId(user)?.serverName : undefined;
        if (server && server !== serverName) servers.push(server);
      };
      const member = await pendingMembership(stores, roomId, userId);
      // A knock: the server it went through first (it was in the room then).
      if (member?.pdu.content.membership === 'knock') {
        const via = await stores.roomDag.selectKnockViaServer(roomId, userId, member.eventId);
        if (via && via !== serverName) servers.push(via);
      }
      if (member) add(member.pdu.sender);
      const stripped = (await stores.roomDag.selectInviteRoomStates([roomId], userId)).get(roomId);
      if (stripped !== undefined) {
        const events = (JSON.parse(stripped) as unknown[]).filter(isObject);
        for (const e of events) if (e.type !== 'm.room.create') add(e.sender);
        for (const e of events) if (e.type === 'm.room.create') add(e.sender);
      }
      const colon = roomId.indexOf(':');
      if (colon > 0) servers.push(roomId.slice(colon + 1));
      return [...new Set(servers)].filter((s) => s !== serverName);
    },

    /**
     * Knocks on a room of other servers through the first of `servers` that accepts
     * (make_knock, send_knock), and keeps the knock with the room's stripped state. Refusals
     * are passed on; no server reachable is 502.
     */
    async knock(
      roomId: string,
      userId: string,
      servers: readonly string[],
      content: JsonObject,
    ): Promise<void> {
      const made = await firstThrough(servers, 'knock', roomId, userId, content);
      if ('attempts' in made) throw noServerAccepted(made.attempts, 'reach the room');
      const raw = made.answer.knock_room_state ?? made.answer.knock_state_events;
      const strippedState = (Array.isArray(raw) ? raw : []).filter(isObject).slice(0, 100);
      await ctx.storage.tx('knockRemoteRoom', async (stores) => {
        await stores.rooms.lockRoom(roomId);
        await keep(stores, {
          roomId,
          version: made.version,
          eventId: made.eventId,
          pdu: made.pdu,
          strippedState,
          via: made.server,
        });
      });
    },

    /**
     * Rejects an invite or rescinds a knock of a room we are not in: make_leave / send_leave
     * through the first of `servers` that accepts. When none does, the leave is made and kept
     * here alone (its prev and auth event the invite or knock), as Synapse does, so that the
     * user can always drop it, and queued to be sent through the servers later.
     */
    async leave(
      roomId: string,
      userId: string,
      servers: readonly string[],
      content: JsonObject,
    ): Promise<RemoteLeaveResult> {
      const room = await ctx.storage.stores.rooms.selectRoom(roomId);
      const knownVersion = room?.roomVersion as RoomVersionId | undefined;
      const made = await firstThrough(servers, 'leave', roomId, userId, content, knownVersion);
      const result = await ctx.storage.tx('leaveRemoteRoom', async (stores) => {
        await stores.rooms.lockRoom(roomId);
        const pending = await pendingMembership(stores, roomId, userId);
        if (!('attempts' in made)) {
          // Kept even if the invite went meanwhile: the room's servers have the leave now.
          await keep(stores, {
            roomId,
            version: made.version,
            eventId: made.eventId,
            pdu: made.pdu,
          });
          return { eventId: made.eventId, via: made.server };
        }
        if (!pending) throw new MatrixError(403, 'M_FORBIDDEN', 'You are not in this room');
        const version = (knownVersion ?? '10') as RoomVersionId;
        const unsigned: UnsignedPdu = {
          room_id: roomId,
          sender: userId,
          state_key: userId,
          type: 'm.room.member',
          content: { ...content, membership: 'leave' },
          prev_events: [pending.eventId],
          auth_events: [pending.eventId],
          depth: pending.pdu.depth + 1,
          origin_server_ts: ctx.now(),
        };
        const pdu = hashAndSignPdu(unsigned, version, serverName, ctx.signingKey);
        const eventId = computeEventId(pdu, version);
        await keep(stores, { roomId, version, eventId, pdu });
        // Sent again later through the room's servers, with a backoff (retryPendingLeave).
        const now = ctx.now();
        await stores.federationOutbox.upsertPendingLeave({
          roomId,
          userId,
          eventId,
          servers: [...new Set(servers)].filter((s) => s !== serverName),
          content,
          retryAtTs: now + retryDelayMs(1, retryMaxMs),
          createdTs: now,
        });
        return { eventId, via: null };
      });
      if (result.via === null) onKeptAlone();
      return result;
    },

    /**
     * One more attempt at a leave kept here alone: make_leave / send_leave through its
     * servers. The row goes when a server accepts, when one refuses (a definite answer: the
     * invite or knock is gone there), when the user's membership here is no longer that leave
     * (invited again, joined), or after `PENDING_LEAVE_MAX_AGE_MS`; otherwise it waits longer.
     */
    async retryPendingLeave(leave: PendingLeave): Promise<'sent' | 'dropped' | 'later'> {
      const stores = ctx.storage.stores;
      const drop = async () => {
        await stores.federationOutbox.deletePendingLeave(leave.roomId, leave.userId, leave.eventId);
        return 'dropped' as const;
      };
      const [member] = await stores.rooms.selectStateEvents(leave.roomId, [
        ['m.room.member', leave.userId],
      ]);
      if (member?.eventId !== leave.eventId) return drop();
      const room = await stores.rooms.selectRoom(leave.roomId);
      const made = await firstThrough(
        leave.servers,
        'leave',
        leave.roomId,
        leave.userId,
        leave.content as JsonObject,
        room?.roomVersion as RoomVersionId | undefined,
      );
      if (!('attempts' in made)) {
        await stores.federationOutbox.deletePendingLeave(leave.roomId, leave.userId, leave.eventId);
        return 'sent';
      }
      const refused = made.attempts.some((a) => a.status >= 400 && a.status < 500);
      if (refused || ctx.now() - leave.createdTs > PENDING_LEAVE_MAX_AGE_MS) return drop();
      const failures = leave.failures + 1;
      await stores.federationOutbox.updatePendingLeaveFailure(
        leave.roomId,
        leave.userId,
        failures,
        ctx.now() + retryDelayMs(failures + 1, retryMaxMs),
      );
      return 'later';
    },
  };
}

export type RemoteMembership = ReturnType<typeof createRemoteMembership>;
