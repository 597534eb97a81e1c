/**
 * Builds, authorizes, hashes, signs and persists room events. Every write to a room goes
 * through `append` inside a transaction that holds the room's lock, so each auth check sees
 * the latest state, and the event with all rows derived from it commits at once.
 */
import { forbidden, MatrixError } from '../core/errors.js';
import { authEventSelection, authorizeEvent, type AuthStateEvent } from '../core/auth-rules.js';
import { canonicalJson } from '../core/canonical-json.js';
import { toClientEvent } from '../core/client-event.js';
import { computeEventId, roomIdFromCreateEvent } from '../core/event-hashing.js';
import {
  stateKeyOf,
  type JsonObject,
  type Pdu,
  type RoomVersionId,
  type StateKey,
  type UnsignedPdu,
} from '../core/pdu.js';
import { getRoomVersion } from '../core/room-versions.js';
import { hashAndSignPdu } from '../core/signing.js';
import { randomString } from '../core/secrets.js';
import type { EventRow, StateChange, StateRemoval, Stores } from '../storage/index.js';
import { recordLocalEventState } from './rooms-dag/state-groups.js';
import type { ServiceContext } from './context.js';

export interface NewEvent {
  type: string;
  stateKey?: string | undefined;
  sender: string;
  content: JsonObject;
  /** Redaction target; placed per room version (top level before v11, content from v11). */
  redacts?: string | undefined;
  /** `origin_server_ts` other than now: an application service's `ts` (bridged history). */
  originServerTs?: number | undefined;
}

export interface AppendedEvent {
  eventId: string;
  roomId: string;
  streamOrdering: number;
  pdu: Pdu;
}

/**
 * Work derived from a new event that must commit with it: queues for other servers, bridges
 * and push gateways, indexes. Runs inside the event's transaction, after the event's own rows;
 * a deriver that throws rolls the event back with everything else.
 */
export type EventDeriver = (
  stores: Stores,
  event: AppendedEvent & {
    roomVersion: RoomVersionId;
    /**
     * Set for an event another server made (received over federation): `relay` when this
     * server passes it on to the room's other servers (a join, leave or knock it was sent
     * through send_join, send_leave, send_knock), `origin` the server it came from.
     */
    received?: { origin: string; relay: boolean };
    /**
     * Set for an event of the room's past fetched with /backfill (or /context): it enters the
     * timeline before everything held (a negative position), changes no current state, and is
     * new to nobody. Only derivers registered with `{ history: true }` are given such events
     * (search, relations); the others (notifications, outbox, room lists…) never see them.
     */
    backfilled?: true;
  },
) => Promise<void>;

/** How a deriver is registered (see `addDeriver`). */
export interface DeriverOptions {
  /** Also run for backfilled events (`event.backfilled`): indexes of history, not news. */
  history?: boolean;
}

/** An event as a state entry names it. */
export interface StateEntryEvent {
  eventId: string;
  pdu: Pdu;
}

/**
 * A current-state entry that state resolution changed when an event arrived, other than by
 * the event itself: set to another event (one of the room's past, or of another branch), or
 * removed altogether (`event` null).
 */
export interface ResolvedEntry {
  type: string;
  stateKey: string;
  /** The event now holding the entry; null: resolution removed it. */
  event: StateEntryEvent | null;
  /**
   * The event that held it before (null: the entry is new) — or the new event itself when it
   * lost its own entry to the event that holds it (its event derivers saw it as applied).
   */
  previous: StateEntryEvent | null;
}

/**
 * Work derived from the room's current state, for the entries state resolution changed
 * (`ResolvedEntry`): what an event deriver does for a new state event, done for an entry
 * that changed without a new event of its own. Runs in the transaction of the event whose
 * arrival caused it, after that event's derivers; `streamOrdering` is that event's position.
 */
export type StateDeriver = (
  stores: Stores,
  change: ResolvedEntry & { roomId: string; roomVersion: RoomVersionId; streamOrdering: number },
) => Promise<void>;

/** How a received event (see `persistReceived`) reaches the room's rows. */
export interface ReceivedPersist {
  eventId: string;
  /** The current-state entries it set (itself, and whatever state resolution decided). */
  stateChanges: readonly StateChange[];
  /** The entries resolution changed other than by this event (removals included). */
  resolved?: readonly ResolvedEntry[];
  origin: string;
  relay: boolean;
}

const MAX_PREV_EVENTS = 10;
/** Room IDs tried before a create gives up (each one a millisecond later). */
const MAX_CREATE_ATTEMPTS = 1000;
const CREATE_KEY = stateKeyOf('m.room.create', '');

/** The membership row a member event makes (undefined for other events). */
export function membershipOf(pdu: Pdu): StateChange['membership'] {
  return pdu.type === 'm.room.member' &&
    pdu.state_key !== undefined &&
    typeof pdu.content.membership === 'string'
    ? {
        userId: pdu.state_key,
        membership: pdu.content.membership,
        displayname: typeof pdu.content.displayname === 'string' ? pdu.content.displayname : null,
        avatarUrl: typeof pdu.content.avatar_url === 'string' ? pdu.content.avatar_url : null,
      }
    : undefined;
}

function toAuthEntry(row: EventRow): AuthStateEvent {
  return { ...row.pdu, event_id: row.eventId };
}

export function createEventWriter(ctx: ServiceContext) {
  const { serverName } = ctx.settings;
  const derivers: EventDeriver[] = [];
  const historyDerivers: EventDeriver[] = [];
  const stateDerivers: StateDeriver[] = [];

  const sign = (unsigned: UnsignedPdu, version: RoomVersionId) =>
    hashAndSignPdu(unsigned, version, serverName, ctx.signingKey);

  async function persist(
    stores: Stores,
    roomId: string,
    pdu: Pdu,
    version: RoomVersionId,
    received?: ReceivedPersist,
  ): Promise<AppendedEvent> {
    const eventId = received?.eventId ?? computeEventId(pdu, version);
    // A local event's state snapshot; a received one's was recorded by the room DAG service.
    if (!received) await recordLocalEventState(stores, roomId, eventId, pdu, version);
    const streamOrdering = await stores.rooms.nextStreamPosition();
    const membership = membershipOf(pdu);
    const json = canonicalJson(pdu);
    // The client form from the stored JSON, so it reads exactly as one presented later does.
    const stored = JSON.parse(json) as Pdu;
    const clientJson = JSON.stringify(toClientEvent({ eventId, roomId, pdu: stored }));
    await stores.rooms.persistEvent(
      { eventId, roomId, pdu, json, clientJson, ...(membership ? { membership } : {}) },
      streamOrdering,
      { applyState: !received },
    );
    const users = new Set<string>();
    let membersChanged = pdu.type === 'm.room.redaction';
    const removals: StateRemoval[] = [];
    if (received) {
      await stores.rooms.applyStateChanges(
        roomId,
        received.stateChanges.map((c) => (c.eventId === eventId ? { ...c, clientJson } : c)),
        streamOrdering,
      );
      for (const change of received.stateChanges) {
        if (change.membership) {
          users.add(change.membership.userId);
          membersChanged = true;
        }
      }
      for (const entry of received.resolved ?? []) {
        // (An entry the new event lost to nothing held it before: nothing to remove.)
        if (entry.event !== null || entry.previous === null) continue;
        if (entry.previous.eventId === eventId) continue;
        const isMember = entry.type === 'm.room.member';
        removals.push({
          type: entry.type,
          stateKey: entry.stateKey,
          eventId: entry.previous.eventId,
          ...(isMember ? { userId: entry.stateKey } : {}),
        });
        if (isMember) {
          users.add(entry.stateKey);
          membersChanged = true;
        }
      }
      if (removals.length > 0)
        await stores.rooms.removeStateEntries(roomId, removals, streamOrdering);
    } else if (membership) {
      users.add(membership.userId);
      membersChanged = true;
    }
    const appended: AppendedEvent = { eventId, roomId, streamOrdering, pdu };
    const extra = received ? { received: { origin: received.origin, relay: received.relay } } : {};
    for (const derive of derivers)
      await derive(stores, { ...appended, roomVersion: version, ...extra });
    for (const entry of received?.resolved ?? [])
      for (const derive of stateDerivers)
        await derive(stores, { ...entry, roomId, roomVersion: version, streamOrdering });
    // A redaction may change how a member event reads: member lists kept as bodies go too.
    await stores.stream.notify({
      rooms: [roomId],
      ...(users.size > 0 ? { users: [...users] } : {}),
      ...(membersChanged ? { memberRooms: [roomId] } : {}),
    });
    return appended;
  }

  /** The current state events the auth rules read for an event, by state key and as IDs. */
  async function authStateFor(
    stores: Stores,
    roomId: string,
    version: RoomVersionId,
    type: string,
    stateKey: string | undefined,
    sender: string,
    content: JsonObject,
  ) {
    const selection = authEventSelection(type, stateKey, sender, content, version);
    const wanted = new Set<StateKey>([CREATE_KEY, ...selection]);
    const keys = [...wanted].map((key) => key.split('\u0000') as [string, string]);
    const rows = await stores.rooms.selectStateEvents(roomId, keys);
    const authState = new Map<StateKey, AuthStateEvent>();
    const idsByKey = new Map<StateKey, string>();
    for (const row of rows) {
      const key = stateKeyOf(row.pdu.type, row.pdu.state_key ?? '');
      authState.set(key, toAuthEntry(row));
      idsByKey.set(key, row.eventId);
    }
    return { selection, authState, idsByKey };
  }

  /** Builds, authorizes and signs an event of the room (see `append`). */
  async function prepare(
    stores: Stores,
    roomId: string,
    event: NewEvent,
  ): Promise<{ pdu: Pdu; version: RoomVersionId }> {
    const room = await stores.rooms.selectRoom(roomId);
    if (!room) throw new MatrixError(404, 'M_NOT_FOUND', 'Unknown room');
    if (
      event.type === 'm.room.member' &&
      event.stateKey === event.sender &&
      (event.content.membership === 'join' || event.content.membership === 'knock') &&
      (await stores.accounts.selectUser(event.sender))?.deactivated
    ) {
      // A request of the user's that was under way when the account was deactivated
      // (deactivation leaves every room, and must not be outrun by a join).
      throw new MatrixError(403, 'M_USER_DEACTIVATED', 'This account has been deactivated');
    }
    const version = room.roomVersion as RoomVersionId;
    const rules = getRoomVersion(version);
    const { selection, authState, idsByKey } = await authStateFor(
      stores,
      roomId,
      version,
      event.type,
      event.stateKey,
      event.sender,
      event.content,
    );
    const extremities = await stores.rooms.selectExtremities(roomId);
    const prev = extremities.sort((a, b) => b.depth - a.depth).slice(0, MAX_PREV_EVENTS);
    const depth = Math.min(Number.MAX_SAFE_INTEGER, Math.max(0, ...prev.map((p) => p.depth)) + 1);
    const authEvents = selection
      .filter((key) => !(key === CREATE_KEY && !rules.createEventInAuthEvents))
      .map((key) => idsByKey.get(key))
      .filter((id): id is string => id !== undefined);
    const content = { ...event.content };
    const unsigned: UnsignedPdu = {
      room_id: roomId,
      sender: event.sender,
      origin_server_ts: event.originServerTs ?? ctx.now(),
      type: event.type,
      ...(event.stateKey !== undefined ? { state_key: event.stateKey } : {}),
      content,
      prev_events: prev.map((p) => p.eventId),
      auth_events: authEvents,
      depth,
    };
    if (event.redacts !== undefined) {
      if (rules.redactsInContent) content.redacts = event.redacts;
      else unsigned.redacts = event.redacts;
    }
    const result = authorizeEvent(unsigned, authState, version, {
      isSignedBy: (server) => server === serverName,
    });
    if (!result.allowed) throw forbidden(result.reason);
    return { pdu: sign(unsigned, version), version };
  }

  return {
    /**
     * Adds work that commits with every event this writer persists (in registration order).
     * Services register here when they are built (see `createServices`).
     */
    addDeriver(derive: EventDeriver, options?: DeriverOptions): void {
      derivers.push(derive);
      if (options?.history) historyDerivers.push(derive);
    },

    /**
     * Persists an event of the room's past (fetched with /backfill, checked, its state
     * recorded by the room DAG service) at `position` (negative: before everything held): the
     * timeline row and the history derivers (`addDeriver(…, { history: true })`), given
     * `derivedPdu` — the event as it reads (redacted when a redaction held applies to it).
     * No current state, forward extremity or notification. The caller holds the room lock.
     */
    async persistBackfilled(
      stores: Stores,
      roomId: string,
      pdu: Pdu,
      version: RoomVersionId,
      backfilled: { eventId: string; position: number; derivedPdu: Pdu },
    ): Promise<AppendedEvent> {
      const { eventId, position } = backfilled;
      const json = canonicalJson(pdu);
      const stored = JSON.parse(json) as Pdu;
      const membership = membershipOf(pdu);
      await stores.rooms.persistEvent(
        {
          eventId,
          roomId,
          pdu,
          json,
          clientJson: JSON.stringify(toClientEvent({ eventId, roomId, pdu: stored })),
          ...(membership ? { membership } : {}),
        },
        position,
        { applyState: false, extremity: false },
      );
      const appended: AppendedEvent = { eventId, roomId, streamOrdering: position, pdu };
      for (const derive of historyDerivers)
        await derive(stores, {
          ...appended,
          pdu: backfilled.derivedPdu,
          roomVersion: version,
          backfilled: true,
        });
      return appended;
    },

    /**
     * Adds work derived from current state that must follow the entries state resolution
     * changes without an event of their own (see `StateDeriver`). A deriver that keeps
     * something from state events registers both: an event deriver for new events, a state
     * deriver for resolution's changes.
     */
    addStateDeriver(derive: StateDeriver): void {
      stateDerivers.push(derive);
    },

    /**
     * Persists an event another server made, whose checks passed and whose state the room DAG
     * service has recorded (`src/services/rooms-dag/`): the timeline row, the forward
     * extremities, the current-state changes it computed, the derivers and the notification,
     * as for a local event. The caller holds the room lock inside its transaction.
     */
    persistReceived(
      stores: Stores,
      roomId: string,
      pdu: Pdu,
      version: RoomVersionId,
      received: ReceivedPersist,
    ): Promise<AppendedEvent> {
      return persist(stores, roomId, pdu, version, received);
    },

    /** Creates the room's first event and the room row; returns the new room's ID. */
    async createRoom(
      stores: Stores,
      sender: string,
      version: RoomVersionId,
      extraContent: JsonObject,
    ): Promise<AppendedEvent> {
      const rules = getRoomVersion(version);
      const content: JsonObject = { ...extraContent, room_version: version };
      if (rules.createContentHasCreator) content.creator = sender;
      // A room ID of version 12 is the hash of the create event: two identical requests
      // from one user in the same millisecond would make the same room. When the ID is
      // taken (by another request, another worker, or a random ID's rare collision), the
      // create event is made again a millisecond later (or with a new random ID), which
      // changes nothing else about the room.
      let ts = ctx.now();
      for (let attempt = 0; ; attempt++) {
        const base: UnsignedPdu = {
          sender,
          origin_server_ts: ts,
          type: 'm.room.create',
          state_key: '',
          content,
          prev_events: [],
          auth_events: [],
          depth: 1,
        };
        let roomId: string;
        let pdu: Pdu;
        if (rules.roomIdFromCreateEvent) {
          pdu = sign(base, version);
          roomId = roomIdFromCreateEvent(pdu, version);
        } else {
          roomId = `!${randomString(18)}:${serverName}`;
          pdu = sign({ ...base, room_id: roomId }, version);
        }
        const authState = new Map<StateKey, AuthStateEvent>();
        const result = authorizeEvent(pdu, authState, version);
        if (!result.allowed) throw forbidden(result.reason);
        const inserted = await stores.rooms.insertRoom(
          { roomId, roomVersion: version, creator: sender, isPublic: false },
          ctx.now(),
        );
        if (inserted) return persist(stores, roomId, pdu, version);
        if (attempt >= MAX_CREATE_ATTEMPTS) {
          throw new Error(`createRoom: ${MAX_CREATE_ATTEMPTS} room IDs in a row were taken`);
        }
        ts = Math.max(ts + 1, ctx.now());
      }
    },

    /**
     * Appends an event to an existing room. The caller holds the room lock (`lockRoom`)
     * inside its transaction. Refusals by the auth rules are 403 M_FORBIDDEN with the reason.
     */
    async append(stores: Stores, roomId: string, event: NewEvent): Promise<AppendedEvent> {
      const { pdu, version } = await prepare(stores, roomId, event);
      return persist(stores, roomId, pdu, version);
    },

    /**
     * Builds, authorizes and signs an event as `append` would, without persisting it: for an
     * event another server must countersign first (an invite of its user). Persist the
     * result with `appendPrepared`.
     */
    prepare,

    /**
     * Persists an event built by `prepare` (with the signatures added since), checked again
     * against the room's current state. The caller holds the room lock.
     */
    async appendPrepared(stores: Stores, roomId: string, pdu: Pdu): Promise<AppendedEvent> {
      const room = await stores.rooms.selectRoom(roomId);
      if (!room) throw new MatrixError(404, 'M_NOT_FOUND', 'Unknown room');
      const version = room.roomVersion as RoomVersionId;
      const { authState } = await authStateFor(
        stores,
        roomId,
        version,
        pdu.type,
        pdu.state_key,
        pdu.sender,
        pdu.content,
      );
      const result = authorizeEvent(pdu, authState, version, {
        isSignedBy: (server) => server === serverName || server in (pdu.signatures ?? {}),
      });
      if (!result.allowed) throw forbidden(result.reason);
      return persist(stores, roomId, pdu, version);
    },
  };
}

export type EventWriter = ReturnType<typeof createEventWriter>;
