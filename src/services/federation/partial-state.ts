/**
 * Partial-state joins of other servers' rooms (MSC3706, MSC3902; spec v1.6 `omit_members`).
 *
 * A join asks `send_join` with `omit_members=true`; when the resident server answers
 * `members_omitted: true`, the room is imported with the state it sent (every state event
 * but the members, plus ours and the heroes') and listed in `partial_state_rooms` in the
 * same transaction. The joining user can read and send at once: our events go to the
 * room's `servers_in_room` (and to every server with a member we know) while the list of
 * members is incomplete.
 *
 * In the background (`syncRoom`), the full state before our join is asked of the resident
 * server (`/state_ids?event_id=<our join>`), then the events we lack: with `/event`, a
 * batch at a time, when few are missing, else in one `/state` request. Each is checked as on
 * receipt (format, signatures, content hash — redacted on mismatch — and auth against its
 * auth events); those failing are left out. Then, in one transaction, the room's whole state
 * snapshots (the state before our join, and any written since) get the member entries they
 * lack — every later state derives from those, so the state at each event received during
 * the gap is complete too, with later membership changes still overriding —, the room's
 * history (state and memberships at a stream position) gets them at our join's position, so
 * `/members?at=` any later point has them, and current
 * state takes every entry it lacks (timeline rows at negative positions, memberships,
 * history and the pair index at one new stream position, with a notification, so /sync
 * delivers them), in transactions of `APPLY_BATCH` entries written with multi-row
 * statements. The room leaves `partial_state_rooms` in that transaction. A failure is
 * retried (5 s, doubling up to 5 minutes, through every server in `servers_in_room`); a
 * restart resumes every room still listed.
 *
 * Member queries (`awaitFullState`) wait for the room to be complete, asking for it to be
 * fetched now; after `PARTIAL_STATE_WAIT_MS` they answer 429 `M_LIMIT_EXCEEDED` with
 * `retry_after_ms` (clients retry such an answer by themselves).
 */
import { randomBytes } from 'node:crypto';
import { limitExceeded } from '../../core/errors.js';
import { stateKeyOf, type Pdu, type RoomVersionId, type StateKey } from '../../core/pdu.js';
import {
  checkAgainstAuthEvents,
  checkPduContentHash,
  checkPduFormat,
  checkPduSignatures,
  type KnownAuthEvent,
} from '../../core/pdu-checks/index.js';
import { getRoomVersion } from '../../core/room-versions.js';
import { toClientEvent } from '../../core/client-event.js';
import type { KnownEvent, PastStateEntry, StateChange, Stores } from '../../storage/index.js';
import type { ServiceContext } from '../context.js';
import { membershipOf } from '../event-writer.js';
import type { IdentifiedPdu, RoomDagService } from '../rooms-dag/index.js';
import type { FederationClient } from './client.js';
import { signingKeysOf } from './signing-keys.js';

/** How long a member query waits for a room's full state before answering 429. */
export const PARTIAL_STATE_WAIT_MS = 30_000;
/** Missing events fetched one by one (`/event`) at most; more are asked with one `/state`. */
const EVENT_FETCH_LIMIT = 100;
/**
 * The cap on a `/state` or `/state_ids` answer: a room of 100,000 members' `/state` is about
 * 100 MB (the default cap of 16 MiB holds about 15,000 member events).
 */
const STATE_MAX_BYTES = 512 * 1024 * 1024;
/** `/event` requests in flight at once. */
const EVENT_FETCH_BATCH = 20;
/**
 * Current-state entries applied per transaction when a room completes: each transaction
 * writes them with multi-row statements (a few per 500 entries) and holds the room lock
 * only that long; the events of one batch are all that is held in memory at a time.
 */
const APPLY_BATCH = 5_000;
/** The first retry's delay, doubling up to the last. */
const RETRY_FIRST_MS = 5_000;
const RETRY_MAX_MS = 300_000;
/**
 * How long a process's lease on fetching a room lasts: processes sharing the database fetch
 * a room one at a time. The holder renews it every third of this while it works (and before
 * applying and with each batch), and releases it when done or stopped; another process takes
 * over only when the holder stopped renewing (it died), after at most this long.
 */
const LEASE_MS = 30_000;

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

export interface PartialStateDeps {
  client: FederationClient;
  publicKeyFor(server: string, keyId: string, at: number): Promise<Buffer | null>;
  roomDag: () => RoomDagService;
}

export interface PartialJoin {
  roomId: string;
  joinEventId: string;
  resident: string;
  servers: readonly string[];
}

export function createPartialStateService(ctx: ServiceContext, deps: PartialStateDeps) {
  const { serverName } = ctx.settings;
  const stores = () => ctx.storage.stores;
  /** This process, as the owner of leases. */
  const owner = randomBytes(8).toString('hex');
  /** Takes or renews this process's lease on the room's fetch: false when another holds it. */
  const lease = (roomId: string) =>
    stores().partialState.updateLease(roomId, owner, ctx.now(), ctx.now() + LEASE_MS);
  /** Rooms being fetched now, by room. */
  const running = new Map<string, Promise<boolean>>();
  /** Retries waiting, by room. */
  const timers = new Map<string, NodeJS.Timeout>();
  let stopped = false;
  let log: (message: string, fields?: Record<string, unknown>) => void = () => undefined;

  /** The public keys of every (server, key) that signed one of the events, looked up now. */
  const keyLookup = (events: readonly Pdu[]) =>
    signingKeysOf(events, (server, keyId, at) => deps.publicKeyFor(server, keyId, at));

  /** Format, signatures and content hash (redacted on mismatch) of fetched events. */
  async function verified(raw: readonly unknown[], version: RoomVersionId, roomId: string) {
    const formatted: IdentifiedPdu[] = [];
    for (const entry of raw) {
      const format = checkPduFormat(entry, version);
      if (!format.valid) continue;
      if (format.pdu.room_id !== roomId && format.pdu.type !== 'm.room.create') continue;
      formatted.push({ eventId: format.eventId, pdu: format.pdu });
    }
    const lookup = await keyLookup(formatted.map((e) => e.pdu));
    return formatted
      .filter((e) => checkPduSignatures(e.pdu, version, lookup).valid)
      .map((e) => ({ eventId: e.eventId, pdu: checkPduContentHash(e.pdu, version).pdu }));
  }

  /**
   * The fetched events that pass auth against their auth events (known here or fetched
   * with them), checked in depth order; a few passes settle events whose auth events come
   * later in the list.
   */
  function authorised(
    fetched: readonly IdentifiedPdu[],
    known: ReadonlyMap<string, KnownEvent>,
    version: RoomVersionId,
    roomId: string,
  ): IdentifiedPdu[] {
    const accepted = new Map<string, Pdu>();
    const lookup = (id: string): KnownAuthEvent | undefined => {
      const pdu = accepted.get(id);
      if (pdu) return { ...pdu, event_id: id };
      const event = known.get(id);
      if (!event || event.status === 'rejected') return undefined;
      return { ...event.pdu, event_id: id };
    };
    const createId = getRoomVersion(version).roomIdFromCreateEvent
      ? `$${roomId.slice(1)}`
      : undefined;
    let pending = [...fetched].sort((a, b) => a.pdu.depth - b.pdu.depth);
    for (let pass = 0; pass < 4 && pending.length > 0; pass++) {
      const next: IdentifiedPdu[] = [];
      for (const event of pending) {
        const createEvent = createId ? lookup(createId) : undefined;
        const result = checkAgainstAuthEvents(event.pdu, event.eventId, lookup, version, {
          ...(createEvent ? { createEvent } : {}),
        });
        if (result.allowed) accepted.set(event.eventId, event.pdu);
        else if ('missing' in result && result.missing.length > 0) next.push(event);
      }
      if (next.length === pending.length) break;
      pending = next;
    }
    return fetched.filter((e) => accepted.has(e.eventId));
  }

  /** GET a federation path from `server`: the body when 200, else undefined. */
  async function get(server: string, path: string): Promise<Record<string, unknown> | undefined> {
    const res = await deps.client
      .request(server, 'GET', path, { maxBytes: STATE_MAX_BYTES })
      .catch(() => undefined);
    return res && res.status === 200 && isObject(res.body) ? res.body : undefined;
  }

  /**
   * The full state before our join as `server` has it, its events fetched and checked.
   * Undefined when the server could not give it.
   */
  async function fetchFullState(
    server: string,
    roomId: string,
    joinEventId: string,
    version: RoomVersionId,
  ): Promise<{ state: Map<StateKey, string>; events: IdentifiedPdu[] } | undefined> {
    const q = `?event_id=${encodeURIComponent(joinEventId)}`;
    const ids = await get(
      server,
      `/_matrix/federation/v1/state_ids/${encodeURIComponent(roomId)}${q}`,
    );
    if (!ids || !Array.isArray(ids.pdu_ids) || !Array.isArray(ids.auth_chain_ids)) return;
    const pduIds = ids.pdu_ids.filter((id): id is string => typeof id === 'string');
    const authIds = ids.auth_chain_ids.filter((id): id is string => typeof id === 'string');
    const wanted = [...new Set([...pduIds, ...authIds])];
    const known = await deps.roomDag().knownEvents(stores(), wanted);
    const missing = wanted.filter((id) => !known.has(id));
    let raw: unknown[] = [];
    if (missing.length > EVENT_FETCH_LIMIT) {
      const whole = await get(
        server,
        `/_matrix/federation/v1/state/${encodeURIComponent(roomId)}${q}`,
      );
      if (!whole || !Array.isArray(whole.pdus) || !Array.isArray(whole.auth_chain)) return;
      raw = [...whole.pdus, ...whole.auth_chain];
    } else {
      for (let i = 0; i < missing.length; i += EVENT_FETCH_BATCH) {
        const answers = await Promise.all(
          missing
            .slice(i, i + EVENT_FETCH_BATCH)
            .map((id) => get(server, `/_matrix/federation/v1/event/${encodeURIComponent(id)}`)),
        );
        for (const body of answers)
          if (body && Array.isArray(body.pdus) && body.pdus.length > 0) raw.push(body.pdus[0]);
      }
    }
    const missingSet = new Set(missing);
    const checked = authorised(
      (await verified(raw, version, roomId)).filter((e) => missingSet.has(e.eventId)),
      known,
      version,
      roomId,
    );
    const byId = new Map<string, Pdu>();
    for (const e of checked) byId.set(e.eventId, e.pdu);
    for (const [id, e] of known) if (e.status !== 'rejected') byId.set(id, e.pdu);
    const state = new Map<StateKey, string>();
    for (const id of pduIds) {
      const pdu = byId.get(id);
      if (pdu?.state_key !== undefined) state.set(stateKeyOf(pdu.type, pdu.state_key), id);
    }
    return { state, events: checked };
  }

  /**
   * Writes what the full state adds into the room's history at our join's position (the
   * state and members as of any later point then hold them, with later changes still
   * winning), and brings into the timeline the events of those entries that current state
   * will not name (changed during the gap; the others enter it with current state).
   */
  async function recordAtJoin(
    s: Stores,
    roomId: string,
    joinEventId: string,
    added: readonly (readonly [string, string, string])[],
    fetched: readonly IdentifiedPdu[],
  ): Promise<void> {
    const join = await s.rooms.selectEvent(joinEventId);
    if (!join || added.length === 0) return;
    const dag = deps.roomDag();
    const pdus = new Map(fetched.map((e) => [e.eventId, e.pdu]));
    const unknown = added.map(([, , id]) => id).filter((id) => !pdus.has(id));
    for (const [id, event] of await dag.knownEvents(s, unknown)) pdus.set(id, event.pdu);
    const entries: PastStateEntry[] = [];
    for (const [type, stateKey, eventId] of added) {
      const pdu = pdus.get(eventId);
      if (!pdu) continue;
      const membership = membershipOf(pdu);
      entries.push({
        type,
        stateKey,
        eventId,
        ...(membership ? { membership: membership.membership } : {}),
      });
    }
    await s.partialState.insertStateHistoryAt(roomId, join.streamOrdering, entries);
    const present = await s.partialState.selectCurrentStateIds(roomId);
    const replaced = added
      .filter(([type, stateKey]) => present.has(stateKeyOf(type, stateKey)))
      .map(([, , id]) => id);
    const events = await dag.knownEvents(s, replaced);
    await dag.promoteToTimeline(
      s,
      [...events.values()].filter((e) => e.status !== 'timeline'),
    );
  }

  /**
   * Completes a partial-state room from `full` (the state before our join): first the
   * missing entries go into the room's whole snapshots (one transaction); then current state
   * takes what it lacks, `APPLY_BATCH` entries a transaction (the room lock is held briefly,
   * so events keep arriving meanwhile; each batch recomputes what is still missing, so an
   * entry an arriving event changed is left to it); the last one ends the partial state.
   */
  async function complete(
    roomId: string,
    version: RoomVersionId,
    joinEventId: string,
    full: { state: Map<StateKey, string>; events: IdentifiedPdu[] },
  ): Promise<number> {
    const dag = deps.roomDag();
    const listed = await ctx.storage.tx('partial-state-snapshots', async (s: Stores) => {
      await s.rooms.lockRoom(roomId);
      if (!(await s.partialState.selectPartialRoom(roomId))) return false;
      await dag.persistOutliers(s, roomId, version, full.events);
      const partial = (await dag.stateAt(s, joinEventId, 'before')) ?? new Map<StateKey, string>();
      const added: (readonly [string, string, string])[] = [];
      for (const [key, id] of full.state) {
        if (partial.has(key)) continue;
        const at = key.indexOf('\u0000');
        added.push([key.slice(0, at), key.slice(at + 1), id]);
      }
      for (const group of await s.partialState.selectSnapshotGroups(roomId))
        await s.partialState.insertMissingGroupEntries(group, added);
      await recordAtJoin(s, roomId, joinEventId, added, full.events);
      return true;
    });
    if (!listed) return 0;
    let applied = 0;
    for (;;) {
      await lease(roomId);
      const done = await ctx.storage.tx('partial-state-current', async (s: Stores) => {
        await s.rooms.lockRoom(roomId);
        // Every entry the (now complete) current group has and current_state lacks.
        const head = await s.roomDag.selectCurrentGroup(roomId);
        const currentGroup = head ? await s.roomDag.selectStateGroup(head.groupId) : new Map();
        const present = await s.partialState.selectCurrentStateIds(roomId);
        const missing = [...currentGroup].filter(([key]) => !present.has(key)).map(([, id]) => id);
        const batch = missing.slice(0, APPLY_BATCH);
        const events = await dag.knownEvents(s, batch);
        await dag.promoteToTimeline(
          s,
          [...events.values()].filter((e) => e.status !== 'timeline'),
        );
        const changes: StateChange[] = [];
        const users: string[] = [];
        for (const event of events.values()) {
          const membership = membershipOf(event.pdu);
          if (membership) users.push(membership.userId);
          changes.push({
            type: event.pdu.type,
            stateKey: event.pdu.state_key ?? '',
            eventId: event.eventId,
            sender: event.pdu.sender,
            clientJson: JSON.stringify(
              toClientEvent({ eventId: event.eventId, roomId, pdu: event.pdu }),
            ),
            ...(membership ? { membership } : {}),
          });
        }
        const last = missing.length <= APPLY_BATCH;
        const position =
          changes.length > 0 || last ? await s.rooms.nextStreamPosition() : undefined;
        if (position !== undefined && changes.length > 0) {
          await s.rooms.applyStateChanges(roomId, changes, position);
          applied += changes.length;
        }
        if (last && position !== undefined) {
          // Recorded at its position, so that /sync can tell clients that synced during the
          // gap what they could not have had then.
          const join = await s.rooms.selectEvent(joinEventId);
          await s.partialState.insertCompletion(roomId, position, join?.streamOrdering ?? 0);
          await s.partialState.deletePartialRoom(roomId);
        }
        await s.stream.notify({ rooms: [roomId], users, memberRooms: [roomId] });
        return last;
      });
      if (done) return applied;
    }
  }

  /**
   * One attempt at completing the room: true when it is complete (or no longer listed);
   * false when it failed, or when another process holds the lease on it (then it is looked
   * at again later, and `awaitFullState` sees the other process complete it).
   */
  async function syncRoom(roomId: string): Promise<boolean> {
    const row = await stores().partialState.selectPartialRoom(roomId);
    if (!row) return true;
    const room = await stores().rooms.selectRoom(roomId);
    if (!room) {
      await stores().partialState.deletePartialRoom(roomId);
      return true;
    }
    if (!(await lease(roomId))) {
      log('partial-state fetch leased by another process', { roomId });
      return false;
    }
    const heartbeat = setInterval(() => void lease(roomId).catch(() => undefined), LEASE_MS / 3);
    heartbeat.unref();
    try {
      const version = room.roomVersion as RoomVersionId;
      const servers = [...new Set([row.resident, ...row.servers])].filter((s) => s !== serverName);
      for (const server of servers) {
        const t0 = Date.now();
        const full = await fetchFullState(server, roomId, row.joinEventId, version).catch(
          () => undefined,
        );
        if (!full) continue;
        log('partial-state full state fetched', { roomId, server, entries: full.state.size });
        const t1 = Date.now();
        await lease(roomId);
        const applied = await complete(roomId, version, row.joinEventId, full);
        log('partial-state room complete', {
          roomId,
          server,
          entries: applied,
          fetchMs: t1 - t0,
          applyMs: Date.now() - t1,
        });
        return true;
      }
      await stores().partialState.bumpAttempts(roomId);
      return false;
    } finally {
      clearInterval(heartbeat);
      await stores()
        .partialState.releaseLease(roomId, owner)
        .catch(() => undefined);
    }
  }

  /** Runs `syncRoom` once at a time per room; schedules a retry on failure. */
  function run(roomId: string): Promise<boolean> {
    const timer = timers.get(roomId);
    if (timer) {
      clearTimeout(timer);
      timers.delete(roomId);
    }
    const current = running.get(roomId);
    if (current) return current;
    const attempt = syncRoom(roomId)
      .catch((err: unknown) => {
        log('partial-state fetch failed', { roomId, err: (err as Error).message });
        return false;
      })
      .then(async (done) => {
        running.delete(roomId);
        if (!done && !stopped) {
          const attempts =
            (
              await stores()
                .partialState.selectPartialRoom(roomId)
                .catch(() => undefined)
            )?.attempts ?? 1;
          const delay = Math.min(RETRY_FIRST_MS * 2 ** Math.max(0, attempts - 1), RETRY_MAX_MS);
          if (!stopped) {
            const t = setTimeout(() => void run(roomId), delay);
            t.unref();
            timers.set(roomId, t);
          }
        }
        return done;
      });
    running.set(roomId, attempt);
    return attempt;
  }

  return {
    /** Lists the room as partial-state, in the join's transaction. */
    async begin(s: Stores, join: PartialJoin): Promise<void> {
      await s.partialState.insertPartialRoom({
        roomId: join.roomId,
        joinEventId: join.joinEventId,
        resident: join.resident,
        servers: [...new Set(join.servers)].sort(),
        joinedTs: ctx.now(),
      });
    },

    /** Starts fetching a room's full state (after the join's transaction committed). */
    schedule(roomId: string): void {
      if (!stopped) void run(roomId);
    },

    /** Resumes every room still partial (at start-up). */
    async start(logger?: (message: string, fields?: Record<string, unknown>) => void) {
      if (logger) log = logger;
      for (const row of await stores().partialState.selectPartialRooms()) void run(row.roomId);
    },

    stop(): void {
      stopped = true;
      // Leases of fetches under way are given up now (best effort: the database may be
      // closing), so that another process need not wait for them to run out.
      for (const roomId of running.keys())
        void stores()
          .partialState.releaseLease(roomId, owner)
          .catch(() => undefined);
      for (const t of timers.values()) clearTimeout(t);
      timers.clear();
    },

    /** Whether the room's state is partial now. */
    async isPartial(roomId: string): Promise<boolean> {
      return (await stores().partialState.selectPartialRoom(roomId)) !== undefined;
    },

    /** The servers to send a partial-state room's events to besides its known members'. */
    async extraDestinations(s: Stores, roomId: string): Promise<string[]> {
      return (await s.partialState.selectPartialRoom(roomId))?.servers ?? [];
    },

    /**
     * Resolves once none of `roomIds` has partial state, their fetch started now if it was
     * waiting for a retry; after `timeoutMs`, 429 `M_LIMIT_EXCEEDED` with a retry hint.
     * Another process may complete a room: the table is read again every 250 ms. True when
     * any of them was partial (and is complete now).
     */
    async awaitFullState(
      roomIds: readonly string[],
      timeoutMs = PARTIAL_STATE_WAIT_MS,
    ): Promise<boolean> {
      if (roomIds.length === 0) return false;
      const deadline = Date.now() + timeoutMs;
      let partial = await stores().partialState.selectAnyPartial(roomIds);
      if (partial.length === 0) return false;
      const attempts = stopped ? [] : partial.map((roomId) => run(roomId));
      for (;;) {
        const left = deadline - Date.now();
        if (left <= 0) throw limitExceeded(5_000);
        await Promise.race([
          ...attempts,
          new Promise<void>((resolve) => setTimeout(resolve, Math.min(left, 250)).unref()),
        ]);
        partial = await stores().partialState.selectAnyPartial(partial);
        if (partial.length === 0) return true;
      }
    },
  };
}

export type PartialStateService = ReturnType<typeof createPartialStateService>;
