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
