/**
 * History from before this server was in a room: `/messages` paging back past the earliest
 * event held asks a resident server (`GET /_matrix/federation/v1/backfill`) for the events
 * before the room's holes (prev events we do not hold: `room_backfill_points`, recorded by
 * this module's deriver as received events arrive — a remote join's prev events first).
 * Each event answered is checked as on receipt (format, signatures of its servers, content
 * hash — redacted on mismatch —, auth against its auth events, fetched with /event_auth when
 * missing) and stored in the timeline before everything held (negative positions, newest
 * first), where history visibility lets this server's users read it: an event whose history
 * visibility (from the state before the oldest event answered, asked with /state_ids, and the
 * visibility events among the answer) is `joined` or `invited` is kept as an outlier, since no
 * user of ours was in the room then. Rejected events are kept as rejected.
 * https://spec.matrix.org/v1.19/server-server-api/#backfilling-and-retrieving-missing-events
 */
import { canonicalJson } from '../../core/canonical-json.js';
import { toClientEvent } from '../../core/client-event.js';
import type { JsonObject, Pdu, RoomVersionId } from '../../core/pdu.js';
import {
  checkAgainstAuthEvents,
  checkPduContentHash,
  checkPduFormat,
  checkPduSignatures,
  verifyThirdPartySigned,
  type KnownAuthEvent,
  type ServerVerifyKey,
} from '../../core/pdu-checks/index.js';
import { getRoomVersion } from '../../core/room-versions.js';
import type { Stores } from '../../storage/index.js';
import type { ServiceContext } from '../context.js';
import { membershipOf, type EventDeriver } from '../event-writer.js';
import { authEdgesOf } from '../rooms-dag/state-groups.js';
import type { FederationClient } from './client.js';

const isObject = (value: unknown): value is JsonObject =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** Events asked for at most in one backfill. */
const MAX_BACKFILL = 100;
/** Resident servers tried at most in one backfill. */
const MAX_SERVERS_TRIED = 3;

interface Checked {
  eventId: string;
  pdu: Pdu;
  signedBy: ReadonlySet<string>;
}

export interface BackfillDeps {
  client: FederationClient;
  publicKeyFor(server: string, keyId: string, at: number): Promise<Buffer | null>;
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

  /** The history visibility in force before `eventId`, as `server` has the state there. */
  async function visibilityBefore(
    server: string,
    roomId: string,
    eventId: string,
    version: RoomVersionId,
  ): Promise<string | undefined> {
    const res = await client
      .request(
        server,
        'GET',
        `/_matrix/federation/v1/state_ids/${r(roomId)}?event_id=${r(eventId)}`,
      )
      .catch(() => undefined);
    if (!res || res.status !== 200 || !isObject(res.body) || !Array.isArray(res.body.pdu_ids))
      return undefined;
    const ids = res.body.pdu_ids.filter((id): id is string => typeof id === 'string');
    const known = await stores().roomDag.selectKnownEvents(ids);
    for (const event of known.values())
      if (event.pdu.type === 'm.room.history_visibility' && event.pdu.state_key === '')
        return String(event.pdu.content.history_visibility ?? 'shared');
    // Not held here: each unknown state event fetched until the visibility event is found.
    for (const id of ids.filter((id) => !known.has(id))) {
      const got = await client
        .request(server, 'GET', `/_matrix/federation/v1/event/${r(id)}`)
        .catch(() => undefined);
      if (!got || got.status !== 200 || !isObject(got.body) || !Array.isArray(got.body.pdus))
        continue;
      const event = await check(got.body.pdus[0], version);
      if (event?.eventId !== id) continue;
      if (event.pdu.type === 'm.room.history_visibility' && event.pdu.state_key === '')
        return String(event.pdu.content.history_visibility ?? 'shared');
    }
    return 'shared';
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
      .filter((e) => known.get(e.eventId)?.status !== 'timeline')
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
    const oldest = fresh[0] as Checked;
    let visibility = await visibilityBefore(server, roomId, oldest.eventId, version);

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
      const toTimeline: Checked[] = [];
      for (const event of fresh) {
        const verdict = checkAgainstAuthEvents(event.pdu, event.eventId, lookup, version, {
          checks: { isSignedBy: (server) => event.signedBy.has(server), verifyThirdPartySigned },
          ...(createEvent ? { createEvent } : {}),
        });
        if (!verdict.allowed) {
          if (!('missing' in verdict && verdict.missing.length > 0))
            await s.roomDag.upsertDagEvent(
              {
                eventId: event.eventId,
                roomId,
                json: canonicalJson(event.pdu),
                status: 'rejected',
                reason: verdict.reason,
              },
              ctx.now(),
            );
          continue;
        }
        accepted.set(event.eventId, { ...event.pdu, event_id: event.eventId });
        if (event.pdu.type === 'm.room.history_visibility' && event.pdu.state_key === '')
          visibility = String(event.pdu.content.history_visibility ?? 'shared');
        if (visibility === 'joined' || visibility === 'invited' || visibility === undefined) {
          if (!known.has(event.eventId))
            await s.roomDag.upsertDagEvent(
              {
                eventId: event.eventId,
                roomId,
                json: canonicalJson(event.pdu),
                status: 'outlier',
                reason: null,
              },
              ctx.now(),
            );
        } else {
          toTimeline.push(event);
        }
        await s.roomDag.insertAuthEdges(event.eventId, authEdgesOf(event.pdu, roomId, version));
      }
      // Newest first, each before everything held (positions count down), below the floor.
      await s.backfill.insertHistoryFloor(roomId);
      const already = await s.roomDag.selectKnownEvents(toTimeline.map((e) => e.eventId));
      for (const { eventId, pdu } of [...toTimeline].reverse()) {
        if (already.get(eventId)?.status === 'timeline') continue;
        if (already.has(eventId)) await s.roomDag.deleteDagEvent(eventId);
        const json = canonicalJson(pdu);
        const membership = membershipOf(pdu);
        await s.rooms.persistEvent(
          {
            eventId,
            roomId,
            pdu,
            json,
            clientJson: JSON.stringify(
              toClientEvent({ eventId, roomId, pdu: JSON.parse(json) as Pdu }),
            ),
            ...(membership ? { membership } : {}),
          },
          await s.roomDag.nextHistoryPosition(),
          { applyState: false, extremity: false },
        );
      }
      // The holes move back: the points answered are filled, the answer's own prev events
      // not held become points (until the create event, which has none).
      const prevs = [...new Set(fresh.flatMap((e) => e.pdu.prev_events))];
      const held = await s.roomDag.selectKnownEvents([...prevs, ...points]);
      await s.backfill.deleteBackfillPoints(
        roomId,
        points.filter((id) => held.has(id)),
      );
      await s.backfill.insertBackfillPoints(
        roomId,
        prevs.filter((id) => !held.has(id)),
      );
      return accepted.size;
    });
  }

  return {
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
      const held = await s.roomDag.selectKnownEvents(prevs);
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
      const held = await stores().roomDag.selectKnownEvents(points);
      const open = points.filter((id) => !held.has(id));
      if (open.length < points.length)
        await stores().backfill.deleteBackfillPoints(
          roomId,
          points.filter((id) => held.has(id)),
        );
      if (open.length === 0) return false;
      const servers = (
        await stores().federationOutbox.selectRemoteJoinedServers(roomId, serverName)
      ).slice(0, MAX_SERVERS_TRIED);
      const version = room.roomVersion as RoomVersionId;
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
}

export type Backfill = ReturnType<typeof createBackfill>;
