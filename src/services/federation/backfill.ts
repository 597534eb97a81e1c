/**
 * History from before this server was in a room: `/messages` paging back past the earliest
 * event held asks a resident server (`GET /_matrix/federation/v1/backfill`) for the events
 * before the room's holes (prev events not in the timeline: `room_backfill_points`, recorded
 * by this module's deriver as received events arrive — a remote join's prev events first);
 * `/context` of an event not held asks for the history from that event.
 * Each event answered goes through the checks on receipt of a PDU, as on `/send`: format,
 * signatures of its servers, content hash (redacted on mismatch), auth against its auth
 * events (fetched with /event_auth when missing), and auth against the state before it — the
 * states after its prev events, the answer's own or held, or for the oldest ones asked with
 * /state_ids (their events fetched with /event), resolved when they fork. Its state is kept
 * (state groups), so history visibility is judged per user at each event when it is read.
 * Accepted events enter the timeline before everything held (negative positions, newest
 * first) through the room DAG service, with the history derivers (search, relations) only;
 * redactions held apply to them and theirs to events held. Rejected events are kept as
 * rejected, never served.
 * https://spec.matrix.org/v1.19/server-server-api/#backfilling-and-retrieving-missing-events
 */
import { canonicalJson } from '../../core/canonical-json.js';
import { type JsonObject, type Pdu, type RoomVersionId, type StateKey } from '../../core/pdu.js';
import {
  checkAgainstAuthEvents,
  checkAgainstState,
  checkPduContentHash,
  checkPduFormat,
  checkPduSignatures,
  verifyThirdPartySigned,
  type KnownAuthEvent,
  type ServerVerifyKey,
} from '../../core/pdu-checks/index.js';
import { getRoomVersion } from '../../core/room-versions.js';
import type { KnownEvent, StateGroupHead, Stores } from '../../storage/index.js';
import type { ServiceContext } from '../context.js';
import type { EventDeriver } from '../event-writer.js';
import { redactionTargetOf, type RoomDagService } from '../rooms-dag/index.js';
import {
  authEdgesOf,
  extendGroup,
  groupForState,
  stateKeyOfPdu,
  type StateMap,
} from '../rooms-dag/state-groups.js';
import type { FederationClient } from './client.js';

const isObject = (value: unknown): value is JsonObject =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** Events asked for at most in one backfill. */
const MAX_BACKFILL = 100;
/** Resident servers tried at most in one backfill. */
const MAX_SERVERS_TRIED = 3;
/** States asked for (/state_ids) at most in one backfill: the answer's oldest events'. */
const MAX_STATE_FETCHES = 5;
/** Backfills at most to reach an event asked for by `/context`. */
const MAX_ROUNDS_TO_EVENT = 5;

/**
 * Of these known events, those that fill a hole: in the timeline, or rejected. An outlier (an
 * auth or state event fetched on its own) is still a hole in the history.
 */
const filled = (known: ReadonlyMap<string, KnownEvent>): Set<string> =>
  new Set(
    [...known.values()]
      .filter((e) => e.status === 'timeline' || e.status === 'rejected')
      .map((e) => e.eventId),
  );

interface Checked {
  eventId: string;
  pdu: Pdu;
  signedBy: ReadonlySet<string>;
}

export interface BackfillDeps {
  client: FederationClient;
  publicKeyFor(server: string, keyId: string, at: number): Promise<Buffer | null>;
  roomDag: RoomDagService;
  /** The state after an event, asked of a server with /state_ids (see the /send path). */
  fetchStateAfter(
    server: string,
    roomId: string,
    eventId: string,
    version: RoomVersionId,
  ): Promise<Map<StateKey, string> | undefined>;
}

export function createBackfill(ctx: ServiceContext, deps: BackfillDeps) {
  const { serverName } = ctx.settings;
  const { client } = deps;
  const stores = () => ctx.storage.stores;
  const r = encodeURIComponent;

  /** Steps 1-3 of the checks on receipt: undefined when dropped. */
  async function check(raw: unknown, version: RoomVersionId): Promise<Checked | undefined> {
    const format = checkPduFormat(raw, version);
    if (!format.valid) return undefined;
    const keys = new Map<string, ServerVerifyKey>();
    for (const [server, byKey] of Object.entries(format.pdu.signatures ?? {}))
      for (const keyId of Object.keys(isObject(byKey) ? byKey : {})) {
        const key = await deps
          .publicKeyFor(server, keyId, format.pdu.origin_server_ts)
          .catch(() => null);
        if (key) keys.set(`${server} ${keyId}`, { key });
      }
    const signatures = checkPduSignatures(format.pdu, version, (server, keyId) =>
      keys.get(`${server} ${keyId}`),
    );
    if (!signatures.valid) return undefined;
    const hash = checkPduContentHash(format.pdu, version);
    return { eventId: format.eventId, pdu: hash.pdu, signedBy: signatures.signedBy };
  }

  /** The auth chain of an event, asked of `server`, checked and kept as outliers. */
  async function fetchAuthChain(
    server: string,
    roomId: string,
    eventId: string,
    version: RoomVersionId,
  ): Promise<void> {
    const res = await client
      .request(server, 'GET', `/_matrix/federation/v1/event_auth/${r(roomId)}/${r(eventId)}`)
      .catch(() => undefined);
    if (!res || res.status !== 200 || !isObject(res.body) || !Array.isArray(res.body.auth_chain))
      return;
    const chain: Checked[] = [];
    for (const raw of res.body.auth_chain) {
      const event = await check(raw, version);
      if (event && (event.pdu.room_id === roomId || event.pdu.type === 'm.room.create'))
        chain.push(event);
    }
    await ctx.storage.tx('backfillAuthChain', async (s) => {
      const known = await s.roomDag.selectKnownEvents(chain.map((e) => e.eventId));
      for (const { eventId, pdu } of chain) {
        if (known.has(eventId)) continue;
        await s.roomDag.upsertDagEvent(
          { eventId, roomId, json: canonicalJson(pdu), status: 'outlier', reason: null },
          ctx.now(),
        );
        await s.roomDag.insertAuthEdges(eventId, authEdgesOf(pdu, roomId, version));
      }
    });
  }

  /** Asks `server` for the events before `points`; the number of events newly kept. */
  async function backfillFrom(
    server: string,
    roomId: string,
    version: RoomVersionId,
    points: readonly string[],
    limit: number,
  ): Promise<number | undefined> {
    const query = [...points.map((id) => `v=${r(id)}`), `limit=${limit}`].join('&');
    const res = await client
      .request(server, 'GET', `/_matrix/federation/v1/backfill/${r(roomId)}?${query}`)
      .catch(() => undefined);
    if (!res || res.status !== 200 || !isObject(res.body) || !Array.isArray(res.body.pdus))
      return undefined;
    const answered: Checked[] = [];
    for (const raw of res.body.pdus.slice(0, MAX_BACKFILL)) {
      const event = await check(raw, version);
      if (event && event.pdu.room_id === roomId) answered.push(event);
    }
    const known = await stores().roomDag.selectKnownEvents(answered.map((e) => e.eventId));
    const fresh = [...new Map(answered.map((e) => [e.eventId, e])).values()]
      // New events, and outliers (known without their state); not those already decided.
      .filter((e) => {
        const status = known.get(e.eventId)?.status;
        return status === undefined || status === 'outlier';
      })
      .sort((a, b) => a.pdu.depth - b.pdu.depth);
    if (fresh.length === 0) return 0;

    // Auth events missing (neither held nor among the answer) are asked for first.
    const inAnswer = new Set(fresh.map((e) => e.eventId));
    const authIds = [...new Set(fresh.flatMap((e) => e.pdu.auth_events))];
    const authKnown = await stores().roomDag.selectKnownEvents(authIds);
    for (const event of fresh)
      if (event.pdu.auth_events.some((id) => !authKnown.has(id) && !inAnswer.has(id))) {
        await fetchAuthChain(server, roomId, event.eventId, version);
        break;
      }
    // The states after the prev events outside the answer that have no state here (the
    // answer's oldest events'), asked with /state_ids and their events fetched, as /send does.
    const outside = [...new Set(fresh.flatMap((e) => e.pdu.prev_events))].filter(
      (id) => !inAnswer.has(id),
    );
    const withState = await stores().roomDag.selectEventStateGroups(outside);
    const fetchedStates = new Map<string, StateMap>();
    for (const prev of outside.filter((id) => !withState.has(id)).slice(0, MAX_STATE_FETCHES)) {
      const state = await deps
        .fetchStateAfter(server, roomId, prev, version)
        .catch(() => undefined);
      if (state) fetchedStates.set(prev, state);
    }

    return ctx.storage.tx('backfillRoom', async (s) => {
      await s.rooms.lockRoom(roomId);
      const auth = await s.roomDag.selectKnownEvents([
        ...new Set(fresh.flatMap((e) => e.pdu.auth_events)),
        ...(getRoomVersion(version).roomIdFromCreateEvent ? [`$${roomId.slice(1)}`] : []),
      ]);
      const accepted = new Map<string, KnownAuthEvent>();
      const lookup = (id: string): KnownAuthEvent | undefined => {
        const held = auth.get(id);
        if (held)
          return {
            ...held.pdu,
            event_id: id,
            ...(held.status === 'rejected' ? { rejected: true } : {}),
          };
        return accepted.get(id);
      };
      const createId = `$${roomId.slice(1)}`;
      const createEvent = getRoomVersion(version).roomIdFromCreateEvent
        ? lookup(createId)
        : undefined;

      // The state before and after each event of the answer, oldest first.
      const afterOf = new Map<string, { state: StateMap; head: StateGroupHead }>();
      const groupStates = new Map<number, StateMap>();
      const heldGroups = await s.roomDag.selectEventStateGroups(outside);
      const stateAfterPrev = async (
        prev: string,
      ): Promise<{ state: StateMap; head?: StateGroupHead } | undefined> => {
        const inBatch = afterOf.get(prev);
        if (inBatch) return inBatch;
        const group = heldGroups.get(prev)?.after;
        if (group !== undefined) {
          let state = groupStates.get(group);
          if (!state) {
            state = await s.roomDag.selectStateGroup(group);
            groupStates.set(group, state);
          }
          const head = await s.roomDag.selectGroupHead(group);
          return { state, ...(head ? { head } : {}) };
        }
        const fetched = fetchedStates.get(prev);
        return fetched ? { state: fetched } : undefined;
      };
      const kept: { event: Checked; before: StateMap }[] = [];
      let rejected = 0;
      for (const event of fresh) {
        const { eventId, pdu } = event;
        const checks = {
          isSignedBy: (srv: string) => event.signedBy.has(srv),
          verifyThirdPartySigned,
        };
        // Step 4: against its own auth events.
        const byAuth = checkAgainstAuthEvents(pdu, eventId, lookup, version, {
          checks,
          ...(createEvent ? { createEvent } : {}),
        });
        if (!byAuth.allowed && 'missing' in byAuth && byAuth.missing.length > 0) continue;
        let reason = byAuth.allowed ? undefined : byAuth.reason;
        // Step 5: against the state before it (its prev events' states, resolved).
        const prevStates = [];
        for (const prev of pdu.prev_events) prevStates.push(await stateAfterPrev(prev));
        const known = prevStates.filter((p) => p !== undefined);
        if (known.length < prevStates.length) {
          // Its state cannot be had: not kept (unless rejected already), still a hole.
          if (reason !== undefined) {
            await rejectEvent(s, roomId, event, reason);
            rejected++;
          }
          continue;
        }
        const before: StateMap =
          known.length === 0
            ? new Map()
            : known.length === 1
              ? (known[0] as { state: StateMap }).state
              : await deps.roomDag.resolveStates(
                  s,
                  version,
                  known.map((k) => k.state),
                );
        const base = known.find((k) => k.head !== undefined);
        const beforeHead =
          known.length === 1 && base?.head
            ? base.head
            : await groupForState(
                s,
                roomId,
                before,
                base?.head ? { head: base.head, state: base.state } : undefined,
              );
        if (reason === undefined) {
          const byState = checkAgainstState(
            pdu,
            eventId,
            await deps.roomDag.authStateOf(s, pdu, version, before),
            version,
            checks,
          );
          if (!byState.allowed) reason = byState.reason;
        }
        const key = stateKeyOfPdu(pdu);
        const applies = key !== undefined && reason === undefined;
        const after = applies ? new Map(before).set(key, eventId) : before;
        const afterHead = applies
          ? await extendGroup(s, roomId, beforeHead, new Map([[key, eventId]]))
          : beforeHead;
        await s.roomDag.insertEventStateGroups(
          eventId,
          roomId,
          beforeHead.groupId,
          afterHead.groupId,
        );
        await s.roomDag.insertAuthEdges(eventId, authEdgesOf(pdu, roomId, version));
        afterOf.set(eventId, { state: after, head: afterHead });
        if (reason !== undefined) {
          await rejectEvent(s, roomId, event, reason);
          rejected++;
          continue;
        }
        accepted.set(eventId, { ...pdu, event_id: eventId });
        kept.push({ event, before });
      }

      // Redactions: held ones naming events of the answer, and the answer's own.
      const keptById = new Map(kept.map((k) => [k.event.eventId, k]));
      const redactedBy = new Map<string, string>();
      for (const redaction of await s.roomDag.selectRedactionsOf(roomId, [...keptById.keys()])) {
        const target = keptById.get(redactionTargetOf(redaction.pdu, version) ?? '');
        if (!target || redactedBy.has(target.event.eventId)) continue;
        const state = await deps.roomDag.stateAt(s, redaction.eventId, 'before');
        if (await deps.roomDag.mayRedact(s, version, redaction.pdu, target.event.pdu, state))
          redactedBy.set(target.event.eventId, redaction.eventId);
      }
      const heldTargets: { redactionId: string; targetId: string; before: StateMap; pdu: Pdu }[] =
        [];
      for (const { event, before } of kept) {
        const targetId = redactionTargetOf(event.pdu, version);
        if (targetId === undefined) continue;
        const inAnswer = keptById.get(targetId);
        if (!inAnswer) {
          heldTargets.push({ redactionId: event.eventId, targetId, before, pdu: event.pdu });
          continue;
        }
        if (
          !redactedBy.has(targetId) &&
          (await deps.roomDag.mayRedact(s, version, event.pdu, inAnswer.event.pdu, before))
        )
          redactedBy.set(targetId, event.eventId);
      }

      // Newest first, each before everything held (positions count down), below the floor.
      await s.backfill.insertHistoryFloor(roomId);
      for (const { event } of [...kept].reverse()) {
        const by = redactedBy.get(event.eventId);
        await deps.roomDag.persistBackfilled(s, roomId, version, {
          eventId: event.eventId,
          pdu: event.pdu,
          ...(by !== undefined ? { redactedBy: by } : {}),
        });
      }
      for (const { redactionId, targetId, before, pdu } of heldTargets) {
        const target = (await s.roomDag.selectKnownEvents([targetId])).get(targetId);
        if (target?.status !== 'timeline' || target.roomId !== roomId) continue;
        if (await deps.roomDag.mayRedact(s, version, pdu, target.pdu, before))
          await s.rooms.updateRedactedBy(roomId, targetId, redactionId);
      }
      // The holes move back: the points answered are filled, the answer's own prev events
      // not held become points (until the create event, which has none).
      const prevs = [...new Set(fresh.flatMap((e) => e.pdu.prev_events))];
      const held = filled(await s.roomDag.selectKnownEvents([...prevs, ...points]));
      await s.backfill.deleteBackfillPoints(
        roomId,
        points.filter((id) => held.has(id)),
      );
      await s.backfill.insertBackfillPoints(
        roomId,
        prevs.filter((id) => !held.has(id)),
      );
      return kept.length + rejected;
    });
  }

  /** An event of the answer that failed the checks: kept as rejected, never served. */
  async function rejectEvent(s: Stores, roomId: string, event: Checked, reason: string) {
    await s.roomDag.upsertDagEvent(
      {
        eventId: event.eventId,
        roomId,
        json: canonicalJson(event.pdu),
        status: 'rejected',
        reason,
      },
      ctx.now(),
    );
  }

  /** The room's version and the resident servers to ask (none: undefined). */
  async function residentServers(
    roomId: string,
  ): Promise<{ version: RoomVersionId; servers: string[] } | undefined> {
    const room = await stores().rooms.selectRoom(roomId);
    if (!room) return undefined;
    const servers = (
      await stores().federationOutbox.selectRemoteJoinedServers(roomId, serverName)
    ).slice(0, MAX_SERVERS_TRIED);
    return { version: room.roomVersion as RoomVersionId, servers };
  }

  const service = {
    /**
     * An event not held (`/context`): when a resident server has it in this room (`/event`),
     * the history is backfilled from the room's holes back to it, 100 events at a time (at
     * most `MAX_ROUNDS_TO_EVENT` rounds), so that it takes its place among the events around
     * it. Whether it is in the timeline now.
     */
    async backfillAt(roomId: string, eventId: string): Promise<boolean> {
      const room = await residentServers(roomId);
      if (!room) return false;
      let found = false;
      for (const server of room.servers) {
        const res = await client
          .request(server, 'GET', `/_matrix/federation/v1/event/${r(eventId)}`)
          .catch(() => undefined);
        if (!res || res.status !== 200 || !isObject(res.body) || !Array.isArray(res.body.pdus))
          continue;
        const event = await check(res.body.pdus[0], room.version);
        found = event?.eventId === eventId && event.pdu.room_id === roomId;
        break;
      }
      if (!found) return false;
      const inTimeline = async () =>
        (await stores().roomDag.selectKnownEvents([eventId])).get(eventId)?.status === 'timeline';
      for (let round = 0; round < MAX_ROUNDS_TO_EVENT; round++) {
        if (await inTimeline()) return true;
        if (!(await service.backfill(roomId, MAX_BACKFILL))) break;
      }
      return inTimeline();
    },

    /** Below this position the room's events were backfilled (undefined: none yet). */
    historyFloor: (roomId: string) => stores().backfill.selectHistoryFloor(roomId),

    /**
     * Records the prev events of a received event that are not held (its room's holes), and
     * fills the hole it was. Runs in the event's transaction.
     */
    deriver: (async (s: Stores, event) => {
      if (!event.received) return;
      await s.backfill.deleteBackfillPoints(event.roomId, [event.eventId]);
      const prevs = event.pdu.prev_events;
      if (prevs.length === 0) return;
      const held = filled(await s.roomDag.selectKnownEvents(prevs));
      await s.backfill.insertBackfillPoints(
        event.roomId,
        prevs.filter((id) => !held.has(id)),
      );
    }) satisfies EventDeriver,

    /**
     * Whether a backfill could still find older events: the room has holes (prev events not
     * held) and a resident server to ask. `/messages` keeps `end` while it could.
     */
    async couldBackfill(roomId: string): Promise<boolean> {
      const points = await stores().backfill.selectBackfillPoints(roomId);
      if (points.length === 0) return false;
      const held = await stores().roomDag.selectKnownEvents(points);
      if (points.every((id) => held.has(id))) return false;
      const servers = await stores().federationOutbox.selectRemoteJoinedServers(roomId, serverName);
      return servers.length > 0;
    },

    /**
     * Fetches up to `limit` events from before the room's holes from a resident server;
     * whether any were kept. Nothing is asked when the room has no holes or no other server.
     */
    async backfill(roomId: string, limit: number): Promise<boolean> {
      const room = await stores().rooms.selectRoom(roomId);
      if (!room) return false;
      const points = await stores().backfill.selectBackfillPoints(roomId);
      if (points.length === 0) return false;
      const held = filled(await stores().roomDag.selectKnownEvents(points));
      const open = points.filter((id) => !held.has(id));
      if (open.length < points.length)
        await stores().backfill.deleteBackfillPoints(
          roomId,
          points.filter((id) => held.has(id)),
        );
      if (open.length === 0) return false;
      const { servers, version } = (await residentServers(roomId)) ?? {
        servers: [],
        version: room.roomVersion as RoomVersionId,
      };
      for (const server of servers) {
        const kept = await backfillFrom(
          server,
          roomId,
          version,
          open,
          Math.min(Math.max(limit, 10), MAX_BACKFILL),
        ).catch(() => undefined);
        if (kept !== undefined) return kept > 0;
      }
      return false;
    },
  };
  return service;
}

export type Backfill = ReturnType<typeof createBackfill>;
