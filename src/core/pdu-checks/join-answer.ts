/**
 * The answer of a resident server to our `send_join` — the room's state before our join and
 * the auth chain — is taken only when it holds together: each state event authorised by its
 * own auth events (found in the answer), one event per state key, the create event of this
 * room and version among them, and our join authorised both by its auth events and by that
 * state. A server answering otherwise is lying or broken; the caller tries another one.
 * Spec: https://spec.matrix.org/v1.16/server-server-api/#joining-rooms ("the joining server
 * … should verify … the state and auth chain") and the checks on receipt of a PDU.
 */
import type { AuthStateEvent } from '../auth-rules.js';
import { CREATE_KEY } from '../auth/types.js';
import { stateKeyOf, type RoomVersionId, type StateKey } from '../pdu.js';
import { checkAgainstAuthEvents, checkAgainstState, type KnownAuthEvent } from './authorization.js';
import { checkFetchedEvents, type FetchedEvent, type FetchedVerdict } from './fetched.js';

export interface JoinAnswer {
  readonly roomId: string;
  readonly roomVersion: RoomVersionId;
  /** The IDs of the events the answer's `state` listed, in its order (duplicates allowed). */
  readonly stateIds: readonly string[];
  /**
   * The events of `state` and `auth_chain` that passed the format, signature and content
   * hash checks (redacted when their hash did not match).
   */
  readonly events: readonly FetchedEvent[];
  /**
   * IDs of events of the answer left out because their signatures could not be verified (a
   * server whose keys are gone, say): as Synapse does, they and the state events that rely on
   * them are dropped rather than the whole answer refused.
   */
  readonly dropped: ReadonlySet<string>;
  /** Our join event, as the resident server returned it (or as we sent it). */
  readonly join: FetchedEvent;
  /** `members_omitted`: member events may be missing from the state (MSC3706). */
  readonly membersOmitted: boolean;
}

export type JoinAnswerVerdict =
  | {
      readonly valid: true;
      /** The state before our join: state key → event ID. */
      readonly state: ReadonlyMap<StateKey, string>;
      /** Every event of the answer that passed its auth events (state and auth chain). */
      readonly accepted: ReadonlySet<string>;
    }
  | { readonly valid: false; readonly reason: string };

const refuse = (reason: string): JoinAnswerVerdict => ({ valid: false, reason });

export function checkJoinAnswer(answer: JoinAnswer): JoinAnswerVerdict {
  const { roomId, roomVersion } = answer;
  const byId = new Map(answer.events.map((e) => [e.eventId, e]));
  const stateIds = [...new Set(answer.stateIds)].filter((id) => !answer.dropped.has(id));

  // The create event: one, of this room and of the version make_join named.
  const creates = stateIds.filter((id) => {
    const pdu = byId.get(id)?.pdu;
    return pdu?.type === 'm.room.create' && pdu.state_key === '';
  });
  if (creates.length !== 1)
    return refuse(`the state holds ${creates.length} usable m.room.create events, not one`);
  const createId = creates[0] as string;
  const create = (byId.get(createId) as FetchedEvent).pdu;
  const createdVersion = create.content.room_version ?? '1';
  if (createdVersion !== roomVersion)
    return refuse(
      `the create event is of room version ${String(createdVersion)}, not ${roomVersion}`,
    );
  if (roomVersion === '12' ? roomId !== `!${createId.slice(1)}` : create.room_id !== roomId)
    return refuse('the create event is not the one of this room');

  const verdicts = checkFetchedEvents(
    answer.events,
    () => undefined,
    roomVersion,
    roomVersion === '12' ? { createEventId: createId } : {},
  );
  const acceptedIds = new Set(
    [...verdicts].filter(([, v]) => v.verdict === 'accepted').map(([id]) => id),
  );
  const entryOf = (id: string): KnownAuthEvent | undefined => {
    const event = acceptedIds.has(id) ? byId.get(id) : undefined;
    return event ? { ...event.pdu, event_id: id } : undefined;
  };

  // Whether an event waits only on events dropped for their signatures (then it is dropped
  // too), rather than on events the answer left out (then the answer is incomplete).
  const waitsOnDropped = new Map<string, boolean>();
  function onlyDroppedMissing(id: string, trail: Set<string> = new Set()): boolean {
    const known = waitsOnDropped.get(id);
    if (known !== undefined) return known;
    if (answer.dropped.has(id)) return true;
    const verdict: FetchedVerdict | undefined = verdicts.get(id);
    if (!verdict || verdict.verdict !== 'missing' || trail.has(id)) return false;
    trail.add(id);
    const result = verdict.missing.every((m) => onlyDroppedMissing(m, trail));
    waitsOnDropped.set(id, result);
    return result;
  }

  const state = new Map<StateKey, string>();
  const authState = new Map<StateKey, AuthStateEvent>();
  for (const id of stateIds) {
    const event = byId.get(id);
    if (!event) return refuse(`the state names ${id}, which the answer does not hold`);
    const { pdu } = event;
    if (pdu.state_key === undefined) return refuse(`the state holds ${id}, not a state event`);
    if (id !== createId && pdu.room_id !== roomId)
      return refuse(`the state holds ${id}, an event of another room`);
    const verdict = verdicts.get(id) as FetchedVerdict;
    if (verdict.verdict === 'rejected')
      return refuse(`the state event ${id} (${pdu.type}) is not authorised: ${verdict.reason}`);
    if (verdict.verdict === 'missing') {
      if (onlyDroppedMissing(id)) continue;
      return refuse(
        `the auth events of the state event ${id} are not in the answer: ${verdict.missing.join(', ')}`,
      );
    }
    const key = stateKeyOf(pdu.type, pdu.state_key);
    if (state.has(key))
      return refuse(`the state holds two events for (${pdu.type}, ${pdu.state_key})`);
    state.set(key, id);
    authState.set(key, { ...pdu, event_id: id });
  }
  if (!state.has(CREATE_KEY)) return refuse('the create event is not authorised');

  // Our join: against its own auth events, then against the state before it. With members
  // omitted, the join's own auth events stand in for member entries the state lacks.
  const { join } = answer;
  if (join.pdu.room_id !== roomId) return refuse('the join event is of another room');
  const createEntry = entryOf(createId);
  const own = checkAgainstAuthEvents(join.pdu, join.eventId, entryOf, roomVersion, {
    ...(roomVersion === '12' && createEntry ? { createEvent: createEntry } : {}),
    ...(join.checks ? { checks: join.checks } : {}),
  });
  if (!own.allowed)
    return refuse(
      'missing' in own
        ? `the join's auth events are not in the answer: ${own.missing.join(', ')}`
        : `the join is not authorised by its auth events: ${own.reason}`,
    );
  const before = new Map(authState);
  if (answer.membersOmitted)
    for (const authId of join.pdu.auth_events) {
      const entry = entryOf(authId);
      if (entry?.state_key === undefined || entry.type !== 'm.room.member') continue;
      const key = stateKeyOf(entry.type, entry.state_key);
      if (!before.has(key)) before.set(key, entry);
    }
  const againstState = checkAgainstState(join.pdu, join.eventId, before, roomVersion, join.checks);
  if (!againstState.allowed)
    return refuse(`the join is not authorised by the state answered: ${againstState.reason}`);
  return { valid: true, state, accepted: acceptedIds };
}
