/**
 * Whether a user may see a room event, from their membership history and the room's
 * history_visibility history (spec: Client-Server API, "Room history visibility").
 */
export interface PositionedValue {
  streamOrdering: number;
  value: string;
}

export interface VisibilityHistory {
  /** The user's memberships in the room, oldest first. */
  memberships: readonly PositionedValue[];
  /** The room's `history_visibility` values, oldest first. */
  visibilities: readonly PositionedValue[];
}

/** The value in force at `position` (the last change at or before it). */
export function valueAt(history: readonly PositionedValue[], position: number): string | undefined {
  let found: string | undefined;
  for (const entry of history) {
    if (entry.streamOrdering > position) break;
    found = entry.value;
  }
  return found;
}

/** Whether the event at stream position `position` is visible to the user. */
export function isVisibleAt(position: number, history: VisibilityHistory): boolean {
  const visibility = valueAt(history.visibilities, position) ?? 'shared';
  if (visibility === 'world_readable') return true;
  const membership = valueAt(history.memberships, position);
  if (membership === 'join') return true;
  switch (visibility) {
    case 'shared':
      // All history is open to members; a former member sees up to their leaving.
      return history.memberships.some((m) => m.value === 'join' && m.streamOrdering >= position);
    case 'invited':
      return membership === 'invite';
    default:
      return false;
  }
}

/** The room state at an event, as far as its visibility goes. */
export interface StateAtEvent {
  /** `history_visibility` in the state (undefined: none, read as `shared`). */
  visibility: string | undefined;
  /** The user's membership in the state (undefined: none). */
  membership: string | undefined;
}

/**
 * Whether the event at `position` is visible to the user, from the room state at the event
 * (the history of the room's past, fetched from other servers, whose changes the positional
 * history does not hold) and, for `shared`, the user's membership history (joined at any
 * point after it).
 */
export function isVisibleInState(
  position: number,
  atEvent: StateAtEvent,
  history: VisibilityHistory,
): boolean {
  const visibility = atEvent.visibility ?? 'shared';
  if (visibility === 'world_readable') return true;
  if (atEvent.membership === 'join') return true;
  switch (visibility) {
    case 'shared':
      return history.memberships.some((m) => m.value === 'join' && m.streamOrdering >= position);
    case 'invited':
      return atEvent.membership === 'invite';
    default:
      return false;
  }
}
