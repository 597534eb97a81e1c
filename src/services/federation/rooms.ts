/**
 * Rooms over federation, the receiving and serving side: `PUT /send` (each PDU through the
 * spec's checks on receipt, fetching missing prev events, state and auth events from the
 * origin), joins, leaves and knocks of remote users through us (make_/send_), and the reads
 * other servers make of our rooms (/state, /state_ids, /event, /event_auth, /backfill,
 * /get_missing_events), each with server ACLs and history visibility per server.
 * Storage goes through the room DAG service (`src/services/rooms-dag/`).
 */
import {
  RECOGNISED_ROOM_VERSIONS,
  authEventSelection,
  authorizeEvent,
  powerLevelOf,
  type AuthChecks,
  type AuthStateEvent,
} from '../../core/auth-rules.js';
import { MatrixError, forbidden } from '../../core/errors.js';
import { parseUserId } from '../../core/identifiers.js';
import {
  stateKeyOf,
  type JsonObject,
  type Pdu,
  type RoomVersionId,
  type StateKey,
} from '../../core/pdu.js';
import {
  checkFetchedEvents,
  checkAgainstAuthEvents,
  checkAgainstState,
  checkPduContentHash,
  checkPduFormat,
  checkPduSignatures,
  requiredSigningServers,
  verifyThirdPartySigned,
  type FetchedVerdict,
  type KnownAuthEvent,
  type ServerVerifyKey,
} from '../../core/pdu-checks/index.js';
import { fillMissingMembers, partialJoinState } from '../../core/partial-state.js';
import { getRoomVersion } from '../../core/room-versions.js';
import { isServerAllowed, parseServerAcl } from '../../core/server-acl.js';
import { signPdu } from '../../core/signing.js';
import { resolveState, type ResolvableEvent } from '../../core/state-resolution/index.js';
import type { KnownEvent, Stores } from '../../storage/index.js';
import type { ServiceContext } from '../context.js';
import { assertInvitable } from '../invite-permission.js';
import type { RoomDagService, StateMap } from '../rooms-dag/index.js';
import type { FederationClient } from './client.js';

/** The most PDUs and EDUs one transaction may carry. */
export const MAX_TXN_PDUS = 50;
export const MAX_TXN_EDUS = 100;
/** Events asked for in each /get_missing_events round to close a gap. */
export const MISSING_EVENTS_LIMIT = 10;
/** Rounds of /get_missing_events for one gap (so at most 50 events are fetched that way). */
export const MAX_GAP_ROUNDS = 5;

const isObject = (value: unknown): value is JsonObject =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const notFound = (what: string) => new MatrixError(404, 'M_NOT_FOUND', what);
const badJson = (why: string) => new MatrixError(400, 'M_BAD_JSON', why);

/** What handles a transaction's EDUs (typing, receipts, presence, devices, to-device). */
export type EduReceiver = (origin: string, edus: readonly unknown[]) => Promise<void>;

export interface RoomFederationDeps {
  client: FederationClient;
  /** The public key `server` signed with as `keyId`, valid at `at` (fetched when needed). */
  publicKeyFor(server: string, keyId: string, at: number): Promise<Buffer | null>;
  roomDag: RoomDagService;
}

/** A PDU that passed the format, signature and hash checks. */
interface Verified {
  eventId: string;
  pdu: Pdu;
  signedBy: ReadonlySet<string>;
}

const toAuthEntry = (event: { eventId: string; pdu: Pdu; status?: string }): KnownAuthEvent => ({
  ...event.pdu,
  event_id: event.eventId,
  ...(event.status === 'rejected' ? { rejected: true } : {}),
});

export function createRoomFederation(ctx: ServiceContext, deps: RoomFederationDeps) {
  const { serverName } = ctx.settings;
  const { roomDag, client } = deps;
  const stores = () => ctx.storage.stores;
  let eduReceiver: EduReceiver = async () => undefined;

  async function roomVersionOf(roomId: string): Promise<RoomVersionId> {
    const room = await stores().rooms.selectRoom(roomId);
    if (!room) throw notFound('Unknown room');
    return room.roomVersion as RoomVersionId;
  }

  /** 403 when the room's `m.room.server_acl` denies `origin`. */
  async function checkAcl(s: Stores, roomId: string, origin: string): Promise<void> {
    const [acl] = await s.rooms.selectStateEvents(roomId, [['m.room.server_acl', '']]);
    if (acl && !isServerAllowed(origin, parseServerAcl(acl.pdu.content))) {
      throw forbidden('Server is banned from this room');
    }
  }

  /** Whether a user of `server` is joined to the room now. */
  async function serverInRoom(s: Stores, roomId: string, server: string): Promise<boolean> {
    const servers = await s.federationOutbox.selectRemoteJoinedServers(roomId, serverName);
    return servers.includes(server);
  }

  /** The room (404), the ACL (403) and the origin's presence in it (403), for reads. */
  async function checkReader(
    roomId: string,
    origin: string,
    options: { fullState?: boolean } = {},
  ): Promise<RoomVersionId> {
    const version = await roomVersionOf(roomId);
    await checkAcl(stores(), roomId, origin);
    // Before the member check, which a partial state cannot answer for every server.
    if (options.fullState) await assertFullState(roomId);
    if (!(await serverInRoom(stores(), roomId, origin))) {
      throw forbidden('Your server has no member in this room');
    }
    return version;
  }

  /**
   * A room whose state is partial here (joined with partial state, MSC3706, its full state
   * not in yet) is refused with 404 where the answer would need its whole state (make_join,
   * /state, /state_ids): the asking server tries another one rather than take an incomplete
   * state as complete (as Synapse answers).
   */
  async function assertFullState(roomId: string): Promise<void> {
    if (await stores().partialState.selectPartialRoom(roomId))
      throw notFound('This server is not fully joined to the room yet');
  }

  /** Keys for a PDU's required signatures, fetched before the (synchronous) check. */
  async function keyLookup(pdu: Pdu, version: RoomVersionId) {
    const found = new Map<string, ServerVerifyKey>();
    for (const server of requiredSigningServers(pdu, version)) {
      const signatures = pdu.signatures[server];
      if (!isObject(signatures)) continue;
      for (const keyId of Object.keys(signatures)) {
        const key = await deps.publicKeyFor(server, keyId, pdu.origin_server_ts).catch(() => null);
        if (key) found.set(`${server}\u0000${keyId}`, { key });
      }
    }
    return (server: string, keyId: string) => found.get(`${server}\u0000${keyId}`);
  }

  /** Steps 1-3: format, signatures (dropped on failure: an Error), content hash (redacted). */
  async function verify(raw: unknown, version: RoomVersionId): Promise<Verified> {
    const format = checkPduFormat(raw, version);
    if (!format.valid) throw badJson(format.reason);
    const signatures = checkPduSignatures(
      format.pdu,
      version,
      await keyLookup(format.pdu, version),
    );
    if (!signatures.valid) throw forbidden(signatures.reason);
    const hash = checkPduContentHash(format.pdu, version);
    return { eventId: format.eventId, pdu: hash.pdu, signedBy: signatures.signedBy };
  }

  const checksFor = (signedBy: ReadonlySet<string>): AuthChecks => ({
    isSignedBy: (server) => signedBy.has(server),
    verifyThirdPartySigned,
  });

  async function createEventOf(
    s: Stores,
    roomId: string,
    version: RoomVersionId,
  ): Promise<KnownAuthEvent | undefined> {
    if (!getRoomVersion(version).roomIdFromCreateEvent) return undefined;
    const id = `$${roomId.slice(1)}`;
    const found = (await roomDag.knownEvents(s, [id])).get(id);
    return found ? toAuthEntry(found) : undefined;
  }

  /** The same, from the room's current state. */
  async function currentAuthState(
    s: Stores,
    roomId: string,
    pdu: Pdu,
    version: RoomVersionId,
  ): Promise<Map<StateKey, AuthStateEvent>> {
    const keys = [
      stateKeyOf('m.room.create', ''),
      ...authEventSelection(pdu.type, pdu.state_key, pdu.sender, pdu.content, version),
    ].map((key) => key.split('\u0000') as [string, string]);
    const rows = await s.rooms.selectStateEvents(roomId, keys);
    return new Map(
      rows.map((row) => [
        stateKeyOf(row.pdu.type, row.pdu.state_key ?? ''),
        { ...row.pdu, event_id: row.eventId },
      ]),
    );
  }

  /** Fetches an event from `origin` and checks its format, signatures and hash. */
  async function fetchEvent(
    origin: string,
    eventId: string,
    version: RoomVersionId,
  ): Promise<Verified | undefined> {
    const res = await client
      .request(origin, 'GET', `/_matrix/federation/v1/event/${encodeURIComponent(eventId)}`)
      .catch(() => undefined);
    if (!res || res.status !== 200 || !isObject(res.body) || !Array.isArray(res.body.pdus)) {
      return undefined;
    }
    const verified = await verify(res.body.pdus[0], version).catch(() => undefined);
    return verified?.eventId === eventId ? verified : undefined;
  }

  /** Fetches the auth chain of an event from `origin` and keeps what checks out as outliers. */
  async function fetchAuthChain(
    origin: string,
    roomId: string,
    eventId: string,
    version: RoomVersionId,
  ): Promise<void> {
    const res = await client
      .request(
        origin,
        'GET',
        `/_matrix/federation/v1/event_auth/${encodeURIComponent(roomId)}/${encodeURIComponent(eventId)}`,
      )
      .catch(() => undefined);
    if (!res || res.status !== 200 || !isObject(res.body) || !Array.isArray(res.body.auth_chain)) {
      return;
    }
    const verified: Verified[] = [];
    for (const raw of res.body.auth_chain) {
      const event = await verify(raw, version).catch(() => undefined);
      if (event && (event.pdu.room_id === roomId || event.pdu.type === 'm.room.create'))
        verified.push(event);
    }
    await ctx.storage.tx('federation-outliers', (s) => keepFetched(s, roomId, version, verified));
  }

  /**
   * Fetched events (auth chains, state) kept as outliers once each passed the check against
   * its own auth events (auth events first); one that fails is kept as rejected, one whose
   * auth events cannot be had is not kept. Answers each event's verdict.
   */
  async function keepFetched(
    s: Stores,
    roomId: string,
    version: RoomVersionId,
    fetched: readonly Verified[],
  ): Promise<Map<string, FetchedVerdict>> {
    const createId = getRoomVersion(version).roomIdFromCreateEvent
      ? `$${roomId.slice(1)}`
      : undefined;
    const referenced = new Set<string>(createId ? [createId] : []);
    for (const event of fetched) for (const id of event.pdu.auth_events) referenced.add(id);
    const known = await roomDag.knownEvents(s, [...referenced]);
    const verdicts = checkFetchedEvents(
      fetched.map((e) => ({ eventId: e.eventId, pdu: e.pdu, checks: checksFor(e.signedBy) })),
      (id) => {
        const event = known.get(id);
        return event ? toAuthEntry(event) : undefined;
      },
      version,
      createId ? { createEventId: createId } : {},
    );
    const kept: (Verified & { rejectedReason?: string })[] = [];
    for (const event of fetched) {
      const verdict = verdicts.get(event.eventId);
      if (verdict?.verdict === 'accepted') kept.push(event);
      else if (verdict?.verdict === 'rejected')
        kept.push({ ...event, rejectedReason: verdict.reason });
    }
    await roomDag.persistOutliers(s, roomId, version, kept);
    return verdicts;
  }

  /** The state after `eventId`, asked of `origin` (/state_ids), its events fetched and kept. */
  async function fetchStateAfter(
    origin: string,
    roomId: string,
    eventId: string,
    version: RoomVersionId,
  ): Promise<Map<StateKey, string> | undefined> {
    const res = await client
      .request(
        origin,
        'GET',
        `/_matrix/federation/v1/state_ids/${encodeURIComponent(roomId)}?event_id=${encodeURIComponent(eventId)}`,
      )
      .catch(() => undefined);
    if (!res || res.status !== 200 || !isObject(res.body)) return undefined;
    const pduIds = res.body.pdu_ids;
    const authIds = res.body.auth_chain_ids;
    if (!Array.isArray(pduIds) || !Array.isArray(authIds)) return undefined;
    const wanted = [...pduIds, ...authIds, eventId].filter(
      (id): id is string => typeof id === 'string',
    );
    const known = await roomDag.knownEvents(stores(), wanted);
    const fetched: Verified[] = [];
    for (const id of wanted) {
      if (known.has(id)) continue;
      const event = await fetchEvent(origin, id, version);
      if (!event) return undefined;
      fetched.push(event);
    }
    await ctx.storage.tx('federation-outliers', (s) => keepFetched(s, roomId, version, fetched));
    const all = await roomDag.knownEvents(stores(), wanted);
    const state = new Map<StateKey, string>();
    for (const id of pduIds) {
      const event = all.get(id as string);
      // A state naming an event we could not check is not usable; a rejected one is left out.
      if (!event) return undefined;
      if (event.pdu.state_key !== undefined && event.status !== 'rejected')
        state.set(stateKeyOf(event.pdu.type, event.pdu.state_key), event.eventId);
    }
    const prev = all.get(eventId);
    if (prev?.pdu.state_key !== undefined && prev.status !== 'rejected')
      state.set(stateKeyOf(prev.pdu.type, prev.pdu.state_key), eventId);
    return state;
  }

  async function resolveStates(
    s: Stores,
    version: RoomVersionId,
    states: readonly StateMap[],
  ): Promise<Map<StateKey, string>> {
    const named = new Set<string>();
    for (const state of states) for (const id of state.values()) named.add(id);
    const chain = await s.roomDag.selectAuthChainIds([...named]);
    const known = await roomDag.knownEvents(s, [...named, ...chain]);
    return resolveState(version, states, (id): ResolvableEvent | undefined => {
      const e = known.get(id);
      return e ? { ...e.pdu, event_id: id, rejected: e.status === 'rejected' } : undefined;
    });
  }

  /**
   * The state before an event: from its prev events' states, fetching (/state_ids) the
   * state after prev events we do not have. Undefined when it cannot be had.
   */
  async function stateBefore(
    s: Stores,
    roomId: string,
    pdu: Pdu,
    version: RoomVersionId,
    fetched: ReadonlyMap<string, StateMap>,
  ): Promise<{ state?: StateMap; linear: boolean } | undefined> {
    const groups = await s.roomDag.selectEventStateGroups(pdu.prev_events);
    const current = await s.roomDag.selectCurrentGroup(roomId);
    const afterGroups = new Set([...groups.values()].map((g) => g.after));
    if (
      groups.size === pdu.prev_events.length &&
      afterGroups.size === 1 &&
      current !== undefined &&
      afterGroups.has(current.groupId)
    ) {
      return { linear: true };
    }
    const states: StateMap[] = [];
    for (const g of afterGroups) states.push(await s.roomDag.selectStateGroup(g));
    for (const prev of pdu.prev_events) {
      if (groups.has(prev)) continue;
      const state = fetched.get(prev);
      if (!state) return undefined;
      states.push(state);
    }
    if (states.length === 1) return { state: states[0] as StateMap, linear: false };
    return { state: await resolveStates(s, version, states), linear: false };
  }

  /**
   * Steps 4-6 of the checks on receipt for a verified PDU, then storage. `fetchGaps` allows
   * /get_missing_events for missing prev events (not for events fetched that way).
   * Returns an error string for the transaction's answer, or undefined.
   */
  async function receiveVerified(
    origin: string,
    roomId: string,
    version: RoomVersionId,
    event: Verified,
    fetchGaps: boolean,
  ): Promise<string | undefined> {
    const { eventId, pdu } = event;
    const existing = (await roomDag.knownEvents(stores(), [eventId])).get(eventId);
    if (existing && existing.status !== 'outlier') return undefined;

    if (fetchGaps) {
      const knownPrevs = await roomDag.knownEvents(stores(), pdu.prev_events);
      const missing = pdu.prev_events.filter((id) => !knownPrevs.has(id));
      if (missing.length > 0) await fillGap(origin, roomId, version, event);
    }

    // Everything fetched from the origin is fetched before the transaction (whose lock would
    // otherwise be held across requests, and key fetches need the database too).
    const authBefore = await roomDag.knownEvents(stores(), pdu.auth_events);
    if (pdu.auth_events.some((id) => !authBefore.has(id))) {
      await fetchAuthChain(origin, roomId, eventId, version);
    }
    const fetchedStates = new Map<string, StateMap>();
    const prevGroups = await stores().roomDag.selectEventStateGroups(pdu.prev_events);
    for (const prev of pdu.prev_events) {
      if (prevGroups.has(prev)) continue;
      const state = await fetchStateAfter(origin, roomId, prev, version);
      if (state) fetchedStates.set(prev, state);
    }

    return ctx.storage.tx('federation-receive', async (s) => {
      await s.rooms.lockRoom(roomId);
      const checks = checksFor(event.signedBy);
      const createEvent = await createEventOf(s, roomId, version);
      const authKnown = await roomDag.knownEvents(s, pdu.auth_events);
      const byAuth = checkAgainstAuthEvents(
        pdu,
        eventId,
        (id) => {
          const e = authKnown.get(id);
          return e ? toAuthEntry(e) : undefined;
        },
        version,
        { checks, ...(createEvent ? { createEvent } : {}) },
      );
      if ('missing' in byAuth) return `Missing auth events: ${byAuth.missing.join(', ')}`;
      const persist = (
        status: 'accepted' | 'rejected' | 'soft_failed',
        state?: StateMap,
        reason?: string,
      ) =>
        roomDag.persistReceived(s, {
          roomId,
          version,
          eventId,
          pdu,
          status,
          ...(reason !== undefined ? { reason } : {}),
          ...(state ? { stateBefore: state } : {}),
          origin,
        });
      if (!byAuth.allowed) {
        await persist('rejected', undefined, byAuth.reason).catch(() => undefined);
        return byAuth.reason;
      }
      const before = await stateBefore(s, roomId, pdu, version, fetchedStates);
      if (!before) return 'The state before the event could not be fetched';
      // A room joined with partial state lacks most member events until its full state is
      // in: the event's own auth events (checked above) stand in for those it needs.
      const partial = (await s.partialState.selectPartialRoom(roomId)) !== undefined;
      const ownAuth = partial ? [...authKnown.values()].map(toAuthEntry) : [];
      const beforeAuth = fillMissingMembers(
        before.linear
          ? await currentAuthState(s, roomId, pdu, version)
          : await roomDag.authStateOf(s, pdu, version, before.state as StateMap),
        ownAuth,
      );
      const byState = checkAgainstState(pdu, eventId, beforeAuth, version, checks);
      if (!byState.allowed) {
        await persist('rejected', before.state, byState.reason);
        return byState.reason;
      }
      if (!before.linear) {
        const current = fillMissingMembers(
          await currentAuthState(s, roomId, pdu, version),
          ownAuth,
        );
        const byCurrent = checkAgainstState(pdu, eventId, current, version, checks);
        if (!byCurrent.allowed) {
          await persist('soft_failed', before.state, byCurrent.reason);
          return undefined;
        }
      }
      await persist('accepted', before.state);
      return undefined;
    });
  }

  /**
   * /get_missing_events from the origin for the gap before `event`, in rounds of
   * `MISSING_EVENTS_LIMIT` events working back from it (each round asks for what precedes
   * the oldest events fetched so far whose prev events are still unknown), at most
   * `MAX_GAP_ROUNDS` rounds; then each event fetched is received, oldest first. What is left
   * of a longer gap is bridged by the state of the oldest events' prev events (/state_ids).
   */
  async function fillGap(
    origin: string,
    roomId: string,
    version: RoomVersionId,
    event: Verified,
  ): Promise<void> {
    const earliest = (await stores().rooms.selectExtremities(roomId)).map((e) => e.eventId);
    const fetched = new Map<string, Verified>();
    let latest = [event.eventId];
    for (let round = 0; round < MAX_GAP_ROUNDS && latest.length > 0; round++) {
      const res = await client
        .request(
          origin,
          'POST',
          `/_matrix/federation/v1/get_missing_events/${encodeURIComponent(roomId)}`,
          {
            body: {
              earliest_events: earliest,
              latest_events: latest,
              limit: MISSING_EVENTS_LIMIT,
              min_depth: 0,
            },
          },
        )
        .catch(() => undefined);
      if (!res || res.status !== 200 || !isObject(res.body) || !Array.isArray(res.body.events)) {
        break;
      }
      let added = 0;
      for (const raw of res.body.events.slice(0, MISSING_EVENTS_LIMIT)) {
        const verified = await verify(raw, version).catch(() => undefined);
        if (!verified || verified.pdu.room_id !== roomId || fetched.has(verified.eventId)) continue;
        fetched.set(verified.eventId, verified);
        added++;
      }
      if (added === 0) break;
      // The next round starts from the fetched events whose prev events are still unknown.
      const prevs = new Set<string>();
      for (const e of fetched.values()) for (const id of e.pdu.prev_events) prevs.add(id);
      const unknown = [...prevs].filter((id) => !fetched.has(id) && id !== event.eventId);
      const known = await roomDag.knownEvents(stores(), unknown);
      const open = new Set(unknown.filter((id) => !known.has(id)));
      latest = [...fetched.values()]
        .filter((e) => e.pdu.prev_events.some((id) => open.has(id)))
        .map((e) => e.eventId);
    }
    const ordered = [...fetched.values()].sort((a, b) => a.pdu.depth - b.pdu.depth);
    for (const missing of ordered) await receiveVerified(origin, roomId, version, missing, false);
  }

  /** One PDU of a transaction: its result for the answer (`{}` or `{error}`). */
  async function receivePdu(origin: string, raw: unknown): Promise<[string, object] | undefined> {
    if (!isObject(raw) || typeof raw.room_id !== 'string') return undefined;
    const roomId = raw.room_id;
    const room = await stores().rooms.selectRoom(roomId);
    if (!room) return undefined;
    const version = room.roomVersion as RoomVersionId;
    let event: Verified;
    try {
      event = await verify(raw, version);
    } catch (error) {
      const format = checkPduFormat(raw, version);
      return format.valid ? [format.eventId, { error: (error as Error).message }] : undefined;
    }
    try {
      await checkAcl(stores(), roomId, origin);
      const error = await receiveVerified(origin, roomId, version, event, true);
      return [event.eventId, error === undefined ? {} : { error }];
    } catch (error) {
      return [event.eventId, { error: (error as Error).message }];
    }
  }

  /** Builds the template of a membership event for make_join, make_leave, make_knock. */
  async function template(
    roomId: string,
    userId: string,
    origin: string,
    membership: 'join' | 'leave' | 'knock',
    versions: readonly string[] | undefined,
  ): Promise<{ event: JsonObject; room_version: RoomVersionId }> {
    const version = await roomVersionOf(roomId);
    if (versions !== undefined && !versions.includes(version)) {
      throw new MatrixError(
        400,
        'M_INCOMPATIBLE_ROOM_VERSION',
        `The room is of version ${version}, which your server does not support`,
      );
    }
    if (parseUserId(userId)?.serverName !== origin) {
      throw forbidden('The user is not of the requesting server');
    }
    await checkAcl(stores(), roomId, origin);
    const s = stores();
    const content: JsonObject = { membership };
    const selection = authEventSelection('m.room.member', userId, userId, content, version);
    const keys = [stateKeyOf('m.room.create', ''), ...selection].map(
      (k) => k.split('\u0000') as [string, string],
    );
    const rows = await s.rooms.selectStateEvents(roomId, keys);
    const state = new Map<StateKey, AuthStateEvent>(
      rows.map((r) => [
        stateKeyOf(r.pdu.type, r.pdu.state_key ?? ''),
        { ...r.pdu, event_id: r.eventId },
      ]),
    );
    if (membership === 'join') {
      const via = await restrictedAuthoriser(roomId, userId, version, state);
      if (via) content.join_authorised_via_users_server = via;
    }
    const rules = getRoomVersion(version);
    const authEvents = authEventSelection('m.room.member', userId, userId, content, version)
      .filter((k) => !(k === stateKeyOf('m.room.create', '') && !rules.createEventInAuthEvents))
      .map((k) => state.get(k)?.event_id)
      .filter((id): id is string => id !== undefined);
    const extremities = (await s.rooms.selectExtremities(roomId))
      .sort((a, b) => b.depth - a.depth)
      .slice(0, 10);
    const event: JsonObject = {
      room_id: roomId,
      sender: userId,
      type: 'm.room.member',
      state_key: userId,
      content,
      origin_server_ts: ctx.now(),
      prev_events: extremities.map((e) => e.eventId),
      auth_events: authEvents,
      depth: Math.max(0, ...extremities.map((e) => e.depth)) + 1,
    };
    const allowed = authorizeEvent(
      { ...(event as unknown as Pdu), event_id: '$template' },
      state,
      version,
      { isSignedBy: () => true, verifyThirdPartySigned },
    );
    if (!allowed.allowed) throw forbidden(allowed.reason);
    return { event, room_version: version };
  }

  /**
   * For a restricted room the user may not join otherwise: a local member who can invite,
   * when the user is joined to one of the rooms the join rule allows (as far as we know).
   */
  async function restrictedAuthoriser(
    roomId: string,
    userId: string,
    version: RoomVersionId,
    state: ReadonlyMap<StateKey, AuthStateEvent>,
  ): Promise<string | undefined> {
    const rule = state.get(stateKeyOf('m.room.join_rules', ''))?.content;
    if (rule?.join_rule !== 'restricted' && rule?.join_rule !== 'knock_restricted')
      return undefined;
    const own = state.get(stateKeyOf('m.room.member', userId))?.content.membership;
    if (own === 'join' || own === 'invite') return undefined;
    const allow = Array.isArray(rule.allow) ? rule.allow : [];
    let satisfied = false;
    for (const entry of allow) {
      if (!isObject(entry) || entry.type !== 'm.room_membership') continue;
      if (typeof entry.room_id !== 'string') continue;
      const m = await stores().rooms.selectMembership(entry.room_id, userId);
      if (m?.membership === 'join') satisfied = true;
    }
    if (!satisfied) return undefined;
    const members = await stores().rooms.selectMembersOfRoom(roomId, 'join');
    const all = await stores().rooms.selectAllStateEvents(roomId);
    const authState = new Map<StateKey, AuthStateEvent>(
      all
        .filter((r) => r.pdu.type === 'm.room.power_levels' || r.pdu.type === 'm.room.create')
        .map((r) => [
          stateKeyOf(r.pdu.type, r.pdu.state_key ?? ''),
          { ...r.pdu, event_id: r.eventId },
        ]),
    );
    const levels = authState.get(stateKeyOf('m.room.power_levels', ''))?.content;
    const inviteLevel = typeof levels?.invite === 'number' ? levels.invite : 0;
    return members.find(
      (m) =>
        parseUserId(m)?.serverName === serverName &&
        powerLevelOf(m, authState, version) >= inviteLevel,
    );
  }

  /**
   * send_join / send_leave / send_knock: the event a remote user made from our template,
   * checked and stored, then passed on to the room's other servers.
   */
  async function sendMembership(
    origin: string,
    roomId: string,
    eventId: string,
    raw: unknown,
    membership: 'join' | 'leave' | 'knock',
  ): Promise<{ eventId: string; pdu: Pdu; version: RoomVersionId }> {
    const version = await roomVersionOf(roomId);
    await checkAcl(stores(), roomId, origin);
    const checked = checkPduFormat(raw, version);
    if (!checked.valid) throw badJson(checked.reason);
    const { pdu } = checked;
    if (checked.eventId !== eventId) throw badJson('The event ID does not match the event');
    if (pdu.room_id !== roomId) throw badJson('The event is of another room');
    if (
      pdu.type !== 'm.room.member' ||
      pdu.state_key !== pdu.sender ||
      pdu.content.membership !== membership
    ) {
      throw badJson(`The event is not a ${membership} of its sender`);
    }
    if (parseUserId(pdu.sender)?.serverName !== origin) {
      throw forbidden('The sender is not of the requesting server');
    }
    let toStore = pdu;
    const via = pdu.content.join_authorised_via_users_server;
    if (
      membership === 'join' &&
      typeof via === 'string' &&
      parseUserId(via)?.serverName === serverName
    ) {
      const ours = signPdu(pdu, version, serverName, ctx.signingKey).signatures[serverName];
      toStore = {
        ...pdu,
        signatures: { ...pdu.signatures, ...(ours ? { [serverName]: ours } : {}) },
      };
    }
    const event = await verify(toStore, version);
    const result = await ctx.storage.tx('federation-membership', async (s) => {
      await s.rooms.lockRoom(roomId);
      const createEvent = await createEventOf(s, roomId, version);
      const authKnown = await roomDag.knownEvents(s, pdu.auth_events);
      const checks = checksFor(event.signedBy);
      const byAuth = checkAgainstAuthEvents(
        event.pdu,
        eventId,
        (id) => {
          const e = authKnown.get(id);
          return e ? toAuthEntry(e) : undefined;
        },
        version,
        { checks, ...(createEvent ? { createEvent } : {}) },
      );
      if (!byAuth.allowed) throw forbidden(byAuth.reason);
      const current = await currentAuthState(s, roomId, event.pdu, version);
      const byState = checkAgainstState(event.pdu, eventId, current, version, checks);
      if (!byState.allowed) throw forbidden(byState.reason);
      const known = await roomDag.knownEvents(s, event.pdu.prev_events);
      if (known.size !== new Set(event.pdu.prev_events).size) {
        throw forbidden('The event has prev events this server does not have');
      }
      return roomDag.persistReceived(s, {
        roomId,
        version,
        eventId,
        pdu: event.pdu,
        status: 'accepted',
        origin,
        relay: true,
      });
    });
    void result;
    return { eventId, pdu: event.pdu, version };
  }

  const pduOf = (e: KnownEvent): Pdu => e.pdu;

  /** Whether `server` may see an event: history visibility at it, per server. */
  async function visibleTo(s: Stores, event: KnownEvent, server: string): Promise<boolean> {
    const state = await roomDag.stateAt(s, event.eventId, 'before');
    if (!state) return true;
    const visibilityId = state.get(stateKeyOf('m.room.history_visibility', ''));
    const visibility = visibilityId
      ? (await roomDag.knownEvents(s, [visibilityId])).get(visibilityId)?.pdu.content
          .history_visibility
      : 'shared';
    if (visibility === 'world_readable' || visibility === 'shared' || visibility === undefined) {
      return true;
    }
    const memberIds = [...state]
      .filter(([key]) => key.startsWith('m.room.member\u0000'))
      .filter(([key]) => key.endsWith(`:${server}`))
      .map(([, id]) => id);
    const members = await roomDag.knownEvents(s, memberIds);
    for (const member of members.values()) {
      const m = member.pdu.content.membership;
      if (m === 'join') return true;
      if (m === 'invite' && visibility === 'invited') return true;
    }
    return false;
  }

  /** An event for a remote server: redacted (as a stored PDU already is) or refused. */
  async function serveEvents(
    s: Stores,
    events: readonly KnownEvent[],
    origin: string,
  ): Promise<Pdu[]> {
    const out: Pdu[] = [];
    for (const event of events) {
      if (event.status === 'rejected') continue;
      if (await visibleTo(s, event, origin)) out.push(pduOf(event));
    }
    return out;
  }

  async function stateAndChain(s: Stores, eventId: string, roomId: string) {
    const known = (await roomDag.knownEvents(s, [eventId])).get(eventId);
    if (!known || known.roomId !== roomId || known.status === 'outlier') {
      throw notFound('Unknown event');
    }
    const state = await roomDag.stateAt(s, eventId, 'before');
    if (!state) throw notFound('No state is known at this event');
    const ids = [...state.values()];
    const chain = await s.roomDag.selectAuthChainIds(ids);
    return { state, ids, chain };
  }

  return {
    /**
     * The state after an event, asked of a server (/state_ids), its unknown events fetched
     * (/event), checked against their auth events and kept: as /send does it (backfill too).
     */
    fetchStateAfter,

    /** Where a transaction's EDUs go (the EDU handler, when built). */
    setEduReceiver(receiver: EduReceiver): void {
      eduReceiver = receiver;
    },

    /** `PUT /send/{txnId}`: each PDU's result, idempotent per origin and transaction. */
    async receiveTransaction(
      origin: string,
      txnId: string,
      body: { pdus: unknown[]; edus?: unknown[] },
    ): Promise<{ pdus: Record<string, object> }> {
      const seen = await stores().roomDag.selectReceivedTxn(origin, txnId);
      if (seen !== undefined) return JSON.parse(seen) as { pdus: Record<string, object> };
      if (body.pdus.length > MAX_TXN_PDUS) throw badJson(`At most ${MAX_TXN_PDUS} PDUs`);
      if ((body.edus?.length ?? 0) > MAX_TXN_EDUS) throw badJson(`At most ${MAX_TXN_EDUS} EDUs`);
      const pdus: Record<string, object> = {};
      for (const raw of body.pdus) {
        const result = await receivePdu(origin, raw);
        if (result) pdus[result[0]] = result[1];
      }
      await receiveEdus(origin, body.edus ?? []);
      const answer = { pdus };
      await stores().roomDag.insertReceivedTxn(origin, txnId, JSON.stringify(answer), ctx.now());
      return answer;
    },

    async makeJoin(roomId: string, userId: string, origin: string, versions: readonly string[]) {
      await assertFullState(roomId);
      return template(roomId, userId, origin, 'join', versions);
    },
    makeLeave: (roomId: string, userId: string, origin: string) =>
      template(roomId, userId, origin, 'leave', undefined),
    makeKnock: (roomId: string, userId: string, origin: string, versions: readonly string[]) =>
      template(roomId, userId, origin, 'knock', versions),

    /**
     * send_join v2: the join stored and relayed; the state before it and the auth chain.
     * With `omitMembers` (MSC3706, `?omit_members=true`) the answer leaves out member events
     * (`partialJoinState`) and the auth chain's events already in `state`.
     */
    async sendJoin(
      origin: string,
      roomId: string,
      eventId: string,
      raw: unknown,
      omitMembers = false,
    ) {
      const joined = await sendMembership(origin, roomId, eventId, raw, 'join');
      const s = stores();
      // The state before the join (its auth chain is read below, for what is sent only).
      const before = await roomDag.stateAt(s, eventId, 'before');
      if (!before) throw notFound('No state is known at this event');
      const ids = [...before.values()];
      const all = await roomDag.knownEvents(s, ids);
      const fullState = ids.map((id) => all.get(id)).filter((e): e is KnownEvent => !!e);
      const servers = new Set([serverName]);
      for (const e of fullState) {
        if (e.pdu.type === 'm.room.member' && e.pdu.content.membership === 'join') {
          const server = parseUserId(e.pdu.state_key ?? '')?.serverName;
          if (server) servers.add(server);
        }
      }
      const keptIds = omitMembers
        ? partialJoinState(before, all, joined.pdu.state_key ?? '')
        : new Set(ids);
      const state = fullState.filter((e) => keptIds.has(e.eventId));
      // The auth chain of the state sent and of the join; with omit_members, without the
      // events `state` already carries (the spec lets them be left out).
      const chainIds = new Set(
        await s.roomDag.selectAuthChainIds([...keptIds, ...joined.pdu.auth_events]),
      );
      for (const id of joined.pdu.auth_events) chainIds.add(id);
      if (omitMembers) for (const id of keptIds) chainIds.delete(id);
      const chainKnown = await roomDag.knownEvents(s, [...chainIds]);
      const authChain = [...chainIds]
        .map((id) => chainKnown.get(id))
        .filter((e): e is KnownEvent => !!e);
      return {
        origin: serverName,
        state: state.map(pduOf),
        auth_chain: authChain.map(pduOf),
        event: joined.pdu,
        members_omitted: omitMembers,
        servers_in_room: [...servers].sort(),
      };
    },

    async sendLeave(origin: string, roomId: string, eventId: string, raw: unknown) {
      await sendMembership(origin, roomId, eventId, raw, 'leave');
      return {};
    },

    async sendKnock(origin: string, roomId: string, eventId: string, raw: unknown) {
      await sendMembership(origin, roomId, eventId, raw, 'knock');
      const rows = await stores().rooms.selectStateEvents(roomId, [
        ['m.room.create', ''],
        ['m.room.name', ''],
        ['m.room.avatar', ''],
        ['m.room.topic', ''],
        ['m.room.join_rules', ''],
        ['m.room.canonical_alias', ''],
        ['m.room.encryption', ''],
      ]);
      return {
        knock_room_state: rows.map((r) => ({
          type: r.pdu.type,
          state_key: r.pdu.state_key ?? '',
          content: r.pdu.content,
          sender: r.pdu.sender,
        })),
      };
    },

    /**
     * `PUT /v2/invite/{roomId}/{eventId}`: a room on the origin invites a local user. The
     * invite is checked (version, format, ID, membership, sender of the origin, signatures),
     * countersigned, and kept with its stripped state so the user sees it in /sync.
     */
    async invite(
      origin: string,
      roomId: string,
      eventId: string,
      body: { room_version: string; event: unknown; invite_room_state?: unknown[] },
    ) {
      if (!(RECOGNISED_ROOM_VERSIONS as readonly string[]).includes(body.room_version)) {
        throw new MatrixError(
          400,
          'M_INCOMPATIBLE_ROOM_VERSION',
          `Room version ${body.room_version} is not supported here`,
        );
      }
      const version = body.room_version as RoomVersionId;
      const checked = checkPduFormat(body.event, version);
      if (!checked.valid) throw badJson(checked.reason);
      const { pdu } = checked;
      if (checked.eventId !== eventId) throw badJson('The event ID does not match the event');
      if (pdu.room_id !== roomId) throw badJson('The event is of another room');
      if (pdu.type !== 'm.room.member' || pdu.content.membership !== 'invite') {
        throw badJson('The event is not an invite');
      }
      if (parseUserId(pdu.sender)?.serverName !== origin) {
        throw forbidden('The sender is not of the requesting server');
      }
      const invitee = pdu.state_key ?? '';
      if (parseUserId(invitee)?.serverName !== serverName) {
        throw forbidden('The invitee is not a user of this server');
      }
      const account = await stores().accounts.selectUser(invitee);
      if (!account || account.deactivated) throw notFound('Unknown user');
      // Invite blocking (MSC4380): refused before anything is kept or signed.
      await assertInvitable(stores(), invitee);
      const event = await verify(pdu, version);
      const ours = signPdu(event.pdu, version, serverName, ctx.signingKey).signatures[serverName];
      const signed: Pdu = {
        ...event.pdu,
        signatures: { ...event.pdu.signatures, ...(ours ? { [serverName]: ours } : {}) },
      };
      const resident = await stores().rooms.selectRoom(roomId);
      const residentHere =
        resident !== undefined && (await stores().roomDag.selectCurrentGroup(roomId)) !== undefined;
      if (!residentHere) {
        await ctx.storage.tx('federation-invite', async (s) => {
          await s.rooms.lockRoom(roomId);
          await roomDag.persistRemoteInvite(s, {
            roomId,
            version,
            eventId,
            pdu: signed,
            strippedState: (body.invite_room_state ?? []).filter(isObject),
          });
        });
      }
      return { event: signed };
    },

    /**
     * `PUT /v1/invite/{roomId}/{eventId}` (deprecated; the v2 body's fields without
     * `room_version`): the event is the body, its stripped state in
     * `unsigned.invite_room_state`. The spec has the receiver assume room version 1 or 2,
     * which it cannot name otherwise; here the version is the room's where the room is known,
     * else the one its `m.room.create` in the stripped state names, else "1" (not supported
     * here: 400 `M_INCOMPATIBLE_ROOM_VERSION`). The event is then checked as a v2 invite is,
     * against that version's format (so its ID must match its content from version 3 on).
     */
    async inviteV1(origin: string, roomId: string, eventId: string, body: unknown) {
      if (!isObject(body)) throw badJson('The body must be an event');
      const unsigned = isObject(body.unsigned) ? body.unsigned : {};
      const stripped = Array.isArray(unsigned.invite_room_state) ? unsigned.invite_room_state : [];
      if (stripped.length > 100) throw badJson('Too many entries in invite_room_state');
      const known = await stores().rooms.selectRoom(roomId);
      const create = stripped.find(
        (e): e is JsonObject => isObject(e) && e.type === 'm.room.create' && e.state_key === '',
      );
      const named = isObject(create?.content) ? create.content.room_version : undefined;
      const roomVersion = known?.roomVersion ?? (typeof named === 'string' ? named : '1');
      return this.invite(origin, roomId, eventId, {
        room_version: roomVersion,
        event: body,
        invite_room_state: stripped,
      });
    },

    /** `/state_ids`: the state before the event and its auth chain, as IDs. */
    async stateIds(origin: string, roomId: string, eventId: string) {
      await checkReader(roomId, origin, { fullState: true });
      const { ids, chain } = await stateAndChain(stores(), eventId, roomId);
      return { pdu_ids: ids, auth_chain_ids: chain };
    },

    /** `/state`: the same, as events. */
    async state(origin: string, roomId: string, eventId: string) {
      await checkReader(roomId, origin, { fullState: true });
      const s = stores();
      const { ids, chain } = await stateAndChain(s, eventId, roomId);
      const known = await roomDag.knownEvents(s, [...ids, ...chain]);
      const get = (id: string) => known.get(id);
      return {
        pdus: ids
          .map(get)
          .filter((e): e is KnownEvent => !!e)
          .map(pduOf),
        auth_chain: chain
          .map(get)
          .filter((e): e is KnownEvent => !!e)
          .map(pduOf),
      };
    },

    /** `/event/{eventId}`: one event, if the origin may see it. */
    async event(origin: string, eventId: string) {
      const s = stores();
      const known = (await roomDag.knownEvents(s, [eventId])).get(eventId);
      if (!known) throw notFound('Unknown event');
      await checkReader(known.roomId, origin);
      const [pdu] = await serveEvents(s, [known], origin);
      if (!pdu) throw forbidden('Your server may not see this event');
      return { origin: serverName, origin_server_ts: ctx.now(), pdus: [pdu] };
    },

    /** `/event_auth/{roomId}/{eventId}`: the event's auth chain. */
    async eventAuth(origin: string, roomId: string, eventId: string) {
      await checkReader(roomId, origin);
      const s = stores();
      const known = (await roomDag.knownEvents(s, [eventId])).get(eventId);
      if (!known || known.roomId !== roomId) throw notFound('Unknown event');
      const chain = await roomDag.authChain(s, [eventId]);
      return { auth_chain: chain.map(pduOf) };
    },

    /** `/backfill`: events before (and including) `from`, newest first, at most `limit`. */
    async backfill(origin: string, roomId: string, from: readonly string[], limit: number) {
      await checkReader(roomId, origin);
      const s = stores();
      const found: KnownEvent[] = [];
      const seen = new Set<string>();
      let frontier = [...from];
      while (frontier.length > 0 && found.length < limit) {
        const known = await roomDag.knownEvents(
          s,
          frontier.filter((id) => !seen.has(id)),
        );
        const next: string[] = [];
        const batch = [...known.values()]
          .filter((e) => e.roomId === roomId && e.status === 'timeline')
          .sort((a, b) => b.pdu.depth - a.pdu.depth);
        for (const e of batch) {
          if (seen.has(e.eventId) || found.length >= limit) continue;
          seen.add(e.eventId);
          found.push(e);
          next.push(...e.pdu.prev_events);
        }
        frontier = next.filter((id) => !seen.has(id));
      }
      return {
        origin: serverName,
        origin_server_ts: ctx.now(),
        pdus: await serveEvents(s, found, origin),
      };
    },

    /** `/get_missing_events`: events between `earliest` and `latest`, oldest first. */
    async getMissingEvents(
      origin: string,
      roomId: string,
      body: {
        earliest_events: string[];
        latest_events: string[];
        limit: number;
        min_depth: number;
      },
    ) {
      await checkReader(roomId, origin);
      const s = stores();
      const stop = new Set(body.earliest_events);
      const seen = new Set<string>([...body.latest_events]);
      const found: KnownEvent[] = [];
      const latest = await roomDag.knownEvents(s, body.latest_events);
      let frontier = [...latest.values()].flatMap((e) => e.pdu.prev_events);
      while (frontier.length > 0 && found.length < body.limit) {
        const ids = frontier.filter((id) => !seen.has(id) && !stop.has(id));
        ids.forEach((id) => seen.add(id));
        const known = await roomDag.knownEvents(s, ids);
        const batch = [...known.values()]
          .filter(
            (e) => e.roomId === roomId && e.status === 'timeline' && e.pdu.depth >= body.min_depth,
          )
          .sort((a, b) => b.pdu.depth - a.pdu.depth);
        const next: string[] = [];
        for (const e of batch) {
          if (found.length >= body.limit) break;
          found.push(e);
          next.push(...e.pdu.prev_events);
        }
        frontier = next;
      }
      found.sort((a, b) => a.pdu.depth - b.pdu.depth);
      return { events: await serveEvents(s, found, origin) };
    },
  };

  /** A transaction's EDUs: the one place the EDU handler is called. */
  async function receiveEdus(origin: string, edus: readonly unknown[]): Promise<void> {
    if (edus.length > 0) await eduReceiver(origin, edus);
  }
}

export type RoomFederation = ReturnType<typeof createRoomFederation>;
