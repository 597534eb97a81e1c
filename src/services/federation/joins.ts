/**
 * Joining a room of another server (make_join / send_join v2): a resident server gives a join
 * template, we fill it in, sign it and send it; its answer (the room's state before our join
 * and the auth chain) is checked — format, signatures, content hashes, then as a whole
 * (`checkJoinAnswer`: each state event against its auth events, our join against its auth
 * events and the state) — and the room imported into the room DAG, so that /sync shows it and further
 * events arrive through `/send`. Also resolves aliases of other servers (`/query/directory`).
 * https://spec.matrix.org/v1.19/server-server-api/#joining-rooms
 */
import { notFound, unknown } from '../../core/errors.js';
import { computeEventId } from '../../core/event-hashing.js';
import { parseRoomAlias } from '../../core/identifiers.js';
import {
  stateKeyOf,
  type JsonObject,
  type Pdu,
  type RoomVersionId,
  type StateKey,
  type UnsignedPdu,
} from '../../core/pdu.js';
import type { AuthChecks } from '../../core/auth-rules.js';
import {
  checkJoinAnswer,
  checkPduContentHash,
  checkPduFormat,
  checkPduSignatures,
  verifyThirdPartySigned,
  type FetchedEvent,
} from '../../core/pdu-checks/index.js';
import { ROOM_VERSIONS } from '../../core/room-versions.js';
import { hashAndSignPdu } from '../../core/signing.js';
import type { Stores } from '../../storage/index.js';
import type { ServiceContext } from '../context.js';
import type { IdentifiedPdu, RoomDagService } from '../rooms-dag/index.js';
import type { FederationClient } from './client.js';
import { signingKeysOf } from './signing-keys.js';
import type { ServerKeyService } from './keys.js';
import type { PartialStateService } from './partial-state.js';
import { attemptOf, firstAccepting, noServerAccepted, type Attempt } from './resident-attempts.js';

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

export function createRemoteJoins(
  ctx: ServiceContext,
  client: FederationClient,
  keys: ServerKeyService,
  roomDag: () => RoomDagService,
  partialState?: PartialStateService,
) {
  const { serverName } = ctx.settings;
  const versions = Object.keys(ROOM_VERSIONS);

  const checksFor = (signedBy: ReadonlySet<string>): AuthChecks => ({
    isSignedBy: (server) => signedBy.has(server),
    verifyThirdPartySigned,
  });

  /** The public keys of every (server, key) that signed one of the events, looked up now. */
  const keyLookup = (events: readonly Pdu[]) =>
    signingKeysOf(events, (server, keyId, at) => keys.publicKeyFor(server, keyId, at));

  /**
   * The events of a send_join answer (and our join as returned) through the checks that need
   * keys: malformed ones left out, those without valid signatures dropped (their IDs kept in
   * `dropped`), those whose hash does not match redacted. `checkJoinAnswer` does the rest.
   */
  async function signedEvents(
    raw: readonly unknown[],
    join: Pdu,
    version: RoomVersionId,
  ): Promise<{ events: FetchedEvent[]; dropped: Set<string>; joinSignedBy: ReadonlySet<string> }> {
    const formatted = new Map<string, Pdu>();
    for (const entry of raw) {
      const format = checkPduFormat(entry, version);
      if (format.valid) formatted.set(format.eventId, format.pdu);
    }
    const lookup = await keyLookup([...formatted.values(), join]);
    const events: FetchedEvent[] = [];
    const dropped = new Set<string>();
    for (const [eventId, pdu] of formatted) {
      const signatures = checkPduSignatures(pdu, version, lookup);
      if (!signatures.valid) {
        dropped.add(eventId);
        continue;
      }
      events.push({
        eventId,
        pdu: checkPduContentHash(pdu, version).pdu,
        checks: checksFor(signatures.signedBy),
      });
    }
    const joinSignatures = checkPduSignatures(join, version, lookup);
    return {
      events,
      dropped,
      joinSignedBy: joinSignatures.valid ? joinSignatures.signedBy : new Set([serverName]),
    };
  }

  /** send_join's `servers_in_room` (the resident server first), ours left out. */
  function serversInRoom(raw: unknown, resident: string): string[] {
    const listed = Array.isArray(raw) ? raw.filter((s): s is string => typeof s === 'string') : [];
    return [...new Set([resident, ...listed])].filter((s) => s !== serverName);
  }

  async function joinThrough(
    server: string,
    roomId: string,
    userId: string,
    content: JsonObject,
  ): Promise<{ attempt: Attempt } | { imported: true }> {
    const query = versions.map((v) => `ver=${encodeURIComponent(v)}`).join('&');
    const made = await client.request(
      server,
      'GET',
      `/_matrix/federation/v1/make_join/${encodeURIComponent(roomId)}/${encodeURIComponent(userId)}?${query}`,
    );
    if (made.status !== 200 || !isObject(made.body))
      return { attempt: attemptOf(server, made.status, made.body, 'make_join refused') };
    const version = made.body.room_version ?? '1';
    if (typeof version !== 'string' || !(version in ROOM_VERSIONS))
      return {
        attempt: {
          server,
          status: 400,
          errcode: 'M_INCOMPATIBLE_ROOM_VERSION',
          error: `room version ${String(version)} is not supported here`,
        },
      };
    const roomVersion = version as RoomVersionId;
    const template = made.body.event;
    if (
      !isObject(template) ||
      template.type !== 'm.room.member' ||
      template.state_key !== userId ||
      template.sender !== userId ||
      !Array.isArray(template.prev_events) ||
      !Array.isArray(template.auth_events) ||
      typeof template.depth !== 'number'
    )
      return { attempt: attemptOf(server, 502, {}, 'make_join answered a wrong template') };
    const templateContent = isObject(template.content) ? template.content : {};
    const authoriser = templateContent.join_authorised_via_users_server;
    const unsigned: UnsignedPdu = {
      room_id: roomId,
      sender: userId,
      state_key: userId,
      type: 'm.room.member',
      content: {
        ...content,
        ...(typeof authoriser === 'string' ? { join_authorised_via_users_server: authoriser } : {}),
        membership: 'join',
      },
      prev_events: template.prev_events as string[],
      auth_events: template.auth_events as string[],
      depth: template.depth,
      origin_server_ts: ctx.now(),
    };
    const ours = hashAndSignPdu(unsigned, roomVersion, serverName, ctx.signingKey);
    const eventId = computeEventId(ours, roomVersion);
    // A room new to us is joined with partial state when the resident server can (MSC3706).
    const omitMembers =
      partialState !== undefined && !(await ctx.storage.stores.rooms.selectRoom(roomId));
    const sent = await client.request(
      server,
      'PUT',
      `/_matrix/federation/v2/send_join/${encodeURIComponent(roomId)}/${encodeURIComponent(eventId)}${omitMembers ? '?omit_members=true' : ''}`,
      { body: ours },
    );
    if (sent.status !== 200 || !isObject(sent.body))
      return { attempt: attemptOf(server, sent.status, sent.body, 'send_join refused') };
    const answer = sent.body;
    const rawState = Array.isArray(answer.state) ? answer.state : [];
    const rawChain = Array.isArray(answer.auth_chain) ? answer.auth_chain : [];
    // The resident server may return our join countersigned (a restricted join): the same
    // event with its signature added.
    let join: Pdu = ours;
    if (isObject(answer.event)) {
      const returned = checkPduFormat(answer.event, roomVersion);
      if (returned.valid && returned.eventId === eventId) join = returned.pdu;
    }
    const { events, dropped, joinSignedBy } = await signedEvents(
      [...rawState, ...rawChain],
      join,
      roomVersion,
    );
    const idsOf = (raw: readonly unknown[]) =>
      raw
        .map((entry) => checkPduFormat(entry, roomVersion))
        .filter((f) => f.valid)
        .map((f) => f.eventId as string);
    const membersOmitted = omitMembers && answer.members_omitted === true;
    const verdict = checkJoinAnswer({
      roomId,
      roomVersion,
      stateIds: idsOf(rawState),
      events,
      dropped,
      join: { eventId, pdu: join, checks: checksFor(joinSignedBy) },
      membersOmitted,
    });
    if (!verdict.valid)
      return { attempt: attemptOf(server, 502, {}, `send_join answer refused: ${verdict.reason}`) };
    const byId = new Map(events.map((e) => [e.eventId, e.pdu]));
    const pick = (ids: Iterable<string>): IdentifiedPdu[] =>
      [...new Set(ids)]
        .filter((id) => verdict.accepted.has(id))
        .map((id) => ({ eventId: id, pdu: byId.get(id) as Pdu }));
    const state = pick(verdict.state.values());
    const authChain = pick(idsOf(rawChain));
    const partial = membersOmitted ? partialState : undefined;
    const imported = await ctx.storage.tx('joinRemoteRoom', async (stores: Stores) => {
      await stores.rooms.lockRoom(roomId);
      const dag = roomDag();
      if (!(await stores.rooms.selectRoom(roomId))) {
        await dag.importRoom(stores, {
          roomId,
          version: roomVersion,
          state,
          authChain,
          event: { eventId, pdu: join },
          origin: server,
        });
        if (partial) {
          await partial.begin(stores, {
            roomId,
            joinEventId: eventId,
            resident: server,
            servers: serversInRoom(answer.servers_in_room, server),
          });
          return 'partial';
        }
        return 'full';
      }
      // Joined before and left: the new state and our join go on the room we have.
      await dag.persistOutliers(stores, roomId, roomVersion, [...authChain, ...state]);
      const stateBefore = new Map<StateKey, string>();
      for (const { eventId: id, pdu } of state)
        if (pdu.state_key !== undefined) stateBefore.set(stateKeyOf(pdu.type, pdu.state_key), id);
      await dag.persistReceived(stores, {
        roomId,
        version: roomVersion,
        eventId,
        pdu: join,
        status: 'accepted',
        stateBefore,
        origin: server,
      });
      return 'full';
    });
    if (imported === 'partial') partial?.schedule(roomId);
    return { imported: true };
  }

  return {
    /** `GET /query/directory` on the alias's server: the room and servers to join through. */
    async resolveAlias(alias: string): Promise<{ roomId: string; servers: string[] }> {
      const parsed = parseRoomAlias(alias);
      const server = parsed ? alias.slice(alias.indexOf(':') + 1) : '';
      let response;
      try {
        response = await client.request(
          server,
          'GET',
          `/_matrix/federation/v1/query/directory?room_alias=${encodeURIComponent(alias)}`,
        );
      } catch (err) {
        throw unknown(`${server} could not be reached: ${(err as Error).message}`, 502);
      }
      const body = response.body;
      if (response.status === 404) throw notFound('Room alias not found');
      if (response.status !== 200 || !isObject(body) || typeof body.room_id !== 'string')
        throw unknown(`${server} could not resolve the alias (HTTP ${response.status})`, 502);
      const servers = Array.isArray(body.servers)
        ? body.servers.filter((s): s is string => typeof s === 'string')
        : [];
      return { roomId: body.room_id, servers: [...new Set([server, ...servers])] };
    },

    /**
     * Joins `userId` to a room of other servers through the first of `servers` that lets us
     * (make_join, send_join), and imports the room. `content`: the member event's profile.
     */
    async join(
      roomId: string,
      userId: string,
      servers: readonly string[],
      content: JsonObject,
    ): Promise<void> {
      const result = await firstAccepting(servers, serverName, (server) =>
        joinThrough(server, roomId, userId, content),
      );
      if ('attempts' in result) throw noServerAccepted(result.attempts, 'join the room');
    },

    /** Servers a room ID names (before room version 12 the ID carries the creator's server). */
    serversOfRoomId(roomId: string): string[] {
      const colon = roomId.indexOf(':');
      return colon > 0 ? [roomId.slice(colon + 1)] : [];
    },
  };
}

export type RemoteJoins = ReturnType<typeof createRemoteJoins>;
