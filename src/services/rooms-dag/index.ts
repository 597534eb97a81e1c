/**
 * The room DAG service: rooms whose events come from other servers as well as ours. It keeps
 * the state at every event (state groups, see `state-groups.ts`), outliers, rejected and
 * soft-failed events, and moves a room's current state by state resolution over its forward
 * extremities — every current-state change (the event's own and whatever resolution decides)
 * going through the same rows, derivers and notifications as a local event's (the event
 * writer's `persistReceived`).
 *
 * Every method runs inside the caller's transaction (`stores`), which holds the room's lock
 * (`stores.rooms.lockRoom`). The checks on receipt (`src/core/pdu-checks/`) are the caller's:
 * this service stores what they decided.
 *
 * Interface (see docs/federation.md, "The room DAG"):
 * - `persistReceived(stores, event)` — a received event with its verdict (`accepted`,
 *   `soft_failed`, `rejected`). Its state before is `event.stateBefore` when given (fetched
 *   with /state_ids), else the state after its prev events, resolved when they fork (each
 *   prev event must have a known state: `MissingStateError` names those that do not).
 *   Accepted events enter the timeline; the room's current state becomes the resolution of
 *   its forward extremities' states. Rejected and soft-failed events are kept outside the
 *   timeline (with their state), never served to clients as accepted.
 * - `persistOutliers(stores, roomId, version, events)` — events known without their state
 *   (auth chains, fetched auth events, an invite's event).
 * - `importRoom(stores, room)` — a room joined through send_join: its state and auth chain
 *   and the join event become a room row with its version, current state, memberships and
 *   forward extremities.
 * - `stateAt(stores, eventId, 'before' | 'after')`, `stateEventsAt`, `authChain(stores, ids)`,
 *   `knownEvents(stores, ids)`, `authStateOf(stores, pdu, version, state)`,
 *   `stateBeforeOf(stores, roomId, version, prevEvents)`.
 */
import { canonicalJson } from '../../core/canonical-json.js';
import { toClientEvent } from '../../core/client-event.js';
import { authEventSelection, powerLevelOf, type AuthStateEvent } from '../../core/auth-rules.js';
import { parseUserId } from '../../core/identifiers.js';
import { stateKeyOf, type Pdu, type RoomVersionId, type StateKey } from '../../core/pdu.js';
import { getRoomVersion } from '../../core/room-versions.js';
import { redactPdu } from '../../core/redaction.js';
import { resolveState, type ResolvableEvent } from '../../core/state-resolution/index.js';
import type { KnownEvent, StateChange, StateGroupHead, Stores } from '../../storage/index.js';
import type { ServiceContext } from '../context.js';
import { persistMembershipWithoutState } from './membership-without-state.js';
import {
  membershipOf,
  type AppendedEvent,
  type EventWriter,
  type ResolvedEntry,
} from '../event-writer.js';
import {
  authEdgesOf,
  diffStates,
  extendGroup,
  groupForState,
  planStateDelta,
  stateKeyOfPdu,
  type StateMap,
} from './state-groups.js';

export { type StateMap } from './state-groups.js';
export { persistMembershipWithoutState } from './membership-without-state.js';

/** An event the server has no state for, named so the caller can fetch it (`/state_ids`). */
export class MissingStateError extends Error {
  constructor(readonly eventIds: readonly string[]) {
    super(`no state known at ${eventIds.join(', ')}`);
  }
}

export type ReceivedStatus = 'accepted' | 'soft_failed' | 'rejected';

export interface ReceivedEvent {
  roomId: string;
  version: RoomVersionId;
  eventId: string;
  /** As checked (redacted when its content hash did not match); `unsigned` is not kept. */
  pdu: Pdu;
  status: ReceivedStatus;
  /** Why it was rejected or soft-failed. */
  reason?: string;
  /** The state before it, when the caller has it (else from its prev events' states). */
  stateBefore?: StateMap;
  /** The server it came from. */
  origin: string;
  /** Pass it on to the room's other servers (send_join, send_leave, send_knock). */
  relay?: boolean;
}

export interface PersistedReceived {
  eventId: string;
  status: ReceivedStatus;
  /** Set when it entered the timeline now. */
  appended?: AppendedEvent;
  /** It was already in the timeline: nothing was written. */
  duplicate: boolean;
}

/** An event with its ID (as fetched, or as sent in a send_join answer). */
export interface IdentifiedPdu {
  eventId: string;
  pdu: Pdu;
}

export interface ImportedRoom {
  roomId: string;
  version: RoomVersionId;
  /** The state before `event` (send_join's `state`). */
  state: readonly IdentifiedPdu[];
  /** The auth chain of that state and of `event` (send_join's `auth_chain`). */
  authChain: readonly IdentifiedPdu[];
  /** The event the room is joined with (our join, as the resident server returned it). */
  event: IdentifiedPdu;
  /** The resident server. */
  origin: string;
}

/** The event a redaction names (in `content` from room version 11, at the top before). */
export function redactionTargetOf(pdu: Pdu, version: RoomVersionId): string | undefined {
  if (pdu.type !== 'm.room.redaction') return undefined;
  const target = getRoomVersion(version).redactsInContent ? pdu.content.redacts : pdu.redacts;
  return typeof target === 'string' ? target : undefined;
}

const stripUnsigned = (pdu: Pdu): Pdu => {
  const copy = { ...pdu } as Pdu & { unsigned?: unknown };
  delete copy.unsigned;
  return copy;
};

export function createRoomDagService(ctx: ServiceContext, writer: EventWriter) {
  async function knownEvents(stores: Stores, ids: readonly string[]) {
    return stores.roomDag.selectKnownEvents(ids);
  }

  /** The states resolved: the events they name and their auth chains are loaded first. */
  async function resolve(
    stores: Stores,
    version: RoomVersionId,
    states: readonly StateMap[],
    /** An event not stored yet (the one being persisted). */
    pending?: IdentifiedPdu,
  ): Promise<Map<StateKey, string>> {
    const named = new Set<string>();
    for (const state of states) for (const id of state.values()) named.add(id);
    const chain = await stores.roomDag.selectAuthChainIds([...named]);
    const known = await knownEvents(stores, [...named, ...chain]);
    const lookup = (id: string): ResolvableEvent | undefined => {
      if (pending && id === pending.eventId) return { ...pending.pdu, event_id: id };
      const event = known.get(id);
      return event
        ? { ...event.pdu, event_id: id, rejected: event.status === 'rejected' }
        : undefined;
    };
    return resolveState(version, states, lookup);
  }

  async function groupState(stores: Stores, groupId: number): Promise<Map<StateKey, string>> {
    return stores.roomDag.selectStateGroup(groupId);
  }

  /**
   * The state before an event with these prev events: the state after the one prev event, or
   * the resolution of the states after several. Throws `MissingStateError` for prev events
   * whose state is unknown.
   */
  async function stateBeforeOf(
    stores: Stores,
    version: RoomVersionId,
    prevEvents: readonly string[],
  ): Promise<{ state: StateMap; head?: StateGroupHead }> {
    const groups = await stores.roomDag.selectEventStateGroups(prevEvents);
    const missing = prevEvents.filter((id) => !groups.has(id));
    if (missing.length > 0) throw new MissingStateError(missing);
    const afterGroups = [...new Set([...groups.values()].map((g) => g.after))];
    if (afterGroups.length === 1) {
      const groupId = afterGroups[0] as number;
      const head = await stores.roomDag.selectGroupHead(groupId);
      return { state: await groupState(stores, groupId), ...(head ? { head } : {}) };
    }
    const states = await Promise.all(afterGroups.map((g) => groupState(stores, g)));
    return { state: await resolve(stores, version, states) };
  }

  /** Events of the room's past that current state now names enter the timeline (negative positions). */
  async function promote(stores: Stores, events: readonly KnownEvent[]): Promise<void> {
    if (events.length === 0) return;
    const ordered = [...events].sort((a, b) => b.pdu.depth - a.pdu.depth);
    const positions = await stores.roomDag.nextHistoryPositions(ordered.length);
    await stores.rooms.insertEvents(
      ordered.map((event, i) => {
        const json = canonicalJson(event.pdu);
        const stored = JSON.parse(json) as Pdu;
        const membership = membershipOf(event.pdu);
        return {
          event: {
            eventId: event.eventId,
            roomId: event.roomId,
            pdu: event.pdu,
            json,
            clientJson: JSON.stringify(
              toClientEvent({ eventId: event.eventId, roomId: event.roomId, pdu: stored }),
            ),
            ...(membership ? { membership } : {}),
          },
          streamOrdering: positions[i] as number,
        };
      }),
    );
    await stores.roomDag.deleteDagEvents(ordered.map((e) => e.eventId));
  }

  /**
   * Whether a redaction may redact its target under the federation rule: both sent from one
   * server, or the redaction's sender at the room's `redact` power level in `state` (the
   * state before the redaction).
   */
  async function mayRedact(
    stores: Stores,
    version: RoomVersionId,
    redaction: Pdu,
    target: Pdu,
    state: StateMap | undefined,
  ): Promise<boolean> {
    if (parseUserId(target.sender)?.serverName === parseUserId(redaction.sender)?.serverName)
      return true;
    if (!state) return false;
    const authIds = [stateKeyOf('m.room.create', ''), stateKeyOf('m.room.power_levels', '')]
      .map((key) => state.get(key))
      .filter((id): id is string => id !== undefined);
    const auth = await knownEvents(stores, authIds);
    const authState = new Map<StateKey, AuthStateEvent>();
    for (const event of auth.values())
      authState.set(stateKeyOf(event.pdu.type, event.pdu.state_key ?? ''), {
        ...event.pdu,
        event_id: event.eventId,
      });
    const levels = authState.get(stateKeyOf('m.room.power_levels', ''))?.content;
    const redactLevel = typeof levels?.redact === 'number' ? levels.redact : 50;
    return powerLevelOf(redaction.sender, authState, version) >= redactLevel;
  }

  /** A received redaction marks its target when its sender may redact it. */
  async function applyRedaction(
    stores: Stores,
    roomId: string,
    version: RoomVersionId,
    redactionId: string,
    pdu: Pdu,
    state: StateMap,
  ): Promise<void> {
    const target = redactionTargetOf(pdu, version);
    if (target === undefined) return;
    const found = (await knownEvents(stores, [target])).get(target);
    if (!found || found.status !== 'timeline' || found.roomId !== roomId) return;
    if (await mayRedact(stores, version, pdu, found.pdu, state))
      await stores.rooms.updateRedactedBy(roomId, target, redactionId);
  }

  /**
   * The auth state of `state` for `pdu`: the entries of its auth selection (and the create
   * event) that `state` names and that are held and not rejected.
   */
  async function authStateOf(
    stores: Stores,
    pdu: Pdu,
    version: RoomVersionId,
    state: StateMap,
  ): Promise<Map<StateKey, AuthStateEvent>> {
    const keys = [
      stateKeyOf('m.room.create', ''),
      ...authEventSelection(pdu.type, pdu.state_key, pdu.sender, pdu.content, version),
    ];
    const ids = keys.map((k) => state.get(k)).filter((id): id is string => id !== undefined);
    const out = new Map<StateKey, AuthStateEvent>();
    for (const event of (await knownEvents(stores, ids)).values())
      if (event.status !== 'rejected')
        out.set(stateKeyOf(event.pdu.type, event.pdu.state_key ?? ''), {
          ...event.pdu,
          event_id: event.eventId,
        });
    return out;
  }

  const service = {
    knownEvents,
    authStateOf,
    stateBeforeOf,
    /** Several states merged by state resolution (their events and auth chains held). */
    resolveStates: (stores: Stores, version: RoomVersionId, states: readonly StateMap[]) =>
      resolve(stores, version, states),
    mayRedact,

    /**
     * An event of the room's past, checked by the caller, whose state groups it recorded:
     * accepted ones enter the timeline at the next negative position (call newest first) with
     * the history derivers — given the event redacted when `redactedBy` is set (a redaction
     * the caller found allowed), which is then marked.
     */
    async persistBackfilled(
      stores: Stores,
      roomId: string,
      version: RoomVersionId,
      event: IdentifiedPdu & { redactedBy?: string },
    ): Promise<AppendedEvent> {
      const pdu = stripUnsigned(event.pdu);
      const existing = (await knownEvents(stores, [event.eventId])).get(event.eventId);
      if (existing) await stores.roomDag.deleteDagEvent(event.eventId);
      const appended = await writer.persistBackfilled(stores, roomId, pdu, version, {
        eventId: event.eventId,
        position: await stores.roomDag.nextHistoryPosition(),
        derivedPdu: event.redactedBy === undefined ? pdu : redactPdu(pdu, version),
      });
      if (event.redactedBy !== undefined)
        await stores.rooms.updateRedactedBy(roomId, event.eventId, event.redactedBy);
      return appended;
    },
    /** Events of the room's past (outliers) entering the timeline at negative positions. */
    promoteToTimeline: promote,

    /** The state before or after an event with a known state (undefined: an outlier or unknown). */
    async stateAt(
      stores: Stores,
      eventId: string,
      when: 'before' | 'after',
    ): Promise<Map<StateKey, string> | undefined> {
      const groups = (await stores.roomDag.selectEventStateGroups([eventId])).get(eventId);
      if (!groups) return undefined;
      return groupState(stores, when === 'before' ? groups.before : groups.after);
    },

    /** The events of a state (as `stateAt` gives it). */
    async stateEvents(stores: Stores, state: StateMap): Promise<KnownEvent[]> {
      const known = await knownEvents(stores, [...state.values()]);
      return [...state.values()]
        .map((id) => known.get(id))
        .filter((e): e is KnownEvent => e !== undefined);
    },

    /** The auth chain of these events (every event reachable through auth events), as known. */
    async authChain(stores: Stores, eventIds: readonly string[]): Promise<KnownEvent[]> {
      const ids = await stores.roomDag.selectAuthChainIds(eventIds);
      return [...(await knownEvents(stores, ids)).values()];
    },

    /**
     * Events known without their state; those already known are left as they are. One with
     * `rejectedReason` failed the checks against its auth events: kept as `rejected`.
     */
    async persistOutliers(
      stores: Stores,
      roomId: string,
      version: RoomVersionId,
      events: readonly (IdentifiedPdu & { rejectedReason?: string })[],
    ): Promise<void> {
      const known = await knownEvents(
        stores,
        events.map((e) => e.eventId),
      );
      const fresh = new Map<string, { eventId: string; pdu: Pdu; rejectedReason?: string }>();
      for (const { eventId, pdu, rejectedReason } of events) {
        if (known.has(eventId) || fresh.has(eventId)) continue;
        fresh.set(eventId, {
          eventId,
          pdu: stripUnsigned(pdu),
          ...(rejectedReason !== undefined ? { rejectedReason } : {}),
        });
      }
      const kept = [...fresh.values()];
      await stores.roomDag.upsertDagEvents(
        kept.map(({ eventId, pdu, rejectedReason }) => ({
          eventId,
          roomId,
          json: canonicalJson(pdu),
          status: rejectedReason === undefined ? 'outlier' : 'rejected',
          reason: rejectedReason ?? null,
        })),
        ctx.now(),
      );
      await stores.roomDag.insertAuthEdgesOfEvents(
        kept.map(({ eventId, pdu }) => ({
          eventId,
          authEventIds: authEdgesOf(pdu, roomId, version),
        })),
      );
    },

    async persistReceived(stores: Stores, input: ReceivedEvent): Promise<PersistedReceived> {
      const { roomId, version, eventId } = input;
      const pdu = stripUnsigned(input.pdu);
      const existing = (await knownEvents(stores, [eventId])).get(eventId);
      if (existing?.status === 'timeline') {
        return { eventId, status: 'accepted', duplicate: true };
      }
      // The state before it, as a group; its whole map is read only when needed.
      let beforeState: StateMap | undefined = input.stateBefore;
      let beforeHead: StateGroupHead | undefined;
      if (!beforeState) {
        const groups = await stores.roomDag.selectEventStateGroups(pdu.prev_events);
        const missing = pdu.prev_events.filter((id) => !groups.has(id));
        if (missing.length > 0) throw new MissingStateError(missing);
        const afterGroups = [...new Set([...groups.values()].map((g) => g.after))];
        if (afterGroups.length === 1) {
          beforeHead = await stores.roomDag.selectGroupHead(afterGroups[0] as number);
        }
        if (!beforeHead) {
          const states = await Promise.all(afterGroups.map((g) => groupState(stores, g)));
          beforeState = await resolve(stores, version, states);
        }
      }
      const loadBefore = async (): Promise<StateMap> =>
        (beforeState ??= await groupState(stores, (beforeHead as StateGroupHead).groupId));
      if (!beforeHead) {
        const known = beforeState as StateMap;
        const prevGroups = await stores.roomDag.selectEventStateGroups(pdu.prev_events);
        const baseId = [...prevGroups.values()][0]?.after;
        const baseHead =
          baseId === undefined ? undefined : await stores.roomDag.selectGroupHead(baseId);
        beforeHead =
          baseHead && baseId !== undefined
            ? await groupForState(stores, roomId, known, {
                head: baseHead,
                state: await groupState(stores, baseId),
              })
            : await groupForState(stores, roomId, known);
      }
      const key = stateKeyOfPdu(pdu);
      const applies = key !== undefined && input.status !== 'rejected';
      const afterHead = applies
        ? await extendGroup(stores, roomId, beforeHead, new Map([[key, eventId]]))
        : beforeHead;
      const afterStateOf = async (): Promise<Map<StateKey, string>> => {
        const state = new Map(await loadBefore());
        if (applies) state.set(key, eventId);
        return state;
      };
      await stores.roomDag.insertEventStateGroups(
        eventId,
        roomId,
        beforeHead.groupId,
        afterHead.groupId,
      );
      await stores.roomDag.insertAuthEdges(eventId, authEdgesOf(pdu, roomId, version));

      if (input.status !== 'accepted') {
        await stores.roomDag.upsertDagEvent(
          {
            eventId,
            roomId,
            json: canonicalJson(pdu),
            status: input.status,
            reason: input.reason ?? null,
          },
          ctx.now(),
        );
        return { eventId, status: input.status, duplicate: false };
      }
      if (existing) await stores.roomDag.deleteDagEvent(eventId);

      // The new current state: the resolution of the forward extremities' states.
      const currentHead = await stores.roomDag.selectCurrentGroup(roomId);
      const extremities = (await stores.rooms.selectExtremities(roomId)).map((e) => e.eventId);
      const prevs = new Set(pdu.prev_events);
      const remaining = extremities.filter((id) => !prevs.has(id));
      const prevGroups = await stores.roomDag.selectEventStateGroups(pdu.prev_events);
      const linear =
        remaining.length === 0 &&
        currentHead !== undefined &&
        pdu.prev_events.length === 1 &&
        prevGroups.get(pdu.prev_events[0] as string)?.after === currentHead.groupId &&
        beforeHead.groupId === currentHead.groupId;
      let changes: Map<StateKey, string | null>;
      let newHead: StateGroupHead;
      let oldState: StateMap = new Map();
      if (linear) {
        changes = applies ? new Map([[key, eventId]]) : new Map();
        newHead = afterHead;
      } else {
        // The new state, read only when current state changes (a resolution made before, of a
        // fork kept open, mostly gives the current group again).
        let newState: StateMap | undefined;
        if (remaining.length === 0) {
          newHead = afterHead;
        } else {
          const others = await stores.roomDag.selectEventStateGroups(remaining);
          const inputGroups = [
            ...new Set([afterHead.groupId, ...[...others.values()].map((o) => o.after)]),
          ];
          const resolvedBefore =
            inputGroups.length === 1
              ? afterHead
              : await stores.roomDag.selectResolvedGroup(inputGroups);
          if (resolvedBefore) {
            // The same groups were resolved before (a fork kept open): that group it is.
            newHead = resolvedBefore;
          } else {
            const afterState = await afterStateOf();
            const states: StateMap[] = [afterState];
            for (const g of inputGroups.slice(1)) states.push(await groupState(stores, g));
            newState = await resolve(stores, version, states, { eventId, pdu });
            newHead = await groupForState(stores, roomId, newState, {
              head: afterHead,
              state: afterState,
            });
            await stores.roomDag.insertResolvedGroup(roomId, inputGroups, newHead.groupId);
          }
        }
        if (newHead.groupId === currentHead?.groupId) {
          changes = new Map();
        } else {
          oldState = currentHead ? await groupState(stores, currentHead.groupId) : new Map();
          newState ??= await groupState(stores, newHead.groupId);
          changes = diffStates(oldState, newState);
        }
      }
      await stores.roomDag.upsertCurrentGroup(roomId, newHead.groupId);

      // Every entry that changed other than by this event (resolution's doing) is derived
      // again: set to another event, or removed altogether (see `planStateDelta`).
      const delta = planStateDelta(oldState, changes, eventId);
      const changedEvents = await knownEvents(stores, delta.eventIds);
      await promote(
        stores,
        delta.added
          .map((id) => changedEvents.get(id))
          .filter((e): e is KnownEvent => e !== undefined && e.status !== 'timeline'),
      );
      const entryOf = (id: string | null) => {
        const found = id === null ? undefined : changedEvents.get(id);
        return found ? { eventId: found.eventId, pdu: found.pdu } : null;
      };
      const stateChanges: StateChange[] = [];
      const resolved: ResolvedEntry[] = [];
      for (const [changedKey, id] of changes) {
        if (id === null) {
          const previous = entryOf(oldState.get(changedKey) ?? null);
          if (!previous) continue;
          const [type, stateKey] = [previous.pdu.type, previous.pdu.state_key ?? ''];
          resolved.push({ type, stateKey, event: null, previous });
          continue;
        }
        const event = id === eventId ? { eventId, pdu } : entryOf(id);
        if (!event) continue;
        const membership = membershipOf(event.pdu);
        const [type, stateKey] = [event.pdu.type, event.pdu.state_key ?? ''];
        if (stateKeyOf(type, stateKey) !== changedKey) continue;
        stateChanges.push({
          type,
          stateKey,
          eventId: id,
          sender: event.pdu.sender,
          clientJson:
            id === eventId
              ? null
              : JSON.stringify(toClientEvent({ eventId: id, roomId, pdu: event.pdu })),
          ...(membership ? { membership } : {}),
        });
        if (id !== eventId)
          resolved.push({
            type,
            stateKey,
            event,
            previous: entryOf(oldState.get(changedKey) ?? null),
          });
      }
      // The event lost its own entry to what current state held already: its event derivers
      // see it as new state, so the state derivers derive the entry again from the holder.
      if (applies && key !== undefined && !linear && !changes.has(key)) {
        const holderId = oldState.get(key);
        const holder =
          holderId === undefined
            ? undefined
            : (await knownEvents(stores, [holderId])).get(holderId);
        if (holderId !== eventId)
          resolved.push({
            type: pdu.type,
            stateKey: pdu.state_key ?? '',
            event: holder ? { eventId: holder.eventId, pdu: holder.pdu } : null,
            previous: { eventId, pdu },
          });
      }
      const appended = await writer.persistReceived(stores, roomId, pdu, version, {
        eventId,
        stateChanges,
        resolved,
        origin: input.origin,
        relay: input.relay ?? false,
      });
      if (pdu.type === 'm.room.redaction') {
        await applyRedaction(stores, roomId, version, eventId, pdu, await loadBefore());
      }
      return { eventId, status: 'accepted', appended, duplicate: false };
    },

    /**
     * An invite of a local user to a room on another server, with the stripped state its
     * server sent: the invite enters the timeline (no forward extremity, no state group) and
     * the user's membership becomes `invite`, so /sync shows it with that stripped state.
     * A room we already have only gets the invite event through /send, not here.
     */
    async persistRemoteInvite(
      stores: Stores,
      invite: {
        roomId: string;
        version: RoomVersionId;
        eventId: string;
        pdu: Pdu;
        strippedState: readonly unknown[];
      },
    ): Promise<void> {
      const { roomId, eventId } = invite;
      const pdu = stripUnsigned(invite.pdu);
      const userId = pdu.state_key ?? '';
      await stores.rooms.insertRoom(
        { roomId, roomVersion: invite.version, creator: pdu.sender, isPublic: false },
        ctx.now(),
      );
      await stores.roomDag.upsertInviteRoomState(
        roomId,
        userId,
        eventId,
        JSON.stringify(invite.strippedState),
      );
      await persistMembershipWithoutState(stores, roomId, eventId, pdu);
    },

    /**
     * A room joined through a resident server: the room row (its version, creator), the auth
     * chain as outliers, the state (which enters the timeline before the join, at negative
     * positions), and the join event as the room's one forward extremity, with current state
     * and memberships from the state after it. Returns the join as appended.
     */
    async importRoom(stores: Stores, room: ImportedRoom): Promise<PersistedReceived> {
      const create = room.state.find((e) => e.pdu.type === 'm.room.create');
      if (!create) throw new Error('importRoom: the state has no m.room.create event');
      await stores.rooms.insertRoom(
        {
          roomId: room.roomId,
          roomVersion: room.version,
          creator: create.pdu.sender,
          isPublic: false,
        },
        ctx.now(),
      );
      await service.persistOutliers(stores, room.roomId, room.version, [
        ...room.authChain,
        ...room.state,
      ]);
      const stateBefore = new Map<StateKey, string>();
      for (const { eventId, pdu } of room.state)
        if (pdu.state_key !== undefined)
          stateBefore.set(stateKeyOf(pdu.type, pdu.state_key), eventId);
      return service.persistReceived(stores, {
        roomId: room.roomId,
        version: room.version,
        eventId: room.event.eventId,
        pdu: room.event.pdu,
        status: 'accepted',
        stateBefore,
        origin: room.origin,
      });
    },
  };
  return service;
}

export type RoomDagService = ReturnType<typeof createRoomDagService>;
